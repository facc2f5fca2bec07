"""WHEP error handling (status codes and bodies), CORS preflight, and the viewer limit — while a real
viewer (the viewer page in Chromium) stays connected and keeps decoding."""

from __future__ import annotations

import json
import re

from conftest import attach, read_fixture, wait_for_viewers
from rtcam_process import viewer_count

SDP = {"Content-Type": "application/sdp"}
MAX_BODY = 64 * 1024


def chromium_offer() -> str:
    return read_fixture("chromium-156-recvonly-offer.sdp")


def without_codecs(sdp: str, dropped: set[str]) -> str:
    """The offer with every payload type of the `dropped` codecs (and the RTX that repairs them) removed."""
    lines = sdp.replace("\r\n", "\n").rstrip("\n").split("\n")
    sections, current = [], []
    for line in lines:
        if line.startswith("m=") and current:
            sections.append(current)
            current = []
        current.append(line)
    sections.append(current)

    result = list(sections[0])
    for section in sections[1:]:
        names = {}
        for line in section:
            match = re.match(r"a=rtpmap:(\d+) ([^/]+)/", line)
            if match:
                names[match.group(1)] = match.group(2).lower()
        doomed = {pt for pt, name in names.items() if name in {d.lower() for d in dropped}}
        for line in section:
            match = re.match(r"a=fmtp:(\d+) apt=(\d+)", line)
            if match and match.group(2) in doomed:
                doomed.add(match.group(1))
        header = section[0].split()
        kept = [pt for pt in header[3:] if pt not in doomed]
        result.append(" ".join(header[:3] + kept))
        for line in section[1:]:
            match = re.match(r"a=(?:rtpmap|fmtp|rtcp-fb):(\d+)[ :]", line)
            if match and match.group(1) in doomed:
                continue
            result.append(line)
    return "\r\n".join(result) + "\r\n"


def assert_clear_error(status, headers, body, expected_status, what):
    text = body.decode(errors="replace")
    assert status == expected_status, f"{what}: expected {expected_status}, got {status}: {text[:300]!r}"
    content_type = headers.get("Content-Type", "")
    assert content_type.startswith(("text/plain", "application/json", "application/problem+json")), \
        f"{what}: error body has Content-Type {content_type!r}"
    assert len(text.strip()) >= 5, f"{what}: the error body says nothing: {text!r}"
    if content_type.startswith("application/") and "json" in content_type:
        json.loads(text)  # must at least be valid JSON
    return text


def assert_preflight(rtcam, path, method):
    status, headers, _ = rtcam.request("OPTIONS", path, headers={
        "Origin": "http://example.test", "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type"})
    assert status in (200, 204), f"OPTIONS {path} answered {status}"
    assert headers.get("Access-Control-Allow-Origin"), f"OPTIONS {path}: no Access-Control-Allow-Origin"
    methods = headers.get("Access-Control-Allow-Methods", "").upper()
    assert method in methods, f"OPTIONS {path}: Access-Control-Allow-Methods {methods!r} lacks {method}"
    allowed = headers.get("Access-Control-Allow-Headers", "").lower()
    assert "content-type" in allowed or allowed.strip() == "*", \
        f"OPTIONS {path}: Access-Control-Allow-Headers {allowed!r}"
    return status, headers


def test_options_preflight(rtcam):
    status, headers = assert_preflight(rtcam, "/whep", "POST")
    assert status == 204, f"OPTIONS /whep answered {status}, expected 204"
    exposed = headers.get("Access-Control-Expose-Headers", "").lower()
    assert "location" in exposed, f"Access-Control-Expose-Headers {exposed!r} lacks Location"

    # A player on another origin must also be allowed to DELETE the session it created (CORS
    # preflights go to the session URL itself).
    status, headers, body = rtcam.request("POST", "/whep", chromium_offer().encode(), SDP)
    assert status == 201, f"POST /whep answered {status}: {body[:300]!r}"
    location = headers.get("Location", "")
    path = location[location.index("/whep/"):]
    assert "location" in headers.get("Access-Control-Expose-Headers", "").lower(), \
        "the POST answer does not expose Location to other origins"
    assert headers.get("Access-Control-Allow-Origin"), "the POST answer has no Access-Control-Allow-Origin"
    assert_preflight(rtcam, path, "DELETE")
    status, _, _ = rtcam.request("DELETE", path)
    assert status in (200, 204), f"DELETE {path} answered {status}"


def watch_in_chromium(chromium, daemon, request):
    """A viewer that stays connected while the test pokes the daemon: the viewer page in Chromium
    (aiortc interop has its own test; here the daemon's error handling is what is under test)."""
    page = chromium.new_page()
    attach(request, "page console", lambda: "\n".join(str(message) for message in page.console))
    page.navigate(daemon.url("/"))
    page.wait_for("window.rtcam.framesDecoded > 0 && window.rtcam.state === 'connected'", timeout=15)
    return page


def test_bad_requests_fail_cleanly_while_a_viewer_keeps_playing(rtcam, chromium, request):
    page = watch_in_chromium(chromium, rtcam, request)
    offer = chromium_offer()
    results = {}
    results["garbage"] = rtcam.request("POST", "/whep", b"this is not an SDP offer\r\n", SDP)
    results["empty"] = rtcam.request("POST", "/whep", b"", SDP)
    # Cut inside the first m= line: "m=video 9 UD" has no proto or formats (RFC 8866 §5.14).
    truncated = offer[: offer.index("m=video") + len("m=video 9 UD")]
    results["truncated"] = rtcam.request("POST", "/whep", truncated.encode(), SDP)
    results["wrong type"] = rtcam.request("POST", "/whep", offer.encode(), {"Content-Type": "text/plain"})
    results["no type"] = rtcam.request("POST", "/whep", offer.encode(), {})
    no_common = without_codecs(offer, {"H264", "opus", "red"})
    results["no common codec"] = rtcam.request("POST", "/whep", no_common.encode(), SDP)
    padding = "".join(f"a=x-padding:{i:06d}{'x' * 100}\r\n" for i in range(MAX_BODY // 100 + 10))
    results["too large"] = rtcam.request("POST", "/whep", (offer + padding).encode(), SDP)
    results["unknown session"] = rtcam.request("DELETE", "/whep/no-such-session-0123456789")

    for name in ("garbage", "empty", "truncated"):
        assert_clear_error(*results[name], 400, f"POST {name} body")
    for name in ("wrong type", "no type"):
        assert_clear_error(*results[name], 415, f"POST with {name}")
    assert "H264" not in no_common and "opus" not in no_common  # the offer really has no common codec
    text = assert_clear_error(*results["no common codec"], 406, "POST offer without H.264/Opus")
    for codec in ("VP8", "VP9"):
        assert codec.lower() in text.lower(), f"406 body should name the offered codec {codec}: {text!r}"
    assert_clear_error(*results["too large"], 413, f"POST body > {MAX_BODY} bytes")
    assert_clear_error(*results["unknown session"], 404, "DELETE unknown session")

    # The viewer did not notice.
    viewers = viewer_count(rtcam.status())
    assert viewers == 1, f"/api/status counts {viewers} viewers; the bad requests must not add or drop any"
    decoded = page.evaluate("window.rtcam.framesDecoded")
    page.wait_for(f"window.rtcam.framesDecoded > {decoded} + 30", timeout=5)
    final = page.evaluate("JSON.parse(JSON.stringify(window.rtcam))")
    assert final["state"] == "connected" and final["reconnects"] == 0, f"the viewer was disturbed: {final}"


def test_viewer_limit_answers_503_with_retry_after(rtcam_factory, chromium, request):
    daemon = rtcam_factory(max_viewers=1)
    offer = chromium_offer().encode()
    page = watch_in_chromium(chromium, daemon, request)

    status, headers, body = daemon.request("POST", "/whep", offer, SDP)
    assert_clear_error(status, headers, body, 503, "POST beyond --max-viewers 1")
    retry_after = headers.get("Retry-After", "")
    assert retry_after.strip().isdigit() and int(retry_after) > 0, f"Retry-After {retry_after!r}"
    decoded = page.evaluate("window.rtcam.framesDecoded")
    page.wait_for(f"window.rtcam.framesDecoded > {decoded} + 15", timeout=5)

    # The slot is free again once the viewer has gone (the page DELETEs its session on pagehide).
    page.navigate("about:blank")
    assert wait_for_viewers(daemon, 0) == 0, "the viewer's session outlived its page"
    status, headers, body = daemon.request("POST", "/whep", offer, SDP)
    assert status == 201, f"POST after the viewer left answered {status}: {body[:300]!r}"
    location = headers.get("Location", "")
    assert "/whep/" in location, f"Location {location!r}"
    path = location[location.index("/whep/"):]
    status, _, _ = daemon.request("DELETE", path)
    assert status in (200, 204), f"DELETE {path} answered {status}"
