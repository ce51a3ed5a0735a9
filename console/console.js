// The live console (served by the gateway at /console): users and their orders through the
// Connect protocol (JSON; reads as GETs), with the generated stubs of gen/ts, and one
// WatchOrders stream (feed.js) that keeps the orders table current. Plain DOM, no framework;
// bundled with what it imports by esbuild (`make gen`: tools/console_bundle.py) into
// gateway/console_assets/console.js.

import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";

import { Order_State, OrderEvent_Type, OrderService } from "../gen/ts/shop/order/v1/order_pb.js";
import { UserService } from "../gen/ts/shop/user/v1/user_pb.js";
import { describe } from "./errors.js";
import { OrderFeed } from "./feed.js";
import { money, parseMoney, shortId, stateName, timeElement } from "./format.js";

const TOKEN_KEY = "shop-console-token";
const CALL_TIMEOUT_MS = 10_000;
const PAGE_SIZE = 50;
const FEED_ITEMS = 50;

const $ = (id) => document.getElementById(id);
const verified = document.querySelector('meta[name="shop-identity"]')?.content === "verified";

let token = verified ? (sessionStorage.getItem(TOKEN_KEY) ?? "") : "";

// Reads (the methods without side effects) as Connect GETs, which the browser may keep and
// revalidate by their ETag.
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

// ---- messages -----------------------------------------------------------------------------

function showError(what, error) {
  $("error").textContent = `${what} failed: ${describe(error)}`;
}

function clearError() {
  $("error").textContent = "";
  $("status").textContent = "";
}

function announce(text) {
  $("status").textContent = text;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) {
    td.className = className;
  }
  return td;
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
    feed.userCreated(); // a caller's first user: their orders may be followed now
    $("order-user").value = user.id;
    form.reset();
    announce(`Created user ${userLabel(user)}.`);
  } catch (error) {
    showError("Creating the user", error);
  }
}

// ---- orders -------------------------------------------------------------------------------

function timeCell(timestamp) {
  const td = cell("", "time");
  if (timestamp) {
    td.append(timeElement(timestamp));
  }
  return td;
}

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

// ---- the live feed ------------------------------------------------------------------------

function filter() {
  return $("orders-of").value;
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

const feed = new OrderFeed({
  orders,
  list: (userId, signal) => listOrders(userId, signal),
  apply(response) {
    for (const event of response.events) {
      if (event.type === OrderEvent_Type.DELETE) {
        forgetOrder(event.order?.id ?? "");
      } else if (event.order) {
        showOrder(event.order);
      }
      logEvent(event);
    }
  },
  show(text) {
    $("feed-state").textContent = text;
  },
});

/** Lists the orders of the filter, then follows them (the previous stream closed first). */
function followOrders() {
  feed.follow(filter());
}

// While hidden, the page holds no connection; back in view, it resumes where it stopped.
function onVisibility() {
  if (document.visibilityState === "hidden") {
    feed.pause();
  } else {
    feed.resume();
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
  feed.stop();
  resetUsers();
  $("orders").tBodies[0].replaceChildren();
  describeIdentity();
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
