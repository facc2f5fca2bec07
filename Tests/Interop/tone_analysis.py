"""Where a test tone is in a recording, and its level, pitch and longest gap: what a speaker played
in the talkback tests (Tests/Interop/test_talkback.py on PulseAudio, the VM board's snd-aloop)."""

from __future__ import annotations

import numpy


def analyse_tone(samples: numpy.ndarray, rate: int, amplitude: float) -> dict:
    """`samples`: mono floats in [-1, 1]. The tone is where 5 ms windows reach half its RMS; a gap is
    a run of windows under a tenth of it. Pitch and level of each whole second of the steady part
    (half a second in from either end)."""
    window = rate // 200
    count = len(samples) // window
    rms = numpy.sqrt(numpy.mean(samples[:count * window].reshape(count, window) ** 2, axis=1))
    expected = amplitude / 2 ** 0.5
    loud = numpy.nonzero(rms > expected / 2)[0]
    if len(loud) == 0:
        return {"found": False, "maxRMS": float(rms.max()) if count else 0.0}
    first, last = int(loud[0]), int(loud[-1])
    quiet = rms[first:last + 1] < expected / 10
    longest = run = 0
    for is_quiet in quiet:
        run = run + 1 if is_quiet else 0
        longest = max(longest, run)
    steady = samples[(first + 100) * window:(last - 100) * window]
    pitches, levels = [], []
    for start in range(0, len(steady) - rate + 1, rate):
        second = steady[start:start + rate]
        spectrum = numpy.abs(numpy.fft.rfft(second * numpy.hanning(len(second))))
        pitches.append(float(numpy.argmax(spectrum)) * rate / len(second))
        levels.append(float(numpy.sqrt(numpy.mean(second ** 2))))
    return {"found": True, "seconds": (last - first + 1) * window / rate, "longestGapMs": longest * 5,
            "pitches": pitches, "levels": levels, "expectedRMS": expected}
