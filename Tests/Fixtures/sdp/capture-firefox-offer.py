#!/usr/bin/env python3
"""Capture a real recvonly WHEP-style offer from headless Firefox ESR (Debian `firefox-esr`).

Drives Firefox over Marionette (its own TCP protocol: `<length>:<json>` frames) with only the
Python standard library; Debian 12 ships no geckodriver.

    python3 capture-firefox-offer.py [output-dir]

Writes firefox-esr-<major>-recvonly-offer.sdp (default bundlePolicy "balanced", what a plain WHEP
player gets) and firefox-esr-<major>-max-bundle-recvonly-offer.sdp (bundlePolicy "max-bundle": the
audio section comes with port 0 and a=bundle-only), CRLF, exactly as createOffer() returned them.
The fresh profile's user.js enables H.264 (Debian disables OpenH264, so Firefox offers H.264 only
when hardware/FFmpeg H.264 is allowed) and pins Marionette to an OS-chosen port.
"""
import json, os, re, shutil, socket, subprocess, sys, tempfile, time

PREFS = {
    "marionette.port": 0,
    "gfx.blacklist.webrtc.hw.acceleration.h264": 1,
    "media.webrtc.hw.h264.enabled": True,
    "media.autoplay.default": 0,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "browser.startup.homepage_override.mstone": "ignore",
}

SCRIPT = """
const done = arguments[arguments.length - 1];
const policy = arguments[0];
(async () => {
  const pc = new RTCPeerConnection(policy ? {bundlePolicy: policy} : {});
  pc.addTransceiver('video', {direction: 'recvonly'});
  pc.addTransceiver('audio', {direction: 'recvonly'});
  const offer = await pc.createOffer();
  pc.close();
  done({sdp: offer.sdp, ua: navigator.userAgent});
})().catch(e => done({error: String(e)}));
"""


class Marionette:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buffer = b""
        self.next_id = 1
        self.read_frame()  # handshake {"applicationType": "gecko", "marionetteProtocol": 3}

    def read_frame(self):
        while b":" not in self.buffer:
            self.buffer += self.recv()
        length, _, rest = self.buffer.partition(b":")
        length = int(length)
        while len(rest) < length:
            rest += self.recv()
        self.buffer = rest[length:]
        return json.loads(rest[:length])

    def recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("marionette closed the connection")
        return chunk

    def command(self, name, params):
        msg_id = self.next_id
        self.next_id += 1
        body = json.dumps([0, msg_id, name, params]).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body)
        while True:
            kind, reply_id, error, result = self.read_frame()
            if kind == 1 and reply_id == msg_id:
                if error:
                    raise RuntimeError(f"{name}: {error}")
                return result


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    firefox = shutil.which("firefox-esr") or shutil.which("firefox")
    if not firefox:
        sys.exit("firefox-esr not installed (apt-get install -y firefox-esr)")
    version = subprocess.run([firefox, "--version"], capture_output=True, text=True).stdout
    version = re.search(r"(\d+(?:\.\d+)*)", version).group(1)

    profile = tempfile.mkdtemp(prefix="ff-profile-")
    with open(os.path.join(profile, "user.js"), "w") as f:
        for key, value in PREFS.items():
            f.write(f"user_pref({json.dumps(key)}, {json.dumps(value)});\n")
    env = dict(os.environ, MOZ_HEADLESS="1", HOME=profile)
    proc = subprocess.Popen([firefox, "--headless", "--marionette", "--no-remote", "--profile", profile],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "MarionetteActivePort")
        deadline = time.time() + 60
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if time.time() > deadline or proc.poll() is not None:
                sys.exit("Firefox did not start Marionette")
            time.sleep(0.2)
        client = Marionette(int(open(port_file).read().strip()))
        client.command("WebDriver:NewSession", {"capabilities": {}})
        client.command("WebDriver:Navigate", {"url": "about:blank"})
        major = version.split(".")[0]
        for policy, suffix in ((None, ""), ("max-bundle", "-max-bundle")):
            result = client.command("WebDriver:ExecuteAsyncScript",
                                    {"script": SCRIPT, "args": [policy], "scriptTimeout": 20000})
            value = result.get("value", result)
            if "error" in value:
                sys.exit("createOffer failed: " + value["error"])
            path = os.path.join(out_dir, f"firefox-esr-{major}{suffix}-recvonly-offer.sdp")
            with open(path, "w", newline="") as f:
                f.write(value["sdp"])
            print(f"{path}  ({value['ua']})")
        try:
            client.command("Marionette:Quit", {"flags": ["eForceQuit"]})
        except Exception:
            pass
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
