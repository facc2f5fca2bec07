"""The settings side of the daemon against real clients: the page in Chromium (first-run password,
saving), the JSON API (validation, live apply with a viewer watching, rate-limited login), and the
saved configuration (atomic, a corrupt file kept and reported)."""

from __future__ import annotations

import asyncio
import json

from conftest import attach, read_fixture
from rtcam_process import viewer_count
from whep_client import WhepClient

JSON = {"Content-Type": "application/json"}


def put_config(daemon, cookie: str, changes: dict):
    return daemon.request("PUT", "/api/config", json.dumps(changes).encode(), {**JSON, "Cookie": cookie})


def test_settings_change_applies_live_while_a_viewer_keeps_watching(rtcam, request):
    async def scenario():
        client = WhepClient(rtcam.url("/whep"))
        attach(request, "aiortc client", lambda: f"errors: {client.errors}")
        async with client:
            await client.wait_for_media(timeout=10)
            before = await client.measure(seconds=2)
            cookie = await asyncio.to_thread(rtcam.log_in)
            status, _, body = await asyncio.to_thread(put_config, rtcam, cookie,
                                                      {"width": 320, "height": 240, "bitrateKbps": 400})
            await asyncio.sleep(1.0)  # the new pipeline starts with a keyframe at the new size
            after = await client.measure(seconds=3)
            viewers = viewer_count(await asyncio.to_thread(rtcam.status))
        return before, status, body, after, viewers

    before, status, body, after, viewers = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    print(f"before: {before}\nafter: {after}")
    assert (before.width, before.height) == (640, 480)
    assert status == 200, body
    assert json.loads(body)["settings"]["width"] == 320
    assert (after.width, after.height) == (320, 240), f"sizes after the change: {after.sizes}"
    assert after.fps >= 20, f"only {after.fps} fps after the change"
    assert viewers == 1, "the viewer was dropped by the settings change"
    saved = json.loads((rtcam.state_dir / "config.json").read_text())
    assert (saved["width"], saved["height"], saved["bitrateKbps"]) == (320, 240, 400)


def test_invalid_settings_are_refused_field_by_field_and_nothing_changes(rtcam):
    cookie = rtcam.log_in()
    status, _, body = put_config(rtcam, cookie, {"width": 321, "fps": 500})
    assert status == 400, body
    errors = {entry["field"] for entry in json.loads(body)["errors"]}
    assert errors == {"width", "fps"}, body
    status, _, body = put_config(rtcam, cookie, {"frobnicate": 1})
    assert status == 400 and b"unknown setting" in body, body
    status, _, body = rtcam.request("PUT", "/api/config", b"{not json", {**JSON, "Cookie": cookie})
    assert status == 400 and b"invalid JSON" in body, body
    status, _, body = put_config(rtcam, cookie, {"source": "v4l2:/dev/video42"})
    assert status == 400 and b"/dev/video42" in body, body
    status, _, body = rtcam.request("PUT", "/api/config", json.dumps({"fps": 25}).encode(), JSON)
    assert status == 401, "changing settings without logging in must be refused"
    # The harness's first password saved the choice to keep viewing open; nothing refused was saved.
    saved = json.loads((rtcam.state_dir / "config.json").read_text())
    assert (saved["fps"], saved["width"], saved["viewingRequiresPassword"]) == (30, 640, False), saved
    assert rtcam.api_get("/api/config")["settings"]["fps"] == 30


def test_a_corrupt_configuration_locks_viewing_says_why_and_is_kept(rtcam_factory, tmp_path):
    state = tmp_path / "rtcam-state-0"
    state.mkdir()
    (state / "config.json").write_text('{"width": 1280, "height": ')
    daemon = rtcam_factory()
    # Not even "no password yet" opens viewing while the saved configuration cannot be read.
    offer = read_fixture("chromium-156-recvonly-offer.sdp").encode()
    status, headers, body = daemon.request("POST", "/whep", offer, {"Content-Type": "application/sdp"})
    assert status == 401, (status, body)
    assert headers.get("WWW-Authenticate", "").startswith("Bearer"), dict(headers)
    daemon.log_in(viewing_requires_password=None)   # the first password; the corrupt file stays untouched
    config = daemon.api_get("/api/config")
    assert "corrupt" in (config["problem"] or ""), config
    assert "corrupt" in daemon.log_text()
    assert (state / "config.json").read_text() == '{"width": 1280, "height": ', "the corrupt file was touched"
    status, _, body = put_config(daemon, daemon.cookie, {"bitrateKbps": 900})
    assert status == 200, body
    assert (state / "config.json.corrupt").read_text() == '{"width": 1280, "height": '
    assert json.loads((state / "config.json").read_text())["bitrateKbps"] == 900
    assert daemon.api_get("/api/config")["problem"] is None
    # Saved again: the settings' own choice (protected, the default) governs viewing now.
    status, _, body = daemon.request("POST", "/whep", offer, {"Content-Type": "application/sdp"})
    assert status == 401, (status, body)
    status, headers, body = daemon.request("POST", "/whep", offer, {"Content-Type": "application/sdp", "Cookie": daemon.cookie})
    assert status == 201, (status, body)
    daemon.request("DELETE", headers["Location"])


def test_login_is_rate_limited(rtcam):
    rtcam.log_in()  # sets the password
    codes = []
    for _ in range(6):
        status, headers, _ = rtcam.request("POST", "/api/login", json.dumps({"password": "not it"}).encode(), JSON)
        codes.append(status)
    assert codes[:5] == [401] * 5, codes
    assert codes[5] == 429, codes
    assert int(headers.get("Retry-After", "0")) > 0


def test_the_settings_page_sets_the_first_password_and_saves_settings(rtcam, chromium, tmp_path):
    page = chromium.new_page()
    page.navigate(rtcam.url("/settings"))
    page.wait_for("!document.querySelector('#choose').hidden", timeout=10)
    hint = page.evaluate("document.querySelector('#setup-where').textContent")
    assert "setup-code" in hint, hint
    # Without the setup code the first password is refused, with a message saying where it is.
    page.evaluate("""(() => {
        const f = document.querySelector('#choose-form');
        f.setupCode.value = 'AAAA-AAAA-AAAA';
        f.password.value = 'a good password'; f.repeat.value = 'a good password';
        f.requestSubmit(); })()""")
    page.wait_for("document.querySelector('#message').textContent.includes('setup code')", timeout=10)
    assert not (rtcam.state_dir / "password").exists()
    page.evaluate("""((code) => {
        const f = document.querySelector('#choose-form');
        f.setupCode.value = code; f.requestSubmit(); })(%s)""" % json.dumps(rtcam.setup_code().lower()))
    page.wait_for("!document.querySelector('#settings').hidden && document.querySelector('[name=source]').options.length > 1",
                  timeout=10)
    page.evaluate("""(() => {
        const f = document.querySelector('#settings-form');
        f.bitrateKbps.value = '750'; f.requestSubmit(); })()""")
    page.wait_for("document.querySelector('#message').textContent.includes('Saved')", timeout=10)
    shot = page.screenshot(str(tmp_path / "settings.png"))
    print(f"settings page screenshot: {shot}")
    assert json.loads((rtcam.state_dir / "config.json").read_text())["bitrateKbps"] == 750
    stored = (rtcam.state_dir / "password").read_text()
    assert stored.startswith("pbkdf2-sha256$") and "a good password" not in stored
    cookies = chromium.send("Storage.getCookies").get("cookies", [])
    session = [c for c in cookies if c["name"] == "rtcam_session"]
    assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict", cookies
    assert not (rtcam.state_dir / "setup-code").exists(), "the used setup code was not removed"
    # The page's default choice protects viewing: the live view now needs the password.
    assert json.loads((rtcam.state_dir / "config.json").read_text())["viewingRequiresPassword"] is True
    # A program as the source (rpicam-vid on a Pi): its command line is typed on the page and saved
    # whole; the page shows it again after a reload. (The program here writes no H.264: rtcam keeps
    # serving and says so in /api/status.)
    page.evaluate("""(() => {
        document.querySelector('#message').textContent = '';
        const f = document.querySelector('#settings-form');
        f.source.value = 'exec'; f.source.dispatchEvent(new Event('change', {bubbles: true}));
        f.execCommand.value = 'sleep 30 --width {width}'; f.requestSubmit(); })()""")
    page.wait_for("document.querySelector('#message').textContent.includes('Saved')", timeout=20)
    assert json.loads((rtcam.state_dir / "config.json").read_text())["source"] == "exec:sleep 30 --width {width}"
    page.navigate(rtcam.url("/settings"))
    page.wait_for("!document.querySelector('#settings').hidden && document.querySelector('[name=source]').options.length > 1",
                  timeout=10)
    shown = page.evaluate("""(() => { const f = document.querySelector('#settings-form');
        return [f.source.value, f.execCommand.value, document.querySelector('#exec-row').hidden]; })()""")
    assert shown == ["exec", "sleep 30 --width {width}", False], shown
