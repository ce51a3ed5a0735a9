// The console's pure modules (console/format.js, console/errors.js) under Node's test runner;
// the page as a whole runs in a real browser in tests/browser/.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Code, ConnectError } from "@connectrpc/connect";

import { BadRequestSchema, ErrorInfoSchema } from "../../gen/ts/google/rpc/error_details_pb.js";
import { cancelled, codeName, describe } from "../../console/errors.js";
import { money, parseMoney, shortId } from "../../console/format.js";

const eur = (units, nanos = 0) => ({ currencyCode: "EUR", units, nanos });

test("money is shown exactly, with at least two decimals", () => {
  assert.equal(money(eur(7n)), "7.00 EUR");
  assert.equal(money(eur(12n, 50_000_000)), "12.05 EUR");
  assert.equal(money(eur(0n, 5)), "0.000000005 EUR");
  assert.equal(money(eur(-1n, -500_000_000)), "-1.50 EUR");
  assert.equal(money(eur(0n, -250_000_000)), "-0.25 EUR");
  assert.equal(money(eur(9_007_199_254_740_993n)), "9007199254740993.00 EUR");
  assert.equal(money(undefined), "");
});

test("a price is read as units and nanos, or refused", () => {
  assert.deepEqual(parseMoney(" 3.5 ", "EUR"), eur(3n, 500_000_000));
  assert.deepEqual(parseMoney("12", "USD"), { currencyCode: "USD", units: 12n, nanos: 0 });
  assert.deepEqual(parseMoney("0.000000001", "EUR"), eur(0n, 1));
  for (const bad of ["", "1.", ".5", "-1", "1e3", "1,50", "0.0000000001", "1234567890123456"]) {
    assert.equal(parseMoney(bad, "EUR"), null, bad);
  }
});

test("ids are shortened, short ones kept", () => {
  assert.equal(shortId("01a2458e-bb57-7574-a1f7-490a821cabe4"), "01a2458e…abe4");
  assert.equal(shortId("u1"), "u1");
});

test("an error is its Connect code name, message, reason and fields", () => {
  assert.equal(codeName(Code.InvalidArgument), "invalid_argument");
  assert.equal(codeName(Code.DeadlineExceeded), "deadline_exceeded");
  const details = [
    { desc: ErrorInfoSchema, value: { reason: "EMAIL_TAKEN", domain: "shop.dev" } },
    {
      desc: BadRequestSchema,
      value: { fieldViolations: [{ field: "user.email", description: "is already used" }] },
    },
  ];
  const message = "another user has this e-mail address";
  const error = new ConnectError(message, Code.AlreadyExists, undefined, details);
  assert.equal(
    describe(error),
    "already_exists: another user has this e-mail address (EMAIL_TAKEN). user.email: is already used",
  );
  assert.equal(describe(new Error("boom")), "unknown: boom");
  assert.ok(cancelled(new ConnectError("gone", Code.Canceled)));
  assert.ok(!cancelled(error));
});
