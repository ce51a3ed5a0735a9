// Calling the shop from Node.js (20+) with the generated stubs in gen/ts: protobuf-es v2
// messages and Connect's gRPC transport over HTTP/2. Plain JavaScript (ES modules): Node runs it
// as it is, and TypeScript code type-checks against the .d.ts files beside the stubs.
//
//   npm ci   # or `make setup`
//   node clients/node/example.mjs 127.0.0.1:50051 127.0.0.1:50052
//
// tests/node/client.test.mjs exercises this module against the real services (`make test`).

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { BadRequestSchema, ErrorInfoSchema } from "../../gen/ts/google/rpc/error_details_pb.js";
import { OrderService } from "../../gen/ts/shop/order/v1/order_pb.js";
import { ListUsersRequestSchema, UserService } from "../../gen/ts/shop/user/v1/user_pb.js";

export { Code, ConnectError };

/** `host:port` (plaintext, like grpcurl's -plaintext) or a full `http(s)://` URL. */
function baseUrlOf(address) {
  return /^https?:\/\//.test(address) ? address : `http://${address}`;
}

/**
 * Clients of both services, each over one HTTP/2 connection.
 *
 * @param {object} options
 * @param {string} options.userAddress where user_svc listens, e.g. "127.0.0.1:50051"
 * @param {string} options.orderAddress where order_svc listens, e.g. "127.0.0.1:50052"
 * @param {string} [options.token] sent as `authorization: Bearer <token>` (who is calling)
 * @returns {{
 *   users: import("@connectrpc/connect").Client<typeof UserService>,
 *   orders: import("@connectrpc/connect").Client<typeof OrderService>,
 *   close: () => void,
 * }} `close()` ends the connections (open calls fail), so the process can exit.
 */
export function connectShop({ userAddress, orderAddress, token }) {
  const sessions = [];
  const interceptors = [];
  if (token) {
    interceptors.push((next) => (request) => {
      request.header.set("authorization", `Bearer ${token}`);
      return next(request);
    });
  }
  const transportTo = (address) => {
    const baseUrl = baseUrlOf(address);
    // Keepalive pings keep a long-lived WatchUsers/WatchOrders stream healthy (the servers
    // permit them).
    const sessionManager = new Http2SessionManager(baseUrl, { pingIntervalMs: 30_000 });
    sessions.push(sessionManager);
    return createGrpcTransport({ baseUrl, sessionManager, interceptors });
  };
  return {
    users: createClient(UserService, transportTo(userAddress)),
    orders: createClient(OrderService, transportTo(orderAddress)),
    close() {
      for (const session of sessions) {
        session.abort();
      }
    },
  };
}

/**
 * Every user, following `next_page_token` from page to page.
 *
 * @param {import("@connectrpc/connect").Client<typeof UserService>} users
 * @param {{pageSize?: number, timeoutMs?: number}} [options]
 * @returns {AsyncGenerator<import("../../gen/ts/shop/user/v1/user_pb.js").ListUsersResponse>}
 *   the pages, in order (the last one has an empty `nextPageToken`)
 */
export async function* listUserPages(users, { pageSize = 0, timeoutMs = 5_000 } = {}) {
  let pageToken = "";
  do {
    const page = await users.listUsers(create(ListUsersRequestSchema, { pageSize, pageToken }), {
      timeoutMs,
    });
    yield page;
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
}

/**
 * What a failed call carries: its gRPC code and the `google.rpc` details the shop attaches to
 * every error (`ErrorInfo` always; `BadRequest` for invalid fields).
 *
 * @param {unknown} error what a call rejected with
 * @returns {{
 *   code: Code,
 *   codeName: string,
 *   message: string,
 *   errorInfo: import("../../gen/ts/google/rpc/error_details_pb.js").ErrorInfo | undefined,
 *   badRequest: import("../../gen/ts/google/rpc/error_details_pb.js").BadRequest | undefined,
 * }} codeName is gRPC's spelling, e.g. "INVALID_ARGUMENT"
 */
export function errorDetails(error) {
  const connectError = ConnectError.from(error);
  return {
    code: connectError.code,
    codeName: Code[connectError.code].replace(/(?<=.)([A-Z])/g, "_$1").toUpperCase(),
    message: connectError.rawMessage,
    errorInfo: connectError.findDetails(ErrorInfoSchema)[0],
    badRequest: connectError.findDetails(BadRequestSchema)[0],
  };
}
