"""A real ALSA capture device in the daemon, through each sound server a Raspberry Pi OS desktop may
run: a private PulseAudio, or a private PipeWire with WirePlumber, has a null sink playing a known
tone; alsa-lib's `pulse` plugin (libasound2-plugins) or PipeWire's own (pipewire-alsa) captures
its monitor in real time (DESIGN.md), rtcam encodes it with Opus, and aiortc decodes it. The
tone's level identifies it: the synthetic test tone would be quieter (-12 dBFS) and carry
full-scale clicks."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from whep_client import WhepClient

AMPLITUDE = 0.3      # of full scale: RMS of the sine is AMPLITUDE / sqrt(2) = 0.212
TONE_SECONDS = "120"  # outlasts the measurement


def _tone() -> subprocess.Popen:
    """sox writing the 1 kHz sine as raw mono S16LE at 48 kHz to its stdout."""
    return subprocess.Popen(["sox", "-n", "-r", "48000", "-c", "1", "-t", "raw", "-e", "signed", "-b", "16", "-",
                             "synth", TONE_SECONDS, "sine", "1000", "vol", str(AMPLITUDE)], stdout=subprocess.PIPE)


def _wait_for(path, process: subprocess.Popen, what: str, log_path) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start: {log_path.read_text(errors='replace')[-500:]}", pytrace=False)
        time.sleep(0.05)


# Through PipeWire the capture loses audio now and then on a loaded machine: at load 8-9 here one
# run in four had two 320-370 ms gaps in what reached rtcam-audio (PipeWire's plugin kept 80 ms of
# ring; the rest was gone before rtcam read it, rtcam then skipped the stale ring and re-anchored,
# /api/status counting both); at load 5, three runs in three passed. Until the audio thread gets a
# real-time priority (or the cause in PipeWire is found), the measurement may fail there; the
# fixture and the daemon must still work (anything but an AssertionError fails the test).
PIPEWIRE_UNDER_LOAD = pytest.mark.xfail(raises=AssertionError, strict=False,
                                        reason="PipeWire path loses audio under heavy CPU load (issue 15)")


@pytest.fixture(params=["pulse", pytest.param("pipewire", marks=PIPEWIRE_UNDER_LOAD)])
def microphone(request, tmp_path, monkeypatch):
    """`--audio alsa:NAME` through PulseAudio's or PipeWire's ALSA plugin."""
    if request.param == "pulse":
        yield from _pulse_microphone(tmp_path, monkeypatch)
    else:
        yield from _pipewire_microphone(tmp_path, monkeypatch)


def _pipewire_alsa_plugin() -> Path:
    """PipeWire's ALSA PCM plugin. Debian 12 cannot install pipewire-alsa next to pulseaudio (the
    PulseAudio tests need it; installing one removes the other), so it is unpacked from the package
    (`apt-get download pipewire-alsa; dpkg -x`) into RTCAM_PIPEWIRE_ALSA_ROOT (default
    .build-pipewire-alsa at the repo root; `make pipewire-alsa` does it), or taken from the system."""
    root = Path(os.environ.get("RTCAM_PIPEWIRE_ALSA_ROOT", Path(__file__).resolve().parents[2] / ".build-pipewire-alsa"))
    for base in (root, Path("/")):
        for triple in ("x86_64-linux-gnu", "aarch64-linux-gnu"):
            plugin = base / "usr" / "lib" / triple / "alsa-lib" / "libasound_module_pcm_pipewire.so"
            if plugin.exists():
                return plugin
    pytest.fail(f"PipeWire's ALSA plugin not found under {root} or /: run `make pipewire-alsa`", pytrace=False)


def _pipewire_microphone(tmp_path, monkeypatch):
    """PipeWire 0.3 and WirePlumber 0.4 (Debian 12), headless, as root, on a private D-Bus session
    bus and runtime directory; a null sink `s` playing the sine (pw-cat), and ~/.asoundrc defining
    `pcm.rtcamtest` as PipeWire's ALSA PCM capturing from `s` (WirePlumber links its monitor)."""
    for tool in ("pipewire", "wireplumber", "pw-cli", "pw-cat", "dbus-daemon", "sox"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: install pipewire, pipewire-bin, wireplumber, dbus-daemon and sox (make test-deps)", pytrace=False)
    plugin = _pipewire_alsa_plugin()
    runtime = tmp_path / "pipewire"
    runtime.mkdir(mode=0o700)
    bus = runtime / "bus"
    environment = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    environment.update({"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(runtime), "PIPEWIRE_RUNTIME_DIR": str(runtime),
                        "DBUS_SESSION_BUS_ADDRESS": f"unix:path={bus}"})
    log_path = tmp_path / "pipewire.log"
    log = open(log_path, "wb")
    processes = []

    def start(arguments, **options):
        process = subprocess.Popen(arguments, env=environment, stdout=options.pop("stdout", log), stderr=log, **options)
        processes.append(process)
        return process

    try:
        _wait_for(bus, start(["dbus-daemon", "--session", "--nofork", f"--address=unix:path={bus}"]), "dbus-daemon", log_path)
        _wait_for(runtime / "pipewire-0", start(["pipewire"]), "pipewire", log_path)
        start(["wireplumber"])
        subprocess.run(["pw-cli", "create-node", "adapter",
                        "{ factory.name=support.null-audio-sink node.name=s media.class=Audio/Sink object.linger=true "
                        "audio.position=[MONO] audio.rate=48000 }"], env=environment, stdout=log, stderr=log, check=True)
        tone = _tone()
        processes.append(tone)
        start(["pw-cat", "--playback", "--target", "s", "--rate", "48000", "--channels", "1", "--format", "s16", "-"],
              stdin=tone.stdout)
        time.sleep(1)   # WirePlumber links pw-cat to `s`
        (tmp_path / ".asoundrc").write_text(f'pcm_type.pipewire {{ lib "{plugin}" }}\n'
                                            'pcm.rtcamtest { type pipewire; capture_node "s"; playback_node "-1" }\n')
        for key in ("HOME", "XDG_RUNTIME_DIR", "PIPEWIRE_RUNTIME_DIR"):
            monkeypatch.setenv(key, environment[key])
        yield "rtcamtest"
    finally:
        for process in reversed(processes):
            process.kill()
            process.wait()
        log.close()


def _pulse_microphone(tmp_path, monkeypatch):
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
    tone = _tone()
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


MEASURE_SECONDS = 30
SAMPLES_PER_PACKET = 960   # 20 ms Opus frames at 48 kHz (RFC 7587 §4.2)
# RTP timestamp steps that are not a jump: the capture timeline follows the device by slewing its
# capture times one sample at a time (Sources/ALSA/CaptureTimeline.swift).
ON_THE_SAMPLE_CLOCK = {SAMPLES_PER_PACKET - 1, SAMPLES_PER_PACKET, SAMPLES_PER_PACKET + 1}


def test_daemon_streams_a_real_alsa_microphone(microphone, rtcam_factory, machine_load):
    """The tone arrives at its level, at 48,000 samples/s over 30 s, every packet of it, on the sample
    clock. Issue 15: through `pulse` a viewer got 36,000–37,400 samples/s, because the capture took
    the `pulse` PCM's delay figure (a latency model: 31,000 frames while periods came every 20 ms)
    for a backlog and dropped periods whenever its thread was a little late; its capture times
    jumped with the same figures. Both show here: a low rate at the viewer, holes in the RTP
    sequence numbers, or RTP timestamps that step by anything but one packet (± a sample)."""
    daemon = rtcam_factory(extra_args=("--audio", f"alsa:{microphone}"))
    assert f"audio alsa:{microphone}" in daemon.log_text()

    async def scenario():
        async with WhepClient(daemon.url("/whep")) as client:
            await client.wait_for_media(timeout=10)
            # Past aiortc's prefetch and the capture timeline's first second, when it settles on
            # the device (the sink's first audio can take 2 s: pacat plays at its default latency).
            await asyncio.sleep(2)
            return await client.measure(seconds=MEASURE_SECONDS)

    measurement = asyncio.run(asyncio.wait_for(scenario(), timeout=MEASURE_SECONDS + 30))
    rate = measurement.audio_samples / measurement.seconds
    microphone_status = daemon.status().get("microphone")
    print(f"measurement: {measurement}")
    print(f"viewer received {rate:.0f} samples/s over {measurement.seconds} s")
    print(f"microphone in /api/status: {microphone_status}")

    late = (microphone_status or {}).get("backlogsSkipped", 0) + (microphone_status or {}).get("xrunsRecovered", 0)
    if late and machine_load.overloaded:
        # The capture thread came late and skipped the stale ring (counted by the daemon) while other
        # work overloaded the machine: the continuity checks below cannot hold; reported, not hidden.
        pytest.xfail(f"the capture came late ({microphone_status}), {machine_load.describe()}")

    expected = AMPLITUDE / 2 ** 0.5
    assert abs(measurement.audio_rms - expected) < 0.03, f"RMS {measurement.audio_rms}, expected about {expected:.3f}"
    assert measurement.audio_peak < 0.5, f"peak {measurement.audio_peak}: that is the test tone's click, not the microphone"

    # Rate at the viewer: decoded samples over the window (48,000 ± 1 %).
    assert abs(rate - 48_000) <= 480, f"the viewer decoded {rate:.0f} samples/s, not 48,000 ± 1 %"
    # Continuity of the Opus stream: every packet came, each one a packet after the last on the RTP
    # clock, and that clock runs at 48 kHz against the viewer's.
    rtp = measurement.audio_rtp
    assert rtp is not None and rtp.packets >= MEASURE_SECONDS * 50 * 0.99, f"RTP: {rtp}"
    assert rtp.missing_sequence_numbers == 0, f"{rtp.missing_sequence_numbers} audio packets never came: {rtp}"
    assert rtp.reordered_or_repeated == 0, f"RTP: {rtp}"
    jumps = {step: count for step, count in rtp.timestamp_steps.items() if step not in ON_THE_SAMPLE_CLOCK}
    assert jumps == {}, f"RTP timestamps jumped (step: count): {jumps}; all steps: {rtp.timestamp_steps}"
    assert abs(rtp.timestamp_rate - 48_000) <= 480, f"RTP timestamps advance {rtp.timestamp_rate}/s of arrival time"

    # What the capture itself counted (/api/status): nothing dropped, nothing recovered.
    assert microphone_status is not None, "/api/status has no microphone counters"
    assert microphone_status["framesRead"] >= 48_000 * MEASURE_SECONDS
    dropped = {key: microphone_status[key] for key in ("xrunsRecovered", "suspendsRecovered", "backlogsSkipped",
                                                 "framesSkipped", "framesLost", "clockJumps")}
    assert set(dropped.values()) == {0}, f"the capture dropped or recovered: {dropped}"
