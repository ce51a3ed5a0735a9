// Calling the shop from Node.js with nothing but the generated stubs (gen/ts) and Connect:
//
//   npm ci   # or `make setup`
//   node clients/node/example.mjs 127.0.0.1:50051 127.0.0.1:50052
//
// Creates a user and an order, reads the order back, lists the users a page at a time, then
// shows what an error carries.

import { randomUUID } from "node:crypto";

import { create } from "@bufbuild/protobuf";

import { MoneySchema } from "../../gen/ts/google/type/money_pb.js";
import {
  CreateOrderRequestSchema,
  LineItemSchema,
  Order_State,
} from "../../gen/ts/shop/order/v1/order_pb.js";
import { CreateUserRequestSchema } from "../../gen/ts/shop/user/v1/user_pb.js";
import { connectShop, errorDetails, listUserPages } from "./shop-client.mjs";

const [userAddress = "127.0.0.1:50051", orderAddress = "127.0.0.1:50052"] = process.argv.slice(2);
const shop = connectShop({ userAddress, orderAddress });
try {
  const email = `ada-${randomUUID().slice(0, 8)}@example.com`;
  const { user } = await shop.users.createUser(
    create(CreateUserRequestSchema, { user: { email, displayName: "Ada" } }),
    { timeoutMs: 5_000 },
  );

  // int64 fields are bigint: 3.50 EUR is units 3n, nanos 500_000_000.
  const unitPrice = create(MoneySchema, { currencyCode: "EUR", units: 3n, nanos: 500_000_000 });
  const placed = await shop.orders.createOrder(
    create(CreateOrderRequestSchema, {
      order: {
        userId: user.id,
        items: [create(LineItemSchema, { sku: "TEA-1", quantity: 2, unitPrice })],
      },
      requestId: randomUUID(), // a retry with the same id creates nothing more
    }),
    { timeoutMs: 5_000 },
  );
  const { order } = await shop.orders.getOrder({ id: placed.order.id }, { timeoutMs: 5_000 });
  console.log(
    `user ${user.id} ordered ${order.id}: ${order.total.units} ${order.total.currencyCode}, ` +
      Order_State[order.state],
  );

  let count = 0;
  for await (const page of listUserPages(shop.users, { pageSize: 10 })) {
    count += page.users.length;
  }
  console.log(`listed ${count} user(s), 10 a page`);

  try {
    await shop.users.getUser({ id: "not-an-id" }, { timeoutMs: 5_000 });
  } catch (error) {
    const { codeName, errorInfo, badRequest } = errorDetails(error);
    const fields = badRequest?.fieldViolations.map((violation) => violation.field) ?? [];
    console.log(`GetUser('not-an-id') failed: ${codeName} ${errorInfo?.reason} [${fields}]`);
  }
} finally {
  shop.close();
}
