"""The aarch64 rtcam (RTCAM_BIN: a wrapper that runs it in the arm64 root under qemu-user) streams
its test pattern and tone to aiortc on this machine, then to headless Chromium playing rtcam's own
viewer page; prints what each decoded and fails below --min-fps or without audio. Run by
board/arm64/test-arm64.sh inside a network namespace with only lo.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import ssl
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Tests" / "Interop"))

from rtcam_process import RtcamProcess, viewer_count  # noqa: E402
from whep_client import WhepClient  # noqa: E402


class EmulatedRtcam(RtcamProcess):
    """The API's password hashing (PBKDF2) takes tens of seconds under qemu: longer HTTP timeouts."""

    def request(self, method, path, body=None, headers=None, timeout=120.0):
        return super().request(method, path, body=body, headers=headers, timeout=timeout)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--min-fps", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--expect-cpu-crypto", default=None,
                        help='the SRTP crypto path the daemon must log, e.g. "ARMv8 AES+SHA1"')
    parser.add_argument("--expect-tls", default=None, help="the TLS version HTTPS must negotiate, e.g. TLSv1.3")
    options = parser.parse_args()
    width, height = (int(v) for v in options.size.split("x"))

    # CPU adaptation off: qemu-user runs aarch64 code several times slower than a Pi would, and
    # the daemon would rightly make the picture smaller for it (212x160 was seen); this stage checks
    # that the aarch64 code paths stream, not how fast the emulator is.
    daemon = EmulatedRtcam(state_dir=options.work / "state", log_path=options.work / "rtcam.log",
                          size=options.size, fps=options.fps, bitrate_kbps=500, startup_timeout=60.0,
                          extra_args=("--degradation", "off"))
    daemon.start()
    try:
        daemon.log_in()  # before the stream: the password hash would take the CPU from it
        async def scenario():
            client = WhepClient(daemon.url("/whep"))
            async with client:
                await client.wait_for_media(timeout=30)
                await asyncio.sleep(2)  # past the start: qemu's first frames are slow (translation)
                measurement = await client.measure(seconds=options.seconds)
                viewers = viewer_count(await asyncio.to_thread(daemon.status))
            return client, measurement, viewers

        client, measurement, viewers = asyncio.run(asyncio.wait_for(scenario(), timeout=120))
        page_sample = chromium_plays(daemon, options)
    except Exception:
        print(daemon.log_tail(), file=sys.stderr)
        raise
    finally:
        code = daemon.stop(timeout=15.0)
    print(f"aarch64 rtcam -> aiortc: codecs {client.negotiated_codecs()}")
    print(f"  video {measurement.width}x{measurement.height}, {measurement.fps} fps decoded over "
          f"{measurement.seconds} s ({measurement.video_frames} frames; the daemon was asked for {options.fps})")
    print(f"  audio {measurement.audio_samples} samples at {measurement.audio_sample_rate} Hz, RMS {measurement.audio_rms}")
    print(f"  viewers while playing: {viewers}; daemon exit code {code}")
    problems = []
    crypto = re.search(r"SRTP crypto: .*", daemon.log_path.read_text(errors="replace"))
    print(f"  {crypto.group(0) if crypto else 'no SRTP crypto line in the log'}")
    if options.expect_cpu_crypto and (not crypto or f"CPU instructions ({options.expect_cpu_crypto})" not in crypto.group(0)):
        problems.append(f"SRTP did not run on {options.expect_cpu_crypto}")
    if options.expect_tls:
        version, cipher = https_handshake(options)
        print(f"  HTTPS (mbedTLS of the arm64 root): {version} {cipher}")
        if version != options.expect_tls:
            problems.append(f"HTTPS negotiated {version}, not {options.expect_tls}")
    if (measurement.width, measurement.height) != (width, height):
        problems.append(f"decoded {measurement.width}x{measurement.height}, not {options.size}")
    if measurement.fps < options.min_fps:
        problems.append(f"{measurement.fps} fps < {options.min_fps}")
    if measurement.audio_samples < 48000 * options.seconds * 0.5 or measurement.audio_rms < 0.001:
        problems.append("audio missing or silent")
    if client.errors:
        problems.append(f"client errors: {client.errors}")
    print(f"aarch64 rtcam -> Chromium {page_sample['version']} (the viewer page): "
          f"{page_sample['width']}x{page_sample['height']}, {page_sample['fps']:.1f} fps decoded over "
          f"{page_sample['seconds']:.1f} s, codecs {page_sample['videoCodec']} / {page_sample['audioCodec']}, "
          f"audio samples +{page_sample['audioSamples']}")
    if (page_sample["width"], page_sample["height"]) != (width, height):
        problems.append(f"Chromium decoded {page_sample['width']}x{page_sample['height']}, not {options.size}")
    if page_sample["fps"] < options.min_fps:
        problems.append(f"Chromium: {page_sample['fps']:.1f} fps < {options.min_fps}")
    if page_sample["audioSamples"] <= 0 or page_sample["audioEnergyGrew"] is not True:
        problems.append("Chromium: audio missing or silent")
    if (page_sample["videoCodec"] or "").lower() != "video/h264" or (page_sample["audioCodec"] or "").lower() != "audio/opus":
        problems.append(f"Chromium negotiated {page_sample['videoCodec']} / {page_sample['audioCodec']}")
    if viewers != 1:
        problems.append(f"/api/status counted {viewers} viewers")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


def chromium_plays(daemon, options) -> dict:
    """Headless Chromium opens the daemon's page (aiortc has left) and plays it for --seconds."""
    from cdp import Chromium  # noqa: E402 (Tests/Interop, on the path above)

    snapshot = "JSON.parse(JSON.stringify(window.rtcam || null))"
    with Chromium(log_path=str(options.work / "chromium.log"),
                  user_data_dir=str(options.work / "chromium-profile")) as browser:
        page = browser.new_page()
        page.navigate(daemon.url("/"))
        page.wait_for("window.rtcam && window.rtcam.framesDecoded > 0", timeout=60)
        time.sleep(2)  # past the start, as for aiortc
        first = page.evaluate(snapshot)
        time.sleep(options.seconds)
        last = page.evaluate(snapshot)
        seconds = (last["updatedAt"] - first["updatedAt"]) / 1000.0
        return {
            "version": browser.version,
            "width": last["width"], "height": last["height"],
            "seconds": seconds,
            "fps": (last["framesDecoded"] - first["framesDecoded"]) / seconds if seconds > 0 else 0.0,
            "videoCodec": last["videoCodec"], "audioCodec": last["audioCodec"],
            "audioSamples": last["audioSamplesReceived"] - first["audioSamplesReceived"],
            "audioEnergyGrew": last["audioEnergy"] > first["audioEnergy"],
        }


def https_handshake(options) -> tuple[str, str]:
    """A second short run with HTTPS on: GET /healthz over TLS; the version and suite negotiated."""
    daemon = EmulatedRtcam(state_dir=options.work / "state-https", log_path=options.work / "rtcam-https.log",
                           size=options.size, fps=options.fps, bitrate_kbps=500, startup_timeout=60.0, https=True)
    daemon.start()
    try:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE   # the daemon's own self-signed certificate
        with socket.create_connection(("127.0.0.1", daemon.https_port), timeout=60) as raw:
            with context.wrap_socket(raw) as tls:
                tls.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{daemon.https_port}\r\nConnection: close\r\n\r\n".encode())
                answer = b""
                while chunk := tls.recv(4096):
                    answer += chunk
                version, cipher = tls.version(), tls.cipher()[0]
        if not answer.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"GET /healthz over HTTPS answered {answer[:120]!r}")
        return version, cipher
    except Exception:
        print(daemon.log_tail(), file=sys.stderr)
        raise
    finally:
        daemon.stop(timeout=15.0)


if __name__ == "__main__":
    sys.exit(main())
