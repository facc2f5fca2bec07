"""Mouth-to-speaker latency of talkback (issue 17) on loopback: aiortc is the talker, sending 20 ms
Opus frames of silence with a 20 ms 1 kHz beep every half second, and notes CLOCK_MONOTONIC when
each beep frame leaves its track ("the mouth": the frame is encoded and sent at once). rtcam plays
into a private PulseAudio null sink through alsa-lib's `pulse` plugin; `pacat` records the sink's
monitor in 5 ms chunks, each read stamped with CLOCK_MONOTONIC (a sample's time: its chunk's read
time less what followed it in the chunk). Latency = beep onset in the recording − beep sent.

What it includes: aiortc's Opus encode, SRTP, UDP, rtcam's jitter buffer (40 ms target on a clean
link), Opus decode, the 80 ms ALSA buffer, PulseAudio's sink and its record path (a few ms).
What it leaves out: a browser's capture and its voice processing, a real DAC.
"""

from __future__ import annotations

import asyncio
import fractions
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Interop"))

from av import AudioFrame  # noqa: E402
from aiortc.mediastreams import AudioStreamTrack  # noqa: E402
from whep_client import WhepClient, http_exchange  # noqa: E402

RATE = 48_000
FRAME = 960
BEEP_EVERY = 25          # frames: one beep per 500 ms


class BeepTrack(AudioStreamTrack):
    """48 kHz mono, paced on time.monotonic like aiortc's own tracks; every BEEP_EVERY-th frame a beep."""

    def __init__(self):
        super().__init__()
        self.index = 0
        self.start = None
        self.sent: list[float] = []
        n = numpy.arange(FRAME)
        self.beep = (numpy.sin(2 * numpy.pi * 1000 * n / RATE) * 0.5 * 32767).astype("<i2").tobytes()
        self.silence = bytes(FRAME * 2)

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.index * FRAME / RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        beep = self.index % BEEP_EVERY == BEEP_EVERY - 1
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(self.beep if beep else self.silence)
        frame.pts = self.index * FRAME
        frame.sample_rate = RATE
        frame.time_base = fractions.Fraction(1, RATE)
        self.index += 1
        if beep:
            self.sent.append(time.monotonic())
        return frame


class Recorder:
    """pacat -r of a sink's monitor, read in small chunks, each stamped when it was read."""

    def __init__(self, source: str, environment: dict):
        self.process = subprocess.Popen(["pacat", "-r", "-d", source, "--rate=48000", "--channels=1", "--format=s16le",
                                         "--latency-msec=5"], stdout=subprocess.PIPE, env=environment)
        self.chunks: list[tuple[float, bytes]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        descriptor = self.process.stdout.fileno()
        while True:
            data = os.read(descriptor, 480)
            if not data:
                return
            self.chunks.append((time.monotonic(), data))

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        self.thread.join(timeout=2)

    def onsets(self) -> list[float]:
        """CLOCK_MONOTONIC of each beep's first 1 ms above a quarter of its level."""
        samples, stamps = [], []
        for read_at, data in self.chunks:
            chunk = numpy.frombuffer(data[:len(data) // 2 * 2], dtype="<i2").astype(numpy.float64) / 32768
            samples.append(chunk)
            stamps.append(read_at - (len(chunk) - 1 - numpy.arange(len(chunk))) / RATE)
        if not samples:
            return []
        signal = numpy.concatenate(samples)
        times = numpy.concatenate(stamps)
        window = RATE // 1000
        count = len(signal) // window
        level = numpy.abs(signal[:count * window]).reshape(count, window).max(axis=1)
        loud = level > 0.5 / 4
        found, quiet_since = [], 0
        for index in range(count):
            if loud[index]:
                if quiet_since >= 100:          # 100 ms of quiet before: a new beep
                    found.append(float(times[index * window]))
                quiet_since = 0
            else:
                quiet_since += 1
        return found


def start_pulse(directory: Path) -> tuple[subprocess.Popen, dict, str]:
    """A private PulseAudio with a null sink `spk`; `pcm.rtcamspeaker` in directory/.asoundrc."""
    socket_path = directory / "pulse.sock"
    server = f"unix:{socket_path}"
    environment = {**os.environ, "HOME": str(directory), "PULSE_RUNTIME_PATH": str(directory / "pulse"),
                   "XDG_RUNTIME_DIR": str(directory), "PULSE_SERVER": server}
    pulse = subprocess.Popen(["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
                              "--load=module-null-sink sink_name=spk rate=48000 channels=1",
                              f"--load=module-native-protocol-unix auth-anonymous=1 socket={socket_path}"],
                             env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        if pulse.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("pulseaudio did not start")
        time.sleep(0.05)
    (directory / ".asoundrc").write_text(f'pcm.rtcamspeaker {{ type pulse; device "spk"; server "{server}" }}\n')
    return pulse, environment, server


async def talk(url: str, seconds: float, recorder_environment: dict) -> dict:
    track = BeepTrack()
    async with WhepClient(url, video=False, talk_track=track) as client:
        await client.wait_for_media(timeout=10)
        status, _, body = await asyncio.to_thread(http_exchange, "POST", client.session_url + "/talk")
        if status != 200:
            raise RuntimeError(f"talk refused: {status} {body[:200]!r}")
        recorder = Recorder("spk.monitor", recorder_environment)
        track.sent.clear()
        await asyncio.sleep(seconds)
        recorder.stop()
    sent = list(track.sent)
    onsets = recorder.onsets()
    latencies = []
    for onset in onsets:
        before = [t for t in sent if 0 <= onset - t < 0.45]
        if before:
            latencies.append((onset - max(before)) * 1000)
    return {"beeps_sent": len(sent), "beeps_heard": len(onsets), "latencies_ms": latencies}


def press_to_heard(page_url: str, directory: Path, recorder_environment: dict, presses: int = 6) -> dict:
    """The viewer page in headless Chromium (fake microphone: a tone file) presses Talk `presses`
    times, 3 s apart; each press's time (CLOCK_MONOTONIC just before the click) against the tone's
    first onset at the speaker. The first press includes getUserMedia; later ones reuse the track
    (kept 10 s), and each starts the speaker again (it closes after a second of silence)."""
    from cdp import Chromium

    tone = directory / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(tone), "synth", "60", "sine", "600",
                    "vol", "0.3"], check=True)
    recorder = Recorder("spk.monitor", recorder_environment)
    pressed: list[float] = []
    with Chromium(extra_args=("--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={tone}",
                              "--mute-audio"), log_path=str(directory / "chromium-talk.log")) as browser:
        page = browser.new_page()
        page.navigate(page_url)
        page.wait_for("window.rtcamTalk && window.rtcamTalk.state === 'idle'", timeout=20)
        page.evaluate("window.rtcamTalk.constraints = {echoCancellation: false, noiseSuppression: false,"
                      " autoGainControl: false}; true")
        for _ in range(presses):
            time.sleep(1.5)
            pressed.append(time.monotonic())
            page.evaluate("document.getElementById('talk-toggle').click(); true")
            page.wait_for("window.rtcamTalk.state === 'talking'", timeout=10)
            time.sleep(1.5)
            page.evaluate("document.getElementById('talk-toggle').click(); true")
            page.wait_for("window.rtcamTalk.state === 'idle'", timeout=10)
        time.sleep(1)
    recorder.stop()
    onsets = recorder.onsets()
    delays = []
    for press in pressed:
        after = [onset for onset in onsets if 0 <= onset - press < 2.5]
        delays.append((min(after) - press) * 1000 if after else None)
    return {"press_to_heard_ms": delays, "onsets": len(onsets)}
