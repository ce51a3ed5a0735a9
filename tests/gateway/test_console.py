"""The live console's files as the gateway serves them (`/console`): their content types, a
strict Content-Security-Policy, the page naming its script and style by content hash and
saying whether tokens are verified, and the console off in jwt mode unless asked for. The
page itself runs in a real browser in tests/browser/."""

from __future__ import annotations

import hashlib
import pathlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway import Settings, start
from gateway.console import CONSOLE_PATH
from shop_common.security import AuthMode, SecuritySettings
from tests import tokens
from tests.gateway.conftest import Backend, settings_for

GEN_TS = pathlib.Path(__file__).resolve().parents[2] / "gen" / "ts"
ASSETS = {
    "/console/console.js": "text/javascript; charset=utf-8",
    "/console/console.css": "text/css; charset=utf-8",
    "/console/favicon.svg": "image/svg+xml",
}
POLICY = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "connect-src": "'self'",
    "base-uri": "'none'",
    "form-action": "'none'",
    "frame-ancestors": "'none'",
}


def policy_of(response: httpx.Response) -> dict[str, str]:
    directives = response.headers["content-security-policy"].split(";")
    return dict(directive.strip().split(" ", 1) for directive in directives)


async def served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    running = await start(settings)
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            yield http
    finally:
        await running.stop()


@pytest.fixture
async def client(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    async for http in served(settings_for(backend.address)):
        yield http


async def test_the_page_loads_its_files_by_content_hash_under_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get(CONSOLE_PATH)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert policy_of(page) == POLICY
    html = page.text
    assert '<meta name="shop-identity" content="development">' in html
    # Nothing inline that the policy would have to allow, nothing from elsewhere.
    assert re.search(r"<script>|<style|\sstyle=|\son[a-z]+=", html) is None
    assert "//" not in html.replace("<!--", "").replace("-->", "")
    for path in ASSETS:
        asset = await client.get(path)
        version = hashlib.sha256(asset.content).hexdigest()[:16]
        assert f'"{path}?v={version}"' in html, path


@pytest.mark.parametrize(("path", "content_type"), ASSETS.items())
async def test_the_script_style_and_icon_are_served_with_their_types(
    client: httpx.AsyncClient, path: str, content_type: str
) -> None:
    response = await client.get(path, params={"v": "any"})
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert policy_of(response) == POLICY
    assert int(response.headers["content-length"]) == len(response.content) > 100
    head = await client.head(path)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == response.headers["content-length"]
    refused = await client.post(path)
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD, OPTIONS"


async def test_the_bundle_is_one_module_built_on_the_current_stubs(
    client: httpx.AsyncClient,
) -> None:
    script = (await client.get("/console/console.js")).text
    # No import left to resolve (a browser has no node_modules), no source map to fetch.
    assert re.search(r"""\bimport\s*[{*"']|\bimport\(|sourceMappingURL""", script) is None
    assert "connect-protocol-version" in script.lower()
    # Each service's file descriptor, as gen/ts has it now (else: `make gen`).
    for stub in ("shop/user/v1/user_pb.js", "shop/order/v1/order_pb.js"):
        descriptor = re.search(r'fileDesc\("([^"]+)"', (GEN_TS / stub).read_text())
        assert descriptor is not None
        assert descriptor.group(1) in script, f"the bundle predates gen/ts/{stub}"


async def test_where_tokens_are_verified_the_page_asks_for_one(
    backend: Backend, tmp_path: pathlib.Path
) -> None:
    jwks = tmp_path / "jwks.json"
    tokens.write_jwks(jwks, tokens.new_signing_key())
    security = SecuritySettings(mode=AuthMode.JWT, jwt=tokens.settings(jwks))
    async for http in served(settings_for(backend.address, security=security, console=True)):
        page = await http.get(CONSOLE_PATH)  # no token needed for the page itself
        assert page.status_code == 200
        assert '<meta name="shop-identity" content="verified">' in page.text
        assert (await http.get("/console/console.js")).status_code == 200


def test_the_console_is_on_in_dev_mode_unless_turned_off() -> None:
    assert Settings.from_env({}).console
    assert not Settings.from_env({"GATEWAY_CONSOLE": "false"}).console


async def test_turned_off_the_console_is_not_there(backend: Backend) -> None:
    async for http in served(settings_for(backend.address, console=False)):
        for path in (CONSOLE_PATH, *ASSETS):
            response = await http.get(path)
            assert response.status_code == 404, path
        assert (await http.get("/docs")).status_code == 200  # the docs have their own switch
