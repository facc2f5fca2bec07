"""Secure by default (issue 16) against the real daemon: the setup code for the first password,
viewing that needs the password or a viewing token once a password exists, viewers dropped at once
when protection turns on or their token is revoked, and the DNS-rebinding and cross-origin checks."""

from __future__ import annotations

import asyncio
import json
import time

from conftest import attach, read_fixture
from rtcam_process import TEST_PASSWORD, viewer_count
from whep_client import WhepClient

JSON = {"Content-Type": "application/json"}
SDP = {"Content-Type": "application/sdp"}


def offer() -> bytes:
    return read_fixture("chromium-156-recvonly-offer.sdp").encode()


def post_whep(daemon, headers: dict):
    return daemon.request("POST", "/whep", offer(), {**SDP, **headers})


def test_the_first_password_needs_the_setup_code(rtcam):
    code = rtcam.setup_code()
    assert len(code) == 14 and code.count("-") == 2, code
    assert code in rtcam.log_text(), "the setup code is not in the journal"
    assert oct((rtcam.state_dir / "setup-code").stat().st_mode & 0o777) == "0o600"
    first = {"password": TEST_PASSWORD}
    status, _, body = rtcam.request("POST", "/api/password", json.dumps(first).encode(), JSON)
    assert status == 403, (status, body)
    assert "setup code" in json.loads(body)["error"] and "setup-code" in json.loads(body)["error"], body
    wrong = "2222-2222-2222" if code != "2222-2222-2222" else "3333-3333-3333"
    status, _, body = rtcam.request("POST", "/api/password", json.dumps({**first, "setupCode": wrong}).encode(), JSON)
    assert status == 403 and b"wrong setup code" in body, (status, body)
    assert not (rtcam.state_dir / "password").exists()
    status, headers, body = rtcam.request("POST", "/api/password", json.dumps({**first, "setupCode": code}).encode(), JSON)
    assert status == 200, (status, body)
    assert "rtcam_session=" in headers.get("Set-Cookie", "")
    assert not (rtcam.state_dir / "setup-code").exists(), "the used setup code was not removed"
    assert (rtcam.state_dir / "password").exists()


def test_viewing_needs_the_password_or_a_token_once_one_is_set(rtcam):
    # No password yet: viewing is open (and says so on the page).
    status, headers, _ = post_whep(rtcam, {})
    assert status == 201
    rtcam.request("DELETE", headers["Location"])
    cookie = rtcam.log_in(viewing_requires_password=None)   # the default choice: protected
    session = json.loads(rtcam.request("GET", "/api/session", headers={"Cookie": cookie})[2])
    assert session["viewingLocked"] is True, session
    status, headers, body = post_whep(rtcam, {})
    assert status == 401, (status, body)
    assert headers.get("WWW-Authenticate", "").startswith("Bearer"), dict(headers)
    assert "Location" not in headers
    status, headers, body = post_whep(rtcam, {"Authorization": "Bearer rtcam_0000"})
    assert status == 401 and "invalid_token" in headers.get("WWW-Authenticate", ""), (status, dict(headers))
    # The owner's session admits them.
    status, headers, body = post_whep(rtcam, {"Cookie": cookie})
    assert status == 201, (status, body)
    rtcam.request("DELETE", headers["Location"])
    # So does a viewing token, shown once at creation and listed by name only.
    status, headers, body = rtcam.request("POST", "/api/tokens", json.dumps({"name": "test player"}).encode(),
                                          {**JSON, "Cookie": cookie})
    assert status == 201, (status, body)
    token = json.loads(body)
    listed = json.loads(rtcam.request("GET", "/api/tokens", headers={"Cookie": cookie})[2])
    assert listed["tokens"] == [{"id": token["id"], "name": "test player"}], listed
    assert token["token"] not in (rtcam.state_dir / "viewing-tokens").read_text()
    status, headers, body = post_whep(rtcam, {"Authorization": f"Bearer {token['token']}"})
    assert status == 201, (status, body)
    rtcam.request("DELETE", headers["Location"])
    # Token management needs the owner's session.
    status, _, _ = rtcam.request("POST", "/api/tokens", json.dumps({"name": "x"}).encode(), JSON)
    assert status == 401


def test_a_third_party_player_on_another_origin_uses_a_token(rtcam):
    cookie = rtcam.log_in(viewing_requires_password=None)
    status, _, body = rtcam.request("POST", "/api/tokens", json.dumps({"name": "player"}).encode(), {**JSON, "Cookie": cookie})
    token = json.loads(body)["token"]
    status, headers, _ = rtcam.request("OPTIONS", "/whep", headers={
        "Origin": "https://player.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert status == 204 and "Authorization" in headers.get("Access-Control-Allow-Headers", ""), dict(headers)
    status, headers, body = post_whep(rtcam, {"Origin": "https://player.example", "Authorization": f"Bearer {token}"})
    assert status == 201, (status, body)
    assert headers.get("Access-Control-Allow-Origin") == "*"
    status, _, _ = rtcam.request("DELETE", headers["Location"], headers={
        "Origin": "https://player.example", "Authorization": f"Bearer {token}"})
    assert status == 200
    # Without a token, another origin cannot start a session.
    status, _, body = post_whep(rtcam, {"Origin": "https://player.example", "Cookie": cookie})
    assert status == 403, (status, body)


def wait_until_gone(daemon, timeout: float) -> float:
    """Seconds until /api/status shows no viewer (polled every 50 ms); raises after `timeout`."""
    started = time.monotonic()
    while True:
        if viewer_count(daemon.status()) == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"the viewer was still there {timeout} s later")
        time.sleep(0.05)


def test_turning_protection_on_drops_an_anonymous_viewer_at_once(rtcam, request):
    cookie = rtcam.log_in()   # viewing stays open

    async def scenario():
        client = WhepClient(rtcam.url("/whep"))
        attach(request, "aiortc client", lambda: f"errors: {client.errors}")
        async with client:
            await client.wait_for_media(timeout=10)
            assert viewer_count(await asyncio.to_thread(rtcam.status)) == 1
            status, _, body = await asyncio.to_thread(
                rtcam.request, "PUT", "/api/config", json.dumps({"viewingRequiresPassword": True}).encode(),
                {**JSON, "Cookie": cookie})
            assert status == 200, body
            gone_after = await asyncio.to_thread(wait_until_gone, rtcam, 1.0)
            frames = client.video.frames
            await asyncio.sleep(0.5)
            return gone_after, client.video.frames - frames

    gone_after, frames_after = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    print(f"anonymous viewer gone {gone_after * 1000:.0f} ms after protection was turned on")
    assert gone_after <= 1.0
    assert frames_after <= 1, f"{frames_after} frames still arrived after the session ended"
    assert "viewing now needs the password" in rtcam.log_text()


def test_revoking_a_token_drops_its_viewer_at_once(rtcam, request):
    cookie = rtcam.log_in(viewing_requires_password=None)
    _, _, body = rtcam.request("POST", "/api/tokens", json.dumps({"name": "aiortc"}).encode(), {**JSON, "Cookie": cookie})
    token = json.loads(body)

    async def scenario():
        client = WhepClient(rtcam.url("/whep"), headers={"Authorization": f"Bearer {token['token']}"})
        attach(request, "aiortc client", lambda: f"errors: {client.errors}")
        async with client:
            await client.wait_for_media(timeout=10)
            status, _, answer = await asyncio.to_thread(rtcam.request, "DELETE", f"/api/tokens/{token['id']}",
                                                       None, {"Cookie": cookie})
            assert status == 200 and json.loads(answer)["viewersEnded"] == 1, answer
            return await asyncio.to_thread(wait_until_gone, rtcam, 1.0)

    gone_after = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    print(f"token viewer gone {gone_after * 1000:.0f} ms after the token was revoked")
    status, _, _ = post_whep(rtcam, {"Authorization": f"Bearer {token['token']}"})
    assert status == 401


def test_logging_out_ends_the_viewers_its_session_admitted(rtcam):
    cookie = rtcam.log_in(viewing_requires_password=None)
    status, headers, _ = post_whep(rtcam, {"Cookie": cookie})
    assert status == 201
    session_url = headers["Location"]
    rtcam.request("POST", "/api/logout", None, {"Cookie": cookie})
    status, _, _ = rtcam.request("PATCH", session_url, b"a=ice-ufrag:abcd\r\n", {"Content-Type": "application/trickle-ice-sdpfrag"})
    assert status == 404, "the session of a logged-out owner is still there"


def test_dns_rebinding_and_foreign_origins_are_refused(rtcam):
    status, _, body = rtcam.request("GET", "/", headers={"Host": "attacker.example"})
    assert status == 421 and b"DNS rebinding" in body, (status, body)
    status, _, _ = rtcam.request("GET", "/api/session", headers={"Host": f"attacker.example:{rtcam.http_port}"})
    assert status == 421
    for host in (f"127.0.0.1:{rtcam.http_port}", f"localhost:{rtcam.http_port}", "[::1]"):
        status, _, _ = rtcam.request("GET", "/healthz", headers={"Host": host})
        assert status == 200, host
    same = f"http://127.0.0.1:{rtcam.http_port}"
    body = json.dumps({"password": "whatever"}).encode()
    status, _, answer = rtcam.request("POST", "/api/login", body, {**JSON, "Origin": "http://evil.example"})
    assert status == 403 and b"cross-origin" in answer, (status, answer)
    status, _, _ = rtcam.request("POST", "/api/login", body, {**JSON, "Origin": same})
    assert status == 409, "the same origin may log in (409: no password yet)"


def test_every_response_says_nosniff_and_has_a_content_security_policy(rtcam):
    for path in ("/", "/settings", "/healthz", "/api/session", "/nothing"):
        _, headers, _ = rtcam.request("GET", path)
        assert headers.get("X-Content-Type-Options") == "nosniff", path
        assert "default-src 'none'" in headers.get("Content-Security-Policy", ""), path
    _, headers, _ = rtcam.request("GET", "/settings")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]


def test_a_configured_host_name_is_accepted(rtcam_factory):
    daemon = rtcam_factory(extra_args=("--host-name", "camera.example.test"))
    status, _, _ = daemon.request("GET", "/healthz", headers={"Host": f"camera.example.test:{daemon.http_port}"})
    assert status == 200
    status, _, _ = daemon.request("GET", "/healthz", headers={"Host": "other.example.test"})
    assert status == 421


def test_the_viewer_page_of_a_protected_camera_asks_for_the_login_then_plays(rtcam, chromium):
    rtcam.log_in(viewing_requires_password=None)
    page = chromium.new_page()
    page.navigate(rtcam.url("/"))
    page.wait_for("(window.rtcam && window.rtcam.lastError || '').includes('log in on the Settings page')", timeout=10)
    assert viewer_count(rtcam.status()) == 0
    # The owner logs in on the settings page in the same browser; the live view's next attempt plays.
    page.navigate(rtcam.url("/settings"))
    page.wait_for("!document.querySelector('#login').hidden", timeout=10)
    page.evaluate("""((password) => {
        const f = document.querySelector('#login-form');
        f.password.value = password; f.requestSubmit(); })(%s)""" % json.dumps(TEST_PASSWORD))
    page.wait_for("!document.querySelector('#settings').hidden", timeout=10)
    page.navigate(rtcam.url("/"))
    page.wait_for("window.rtcam && window.rtcam.framesDecoded > 10", timeout=20)
