"""Checks what rtcam's speaker played in the VM (test-daemon-in-vm.sh --talkback): the WAV arecord
made of snd-aloop's Loopback,1,1 must hold the talker's 600 Hz tone (whep_client.py --talk: amplitude
0.3, 12 s) at its pitch and level for most of the talk; a gap is judged by a bound for TCG (the
guest's CPU is emulated and shared).

    python talkback_recording.py talk.wav
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Tests" / "Interop"))

from tone_analysis import analyse_tone  # noqa: E402

TONE_HZ, TALK_SECONDS = 600.0, 12
# The talker's tone has amplitude 0.3; aiortc encodes stereo Opus and upmixes the mono track through
# libswresample, which puts a mono channel into left and right at -3 dB (measured here: 0.150 RMS per
# channel where 0.212 was sent; Chromium sends mono Opus and its tone plays at 0.212).
AMPLITUDE = 0.3 / 2 ** 0.5
# Bounds for an emulated guest on a shared host: a TCG stall shows as a gap and as a second played
# partly from Opus' concealment (quieter). The host's test (PulseAudio, no emulation) holds a 60 ms
# gap and every second's level; here the median level and a 250 ms gap.
MAX_GAP_MS = 250


def main(recording: str) -> int:
    with wave.open(recording, "rb") as wav:
        rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
        frames = wav.readframes(wav.getnframes())
    if width != 2:
        raise SystemExit(f"FAIL: {width}-byte samples in {recording}")
    samples = numpy.frombuffer(frames[:len(frames) // (2 * channels) * 2 * channels], dtype="<i2")
    left = samples.reshape(-1, channels)[:, 0].astype(numpy.float64) / 32768.0
    result = analyse_tone(left, rate, AMPLITUDE)
    print(f"speaker recording (snd-aloop, {rate} Hz, {channels} ch, {len(left) / rate:.1f} s): {result}")
    problems = []
    if not result["found"]:
        problems.append("the tone never reached the speaker")
    else:
        if result["seconds"] < TALK_SECONDS - 3:
            problems.append(f"the tone played {result['seconds']:.1f} s of the {TALK_SECONDS} s talked")
        if not result["pitches"] or any(abs(pitch - TONE_HZ) > 3 for pitch in result["pitches"]):
            problems.append(f"pitch {result['pitches']}, wanted {TONE_HZ} Hz")
        expected = result["expectedRMS"]
        if not result["levels"] or abs(float(numpy.median(result["levels"])) - expected) > 0.15 * expected:
            problems.append(f"levels {result['levels']}, wanted a median of {expected:.3f} ± 15 %")
        if result["longestGapMs"] > MAX_GAP_MS:
            problems.append(f"a {result['longestGapMs']} ms gap (bound {MAX_GAP_MS} ms under TCG)")
    for problem in problems:
        print(f"FAIL: {problem}")
    if not problems:
        print(f"ok: the talker's tone played through snd-aloop for {result['seconds']:.1f} s, longest gap "
              f"{result['longestGapMs']} ms")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
