// The gateway's browser protocols from Node: the generated stubs (gen/ts) called with
// connect-es's own transports over HTTP/1.1, each in both of its encodings: Connect
// (application/json, application/proto; GET for the NO_SIDE_EFFECTS methods) and gRPC-Web
// (application/grpc-web+proto, application/grpc-web+json), against the gateway in front of the
// real services. Twice: with @connectrpc/connect-node (Node's http module, httpVersion "1.1")
// and with @connectrpc/connect-web, the browsers' transports, on Node's own fetch. Run by
// tests/node/test_node_rpc.py, which starts them, the gateway without a rate limit, and passes
// its URL and limits in SHOP_GATEWAY_URL, SHOP_GATEWAY_MAX_BODY_BYTES and
// SHOP_GATEWAY_STREAMS_PER_CALLER:
//
//   node --test tests/node/rpc.test.mjs
//
// Every HTTP exchange is recorded (method, path, status, headers: node:diagnostics_channel for
// the http module, a wrapped fetch for connect-web), so that a test asserts what went over the
// wire, and a failure shows it.

import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import diagnostics from "node:diagnostics_channel";
import { describe, test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport as createNodeConnectTransport,
  createGrpcWebTransport as createNodeGrpcWebTransport,
} from "@connectrpc/connect-node";
import {
  createConnectTransport as createWebConnectTransport,
  createGrpcWebTransport as createWebGrpcWebTransport,
} from "@connectrpc/connect-web";

import { BadRequestSchema, ErrorInfoSchema } from "../../gen/ts/google/rpc/error_details_pb.js";
import { MoneySchema } from "../../gen/ts/google/type/money_pb.js";
import {
  LineItemSchema,
  OrderEvent_Type,
  OrderService,
  Order_State,
} from "../../gen/ts/shop/order/v1/order_pb.js";
import {
  GetUserRequestSchema,
  UserEvent_Type,
  UserService,
} from "../../gen/ts/shop/user/v1/user_pb.js";

const baseUrl = process.env.SHOP_GATEWAY_URL;
assert.ok(baseUrl, "set SHOP_GATEWAY_URL (the gateway's http://host:port)");
const TIMEOUT_MS = 10_000;
/** How long a stream may take to deliver what the test waits for. */
const WAIT_MS = 5_000;
const TEST = { timeout: 20_000 };
const DOMAIN = "shop.dev";
/** Users a burst creates at once. */
const BURST = 30;
/** How soon after a client's abort the gateway gives the stream's slot back, at most. */
const SLOT_BACK_MS = 1_000;
/** The gateway's max_body_bytes (the gateway's default unless given). */
const MAX_BODY_BYTES = Number(process.env.SHOP_GATEWAY_MAX_BODY_BYTES ?? 4 * 1024 * 1024);
/** Watches one caller may hold at once through the gateway (its max_streams_per_caller). */
const STREAM_CAP = Number(process.env.SHOP_GATEWAY_STREAMS_PER_CALLER ?? 8);

/** Connect's error code → HTTP status table (https://connectrpc.com/docs/protocol). */
const CONNECT_STATUS = {
  [Code.Canceled]: 499,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Unavailable]: 503,
  [Code.Unauthenticated]: 401,
};

const ENCODINGS = [
  {
    name: "Connect, JSON",
    connect: true,
    binary: false,
    unaryType: "application/json",
    streamType: "application/connect+json",
  },
  {
    name: "Connect, binary",
    connect: true,
    binary: true,
    unaryType: "application/proto",
    streamType: "application/connect+proto",
  },
  {
    name: "gRPC-Web, binary",
    connect: false,
    binary: true,
    unaryType: "application/grpc-web+proto",
    streamType: "application/grpc-web+proto",
  },
  {
    name: "gRPC-Web, JSON",
    connect: false,
    binary: false,
    unaryType: "application/grpc-web+json",
    streamType: "application/grpc-web+json",
  },
];

/** connect-node's transports take sendCompression; connect-web's leave it to the browser. */
const LIBRARIES = [
  {
    library: "connect-node",
    node: true,
    connectTransport: (options) => createNodeConnectTransport({ httpVersion: "1.1", ...options }),
    grpcWebTransport: (options) => createNodeGrpcWebTransport({ httpVersion: "1.1", ...options }),
  },
  {
    library: "connect-web",
    node: false,
    connectTransport: (options) => createWebConnectTransport({ fetch: recordedFetch, ...options }),
    grpcWebTransport: (options) => createWebGrpcWebTransport({ fetch: recordedFetch, ...options }),
  },
];

const PROTOCOLS = LIBRARIES.flatMap((library) =>
  ENCODINGS.map((encoding) => ({
    ...library,
    ...encoding,
    name: `${encoding.name} (${library.library})`,
  })),
);

function transportOf(protocol, options = {}) {
  const create = protocol.connect ? protocol.connectTransport : protocol.grpcWebTransport;
  return create({ baseUrl, useBinaryFormat: protocol.binary, ...options });
}

function clientsOf(transport) {
  return {
    users: createClient(UserService, transport),
    orders: createClient(OrderService, transport),
  };
}

// -- the wire ------------------------------------------------------------------------------

const exchanges = [];
const exchangeOf = new WeakMap();

diagnostics.subscribe("http.client.request.start", ({ request }) => {
  const exchange = {
    method: request.method,
    path: request.path,
    requestHeaders: request.getHeaders(),
    status: undefined,
    responseHeaders: undefined,
  };
  exchanges.push(exchange);
  exchangeOf.set(request, exchange);
});
diagnostics.subscribe("http.client.response.finish", ({ request, response }) => {
  const exchange = exchangeOf.get(request);
  if (exchange !== undefined) {
    exchange.status = response.statusCode;
    exchange.responseHeaders = response.headers;
  }
});

/** connect-web's fetch: Node's own, each exchange recorded as the http module's are. */
async function recordedFetch(url, init) {
  const target = new URL(url);
  const exchange = {
    method: init?.method ?? "GET",
    path: `${target.pathname}${target.search}`,
    requestHeaders: Object.fromEntries(new Headers(init?.headers)),
    status: undefined,
    responseHeaders: undefined,
  };
  exchanges.push(exchange);
  const response = await fetch(url, init);
  exchange.status = response.status;
  exchange.responseHeaders = Object.fromEntries(response.headers);
  return response;
}

function formatExchange({ method, path, requestHeaders, status, responseHeaders }) {
  const headers = (all) =>
    Object.entries(all ?? {})
      .map(([name, value]) => `    ${name}: ${value}`)
      .join("\n");
  return [
    `  > ${method} ${path}`,
    headers(requestHeaders),
    `  < ${status ?? "(no response)"}`,
    headers(responseHeaders),
  ].join("\n");
}

/** The last exchange whose path begins with `/<service>/<method>`. */
function lastExchange(procedure) {
  const found = exchanges.findLast(
    (exchange) => exchange.path === procedure || exchange.path.startsWith(`${procedure}?`),
  );
  assert.ok(found, `no HTTP request to ${procedure} was made`);
  return found;
}

/** A test whose failure message ends with the HTTP exchanges it made. */
function wireTest(name, fn) {
  test(name, TEST, async (t) => {
    const first = exchanges.length;
    try {
      await fn(t);
    } catch (error) {
      // The reporter prints the stack, made when the error was: it gets the wire too.
      const wire = exchanges.slice(first).map(formatExchange).join("\n");
      if (error instanceof Error) {
        error.stack = `${error.stack}\n-- the test's HTTP exchanges:\n${wire}`;
      }
      throw error;
    }
  });
}

/** The media type of a Content-Type header, without parameters, lower case. */
function mediaType(value) {
  return String(value ?? "")
    .split(";")[0]
    .trim()
    .toLowerCase();
}

// -- helpers -------------------------------------------------------------------------------

function asSubject(subject) {
  return { authorization: `Bearer ${subject}` };
}

function newSubject() {
  return `node-rpc-${randomUUID().slice(0, 12)}`;
}

function newEmail(tag) {
  return `${tag.toLowerCase()}-${randomUUID().slice(0, 8)}@example.com`;
}

/** A well-formed UUIDv7 (the services' id form) that names nothing. */
function unknownId() {
  const hex = randomBytes(16).toString("hex");
  const variant = "89ab"[parseInt(hex[16], 16) % 4];
  const parts = [hex.slice(0, 8), hex.slice(8, 12), `7${hex.slice(13, 16)}`];
  return [...parts, `${variant}${hex.slice(17, 20)}`, hex.slice(20, 32)].join("-");
}

function eur(units, nanos = 0) {
  return create(MoneySchema, { currencyCode: "EUR", units, nanos });
}

/** What `promise` rejects with, as a ConnectError; fails when it resolves. */
async function failure(promise, what) {
  return promise.then(
    () => assert.fail(`${what} succeeded`),
    (error) => ConnectError.from(error),
  );
}

function errorInfo(error) {
  return error.findDetails(ErrorInfoSchema)[0];
}

function fieldViolations(error) {
  return error.findDetails(BadRequestSchema).flatMap((details) => details.fieldViolations);
}

/**
 * Waits until the order service knows that `owner` owns `userId`: it learns new users from
 * the user service's feed, a moment after CreateUser answered; until then a watch of the
 * user's orders is PermissionDenied (NOT_YOUR_USER).
 */
async function ownershipKnown(orders, userId, owner) {
  const until = Date.now() + WAIT_MS;
  for (;;) {
    try {
      await orders.listOrders({ userId }, owner);
      return;
    } catch (error) {
      if (ConnectError.from(error).code !== Code.PermissionDenied || Date.now() > until) {
        throw error;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function within(ms, promise, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A server stream read one response at a time, which the test aborts (as a page leaving).
 * `call(signal, onHeader)` starts it.
 */
function opened(call) {
  const controller = new AbortController();
  const state = { header: undefined };
  const iterator = call(controller.signal, (header) => {
    state.header = header;
  })[Symbol.asyncIterator]();
  return {
    get header() {
      return state.header;
    },
    /** The next response; fails when the stream ends or nothing comes in time. */
    async next(what) {
      const result = await within(WAIT_MS, iterator.next(), what);
      assert.ok(!result.done, `the stream ended before ${what}`);
      return result.value;
    },
    /** Responses up to the first for which `found` is truthy; that one's `found`. */
    async until(what, found) {
      for (;;) {
        const matched = found(await this.next(what));
        if (matched) {
          return matched;
        }
      }
    },
    /** Aborts the call: the read after it fails with Canceled, client side. */
    async abort() {
      controller.abort();
      const error = await failure(
        within(WAIT_MS, iterator.next(), "the read after abort"),
        "a read after abort",
      );
      assert.equal(error.code, Code.Canceled, String(error));
    },
    close() {
      controller.abort();
    },
  };
}

// -- per protocol ------------------------------------------------------------------------

for (const protocol of PROTOCOLS) {
  describe(protocol.name, () => {
    const { users, orders } = clientsOf(transportOf(protocol));
    // Tests that abort a stream from the client, with connect-node only: Node's fetch
    // (undici 6) now and then lets an aborted response body go on (the next read waits for
    // the next message instead of failing, nodejs/undici#1940's kind), and the connection
    // stays open, holding a stream slot at the gateway. A browser's fetch does not.
    const abortingTest = protocol.node ? wireTest : () => {};

    function assertProtocol(procedure, { stream = false } = {}) {
      const exchange = lastExchange(procedure);
      const sent = stream ? protocol.streamType : protocol.unaryType;
      assert.equal(exchange.method, "POST");
      assert.equal(mediaType(exchange.requestHeaders["content-type"]), sent);
      assert.equal(exchange.status, 200, `${procedure}: HTTP ${exchange.status}`);
      assert.equal(mediaType(exchange.responseHeaders["content-type"]), sent);
    }

    /** Connect: the HTTP status from Connect's table; gRPC-Web: 200 and a trailer frame. */
    function assertErrorStatus(procedure, code) {
      const exchange = lastExchange(procedure);
      const status = protocol.connect ? CONNECT_STATUS[code] : 200;
      assert.equal(exchange.status, status, `${procedure} failing with ${Code[code]}`);
      if (protocol.connect) {
        assert.equal(mediaType(exchange.responseHeaders["content-type"]), "application/json");
      }
    }

    async function createUser(name, options = {}) {
      const email = newEmail(name);
      const { user } = await users.createUser(
        { user: { email, displayName: name }, requestId: randomUUID() },
        { timeoutMs: TIMEOUT_MS, ...options },
      );
      assert.equal(user.email, email);
      return user;
    }

    wireTest("users: CreateUser, GetUser, UpdateUser, ListUsers, DeleteUser", async () => {
      const requestId = `node-rpc-${randomUUID()}`;
      let header;
      const user = await createUser("Ada", {
        headers: { "x-request-id": requestId },
        onHeader: (h) => {
          header = h;
        },
      });
      assertProtocol("/shop.user.v1.UserService/CreateUser");
      assert.equal(header?.get("x-request-id"), requestId, "the request id comes back");
      assert.match(user.id, /^[0-9a-f-]{36}$/);
      assert.notEqual(user.etag, "");
      assert.ok(user.createTime && user.createTime.seconds > 0n);

      const read = await users.getUser({ id: user.id }, { timeoutMs: TIMEOUT_MS });
      assertProtocol("/shop.user.v1.UserService/GetUser");
      assert.equal(read.user.id, user.id);
      assert.equal(read.user.displayName, "Ada");
      assert.equal(read.user.etag, user.etag);

      const { user: updated } = await users.updateUser(
        {
          user: { id: user.id, displayName: "Ada Lövelace 🚀", etag: user.etag },
          updateMask: { paths: ["display_name"] },
        },
        { timeoutMs: TIMEOUT_MS },
      );
      assertProtocol("/shop.user.v1.UserService/UpdateUser");
      assert.equal(updated.displayName, "Ada Lövelace 🚀");
      assert.equal(updated.email, user.email);
      assert.notEqual(updated.etag, user.etag);

      const listed = [];
      let pageToken = "";
      do {
        const page = await users.listUsers({ pageSize: 50, pageToken }, { timeoutMs: TIMEOUT_MS });
        assert.ok(page.revision > 0n, "int64 revision");
        listed.push(...page.users);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      assertProtocol("/shop.user.v1.UserService/ListUsers");
      assert.equal(listed.find((u) => u.id === user.id)?.displayName, "Ada Lövelace 🚀");

      await users.deleteUser({ id: user.id, etag: updated.etag }, { timeoutMs: TIMEOUT_MS });
      assertProtocol("/shop.user.v1.UserService/DeleteUser");
      const gone = await failure(users.getUser({ id: user.id }), "GetUser after DeleteUser");
      assert.equal(gone.code, Code.NotFound, String(gone));
    });

    wireTest("orders: CreateOrder, GetOrder, ListOrders, CancelOrder (as the owner)", async () => {
      const subject = newSubject();
      const owner = { headers: asSubject(subject), timeoutMs: TIMEOUT_MS };
      const user = await createUser("Owner", owner);
      assert.equal(user.subject, subject, "the bearer reached the service");

      const request = {
        order: {
          userId: user.id,
          items: [
            create(LineItemSchema, { sku: "TEA-1", quantity: 2, unitPrice: eur(3n, 500_000_000) }),
            create(LineItemSchema, { sku: "CUP-2", quantity: 1, unitPrice: eur(4n) }),
          ],
        },
        requestId: randomUUID(),
      };
      const { order: placed } = await orders.createOrder(request, owner);
      assertProtocol("/shop.order.v1.OrderService/CreateOrder");
      assert.equal(placed.userId, user.id);
      assert.equal(placed.state, Order_State.PENDING);
      // int64 units: a string in JSON, a varint in binary; a bigint here either way.
      assert.equal(placed.total.currencyCode, "EUR");
      assert.equal(placed.total.units, 11n);
      assert.equal(placed.total.nanos, 0);
      const again = await orders.createOrder(request, owner);
      assert.equal(again.order.id, placed.id, "the same request_id creates nothing more");

      const { order } = await orders.getOrder({ id: placed.id }, owner);
      assertProtocol("/shop.order.v1.OrderService/GetOrder");
      assert.deepEqual(
        order.items.map((item) => [item.sku, item.quantity, item.unitPrice.units]),
        [
          ["TEA-1", 2, 3n],
          ["CUP-2", 1, 4n],
        ],
      );
      assert.equal(order.items[0].unitPrice.nanos, 500_000_000);

      const listed = await orders.listOrders({ userId: user.id }, owner);
      assertProtocol("/shop.order.v1.OrderService/ListOrders");
      assert.deepEqual(
        listed.orders.map((o) => o.id),
        [placed.id],
      );
      assert.equal(listed.nextPageToken, "");

      const { order: cancelled } = await orders.cancelOrder(
        { id: placed.id, etag: order.etag },
        owner,
      );
      assertProtocol("/shop.order.v1.OrderService/CancelOrder");
      assert.equal(cancelled.state, Order_State.CANCELLED);
      assert.notEqual(cancelled.etag, order.etag);
    });

    abortingTest("WatchUsers: a user created meanwhile arrives, then abort", async () => {
      const requestId = `node-rpc-${randomUUID()}`;
      const watch = opened((signal, onHeader) =>
        users.watchUsers(
          { progressNotify: true },
          { signal, onHeader, headers: { "x-request-id": requestId } },
        ),
      );
      try {
        // From now: a progress notification once the watch has caught up, so it is live.
        await watch.until("the first progress notification", (r) => r.progressNotify);
        assertProtocol("/shop.user.v1.UserService/WatchUsers", { stream: true });
        assert.equal(watch.header?.get("x-request-id"), requestId, "the request id comes back");

        const user = await createUser("Watched");
        const event = await watch.until("the created user's event", (r) =>
          r.events.find((e) => e.user?.id === user.id),
        );
        assert.equal(event.type, UserEvent_Type.PUT);
        assert.equal(event.user.email, user.email);
        assert.ok(event.revision > 0n);
        await watch.abort();
      } finally {
        watch.close();
      }
    });

    abortingTest(`WatchUsers: ${BURST} users created at once arrive whole, in order`, async () => {
      const watch = opened((signal, onHeader) =>
        users.watchUsers({ progressNotify: true }, { signal, onHeader }),
      );
      try {
        await watch.until("the first progress notification", (r) => r.progressNotify);
        // Concurrent calls (over HTTP/1.1: a connection each), then updates to long names
        // of two-byte UTF-8 characters: messages of some size, in a burst.
        const created = await Promise.all(
          Array.from({ length: BURST }, (_, i) =>
            createUser(`Burst${i}`).then((user) =>
              users.updateUser(
                {
                  user: { id: user.id, displayName: `${"é".repeat(190)}${i}`, etag: user.etag },
                  updateMask: { paths: ["display_name"] },
                },
                { timeoutMs: TIMEOUT_MS },
              ),
            ),
          ),
        );
        const wanted = new Set(created.map(({ user }) => user.id));
        const seen = [];
        await watch.until(`the ${2 * BURST} events of the burst`, (r) => {
          seen.push(...r.events.filter((e) => wanted.has(e.user?.id)));
          return seen.length >= 2 * BURST;
        });
        assert.equal(seen.length, 2 * BURST, "each creation and update once");
        for (let i = 1; i < seen.length; i++) {
          assert.ok(seen[i].revision > seen[i - 1].revision, "in revision order");
        }
        for (const { user } of created) {
          const last = seen.findLast((e) => e.user.id === user.id);
          assert.equal(last.user.displayName, user.displayName);
          assert.equal(last.user.etag, user.etag);
        }
        await watch.abort();
      } finally {
        watch.close();
      }
    });

    abortingTest("WatchOrders of one user: the order placed, cancelled, then abort", async () => {
      const subject = newSubject();
      const owner = { headers: asSubject(subject), timeoutMs: TIMEOUT_MS };
      const user = await createUser("Orders", owner);
      await ownershipKnown(orders, user.id, owner);
      const watch = opened((signal, onHeader) =>
        orders.watchOrders(
          { userId: user.id, progressNotify: true, prevOrder: true },
          { signal, onHeader, headers: asSubject(subject) },
        ),
      );
      try {
        await watch.until("the first progress notification", (r) => r.progressNotify);
        assertProtocol("/shop.order.v1.OrderService/WatchOrders", { stream: true });

        const { order } = await orders.createOrder(
          {
            order: {
              userId: user.id,
              items: [create(LineItemSchema, { sku: "PEN-3", quantity: 3, unitPrice: eur(2n) })],
            },
          },
          owner,
        );
        const placed = await watch.until("the order's creation", (r) =>
          r.events.find((e) => e.order?.id === order.id),
        );
        assert.equal(placed.type, OrderEvent_Type.PUT);
        assert.equal(placed.order.state, Order_State.PENDING);
        assert.equal(placed.order.total.units, 6n);

        await orders.cancelOrder({ id: order.id }, owner);
        const cancelled = await watch.until("the order's cancellation", (r) =>
          r.events.find((e) => e.order?.id === order.id),
        );
        assert.equal(cancelled.order.state, Order_State.CANCELLED);
        assert.equal(cancelled.prevOrder?.state, Order_State.PENDING);
        assert.ok(cancelled.revision > placed.revision);
        await watch.abort();
      } finally {
        watch.close();
      }
    });

    wireTest("a missing user is NotFound with ErrorInfo (USER_NOT_FOUND)", async () => {
      const id = unknownId();
      const requestId = `node-rpc-${randomUUID()}`;
      const error = await failure(
        users.getUser({ id }, { timeoutMs: TIMEOUT_MS, headers: { "x-request-id": requestId } }),
        "GetUser of an unknown id",
      );
      assert.equal(error.code, Code.NotFound, String(error));
      assert.equal(error.rawMessage, `user ${id} does not exist`);
      const info = errorInfo(error);
      assert.ok(info, `an ErrorInfo among ${error.details.length} detail(s)`);
      assert.equal(info.reason, "USER_NOT_FOUND");
      assert.equal(info.domain, DOMAIN);
      assert.equal(info.metadata.id, id);
      assert.equal(error.metadata.get("x-request-id"), requestId, "the request id comes back");
      assertErrorStatus("/shop.user.v1.UserService/GetUser", Code.NotFound);
    });

    wireTest("an invalid argument is InvalidArgument with BadRequest violations", async () => {
      const bad = await failure(
        users.createUser(
          { user: { email: "not-an-email", displayName: "x" } },
          { timeoutMs: TIMEOUT_MS },
        ),
        "CreateUser with a malformed email",
      );
      assert.equal(bad.code, Code.InvalidArgument, String(bad));
      assert.equal(bad.rawMessage, "user.email: is not a valid e-mail address");
      assert.deepEqual(
        fieldViolations(bad).map((v) => [v.field, v.reason]),
        [["user.email", "INVALID_EMAIL"]],
      );
      assert.equal(errorInfo(bad)?.domain, DOMAIN);
      assertErrorStatus("/shop.user.v1.UserService/CreateUser", Code.InvalidArgument);

      const malformed = await failure(
        users.getUser({ id: "not-an-id" }, { timeoutMs: TIMEOUT_MS }),
        "GetUser('not-an-id')",
      );
      assert.equal(malformed.code, Code.InvalidArgument, String(malformed));
      assert.deepEqual(
        fieldViolations(malformed).map((v) => [v.field, v.reason]),
        [["id", "INVALID_ID"]],
      );
    });

    if (protocol.binary) {
      // A JSON client cannot send this mask (protobuf-es refuses its lowerCamelCase form).
      wireTest("an error message in UTF-8 with '%' comes back as it was", async () => {
        const user = await createUser("Mask");
        const error = await failure(
          users.updateUser(
            { user: { id: user.id, displayName: "x" }, updateMask: { paths: ["ümlaut_50%"] } },
            { timeoutMs: TIMEOUT_MS },
          ),
          "UpdateUser with an unknown mask path",
        );
        assert.equal(error.code, Code.InvalidArgument, String(error));
        // gRPC-Web: percent-encoded in grpc-message, decoded by the client.
        assert.equal(
          error.rawMessage,
          "update_mask: 'ümlaut_50%' is not a field that can be updated",
        );
      });
    }

    wireTest("a watch refused at its start: PermissionDenied, InvalidArgument", async () => {
      const requestId = `node-rpc-${randomUUID()}`;
      const asUser = { headers: { ...asSubject(newSubject()), "x-request-id": requestId } };
      const drain = async (responses) => {
        for await (const response of responses) {
          assert.fail(`a response to a refused watch: ${response}`);
        }
      };
      const denied = await failure(drain(users.watchUsers({}, asUser)), "WatchUsers as a user");
      assert.equal(denied.code, Code.PermissionDenied, String(denied));
      const info = errorInfo(denied);
      assert.deepEqual([info?.domain, info?.reason], [DOMAIN, "NOT_ALLOWED"]);
      assert.equal(denied.metadata.get("x-request-id"), requestId, "the request id comes back");
      // Both protocols carry a stream's error in its body (end-stream message, trailer frame).
      assert.equal(lastExchange("/shop.user.v1.UserService/WatchUsers").status, 200);

      const invalid = await failure(
        drain(orders.watchOrders({ userId: "not-an-id" }, { timeoutMs: TIMEOUT_MS })),
        "WatchOrders of a malformed user id",
      );
      assert.equal(invalid.code, Code.InvalidArgument, String(invalid));
      assert.deepEqual(
        fieldViolations(invalid).map((v) => [v.field, v.reason]),
        [["user_id", "INVALID_ID"]],
      );
    });

    wireTest("each error code and reason, as this protocol carries it", async () => {
      const subject = newSubject();
      const owner = { headers: asSubject(subject), timeoutMs: TIMEOUT_MS };
      const user = await createUser("Codes", owner);
      const { order } = await orders.createOrder(
        {
          order: {
            userId: user.id,
            items: [create(LineItemSchema, { sku: "TEA-1", quantity: 1, unitPrice: eur(1n) })],
          },
        },
        owner,
      );
      await orders.cancelOrder({ id: order.id }, owner);
      const cases = [
        [
          "CreateUser with a taken email",
          "/shop.user.v1.UserService/CreateUser",
          () => users.createUser({ user: { email: user.email } }, { timeoutMs: TIMEOUT_MS }),
          Code.AlreadyExists,
          "EMAIL_TAKEN",
        ],
        [
          "UpdateUser with a stale etag",
          "/shop.user.v1.UserService/UpdateUser",
          () =>
            users.updateUser(
              {
                user: { id: user.id, displayName: "Late", etag: `${user.etag}x` },
                updateMask: { paths: ["display_name"] },
              },
              owner,
            ),
          Code.Aborted,
          "ETAG_MISMATCH",
        ],
        [
          "GetUser of another subject's user",
          "/shop.user.v1.UserService/GetUser",
          () =>
            users.getUser(
              { id: user.id },
              { headers: asSubject(newSubject()), timeoutMs: TIMEOUT_MS },
            ),
          Code.PermissionDenied,
          "NOT_YOUR_USER",
        ],
        [
          "CancelOrder of a cancelled order",
          "/shop.order.v1.OrderService/CancelOrder",
          () => orders.cancelOrder({ id: order.id }, owner),
          Code.FailedPrecondition,
          "ORDER_ALREADY_CANCELLED",
        ],
        [
          "CreateOrder for an unknown user",
          "/shop.order.v1.OrderService/CreateOrder",
          () =>
            orders.createOrder(
              {
                order: {
                  userId: unknownId(),
                  items: [
                    create(LineItemSchema, { sku: "TEA-1", quantity: 1, unitPrice: eur(1n) }),
                  ],
                },
              },
              { timeoutMs: TIMEOUT_MS },
            ),
          Code.FailedPrecondition,
          "USER_NOT_FOUND",
        ],
        [
          "GetOrder of an unknown id",
          "/shop.order.v1.OrderService/GetOrder",
          () => orders.getOrder({ id: unknownId() }, { timeoutMs: TIMEOUT_MS }),
          Code.NotFound,
          "ORDER_NOT_FOUND",
        ],
        [
          "GetUser with credentials that are not a bearer",
          "/shop.user.v1.UserService/GetUser",
          () =>
            users.getUser(
              { id: user.id },
              { headers: { authorization: "Basic eHl6" }, timeoutMs: TIMEOUT_MS },
            ),
          Code.Unauthenticated,
          "MALFORMED_AUTHORIZATION",
        ],
      ];
      for (const [what, procedure, call, code, reason] of cases) {
        const error = await failure(call(), what);
        assert.equal(Code[error.code], Code[code], `${what}: ${error}`);
        const info = errorInfo(error);
        assert.deepEqual([info?.domain, info?.reason], [DOMAIN, reason], what);
        assertErrorStatus(procedure, code);
      }
    });

    wireTest("an unknown method or service is Unimplemented", async () => {
      // GetUser's descriptor under other names: what an out-of-date client would call.
      const getUser = UserService.method.getUser;
      const unknownMethod = Object.create(getUser, { name: { value: "GetUserBefore" } });
      const unknownService = Object.create(getUser, {
        parent: { value: Object.create(UserService, { typeName: { value: "shop.user.v9.Gone" } }) },
      });
      const transport = transportOf(protocol);
      const request = create(GetUserRequestSchema, { id: unknownId() });
      for (const [method, path] of [
        [unknownMethod, "/shop.user.v1.UserService/GetUserBefore"],
        [unknownService, "/shop.user.v9.Gone/GetUser"],
      ]) {
        const error = await failure(
          transport.unary(method, undefined, TIMEOUT_MS, undefined, request, undefined),
          path,
        );
        assert.equal(Code[error.code], Code[Code.Unimplemented], `${path}: ${error}`);
        assert.equal(lastExchange(path).method, "POST");
      }
    });

    wireTest("a body over the gateway's limit is ResourceExhausted (BODY_TOO_LARGE)", async () => {
      const error = await failure(
        users.createUser(
          { user: { email: newEmail("Large"), displayName: "x".repeat(2 * MAX_BODY_BYTES) } },
          { timeoutMs: TIMEOUT_MS },
        ),
        `CreateUser with a body over ${MAX_BODY_BYTES} bytes`,
      );
      assert.equal(Code[error.code], Code[Code.ResourceExhausted], String(error));
      assert.equal(errorInfo(error)?.reason, "BODY_TOO_LARGE");
    });

    wireTest("a WatchUsers with timeoutMs 300 ends DeadlineExceeded", async () => {
      const error = await failure(
        (async () => {
          for await (const response of users.watchUsers({}, { timeoutMs: 300 })) {
            assert.fail(`a response to a watch from now with no change: ${response}`);
          }
        })(),
        "a watch with a deadline",
      );
      assert.equal(error.code, Code.DeadlineExceeded, String(error));
      const sent = lastExchange("/shop.user.v1.UserService/WatchUsers").requestHeaders;
      if (protocol.connect) {
        assert.equal(sent["connect-timeout-ms"], "300");
      } else {
        assert.equal(sent["grpc-timeout"], "300m");
      }
    });

    wireTest("the gateway ends a watch at the deadline its header gives", async () => {
      // The deadline only in the header: the client keeps no timer, so DeadlineExceeded can
      // only come from the gateway (the guard below would end the call with Canceled).
      const headers = protocol.connect
        ? { "connect-timeout-ms": "300" }
        : { "grpc-timeout": "300m" };
      const guard = new AbortController();
      const timer = setTimeout(
        () => guard.abort(new ConnectError("the gateway let the watch run on", Code.Canceled)),
        WAIT_MS,
      );
      try {
        const error = await failure(
          (async () => {
            for await (const response of users.watchUsers({}, { headers, signal: guard.signal })) {
              assert.fail(`a response to a watch from now with no change: ${response}`);
            }
          })(),
          "a watch with a deadline in its header",
        );
        assert.equal(error.code, Code.DeadlineExceeded, String(error));
      } finally {
        clearTimeout(timer);
      }
      // The end is in the stream (Connect's end-stream message, gRPC-Web's trailer frame).
      assert.equal(lastExchange("/shop.user.v1.UserService/WatchUsers").status, 200);
    });

    abortingTest(`the watch past the caller's ${STREAM_CAP} is ResourceExhausted`, async () => {
      const watches = [];
      try {
        for (let i = 0; i < STREAM_CAP; i++) {
          const watch = opened((signal, onHeader) =>
            users.watchUsers({ progressNotify: true }, { signal, onHeader }),
          );
          watches.push(watch);
          await watch.until(`watch ${i + 1}'s progress notification`, (r) => r.progressNotify);
        }
        const refused = await failure(
          (async () => {
            for await (const response of users.watchUsers({}, { timeoutMs: 2_000 })) {
              assert.fail(`a response to the watch past the cap: ${response}`);
            }
          })(),
          `watch ${STREAM_CAP + 1}`,
        );
        assert.equal(Code[refused.code], Code[Code.ResourceExhausted], String(refused));
        for (const watch of watches.splice(0)) {
          await watch.abort();
        }
      } finally {
        for (const watch of watches) {
          watch.close();
        }
      }
    });

    abortingTest(`an aborted watch gives its slot back: ${STREAM_CAP + 2} in turn`, async (t) => {
      // The gateway frees a slot once it sees the connection close, a moment after the
      // abort: a watch opened at once may still be refused, for that moment only.
      let refusals = 0;
      for (let i = 0; i < STREAM_CAP + 2; i++) {
        const until = Date.now() + SLOT_BACK_MS;
        for (;;) {
          const watch = opened((signal, onHeader) =>
            users.watchUsers({ progressNotify: true }, { signal, onHeader }),
          );
          try {
            await watch.until(`watch ${i + 1}'s progress notification`, (r) => r.progressNotify);
            await watch.abort();
            break;
          } catch (error) {
            const refused = ConnectError.from(error).code === Code.ResourceExhausted;
            if (!refused || Date.now() > until) {
              throw error;
            }
            refusals += 1;
          } finally {
            watch.close();
          }
        }
      }
      t.diagnostic(`refused while the slots came back: ${refusals}`);
    });
  });
}

// -- Connect only: GET; compression (connect-node) ------------------------------------------

for (const protocol of PROTOCOLS.filter((p) => p.connect)) {
  describe(`${protocol.name}, useHttpGet`, () => {
    const { users, orders } = clientsOf(transportOf(protocol, { useHttpGet: true }));
    const encoding = protocol.binary ? "proto" : "json";

    /** The last call of `procedure` went as a Connect GET, answered 200 with cache headers. */
    function assertGet(procedure) {
      const exchange = lastExchange(procedure);
      assert.equal(exchange.method, "GET", `${procedure} with useHttpGet`);
      const query = new URL(exchange.path, baseUrl).searchParams;
      assert.equal(query.get("connect"), "v1");
      assert.equal(query.get("encoding"), encoding);
      assert.equal(query.get("base64"), protocol.binary ? "1" : null);
      assert.ok(query.get("message") !== null);
      assert.equal(exchange.status, 200, `${procedure}: HTTP ${exchange.status}`);
      assert.equal(mediaType(exchange.responseHeaders["content-type"]), protocol.unaryType);
      assert.ok(exchange.responseHeaders["cache-control"], "a Cache-Control header");
      assert.ok(exchange.responseHeaders.vary, "a Vary header");
      return exchange;
    }

    wireTest("GetUser, ListUsers, GetOrder, ListOrders as GET; writes stay POST", async () => {
      const subject = newSubject();
      const owner = { headers: asSubject(subject), timeoutMs: TIMEOUT_MS };
      const email = newEmail("Getter");
      const { user } = await users.createUser({ user: { email, displayName: "Getter" } }, owner);
      assert.equal(lastExchange("/shop.user.v1.UserService/CreateUser").method, "POST");

      const requestId = `node-rpc-${randomUUID()}`;
      let header;
      const read = await users.getUser(
        { id: user.id },
        {
          headers: { ...owner.headers, "x-request-id": requestId },
          timeoutMs: TIMEOUT_MS,
          onHeader: (h) => {
            header = h;
          },
        },
      );
      assert.equal(read.user.id, user.id);
      assert.equal(read.user.etag, user.etag);
      const got = assertGet("/shop.user.v1.UserService/GetUser");
      assert.match(got.responseHeaders.etag ?? "", new RegExp(`^(W/)?"${user.etag}"$`));
      assert.equal(header?.get("x-request-id"), requestId, "the request id comes back");

      const page = await users.listUsers({ pageSize: 1 }, { timeoutMs: TIMEOUT_MS });
      assert.equal(page.users.length, 1);
      assert.ok(page.revision > 0n);
      assertGet("/shop.user.v1.UserService/ListUsers");

      const { order } = await orders.createOrder(
        {
          order: {
            userId: user.id,
            items: [create(LineItemSchema, { sku: "TEA-1", quantity: 1, unitPrice: eur(5n) })],
          },
        },
        owner,
      );
      assert.equal(lastExchange("/shop.order.v1.OrderService/CreateOrder").method, "POST");
      const { order: fetched } = await orders.getOrder({ id: order.id }, owner);
      assert.equal(fetched.total.units, 5n);
      assertGet("/shop.order.v1.OrderService/GetOrder");
      const listed = await orders.listOrders({ userId: user.id }, owner);
      assert.deepEqual(
        listed.orders.map((o) => o.id),
        [order.id],
      );
      assertGet("/shop.order.v1.OrderService/ListOrders");

      await orders.cancelOrder({ id: order.id }, owner);
      assert.equal(lastExchange("/shop.order.v1.OrderService/CancelOrder").method, "POST");
    });

    wireTest("a missing user over GET is NotFound with ErrorInfo", async () => {
      const id = unknownId();
      const error = await failure(users.getUser({ id }, { timeoutMs: TIMEOUT_MS }), "GetUser");
      assert.equal(error.code, Code.NotFound, String(error));
      assert.equal(errorInfo(error)?.reason, "USER_NOT_FOUND");
      assert.equal(errorInfo(error)?.metadata.id, id);
      const exchange = lastExchange("/shop.user.v1.UserService/GetUser");
      assert.equal(exchange.method, "GET");
      assert.equal(exchange.status, 404);
    });

    if (protocol.node) {
      wireTest("a gzip-compressed GET message (compression=gzip, base64)", async () => {
        const gzipped = clientsOf(
          transportOf(protocol, {
            useHttpGet: true,
            sendCompression: compressionGzip,
            compressMinBytes: 0,
          }),
        );
        const user = (
          await gzipped.users.createUser(
            { user: { email: newEmail("Zipped"), displayName: "Zipped" } },
            { timeoutMs: TIMEOUT_MS },
          )
        ).user;
        const read = await gzipped.users.getUser({ id: user.id }, { timeoutMs: TIMEOUT_MS });
        assert.equal(read.user.displayName, "Zipped");
        const exchange = lastExchange("/shop.user.v1.UserService/GetUser");
        const query = new URL(exchange.path, baseUrl).searchParams;
        assert.deepEqual(
          [exchange.method, query.get("compression"), query.get("base64")],
          ["GET", "gzip", "1"],
        );
        assert.equal(exchange.status, 200);
      });
    }
  });

  if (!protocol.node) {
    continue;
  }
  describe(`${protocol.name}, gzip and headers`, () => {
    const gzipped = clientsOf(
      transportOf(protocol, { sendCompression: compressionGzip, compressMinBytes: 0 }),
    );
    const { users } = clientsOf(transportOf(protocol));

    wireTest("gzip: Content-Encoding (unary), Connect-Content-Encoding (stream)", async () => {
      const { user } = await gzipped.users.createUser(
        { user: { email: newEmail("Gzip"), displayName: "Gzip" } },
        { timeoutMs: TIMEOUT_MS },
      );
      const created = lastExchange("/shop.user.v1.UserService/CreateUser");
      assert.equal(created.requestHeaders["content-encoding"], "gzip");
      assert.equal(created.status, 200);

      const watch = opened((signal, onHeader) =>
        gzipped.users.watchUsers({ progressNotify: true }, { signal, onHeader }),
      );
      try {
        await watch.until("the first progress notification", (r) => r.progressNotify);
        const sent = lastExchange("/shop.user.v1.UserService/WatchUsers").requestHeaders;
        assert.equal(sent["connect-content-encoding"], "gzip");
        const updated = await gzipped.users.updateUser(
          {
            user: { id: user.id, displayName: "Gzip 2", etag: user.etag },
            updateMask: { paths: ["display_name"] },
          },
          { timeoutMs: TIMEOUT_MS },
        );
        const event = await watch.until("the update's event", (r) =>
          r.events.find((e) => e.user?.id === user.id),
        );
        assert.equal(event.user.etag, updated.user.etag);
        await watch.abort();
      } finally {
        watch.close();
      }
    });

    wireTest("a malformed Connect-Timeout-Ms is InvalidArgument", async () => {
      const error = await failure(
        users.listUsers({ pageSize: 1 }, { headers: { "connect-timeout-ms": "soon" } }),
        "ListUsers with Connect-Timeout-Ms: soon",
      );
      assert.equal(error.code, Code.InvalidArgument, String(error));
      assert.equal(lastExchange("/shop.user.v1.UserService/ListUsers").status, 400);
    });
  });
}
