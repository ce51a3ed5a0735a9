// The live console (served by the gateway at /console): users and their orders through the
// Connect protocol (JSON), with the generated stubs of gen/ts, and one WatchOrders stream that
// keeps the orders table current. Plain DOM, no framework; bundled by esbuild (`make gen`,
// tools/console_bundle.py) into gateway/console_assets/console.js.
//
// One stream at a time: a browser opens at most six HTTP/1.1 connections per host, and a
// stream holds one for as long as it lasts. The feed's stream is replaced (aborted first)
// when the filter or the token changes, and closed while the page is hidden.

import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";

import { BadRequestSchema, ErrorInfoSchema } from "../gen/ts/google/rpc/error_details_pb.js";
import {
  Order_State,
  OrderEvent_Type,
  OrderService,
  WatchOrdersRequestSchema,
} from "../gen/ts/shop/order/v1/order_pb.js";
import { UserService } from "../gen/ts/shop/user/v1/user_pb.js";

const TOKEN_KEY = "shop-console-token";
const CALL_TIMEOUT_MS = 10_000;
const PAGE_SIZE = 50;
const FEED_ITEMS = 50;
const MAX_BACKOFF_MS = 30_000;
// Worth another try later; any other error stops the feed until something changes.
const TRANSIENT = new Set([
  Code.Unavailable,
  Code.Unknown,
  Code.Internal,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Aborted,
]);

// Refused until the order service's view of users has a user just created, and then not.
const NEW_USER_LAG = new Set([Code.FailedPrecondition, Code.PermissionDenied]);
const NEW_USER_PATIENCE_MS = 10_000;

const $ = (id) => document.getElementById(id);
const verified = document.querySelector('meta[name="shop-identity"]')?.content === "verified";

let token = verified ? (sessionStorage.getItem(TOKEN_KEY) ?? "") : "";

// JSON; reads (the methods without side effects) as Connect GETs, which the browser may keep
// and revalidate by their ETag.
const transport = createConnectTransport({
  baseUrl: location.origin,
  useHttpGet: true,
  interceptors: [
    (next) => (request) => {
      if (token) {
        request.header.set("Authorization", `Bearer ${token}`);
      }
      return next(request);
    },
  ],
});
const users = createClient(UserService, transport);
const orders = createClient(OrderService, transport);

// ---- errors -----------------------------------------------------------------------------

/** `invalid_argument`: Connect's name of a code. */
function codeName(code) {
  return (Code[code] ?? "unknown").replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
}

/** One line: the code, the message, and the details that say more (reason, fields). */
function describe(error) {
  const failure = ConnectError.from(error);
  let text = `${codeName(failure.code)}: ${failure.rawMessage}`;
  const reasons = failure.findDetails(ErrorInfoSchema).map((info) => info.reason);
  const fields = failure
    .findDetails(BadRequestSchema)
    .flatMap((bad) => bad.fieldViolations.map((v) => `${v.field}: ${v.description}`));
  if (reasons.length) {
    text += ` (${reasons.join(", ")})`;
  }
  if (fields.length) {
    text += `. ${fields.join("; ")}`;
  }
  return text;
}

function showError(what, error) {
  $("error").textContent = `${what} failed: ${describe(error)}`;
}

function clearError() {
  $("error").textContent = "";
  $("status").textContent = "";
}

function aborted(error) {
  return ConnectError.from(error).code === Code.Canceled;
}

// ---- formatting ---------------------------------------------------------------------------

/** `12.50 EUR`: exact (no floating point), at least two decimals. */
function money(value) {
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

/** `12.5` → Money {units: 12, nanos: 500000000}; null when not a plain decimal. */
function parseMoney(text, currencyCode) {
  const match = /^(\d{1,15})(?:\.(\d{1,9}))?$/.exec(text.trim());
  if (!match) {
    return null;
  }
  return { currencyCode, units: BigInt(match[1]), nanos: Number((match[2] ?? "").padEnd(9, "0")) };
}

function timeCell(timestamp) {
  const cell = document.createElement("td");
  cell.className = "time";
  if (timestamp) {
    const when = timestampDate(timestamp);
    const time = document.createElement("time");
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
    cell.append(time);
  }
  return cell;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) {
    td.className = className;
  }
  return td;
}

function shortId(id) {
  return id.length > 13 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

function stateName(state) {
  return { [Order_State.PENDING]: "pending", [Order_State.CANCELLED]: "cancelled" }[state] ?? "—";
}

// ---- users --------------------------------------------------------------------------------

const known = new Map(); // id → User, as listed or created here
let usersPageToken = "";

function userLabel(user) {
  return user.displayName ? `${user.displayName} <${user.email}>` : user.email;
}

function addUserRow(user) {
  const row = document.createElement("tr");
  row.dataset.userId = user.id;
  const show = document.createElement("button");
  show.type = "button";
  show.textContent = "Orders";
  show.setAttribute("aria-label", `Show orders of ${userLabel(user)}`);
  show.addEventListener("click", () => {
    $("orders-of").value = user.id;
    followOrders();
    $("orders-heading").scrollIntoView();
  });
  const actions = document.createElement("td");
  actions.className = "actions-cell";
  actions.append(show);
  const who = document.createElement("td");
  const email = document.createElement("span");
  email.className = "email";
  email.textContent = user.email;
  const id = document.createElement("span");
  id.className = "id";
  id.textContent = user.id;
  who.append(user.displayName || "", document.createElement("br"), email);
  who.append(document.createElement("br"), id);
  row.append(who, actions);
  $("users").tBodies[0].append(row);
}

function remember(user) {
  const fresh = !known.has(user.id);
  known.set(user.id, user);
  if (fresh) {
    addUserRow(user);
    for (const select of [$("order-user"), $("orders-of")]) {
      select.append(new Option(userLabel(user), user.id));
    }
  }
}

function resetUsers() {
  known.clear();
  usersPageToken = "";
  $("users").tBodies[0].replaceChildren();
  const mine = verified ? "my own user" : "(choose a user)";
  $("order-user").replaceChildren(new Option(mine, ""));
  const selected = $("orders-of").value;
  $("orders-of").replaceChildren(new Option(verified ? "my users" : "every user", ""));
  return selected;
}

async function loadUsers({ more = false } = {}) {
  try {
    const page = await users.listUsers(
      { pageSize: PAGE_SIZE, pageToken: more ? usersPageToken : "" },
      { timeoutMs: CALL_TIMEOUT_MS },
    );
    page.users.forEach(remember);
    usersPageToken = page.nextPageToken;
    $("more-users").hidden = !usersPageToken;
  } catch (error) {
    // A user who is not an admin may not list users: they see the ones they create.
    showError("Listing users", error);
  }
}

async function createUser(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const data = new FormData(form);
  clearError();
  try {
    const { user } = await users.createUser(
      {
        user: { email: String(data.get("email")), displayName: String(data.get("displayName")) },
        requestId: crypto.randomUUID(),
      },
      { timeoutMs: CALL_TIMEOUT_MS },
    );
    remember(user);
    // A caller's first user: their orders may be followed now (`CALLER_HAS_NO_USER` before).
    patientUntil = Date.now() + NEW_USER_PATIENCE_MS;
    if (stopped) {
      followOrders();
    }
    $("order-user").value = user.id;
    form.reset();
    announce(`Created user ${userLabel(user)}.`);
  } catch (error) {
    showError("Creating the user", error);
  }
}

// ---- orders -------------------------------------------------------------------------------

let ordersPageToken = "";

function orderRow(order) {
  const row = document.createElement("tr");
  row.dataset.orderId = order.id;
  const items = order.items.map((item) => `${item.quantity} × ${item.sku}`).join(", ");
  const owner = known.get(order.userId);
  const actions = document.createElement("td");
  actions.className = "actions-cell";
  if (order.state === Order_State.PENDING) {
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    cancel.setAttribute("aria-label", `Cancel order ${order.id}`);
    cancel.addEventListener("click", () => cancelOrder(order, cancel));
    actions.append(cancel);
  }
  row.append(
    cell(shortId(order.id), "id"),
    cell(owner ? owner.displayName || owner.email : shortId(order.userId)),
    cell(items, "items"),
    cell(money(order.total), "number"),
    cell(stateName(order.state), `state ${stateName(order.state)}`),
    timeCell(order.createTime),
    actions,
  );
  row.cells[0].title = order.id;
  row.cells[1].title = owner ? userLabel(owner) : order.userId;
  return row;
}

/** Puts `order` in the table, in place of its row, else in id order (ids grow with time). */
function showOrder(order) {
  const body = $("orders").tBodies[0];
  const row = orderRow(order);
  const old = body.querySelector(`tr[data-order-id="${CSS.escape(order.id)}"]`);
  if (old) {
    const focused = old.contains(document.activeElement);
    old.replaceWith(row);
    if (focused) {
      // Its button may be gone (a cancelled order has none): the focus stays on its row.
      const button = row.querySelector("button");
      if (button) {
        button.focus();
      } else {
        row.cells[0].tabIndex = -1;
        row.cells[0].focus();
      }
    }
    return;
  }
  const after = [...body.rows].find((other) => other.dataset.orderId > order.id);
  body.insertBefore(row, after ?? null);
}

function forgetOrder(id) {
  $("orders").tBodies[0].querySelector(`tr[data-order-id="${CSS.escape(id)}"]`)?.remove();
}

async function listOrders(userId, signal, pageToken = "") {
  const page = await orders.listOrders(
    { userId, pageSize: PAGE_SIZE, pageToken },
    { timeoutMs: CALL_TIMEOUT_MS, signal },
  );
  if (!pageToken) {
    $("orders").tBodies[0].replaceChildren();
  }
  page.orders.forEach(showOrder);
  ordersPageToken = page.nextPageToken;
  $("more-orders").hidden = !ordersPageToken;
  return page.revision;
}

async function createOrder(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const data = new FormData(form);
  clearError();
  const unitPrice = parseMoney(String(data.get("price")), String(data.get("currency")));
  if (!unitPrice) {
    $("error").textContent = "Creating the order failed: the unit price is not a decimal amount.";
    $("order-price").focus();
    return;
  }
  try {
    const { order } = await orders.createOrder(
      {
        order: {
          userId: String(data.get("userId")),
          items: [{ sku: String(data.get("sku")), quantity: Number(data.get("quantity")), unitPrice }],
        },
        requestId: crypto.randomUUID(),
      },
      { timeoutMs: CALL_TIMEOUT_MS },
    );
    // The feed shows it too, as soon as it is committed; shown now for the one who made it.
    if (!filter() || filter() === order.userId) {
      showOrder(order);
    }
    $("order-sku").value = "";
    $("order-price").value = "";
    $("order-quantity").value = "1";
    announce(`Created order ${order.id}: ${money(order.total)}.`);
  } catch (error) {
    showError("Creating the order", error);
  }
}

async function cancelOrder(order, button) {
  clearError();
  button.disabled = true;
  try {
    const { order: cancelled } = await orders.cancelOrder(
      { id: order.id, etag: order.etag },
      { timeoutMs: CALL_TIMEOUT_MS },
    );
    showOrder(cancelled);
    announce(`Cancelled order ${order.id}.`);
  } catch (error) {
    button.disabled = false;
    showError("Cancelling the order", error);
  }
}

// ---- the live feed: list, then watch from the listing's revision + 1 ------------------------

let feed = null; // the AbortController of the one stream
let revision = 0n; // the last revision applied (listed or watched)
let listed = false; // the table holds the listing for `filter()` at `revision`
let stopped = false; // the feed ended on an error that another try would get again
let patientUntil = 0; // until then, a new user not known yet is waited for

function filter() {
  return $("orders-of").value;
}

function feedState(text) {
  $("feed-state").textContent = text;
}

function announce(text) {
  $("status").textContent = text;
}

function logEvent(event) {
  const order = event.order;
  const item = document.createElement("li");
  const deleted = event.type === OrderEvent_Type.DELETE;
  const what = deleted ? "removed" : stateName(order?.state);
  item.textContent = `rev ${event.revision}: order ${order ? shortId(order.id) : "?"} ${what}`;
  if (order && !deleted) {
    item.textContent += `, ${money(order.total)}`;
  }
  item.title = order?.id ?? "";
  const list = $("feed");
  list.prepend(item);
  while (list.children.length > FEED_ITEMS) {
    list.lastElementChild.remove();
  }
}

function apply(response) {
  for (const event of response.events) {
    if (event.type === OrderEvent_Type.DELETE) {
      forgetOrder(event.order?.id ?? "");
    } else if (event.order) {
      showOrder(event.order);
    }
    logEvent(event);
    revision = event.revision;
  }
  // A bookmark: nothing else up to it concerns this watch.
  if (response.progressNotify && response.headerRevision > revision) {
    revision = response.headerRevision;
  }
}

/** Exponential backoff with full jitter, as the services' own watchers do. */
function backoff(failures) {
  return Math.random() * Math.min(MAX_BACKOFF_MS, 250 * 2 ** failures);
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

function stopFeed() {
  feed?.abort();
  feed = null;
}

/** Lists the orders of the filter, then follows them; the previous stream is closed first. */
function followOrders() {
  listed = false;
  startFeed();
}

function startFeed() {
  stopFeed();
  stopped = false;
  const controller = new AbortController();
  feed = controller;
  watch(controller.signal);
}

async function watch(signal) {
  const userId = filter();
  let failures = 0;
  while (!signal.aborted) {
    try {
      if (!listed) {
        feedState("Listing orders…");
        revision = await listOrders(userId, signal);
        listed = true;
      }
      const request = create(WatchOrdersRequestSchema, {
        startRevision: revision + 1n,
        userId,
        progressNotify: true,
      });
      for await (const response of orders.watchOrders(request, { signal })) {
        if (response.compactRevision) {
          listed = false; // history that far back is gone: list again (OUT_OF_RANGE follows)
        }
        apply(response);
        failures = 0;
        feedState(`Live: up to revision ${revision}.`);
      }
      // Ended without an error (a server going away ends it so): resume where it stopped.
      failures += 1;
      feedState("The feed ended; reconnecting…");
      await sleep(backoff(failures), signal);
    } catch (error) {
      if (signal.aborted || aborted(error)) {
        return;
      }
      const failure = ConnectError.from(error);
      if (failure.code === Code.OutOfRange) {
        listed = false;
        continue;
      }
      if (NEW_USER_LAG.has(failure.code) && Date.now() < patientUntil) {
        // The order service learns of a new user from the user feed, milliseconds later.
        feedState("Waiting for the order service to learn of the new user…");
        await sleep(backoff(1), signal);
        continue;
      }
      if (!TRANSIENT.has(failure.code)) {
        feedState(`Stopped: ${describe(failure)}`);
        stopped = true;
        return;
      }
      failures += 1;
      const wait = backoff(failures);
      feedState(`Disconnected (${describe(failure)}); retrying in ${Math.ceil(wait / 1000)} s…`);
      await sleep(wait, signal);
    }
  }
}

// While hidden, the page holds no connection; back in view, it resumes where it stopped.
function onVisibility() {
  if (document.visibilityState === "hidden") {
    stopFeed();
    feedState("Paused while the page is hidden.");
  } else if (!feed) {
    startFeed();
  }
}

// ---- the token (verified identity only) ---------------------------------------------------

function describeIdentity() {
  if (!verified) {
    $("identity").textContent =
      "Development identity: calls without a token act as the development admin.";
  } else {
    $("identity").textContent = token
      ? "Calling with your token."
      : "Tokens are verified: enter yours to call.";
  }
}

async function startAll() {
  describeIdentity();
  const selected = resetUsers();
  await loadUsers();
  if ([...$("orders-of").options].some((option) => option.value === selected)) {
    $("orders-of").value = selected;
  }
  followOrders();
}

function useToken(event) {
  event.preventDefault();
  clearError();
  token = $("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  startAll();
}

function forgetToken() {
  token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  stopFeed();
  resetUsers();
  $("orders").tBodies[0].replaceChildren();
  describeIdentity();
  feedState("Not connected.");
  $("token").focus();
}

// ---- wiring ---------------------------------------------------------------------------------

function main() {
  $("user-form").addEventListener("submit", createUser);
  $("order-form").addEventListener("submit", createOrder);
  $("orders-of").addEventListener("change", followOrders);
  $("more-users").addEventListener("click", () => loadUsers({ more: true }));
  $("reload-users").addEventListener("click", () => startAll());
  $("more-orders").addEventListener("click", () =>
    listOrders(filter(), undefined, ordersPageToken).catch((e) => showError("Listing orders", e)),
  );
  document.addEventListener("visibilitychange", onVisibility);
  if (verified) {
    $("token-section").hidden = false;
    $("token-form").addEventListener("submit", useToken);
    $("forget-token").addEventListener("click", forgetToken);
    if (!token) {
      describeIdentity();
      resetUsers();
      $("token").focus();
      return;
    }
  }
  startAll();
}

main();
