"""Glass-to-glass latency on loopback: an aiortc WHEP receiver (Tests/Interop/whep_client.py)
decodes the stream and reads the test pattern's capture timestamp back from every picture
(pattern.py); latency = CLOCK_MONOTONIC now − the stamped capture time.

    python glass_to_glass.py http://127.0.0.1:PORT --seconds 10      # prints JSON

What it includes: capture → x264 → packetize → SRTP → UDP → aiortc's jitter buffer → FFmpeg decode
→ Python. What it leaves out: a display's refresh and scan-out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Interop"))

from aiortc.mediastreams import MediaStreamError  # noqa: E402
from whep_client import WhepClient  # noqa: E402

import pattern  # noqa: E402


class TimestampReadingClient(WhepClient):
    def __init__(self, url: str, source_size: Optional[tuple[int, int]] = None):
        """`source_size`: the size the daemon's test pattern is drawn at, when the stream may be
        scaled down from it (CPU adaptation)."""
        super().__init__(url, video=True, audio=False)
        self.source_size = source_size
        self.latencies_ms: list[int] = []
        self.unreadable = 0
        self.recording = False

    async def _read_video(self, track) -> None:
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                stamp = pattern.read_timestamp(pattern.luma_of(frame), frame.width, frame.height, self.source_size)
                age = pattern.age_milliseconds(stamp) if stamp is not None else None
                stats = self.video
                stats.frames += 1
                stats.width, stats.height = frame.width, frame.height
                if stats.first_frame_at is None:
                    stats.first_frame_at = now
                    self._first_video.set()
                stats.last_frame_at = now
                if self.recording:
                    if age is None or age > 60_000:
                        self.unreadable += 1
                    else:
                        self.latencies_ms.append(age)
        except MediaStreamError:
            pass
        except Exception as error:  # noqa: BLE001
            self.errors.append(f"video: {error!r}")


async def measure(url: str, seconds: float, warmup: float = 1.0) -> dict:
    client = TimestampReadingClient(url)
    try:
        await client.connect()
        await client.wait_for_media(timeout=15)
        first_frame_s = (client.video.first_frame_at or client.started_at) - client.started_at
        await asyncio.sleep(warmup)
        client.recording = True
        frames_before = client.video.frames
        await asyncio.sleep(seconds)
        client.recording = False
        frames = client.video.frames - frames_before
    finally:
        await client.close()
    return {"latencies_ms": client.latencies_ms, "unreadable_frames": client.unreadable, "frames": frames,
            "seconds": seconds, "width": client.video.width, "height": client.video.height,
            "first_frame_s": round(first_frame_s, 3), "errors": client.errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    result = asyncio.run(measure(args.url, args.seconds))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0 if result["latencies_ms"] else 1


if __name__ == "__main__":
    sys.exit(main())
