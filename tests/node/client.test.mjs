// The Node client (clients/node/shop-client.mjs) and the TypeScript stubs (gen/ts) against the
// real services. Run by tests/node/test_node_client.py, which starts user_svc and order_svc and
// passes their addresses in SHOP_USER_ADDR and SHOP_ORDER_ADDR:
//
//   node --test tests/node/client.test.mjs

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";

import { create } from "@bufbuild/protobuf";

import {
  Code,
  connectShop,
  errorDetails,
  listUserPages,
} from "../../clients/node/shop-client.mjs";
import { MoneySchema } from "../../gen/ts/google/type/money_pb.js";
import {
  CreateOrderRequestSchema,
  LineItemSchema,
  Order_State,
} from "../../gen/ts/shop/order/v1/order_pb.js";
import {
  CreateUserRequestSchema,
  UpdateUserRequestSchema,
  UserEvent_Type,
  WatchUsersRequestSchema,
} from "../../gen/ts/shop/user/v1/user_pb.js";

const userAddress = process.env.SHOP_USER_ADDR;
const orderAddress = process.env.SHOP_ORDER_ADDR;
const CALL = { timeoutMs: 10_000 };
const DOMAIN = "shop.dev";

let shop;

before(() => {
  assert.ok(userAddress && orderAddress, "set SHOP_USER_ADDR and SHOP_ORDER_ADDR (host:port)");
  // No token: under development identity that is an admin, which may create many users (a
  // subject owns one).
  shop = connectShop({ userAddress, orderAddress });
});

after(() => shop?.close());

async function createUser(displayName) {
  const email = `${displayName.toLowerCase()}-${randomUUID().slice(0, 8)}@example.com`;
  const { user } = await shop.users.createUser(
    create(CreateUserRequestSchema, { user: { email, displayName }, requestId: randomUUID() }),
    CALL,
  );
  assert.equal(user.email, email);
  return user;
}

function eur(units, nanos = 0) {
  return create(MoneySchema, { currencyCode: "EUR", units, nanos });
}

test("creates a user and an order and reads them back", async () => {
  const user = await createUser("Ada");
  assert.match(user.id, /^[0-9a-f-]{36}$/);
  assert.notEqual(user.etag, "");
  const read = await shop.users.getUser({ id: user.id }, CALL);
  assert.equal(read.user.id, user.id);
  assert.equal(read.user.displayName, "Ada");
  assert.equal(read.user.etag, user.etag);

  const requestId = randomUUID();
  const request = create(CreateOrderRequestSchema, {
    order: {
      userId: user.id,
      items: [
        create(LineItemSchema, { sku: "TEA-1", quantity: 2, unitPrice: eur(3n, 500_000_000) }),
        create(LineItemSchema, { sku: "CUP-2", quantity: 1, unitPrice: eur(4n) }),
      ],
    },
    requestId,
  });
  const placed = await shop.orders.createOrder(request, CALL);
  assert.equal(placed.order.userId, user.id);
  assert.equal(placed.order.state, Order_State.PENDING);
  // int64 is bigint: 2 × 3.50 + 4.00 = 11.00 EUR, exactly.
  assert.equal(placed.order.total.currencyCode, "EUR");
  assert.equal(placed.order.total.units, 11n);
  assert.equal(placed.order.total.nanos, 0);

  const again = await shop.orders.createOrder(request, CALL);
  assert.equal(again.order.id, placed.order.id, "the same request_id creates nothing more");

  const { order } = await shop.orders.getOrder({ id: placed.order.id }, CALL);
  assert.equal(order.id, placed.order.id);
  assert.deepEqual(
    order.items.map((item) => [item.sku, item.quantity]),
    [
      ["TEA-1", 2],
      ["CUP-2", 1],
    ],
  );
  assert.ok(order.createTime && order.createTime.seconds > 0n);

  const listed = await shop.orders.listOrders({ userId: user.id }, CALL);
  assert.deepEqual(
    listed.orders.map((o) => o.id),
    [order.id],
  );
});

test("lists users a page at a time, following next_page_token", async () => {
  const created = [];
  for (let i = 0; i < 5; i++) {
    created.push((await createUser(`Page${i}`)).id);
  }
  const pages = [];
  for await (const page of listUserPages(shop.users, { pageSize: 2 })) {
    assert.ok(page.users.length <= 2);
    assert.ok(page.revision > 0n);
    pages.push(page);
  }
  const ids = pages.flatMap((page) => page.users.map((user) => user.id));
  assert.ok(pages.length >= 3, `${ids.length} users came in ${pages.length} pages`);
  assert.equal(new Set(ids).size, ids.length, "no user twice");
  for (const id of created) {
    assert.ok(ids.includes(id), `user ${id} listed`);
  }
  assert.equal(pages.at(-1).nextPageToken, "");
});

test("follows WatchUsers from the user's revision and sees its update", async () => {
  const user = await createUser("Grace");
  // The listing's revision is the store's latest: the user's creation (nothing wrote since).
  const { revision } = await shop.users.listUsers({ pageSize: 1 }, CALL);

  const signal = AbortSignal.timeout(20_000);
  const stream = shop.users.watchUsers(
    create(WatchUsersRequestSchema, { startRevision: revision, prevUser: true }),
    { signal },
  );
  const seen = [];
  let update;
  for await (const response of stream) {
    const events = response.events.filter((event) => event.user?.id === user.id);
    seen.push(...events);
    if (update === undefined && events.length > 0) {
      // The creation came from history; the update comes live, on the same stream.
      update = await shop.users.updateUser(
        create(UpdateUserRequestSchema, {
          user: { id: user.id, displayName: "Grace H", etag: user.etag },
          updateMask: { paths: ["display_name"] },
        }),
        CALL,
      );
    }
    if (events.some((event) => event.user.displayName === "Grace H")) {
      break; // ends the call
    }
  }
  assert.ok(update, "the stream delivered the user's creation");
  const [created, updated] = seen;
  assert.equal(seen.length, 2);
  assert.equal(created.type, UserEvent_Type.PUT);
  assert.equal(created.revision, revision);
  assert.equal(created.user.displayName, "Grace");
  assert.equal(created.prevUser, undefined);
  assert.equal(updated.type, UserEvent_Type.PUT);
  assert.ok(updated.revision > created.revision);
  assert.equal(updated.user.displayName, "Grace H");
  assert.equal(updated.user.etag, update.user.etag);
  assert.equal(updated.prevUser?.displayName, "Grace");
});

test("a malformed id is INVALID_ARGUMENT with ErrorInfo and BadRequest", async () => {
  const error = await shop.users.getUser({ id: "not-an-id" }, CALL).then(
    () => assert.fail("GetUser('not-an-id') succeeded"),
    (e) => e,
  );
  const details = errorDetails(error);
  assert.equal(details.code, Code.InvalidArgument);
  assert.equal(details.codeName, "INVALID_ARGUMENT");
  assert.equal(details.errorInfo?.domain, DOMAIN);
  assert.match(details.errorInfo?.reason ?? "", /^[A-Z][A-Z0-9_]*$/);
  assert.deepEqual(
    details.badRequest?.fieldViolations.map((violation) => violation.field),
    ["id"],
  );
});

test("an order for an unknown user is FAILED_PRECONDITION (USER_NOT_FOUND)", async () => {
  const unknown = "01a21966-e263-7607-918a-d4d32f874249";
  const error = await shop.orders
    .createOrder(
      create(CreateOrderRequestSchema, {
        order: {
          userId: unknown,
          items: [create(LineItemSchema, { sku: "TEA-1", quantity: 1, unitPrice: eur(1n) })],
        },
      }),
      CALL,
    )
    .then(
      () => assert.fail("CreateOrder for an unknown user succeeded"),
      (e) => e,
    );
  const details = errorDetails(error);
  assert.equal(details.code, Code.FailedPrecondition);
  assert.equal(details.codeName, "FAILED_PRECONDITION");
  assert.equal(details.errorInfo?.reason, "USER_NOT_FOUND");
  assert.equal(details.errorInfo?.domain, DOMAIN);
});
