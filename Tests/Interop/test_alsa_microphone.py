"""A real ALSA capture device in the daemon: a private PulseAudio with a null sink plays a known
tone, alsa-lib's `pulse` plugin (libasound2-plugins) captures its monitor in real time
(DESIGN.md), rtcam encodes it with Opus, and aiortc decodes it. The tone's level identifies it: the
synthetic test tone would be quieter (-12 dBFS) and carry full-scale clicks."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

import pytest

from whep_client import WhepClient

AMPLITUDE = 0.3      # of full scale: RMS of the sine is AMPLITUDE / sqrt(2) = 0.212


@pytest.fixture
def pulse_microphone(tmp_path, monkeypatch):
    """A PulseAudio null sink `s` playing a 1 kHz sine, and ~/.asoundrc defining `pcm.rtcamtest` on
    its monitor. HOME points at tmp_path so the daemon started next reads that asoundrc."""
    for tool in ("pulseaudio", "pacat", "pactl", "sox"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: install pulseaudio, pulseaudio-utils and sox", pytrace=False)
    socket_path = tmp_path / "pulse.sock"
    server = f"unix:{socket_path}"
    environment = {**os.environ, "HOME": str(tmp_path), "PULSE_RUNTIME_PATH": str(tmp_path / "pulse"),
                   "XDG_RUNTIME_DIR": str(tmp_path), "PULSE_SERVER": server}
    log = open(tmp_path / "pulseaudio.log", "wb")
    pulse = subprocess.Popen(["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
                              "--load=module-null-sink sink_name=s rate=48000",
                              f"--load=module-native-protocol-unix auth-anonymous=1 socket={socket_path}"],
                             env=environment, stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        if pulse.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"pulseaudio did not start: {(tmp_path / 'pulseaudio.log').read_text()[-500:]}", pytrace=False)
        time.sleep(0.05)
    (tmp_path / ".asoundrc").write_text(f'pcm.rtcamtest {{ type pulse; device "s.monitor"; server "{server}" }}\n')
    tone = subprocess.Popen(["sox", "-n", "-r", "48000", "-c", "1", "-t", "raw", "-e", "signed", "-b", "16", "-",
                             "synth", "60", "sine", "1000", "vol", str(AMPLITUDE)], stdout=subprocess.PIPE)
    player = subprocess.Popen(["pacat", "-d", "s", "--rate=48000", "--channels=1", "--format=s16le"],
                              stdin=tone.stdout, env=environment)
    time.sleep(0.5)
    # The null sink renders far ahead until a client asks for low latency; restarting its clock makes
    # the monitor real time at once (measured by the ALSA tests' fixture).
    subprocess.run(["pactl", "suspend-sink", "s", "1"], env=environment, check=True)
    subprocess.run(["pactl", "suspend-sink", "s", "0"], env=environment, check=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    yield "rtcamtest"
    for process in (player, tone, pulse):
        process.kill()
        process.wait()
    log.close()


def test_daemon_streams_a_real_alsa_microphone(pulse_microphone, rtcam_factory):
    daemon = rtcam_factory(extra_args=("--audio", f"alsa:{pulse_microphone}"))
    assert f"audio alsa:{pulse_microphone}" in daemon.log_text()

    async def scenario():
        async with WhepClient(daemon.url("/whep")) as client:
            await client.wait_for_media(timeout=10)
            return await client.measure(seconds=3)

    measurement = asyncio.run(asyncio.wait_for(scenario(), timeout=40))
    print(f"measurement: {measurement}")
    assert measurement.audio_samples >= 48000 * 2, f"only {measurement.audio_samples} samples in 3 s"
    expected = AMPLITUDE / 2 ** 0.5
    assert abs(measurement.audio_rms - expected) < 0.03, f"RMS {measurement.audio_rms}, expected about {expected:.3f}"
    assert measurement.audio_peak < 0.5, f"peak {measurement.audio_peak}: that is the test tone's click, not the microphone"
