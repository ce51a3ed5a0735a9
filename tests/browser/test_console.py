"""The live console (`/console`) in a real browser, headless Chromium, against the real
system: the page loads without an error in its console, a user and an order are created
through its forms by keyboard alone (over the Connect protocol), an order is cancelled, and
an order created by another client (the generated Python stub, straight to order_svc)
arrives through the page's live feed without a reload. A screenshot is kept in
test-artifacts/console.png (and the test's tmp_path). Where tokens are verified, the page
asks for one, keeps it in the tab's session storage only, and calls with it."""

from __future__ import annotations

import pathlib
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.type import money_pb2
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver import ActionChains, Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from shop.order.v1 import order_pb2, order_pb2_grpc
from tests.browser.chromium import headless_chromium
from tests.browser.shop import Shop, in_thread, running_shop
from tests.security.system import JwtSystem, jwt_system

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
WAIT_SECONDS = 20
MAX_TABS = 60
SWITCHES = 6
"""Times the feed's filter goes back and forth: 12 streams replaced, where one caller may hold
8 (the gateway's GATEWAY_MAX_STREAMS_PER_CALLER)."""
TIMES = "\N{MULTIPLICATION SIGN}"  # as the page writes quantities


@pytest.fixture
def shop(tmp_path: pathlib.Path) -> Iterator[Shop]:
    with in_thread(running_shop(tmp_path / "data")) as running:
        yield running


@pytest.fixture
def browser(tmp_path: pathlib.Path) -> Iterator[Chrome]:
    with headless_chromium(tmp_path / "profile") as driver:
        yield driver


def wait_for(driver: Chrome, what: str, condition: Callable[[Chrome], Any]) -> Any:
    """`condition`'s first truthy value; on timeout, fails saying `what` and what the page
    shows in its error and feed lines."""
    try:
        # The page replaces a row when it changes: one found may be gone when read.
        wait = WebDriverWait(
            driver, WAIT_SECONDS, ignored_exceptions=[StaleElementReferenceException]
        )
        return wait.until(condition)
    except Exception as error:
        shown = {name: driver.find_element(By.ID, name).text for name in ("error", "feed-state")}
        raise AssertionError(f"the page did not show {what}: {shown}") from error


def tab_to(driver: Chrome, element_id: str) -> WebElement:
    """Presses Tab until `element_id` has the focus: it is reachable by keyboard."""
    for _ in range(MAX_TABS):
        focused: WebElement = driver.switch_to.active_element
        if focused.get_attribute("id") == element_id:
            return focused
        ActionChains(driver).send_keys(Keys.TAB).perform()
    raise AssertionError(f"#{element_id} is not reached by {MAX_TABS} presses of Tab")


def type_into(driver: Chrome, element_id: str, text: str) -> None:
    """Tabs to the field, replaces its value by typing `text`."""
    tab_to(driver, element_id)
    keys = ActionChains(driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL)
    keys.send_keys(Keys.DELETE).send_keys(text).perform()


def press(driver: Chrome, key: str) -> None:
    ActionChains(driver).send_keys(key).perform()


def live(driver: Chrome) -> bool:
    return driver.find_element(By.ID, "feed-state").text.startswith("Live")


def rows(driver: Chrome, table: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")


def row_with(driver: Chrome, table: str, text: str) -> tuple[str, str] | None:
    """The key (`data-user-id`, `data-order-id`) and text of the first row showing `text`."""
    for row in rows(driver, table):
        shown = row.text
        if text in shown:
            key = row.get_attribute(f"data-{table[:-1]}-id")
            assert key
            return key, shown
    return None


def order_row(driver: Chrome, order_id: str) -> WebElement | None:
    rows = driver.find_elements(By.CSS_SELECTOR, f'#orders tr[data-order-id="{order_id}"]')
    return rows[0] if rows else None


def text_of(element: WebElement | None) -> str:
    return "" if element is None else element.text


def console_errors(driver: Chrome) -> list[str]:
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry["message"] for entry in entries if entry["level"] == "SEVERE"]


def set_visibility(driver: Chrome, state: str) -> None:
    """As the browser does when the tab is hidden or shown (headless, it never is)."""
    driver.execute_script(
        "Object.defineProperty(document, 'visibilityState', {value: arguments[0], "
        "configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));",
        state,
    )


def order_by_another_client(shop: Shop, user_id: str, sku: str, units: int, nanos: int = 0) -> str:
    """An order created with the generated Python stub, straight to order_svc: its id."""
    price = money_pb2.Money(currency_code="EUR", units=units, nanos=nanos)
    order = order_pb2.Order(
        user_id=user_id, items=[order_pb2.LineItem(sku=sku, quantity=1, unit_price=price)]
    )
    with grpc.insecure_channel(shop.order_addr) as channel:
        response = order_pb2_grpc.OrderServiceStub(channel).CreateOrder(
            order_pb2.CreateOrderRequest(order=order), timeout=10
        )
    return response.order.id


def keep_screenshot(driver: Chrome, tmp_path: pathlib.Path) -> None:
    shot = tmp_path / "console.png"
    assert driver.save_screenshot(str(shot)), "no screenshot taken"
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "console.png")


def test_the_console_creates_and_follows_orders_live(
    browser: Chrome, shop: Shop, tmp_path: pathlib.Path
) -> None:
    browser.get(f"{shop.gateway_url}/console")
    assert browser.title == "Shop console"
    wait_for(browser, "the live feed", live)
    assert console_errors(browser) == []

    # A user, by keyboard alone: Tab to each field, type, Enter submits.
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    type_into(browser, "user-email", email)
    type_into(browser, "user-name", "Ada Lovelace")
    press(browser, Keys.ENTER)
    user_id, _ = wait_for(browser, "the new user", lambda d: row_with(d, "users", email))
    # The new user is the one the order form orders for.
    assert browser.find_element(By.ID, "order-user").get_attribute("value") == user_id

    # A refusal is shown as Connect's code and message, with the details' reason and fields.
    type_into(browser, "user-email", email)
    press(browser, Keys.ENTER)
    refused = wait_for(browser, "the refusal", lambda d: d.find_element(By.ID, "error").text)
    assert refused == (
        "Creating the user failed: already_exists: another user has this e-mail address "
        "(EMAIL_TAKEN). user.email: is already used by another user"
    )
    assert browser.find_element(By.ID, "error").get_attribute("role") == "alert"
    # (Chromium logs the 409 in the page's console; nothing else may be there.)
    assert [re.sub(r"^\S+ ", "", line) for line in console_errors(browser)] == [
        "- Failed to load resource: the server responded with a status of 409 (Conflict)"
    ]

    # An order for them, the same way.
    type_into(browser, "order-sku", "sku-tea")
    type_into(browser, "order-quantity", "2")
    type_into(browser, "order-price", "3.50")
    press(browser, Keys.ENTER)
    created_id, created = wait_for(browser, "the new order", lambda d: row_with(d, "orders", "tea"))
    assert f"2 {TIMES} sku-tea" in created
    assert "7.00 EUR" in created
    assert "pending" in created

    # Cancelled from its row's button, by keyboard.
    tab_to(browser, "orders-of")
    for _ in range(MAX_TABS):
        focused = browser.switch_to.active_element
        if focused.get_attribute("aria-label") == f"Cancel order {created_id}":
            break
        press(browser, Keys.TAB)
    else:
        raise AssertionError("the order's Cancel button is not reached by Tab")
    press(browser, Keys.ENTER)
    wait_for(
        browser, "the order cancelled", lambda d: "cancelled" in text_of(order_row(d, created_id))
    )

    # The feed follows the filter: each change replaces the one stream (more changes than one
    # caller may hold streams), and the last one is live.
    tab_to(browser, "orders-of")
    for _ in range(SWITCHES):
        press(browser, Keys.ARROW_DOWN)  # this user's orders
        press(browser, Keys.ARROW_UP)  # everyone's
    assert browser.find_element(By.ID, "orders-of").get_attribute("value") == ""
    wait_for(browser, "the feed live again", lambda d: live(d) and order_row(d, created_id))

    # Hidden, the page holds no stream; shown again, it resumes where it stopped: what was
    # committed meanwhile arrives.
    set_visibility(browser, "hidden")
    assert browser.find_element(By.ID, "feed-state").text == "Paused while the page is hidden."
    meanwhile = order_by_another_client(shop, user_id, "sku-jam", units=4)
    set_visibility(browser, "visible")
    wait_for(browser, "the order made while hidden", lambda d: order_row(d, meanwhile))

    # Another client's order arrives through the feed, without a reload.
    other = order_by_another_client(shop, user_id, "sku-cake", units=12, nanos=50_000_000)
    arrived = wait_for(browser, "the other client's order", lambda d: text_of(order_row(d, other)))
    assert f"1 {TIMES} sku-cake" in arrived
    assert "12.05 EUR" in arrived
    feed = browser.find_element(By.ID, "feed")
    assert other in [item.get_attribute("title") for item in feed.find_elements(By.TAG_NAME, "li")]

    assert browser.find_element(By.ID, "error").text == ""
    keep_screenshot(browser, tmp_path)
    assert console_errors(browser) == []


def test_where_tokens_are_verified_the_console_asks_for_one(
    browser: Chrome, tmp_path: pathlib.Path
) -> None:
    with in_thread(jwt_system(tmp_path, console=True)) as system:
        check_the_token_flow(browser, system)


def check_the_token_flow(browser: Chrome, system: JwtSystem) -> None:
    browser.get(f"{system.gateway.url}/console")
    assert browser.find_element(By.ID, "token-section").is_displayed()
    assert browser.switch_to.active_element.get_attribute("id") == "token"
    assert browser.find_element(By.ID, "token").get_attribute("type") == "password"
    assert "enter yours" in browser.find_element(By.ID, "identity").text
    assert browser.find_element(By.ID, "feed-state").text == "Not connected."

    # Typed and sent by keyboard; every call carries it from then on.
    token = system.issuer.admin()
    ActionChains(browser).send_keys(token).send_keys(Keys.ENTER).perform()
    wait_for(browser, "the live feed", live)
    assert browser.find_element(By.ID, "error").text == ""
    assert browser.find_element(By.ID, "token").get_attribute("value") == ""
    email = f"grace-{uuid.uuid4().hex[:8]}@example.com"
    type_into(browser, "user-email", email)
    press(browser, Keys.ENTER)
    wait_for(browser, "the new user", lambda d: any(email in r.text for r in rows(d, "users")))

    # Kept for this tab only: back after a reload, never in local storage.
    assert browser.execute_script("return localStorage.length") == 0
    assert browser.execute_script("return sessionStorage.getItem('shop-console-token')") == token
    browser.refresh()
    wait_for(browser, "the users again", lambda d: any(email in r.text for r in rows(d, "users")))

    # Forgotten: nothing is called any more, and nothing is kept.
    browser.find_element(By.ID, "forget-token").click()
    assert browser.execute_script("return sessionStorage.length") == 0
    assert rows(browser, "users") == []
    assert browser.find_element(By.ID, "feed-state").text == "Not connected."
    set_visibility(browser, "hidden")
    set_visibility(browser, "visible")  # no token: nothing resumes
    assert browser.find_element(By.ID, "feed-state").text == "Not connected."
    assert console_errors(browser) == []


def test_a_user_follows_their_own_orders_once_they_have_a_user(
    browser: Chrome, tmp_path: pathlib.Path
) -> None:
    with in_thread(jwt_system(tmp_path, console=True)) as system:
        browser.get(f"{system.gateway.url}/console")
        ActionChains(browser).send_keys(system.issuer.token("alice")).send_keys(
            Keys.ENTER
        ).perform()
        # Not an admin: no list of users; no user yet, so no orders of theirs to follow.
        wait_for(
            browser, "the refusals", lambda d: "Stopped" in d.find_element(By.ID, "feed-state").text
        )
        assert browser.find_element(By.ID, "error").text.startswith(
            "Listing users failed: permission_denied: "
        )
        assert "(CALLER_HAS_NO_USER)" in browser.find_element(By.ID, "feed-state").text

        # Their user (for their own subject), then the feed follows its orders.
        type_into(browser, "user-email", "alice@example.com")
        press(browser, Keys.ENTER)
        user_id, _ = wait_for(browser, "alice's user", lambda d: row_with(d, "users", "alice@"))
        wait_for(browser, "the live feed", live)

        # An order for their own user (the form's default), and one an admin makes for them.
        type_into(browser, "order-sku", "sku-pen")
        type_into(browser, "order-price", "1.25")
        press(browser, Keys.ENTER)
        wait_for(browser, "alice's order", lambda d: row_with(d, "orders", "sku-pen"))
        price = money_pb2.Money(currency_code="EUR", units=9)
        order = order_pb2.Order(
            user_id=user_id, items=[order_pb2.LineItem(sku="sku-ink", quantity=1, unit_price=price)]
        )
        admin = (("authorization", f"Bearer {system.issuer.admin()}"),)
        with grpc.insecure_channel(f"127.0.0.1:{system.orders.port}") as channel:
            stub = order_pb2_grpc.OrderServiceStub(channel)
            made = stub.CreateOrder(
                order_pb2.CreateOrderRequest(order=order), metadata=admin, timeout=10
            )
        wait_for(browser, "the admin's order", lambda d: order_row(d, made.order.id))
        assert len(rows(browser, "orders")) == 2
