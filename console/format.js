// How values are shown: money exactly (no floating point), ids shortened, states by name.

import { timestampDate } from "@bufbuild/protobuf/wkt";

import { Order_State } from "../gen/ts/shop/order/v1/order_pb.js";

/** `12.50 EUR` from a google.type.Money: at least two decimals, no more than it has. */
export function money(value) {
  if (!value) {
    return "";
  }
  let sign = "";
  let units = value.units;
  let nanos = value.nanos;
  if (units < 0n || nanos < 0) {
    sign = "-";
    units = -units;
    nanos = -nanos;
  }
  const fraction = String(nanos).padStart(9, "0").replace(/0+$/, "").padEnd(2, "0");
  return `${sign}${units}.${fraction} ${value.currencyCode}`;
}

/** `12.5` → Money {units: 12n, nanos: 500000000}; null when not a plain decimal. */
export function parseMoney(text, currencyCode) {
  const match = /^(\d{1,15})(?:\.(\d{1,9}))?$/.exec(text.trim());
  if (!match) {
    return null;
  }
  return { currencyCode, units: BigInt(match[1]), nanos: Number((match[2] ?? "").padEnd(9, "0")) };
}

/** `01a2458e…6d17`: enough to tell ids apart on one screen (the whole id is in a title). */
export function shortId(id) {
  return id.length > 13 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

export function stateName(state) {
  return { [Order_State.PENDING]: "pending", [Order_State.CANCELLED]: "cancelled" }[state] ?? "—";
}

/** A `<time>` element for a google.protobuf.Timestamp, in the reader's locale. */
export function timeElement(timestamp) {
  const when = timestampDate(timestamp);
  const time = document.createElement("time");
  time.dateTime = when.toISOString();
  time.textContent = when.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
  return time;
}
