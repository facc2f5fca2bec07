"""HTTPS (issue 16): TLS by mbedTLS on its own port, a self-signed ECDSA P-256 certificate whose
subjectAltNames clients verify, only strong suites, session resumption, and the viewer page playing
in Chromium and Firefox over it."""

from __future__ import annotations

import base64
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from conftest import attach
from rtcam_process import HOST, http_request


@pytest.fixture
def rtcam(rtcam_factory):
    """One daemon with HTTPS on (the other interop tests turn it off)."""
    return rtcam_factory(https=True)

ALLOWED_SUITES = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"}


def verifying_context(rtcam) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=rtcam.https_certificate_pem)
    context.check_hostname = True
    return context


def handshake(rtcam, context: ssl.SSLContext, server_hostname: str, session=None):
    raw = socket.create_connection((HOST, rtcam.https_port), timeout=5)
    wrapped = context.wrap_socket(raw, server_hostname=server_hostname, session=session)
    wrapped.sendall(b"GET /healthz HTTP/1.1\r\nHost: " + server_hostname.encode() + b"\r\nConnection: close\r\n\r\n")
    reply = b""
    while chunk := wrapped.recv(4096):
        reply += chunk
    return wrapped, reply


def test_certificate_verifies_for_the_camera_names_and_no_others(rtcam):
    context = verifying_context(rtcam)
    for name in ("localhost", "127.0.0.1"):
        connection, reply = handshake(rtcam, context, name)
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"ok\n"), reply[:200]
        names = connection.getpeercert()["subjectAltName"]
        assert ("DNS", "localhost") in names and ("IP Address", "127.0.0.1") in names, names
        assert any(kind == "DNS" and value.endswith(".local") for kind, value in names), names
        assert connection.version() == "TLSv1.2" and connection.cipher()[0] in ALLOWED_SUITES, connection.cipher()
        connection.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(rtcam, context, "camera.example")
    # curl too, with the certificate as its only CA.
    certificate = rtcam.state_dir / "ca.pem"
    certificate.write_text(rtcam.https_certificate_pem)
    completed = subprocess.run(["curl", "-sS", "--cacert", str(certificate), rtcam.https_url("/healthz", host="localhost")],
                               capture_output=True, text=True, timeout=10)
    assert completed.returncode == 0 and completed.stdout == "ok\n", completed.stderr


def test_the_certificate_is_kept_and_its_fingerprint_logged(rtcam_factory):
    daemon = rtcam_factory(https=True)
    first = daemon.https_certificate_pem
    log = daemon.log_text()
    assert "HTTPS on port" in log and "certificate SHA-256" in log, log[-2000:]
    daemon.stop()
    daemon.start()   # same state directory, same names: the same certificate
    assert daemon.https_certificate_pem == first
    assert (daemon.state_dir / "https-certificate.pem").stat().st_mode & 0o077 == 0, "the key file is readable by others"


def test_sessions_resume_from_tickets(rtcam):
    context = verifying_context(rtcam)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    first, _ = handshake(rtcam, context, "localhost")
    session = first.session
    first.close()
    second, reply = handshake(rtcam, context, "localhost", session=session)
    assert reply.startswith(b"HTTP/1.1 200")
    assert second.session_reused, "the client's ticket was not taken: a full handshake again"
    second.close()


def test_old_protocols_and_weak_suites_are_refused(rtcam, request):
    for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = version
        try:
            context.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with pytest.raises((ssl.SSLError, ConnectionError)):
            handshake(rtcam, context, "localhost")
    if shutil.which("sslscan") is None:
        pytest.fail("sslscan is not installed (make test-deps installs it)", pytrace=False)
    completed = subprocess.run(["sslscan", "--no-colour", "--no-heartbleed", f"{HOST}:{rtcam.https_port}"],
                               capture_output=True, text=True, timeout=120)
    attach(request, "sslscan", lambda: completed.stdout)
    accepted = [line.split() for line in completed.stdout.splitlines()
                if line.startswith(("Preferred", "Accepted"))]
    suites = {fields[4] for fields in accepted}
    protocols = {fields[1] for fields in accepted}
    assert suites and suites <= ALLOWED_SUITES, f"suites beyond ECDHE-ECDSA AEAD: {suites - ALLOWED_SUITES}"
    assert protocols == {"TLSv1.2"}, protocols
    for line in completed.stdout.splitlines():
        if line.startswith(("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")):
            assert "disabled" in line, line


def spki_pin(pem: str) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): what --ignore-certificate-errors-spki-list takes."""
    public_key = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=pem, capture_output=True,
                                text=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=public_key.encode(),
                         capture_output=True, check=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der, capture_output=True, check=True).stdout
    return base64.b64encode(digest).decode()


def play_in_chromium(rtcam, tmp_path, request, flags: tuple[str, ...], name: str) -> dict:
    from cdp import Chromium

    browser = Chromium(extra_args=flags, log_path=str(tmp_path / f"{name}.log"),
                       user_data_dir=str(tmp_path / f"{name}-profile"))
    attach(request, f"{name} log", lambda: (tmp_path / f"{name}.log").read_text(errors="replace")[-4000:])
    browser.start()
    try:
        page = browser.new_page()
        page.navigate(rtcam.https_url("/"))
        page.wait_for("window.rtcam && window.rtcam.framesDecoded > 10", timeout=20)
        return page.evaluate("({secure: window.isSecureContext, protocol: location.protocol,"
                             " frames: window.rtcam.framesDecoded, width: window.rtcam.width})")
    finally:
        browser.close()


@pytest.mark.parametrize("trust", ["ignore-certificate-errors", "pinned-spki"])
def test_chromium_plays_over_https(rtcam, tmp_path, request, trust):
    if trust == "pinned-spki":
        flags = (f"--ignore-certificate-errors-spki-list={spki_pin(rtcam.https_certificate_pem)}",)
    else:
        flags = ("--ignore-certificate-errors",)
    state = play_in_chromium(rtcam, tmp_path, request, flags, f"chromium-{trust}")
    assert state["protocol"] == "https:" and state["secure"] is True, state
    assert state["frames"] > 10 and state["width"] == 640, state


def test_chromium_refuses_the_certificate_with_another_pin(rtcam, tmp_path):
    from cdp import Chromium, CDPError

    browser = Chromium(extra_args=("--ignore-certificate-errors-spki-list=" + base64.b64encode(b"\0" * 32).decode(),),
                       user_data_dir=str(tmp_path / "chromium-wrong-pin"))
    browser.start()
    try:
        page = browser.new_page()
        try:
            page.navigate(rtcam.https_url("/"), timeout=10)
        except CDPError:
            pass   # a navigation error is the expected outcome too
        time.sleep(1)
        assert page.evaluate("typeof window.rtcam") != "object", "a certificate with another key was accepted"
    finally:
        browser.close()


def test_firefox_plays_over_https(rtcam, tmp_path, request):
    from marionette import Firefox

    # Firefox trusts the camera's certificate as a user would after checking its fingerprint: added
    # to the profile as an authority. The name must match too (localhost is among the names).
    browser = Firefox(log_path=str(tmp_path / "firefox.log"), profile_dir=str(tmp_path / "firefox-profile"),
                      trusted_certificates=(rtcam.https_certificate_pem,))
    attach(request, "firefox log", lambda: (tmp_path / "firefox.log").read_text(errors="replace")[-4000:])
    browser.start()
    try:
        browser.navigate(rtcam.https_url("/", host="localhost"))
        browser.wait_for("window.rtcam && window.rtcam.framesDecoded > 10", timeout=20)
        state = browser.execute("return {secure: window.isSecureContext, protocol: location.protocol,"
                                " width: window.rtcam.width};")
    finally:
        browser.close()
    assert state["protocol"] == "https:" and state["secure"] is True and state["width"] == 640, state


def https_request(rtcam, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    return http_request(method, path, rtcam.https_port, body, headers, timeout=10, host="localhost",
                        tls=verifying_context(rtcam))


def test_with_https_on_the_owner_pages_and_apis_move_there_and_the_cookie_is_secure(rtcam):
    import json

    # Plain HTTP: the settings page and the password API answer 308 to the same path on HTTPS.
    for method, path in (("GET", "/settings"), ("POST", "/api/password"), ("POST", "/api/login")):
        status, headers, _ = rtcam.request(method, path, b"{}", {"Content-Type": "application/json"})
        assert status == 308, f"{method} {path} over HTTP answered {status}"
        assert headers["Location"] == f"https://127.0.0.1:{rtcam.https_port}{path}", headers["Location"]
    # The viewer page and WHEP stay on both.
    assert rtcam.request("GET", "/")[0] == 200
    # Over HTTPS: the first password with the setup code, and a cookie marked Secure.
    body = json.dumps({"password": "interop-test-password", "setupCode": rtcam.setup_code()}).encode()
    status, headers, answer = https_request(rtcam, "POST", "/api/password", body, {"Content-Type": "application/json"})
    assert status == 200, answer[:300]
    cookie = headers.get("Set-Cookie", "")
    assert "Secure" in cookie and "HttpOnly" in cookie, cookie
    status, _, _ = https_request(rtcam, "GET", "/api/config", headers={"Cookie": cookie.split(";", 1)[0]})
    assert status == 200
