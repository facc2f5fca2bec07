"""Issue 21: rtcam in the home-camera ecosystem — GET /snapshot.jpg, GET /stream.mjpg, GET /metrics
and RTSP (RFC 2326) — read by real clients: FFmpeg (ffprobe/ffmpeg, RTP over TCP and UDP),
GStreamer's rtspsrc, and plain HTTP. Each checks what was received: JPEG sizes, part and frame
rates, packet counts per stream, and that nothing is encoded that nobody asked for.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import attach
from rtcam_process import HOST, http_request

SYSTEM_PYTHON = "/usr/bin/python3"
GST_CLIENT = Path(__file__).resolve().parent / "gst_rtsp_client.py"
FPS = 30


def jpeg_size(data: bytes):
    """(width, height) from a JPEG's SOF marker, or None (ITU T.81 §B.2.2)."""
    if data[:2] != b"\xff\xd8":
        return None
    index = 2
    while index + 9 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        length = int.from_bytes(data[index + 2:index + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[index + 7:index + 9], "big"), int.from_bytes(data[index + 5:index + 7], "big")
        index += 2 + length
    return None


def metrics(daemon, headers=None) -> dict:
    """GET /metrics parsed: {'name{labels}': value}; fails on a line that is not text format 0.0.4."""
    status, response_headers, body = daemon.request("GET", "/metrics", headers=headers or {"Cookie": daemon.cookie})
    assert status == 200, body[:300]
    assert response_headers["Content-Type"].startswith("text/plain; version=0.0.4")
    values = {}
    declared = set()
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (\S+)$')
    for line in body.decode().splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if parts[1] == "TYPE":
                assert parts[3] in ("counter", "gauge"), line
                assert parts[2] not in declared, f"family declared twice: {line}"
                declared.add(parts[2])
            continue
        match = sample.match(line)
        assert match, f"not a 0.0.4 sample line: {line!r}"
        name = line.rsplit(" ", 1)[0]
        values[name] = float(line.rsplit(" ", 1)[1])
    return values


def read_mjpeg(port: int, path: str, seconds: float, headers: str = "") -> list[bytes]:
    """The JPEG parts an HTTP client gets from a multipart/x-mixed-replace stream in `seconds`."""
    parts = []
    with socket.create_connection((HOST, port), timeout=5) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{headers}\r\n".encode())
        data = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            connection.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = connection.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], head[:300]
    assert b"multipart/x-mixed-replace; boundary=rtcamframe" in head
    if b"transfer-encoding: chunked" in head.lower():
        unchunked, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            try:
                size = int(size_line, 16)
            except ValueError:
                break
            if size == 0 or len(rest) < size:
                unchunked += rest[:size]
                break
            unchunked += rest[:size]
            rest = rest[size + 2:]
        body = unchunked
    while True:
        start = body.find(b"--rtcamframe\r\n")
        if start < 0:
            break
        header_end = body.find(b"\r\n\r\n", start)
        if header_end < 0:
            break
        length = int(re.search(rb"Content-Length: (\d+)", body[start:header_end]).group(1))
        jpeg = body[header_end + 4:header_end + 4 + length]
        if len(jpeg) < length:
            break   # cut off by the end of the read
        parts.append(jpeg)
        body = body[header_end + 4 + length:]
    return parts


def test_snapshot_sizes_and_one_encode_for_many_clients(rtcam_factory, request):
    daemon = rtcam_factory()
    daemon.log_in()
    status, headers, body = daemon.request("GET", "/snapshot.jpg")
    assert status == 200, body[:300]
    assert headers["Content-Type"] == "image/jpeg"
    assert jpeg_size(body) == (640, 480)
    status, _, body = daemon.request("GET", "/snapshot.jpg?width=320")
    assert status == 200 and jpeg_size(body) == (320, 240)
    # The viewer page's snapshot button is a link the browser downloads with the page's own cookie.
    status, _, page = daemon.request("GET", "/")
    assert status == 200 and b'href="/snapshot.jpg" download=' in page
    for bad in ("abc", "4", "-20", "99999999999"):
        status, _, body = daemon.request("GET", f"/snapshot.jpg?width={bad}")
        assert status == 400, (bad, body)

    # 16 clients at once (connected first, then the 16 requests written back to back): every one
    # gets a JPEG, and the per-frame cache codes one, or two if the requests straddle a frame.
    before = metrics(daemon)
    connections = [socket.create_connection((HOST, daemon.http_port), timeout=5) for _ in range(16)]
    for connection in connections:
        connection.sendall(f"GET /snapshot.jpg HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
    answers = []
    for connection in connections:
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
        connection.close()
        answers.append(data)
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers), [answer[:40] for answer in answers]
    assert all(jpeg_size(answer.partition(b"\r\n\r\n")[2]) == (640, 480) for answer in answers)
    after = metrics(daemon)
    encoded = after["rtcam_jpeg_encoded_total"] - before["rtcam_jpeg_encoded_total"]
    attach(request, "JPEG encodes for 16 concurrent snapshots", lambda: str(encoded))
    assert 1 <= encoded <= 2, f"{encoded} JPEG encodes for 16 snapshots asked at once"
    # Stills need no H.264: x264 never ran (nobody watched).
    assert after["rtcam_frames_encoded_total"] == 0
    assert after["rtcam_frames_captured_total"] >= 1


def test_snapshot_and_mjpeg_are_protected_like_viewing(rtcam_factory):
    daemon = rtcam_factory()
    daemon.log_in(viewing_requires_password=True)
    for path in ("/snapshot.jpg", "/stream.mjpg", "/metrics"):
        status, headers, _ = daemon.request("GET", path)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Bearer")
    status, _, body = daemon.request("GET", "/snapshot.jpg", headers={"Cookie": daemon.cookie})
    assert status == 200 and jpeg_size(body) == (640, 480)
    status, _, answer = daemon.request("POST", "/api/tokens", json.dumps({"name": "nvr"}).encode(),
                                       {"Content-Type": "application/json", "Cookie": daemon.cookie})
    assert status == 201, answer
    token = json.loads(answer)["token"]
    status, _, body = daemon.request("GET", f"/snapshot.jpg?width=160&token={token}")
    assert status == 200 and jpeg_size(body) == (160, 120)
    status, _, _ = daemon.request("GET", "/snapshot.jpg", headers={"Authorization": f"Bearer {token}"})
    assert status == 200
    status, _, _ = daemon.request("GET", "/snapshot.jpg?token=rtcam_wrong")
    assert status == 401
    parts = read_mjpeg(daemon.http_port, f"/stream.mjpg?fps=5&token={token}", 1.5)
    assert len(parts) >= 4
    assert metrics(daemon, {"Authorization": f"Bearer {token}"})["rtcam_viewers{protocol=\"mjpeg\"}"] == 0


def test_mjpeg_stream_rate_and_nothing_coded_after(rtcam_factory, request):
    daemon = rtcam_factory()
    daemon.log_in()
    parts = read_mjpeg(daemon.http_port, "/stream.mjpg?fps=8&width=320", 3.0)
    attach(request, "MJPEG parts in 3 s at fps=8", lambda: str(len(parts)))
    # 8 parts/s for 3 s (the first at once): 25 expected. The cap is exact (never more); fewer can
    # come when this shared machine starves the debug build's video thread, so the floor is loose.
    assert 15 <= len(parts) <= 26, len(parts)
    assert all(jpeg_size(part) == (320, 240) for part in parts)
    # The rate is capped (15 and the camera's) and the defaults are what the README says.
    parts = read_mjpeg(daemon.http_port, "/stream.mjpg?fps=1000", 2.0)
    assert 15 <= len(parts) <= 31, len(parts)
    assert all(jpeg_size(part) == (640, 480) for part in parts)
    # HEAD answers the type and starts nothing: 20 of them (over the 16-stream limit) leave GET working.
    for _ in range(20):
        status, headers, body = daemon.request("HEAD", "/stream.mjpg")
        assert status == 200 and headers["Content-Type"].startswith("multipart/x-mixed-replace") and body == b""
    assert len(read_mjpeg(daemon.http_port, "/stream.mjpg?fps=5", 1.0)) >= 2
    # Nobody watches any more: no JPEG is coded (the count stays), and x264 never ran.
    time.sleep(0.3)
    first = metrics(daemon)
    time.sleep(1.0)
    second = metrics(daemon)
    assert first["rtcam_jpeg_encoded_total"] == second["rtcam_jpeg_encoded_total"]
    assert second["rtcam_viewers{protocol=\"mjpeg\"}"] == 0
    assert second["rtcam_frames_encoded_total"] == 0


def test_metrics_text_format_and_counters(rtcam_factory):
    daemon = rtcam_factory()
    status, _, _ = daemon.request("GET", "/metrics")
    assert status == 401
    daemon.log_in()
    daemon.request("GET", "/nothing-here")
    values = metrics(daemon)
    for name in ("rtcam_viewers{protocol=\"webrtc\"}", "rtcam_viewers{protocol=\"rtsp\"}",
                 "rtcam_frames_encoded_total", "rtcam_frames_captured_total", "rtcam_frames_dropped_total", "rtcam_datagrams_sent_total",
                 "rtcam_srtcp_failures_total", "rtcam_encoder_cpu_seconds_total", "rtcam_uptime_seconds"):
        assert name in values, name
    assert values["rtcam_http_responses_total{code=\"404\"}"] >= 1
    assert values["rtcam_http_responses_total{code=\"200\"}"] >= 1


def run_ffmpeg(url: str, transport: str, seconds: float, extra=()) -> subprocess.CompletedProcess:
    return subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-rtsp_transport", transport,
                           *extra, "-i", url, "-t", str(seconds), "-c", "copy", "-f", "framecrc", "-"],
                          capture_output=True, text=True, timeout=30)


def packets_per_stream(framecrc: str) -> dict:
    counts = {}
    for line in framecrc.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if int(fields[4]) > 0:
            counts[int(fields[0])] = counts.get(int(fields[0]), 0) + 1
    return counts


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_ffmpeg_reads_rtsp(rtcam_factory, request, transport):
    daemon = rtcam_factory()
    daemon.log_in()
    url = f"rtsp://{HOST}:{daemon.rtsp_port}/"
    probe = subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", transport, "-show_entries",
                            "stream=codec_name,width,height,sample_rate,profile", "-of", "json", url],
                           capture_output=True, text=True, timeout=30)
    attach(request, "ffprobe", lambda: probe.stdout + probe.stderr)
    streams = json.loads(probe.stdout)["streams"]
    assert [stream["codec_name"] for stream in streams] == ["h264", "opus"]
    assert (streams[0]["width"], streams[0]["height"]) == (640, 480)
    assert streams[1]["sample_rate"] == "48000"

    # While ffmpeg plays, it counts as a viewer and the encoder runs for it (no WebRTC viewer).
    seen = {}

    def watch():
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and not seen:
            values = metrics(daemon)
            if values["rtcam_viewers{protocol=\"rtsp\"}"] == 1:
                seen.update(values)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    completed = run_ffmpeg(url, transport, 4)
    watcher.join()
    attach(request, "ffmpeg stderr", lambda: completed.stderr[-3000:])
    assert completed.returncode == 0, completed.stderr[-2000:]
    counts = packets_per_stream(completed.stdout)
    attach(request, "packets per stream in 4 s", lambda: str(counts))
    # 4 s of 30 fps H.264 (one packet per frame after ffmpeg's depacketizer) and 20 ms Opus.
    assert 0.8 * 4 * FPS <= counts.get(0, 0) <= 1.2 * 4 * FPS + 2, counts
    assert 0.8 * 200 <= counts.get(1, 0) <= 1.2 * 200, counts
    assert seen, "an RTSP client never showed in rtcam_viewers{protocol=\"rtsp\"}"
    assert seen["rtcam_viewers{protocol=\"webrtc\"}"] == 0
    # It has gone: no viewer left, the encoder stops.
    deadline = time.monotonic() + 5
    while metrics(daemon)["rtcam_viewers{protocol=\"rtsp\"}"] != 0:
        assert time.monotonic() < deadline, "the RTSP session did not end after ffmpeg left"
        time.sleep(0.1)


def test_rtsp_digest_with_a_viewing_token(rtcam_factory, request):
    daemon = rtcam_factory()
    daemon.log_in(viewing_requires_password=True)
    status, _, answer = daemon.request("POST", "/api/tokens", json.dumps({"name": "frigate"}).encode(),
                                       {"Content-Type": "application/json", "Cookie": daemon.cookie})
    token = json.loads(answer)["token"]
    base = f"{HOST}:{daemon.rtsp_port}/"

    def probe(credentials: str):
        return subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name",
                               "-of", "csv=p=0", f"rtsp://{credentials}{base}"], capture_output=True, text=True, timeout=30)

    anonymous = probe("")
    assert anonymous.returncode != 0 and "401" in anonymous.stderr, anonymous.stderr
    wrong = probe("rtcam:rtcam_notavalidtoken@")
    assert wrong.returncode != 0 and "401" in wrong.stderr, wrong.stderr
    good = probe(f"rtcam:{token}@")
    attach(request, "ffprobe with the token", lambda: good.stdout + good.stderr)
    assert good.returncode == 0 and good.stdout.split() == ["h264", "opus"], good.stderr
    # The viewing password works too.
    with_password = probe("rtcam:interop-test-password@")
    assert with_password.returncode == 0, with_password.stderr
    # A client playing with a token is ended when the token is revoked, and the token stops working.
    player = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i",
                               f"rtsp://rtcam:{token}@{base}", "-t", "30", "-c", "copy", "-f", "null", "-"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while metrics(daemon)["rtcam_viewers{protocol=\"rtsp\"}"] != 1:
            assert time.monotonic() < deadline, "the token's RTSP client never played"
            time.sleep(0.1)
        token_id = json.loads(answer)["id"]
        status, _, _ = daemon.request("DELETE", f"/api/tokens/{token_id}", headers={"Cookie": daemon.cookie})
        assert status == 200
        assert metrics(daemon)["rtcam_viewers{protocol=\"rtsp\"}"] == 0
        player.wait(timeout=10)   # its connection was closed: FFmpeg ends long before its 30 s
    finally:
        if player.poll() is None:
            player.kill()
    assert probe(f"rtcam:{token}@").returncode != 0


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_gstreamer_rtspsrc_decodes(rtcam_factory, request, protocol):
    if not Path(SYSTEM_PYTHON).exists():
        pytest.fail("Debian's python3 with python3-gi is needed (make test-deps)", pytrace=False)
    daemon = rtcam_factory()
    completed = subprocess.run([SYSTEM_PYTHON, str(GST_CLIENT), f"rtsp://{HOST}:{daemon.rtsp_port}/",
                                "--protocol", protocol, "--seconds", "3"], capture_output=True, text=True, timeout=40)
    attach(request, "rtspsrc client", lambda: completed.stdout + completed.stderr[-3000:])
    daemon.log_in()
    attach(request, "rtcam metrics after the client", lambda: str({name: value for name, value in metrics(daemon).items()
                                                                   if "rtsp" in name or "frames" in name}))
    result = json.loads(completed.stdout)
    assert not result["errors"], result["errors"]
    assert (result["width"], result["height"]) == (640, 480)
    assert 0.8 * 3 * FPS <= result["video_frames"] <= 1.25 * 3 * FPS + 5, result
    assert result["rate"] == 48000
    assert result["audio_buffers"] >= 0.7 * 150, result
    # RTCP Sender Reports with SDES reached rtpbin for both streams (sessions 0 and 1), one CNAME:
    # what lets a receiver synchronize audio with video.
    cnames = {cname for _, cname in result["cnames"]}
    assert {session for session, _ in result["cnames"]} == {0, 1}, result["cnames"]
    assert len(cnames) == 1 and next(iter(cnames)).startswith("rtcam-"), result["cnames"]


def test_passthrough_h264_has_no_snapshot_but_rtsp_works(rtcam_factory, tmp_path, request):
    """A passthrough H.264 source (here an Annex-B file; a camera's own H.264 is the same case) has no
    raw pictures and rtcam has no H.264 decoder: stills answer 503 with that reason; RTSP carries
    the stream as it is."""
    stream = tmp_path / "clip.h264"
    made = subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "2",
                           "-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "30", str(stream)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    daemon = rtcam_factory(extra_args=("--source", f"file:{stream}"))
    for path in ("/snapshot.jpg", "/stream.mjpg"):
        status, _, body = daemon.request("GET", path)
        assert status == 503, (path, status, body[:200])
        assert b"no raw pictures" in body, body
    probe = subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name,width,height",
                            "-of", "csv=p=0", f"rtsp://{HOST}:{daemon.rtsp_port}/"], capture_output=True, text=True, timeout=30)
    attach(request, "ffprobe", lambda: probe.stdout + probe.stderr)
    assert probe.stdout.split()[0] == "h264,320,240", probe.stdout


def test_avahi_service_file_announces_the_default_ports():
    """The .deb's /etc/avahi/services/rtcam.service (board/debian-package/rtcam.avahi-service) is
    well-formed XML (avahi-daemon skips a file it cannot parse, silently for the user) and names the
    ports rtcam listens on by default (read from `rtcam help serve`)."""
    import xml.etree.ElementTree as ElementTree
    from rtcam_process import rtcam_binary
    service_file = Path(__file__).resolve().parents[2] / "board" / "debian-package" / "rtcam.avahi-service"
    root = ElementTree.parse(service_file).getroot()
    announced = {service.findtext("type"): int(service.findtext("port")) for service in root.findall("service")}
    help_text = subprocess.run([rtcam_binary(), "help", "serve"], capture_output=True, text=True).stdout
    help_text = re.sub(r"\s+", " ", help_text)

    def default(option: str) -> int:
        match = re.search(rf"--{option} <port> .*?\(default: (\d+)\)", help_text)
        assert match, f"no default for --{option} in `rtcam help serve`"
        return int(match.group(1))

    assert announced == {"_http._tcp": default("http-port"), "_https._tcp": default("https-port"),
                         "_rtsp._tcp": default("rtsp-port")}
    assert root.findtext("name") and "%h" in root.findtext("name")


def test_rtsp_port_in_use_leaves_the_rest_serving(rtcam_factory):
    """Another RTSP server (go2rtc, MediaMTX) on the board holds the port: rtcam says so and serves
    its pages, snapshots and WebRTC anyway."""
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        daemon = rtcam_factory(extra_args=("--rtsp-port", str(port)))
        status, _, body = daemon.request("GET", "/snapshot.jpg")
        assert status == 200 and jpeg_size(body) == (640, 480)
        assert f"RTSP is off: cannot listen on port {port}" in daemon.log_text()
