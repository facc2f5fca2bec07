"""Data channels (issue 18) against the browsers' own SCTP stacks: Chromium (dcSCTP, over CDP) and
Firefox (usrsctp, over Marionette). The page offers recvonly media and data channels to /whep; the
"rtcam" channel brings the status and answers a command; other channels echo 1 B to 256 KiB
messages, ordered and unordered, and 2,000 small ones in order; one closes by stream reset."""

from __future__ import annotations

from conftest import attach, wait_for_viewers

# Runs in a page of rtcam's origin; returns what it saw. Message bytes are a function of (size,
# index), so the page checks every echoed byte without keeping copies around.
SCENARIO = r"""
const log = [];
const pc = new RTCPeerConnection({bundlePolicy: 'max-bundle'});
pc.addTransceiver('video', {direction: 'recvonly'});
pc.addTransceiver('audio', {direction: 'recvonly'});
const make = (label, options) => {
  const channel = pc.createDataChannel(label, options || {});
  channel.binaryType = 'arraybuffer';
  channel.received = [];
  channel.opened = new Promise(resolve => channel.onopen = resolve);
  channel.closedPromise = new Promise(resolve => channel.onclose = resolve);
  channel.onmessage = event => channel.received.push(event.data);
  return channel;
};
const channels = {rtcam: make('rtcam'), echo: make('echo'), loose: make('loose', {ordered: false}),
                  bulk: make('bulk'), close: make('to-close')};
await pc.setLocalDescription(await pc.createOffer());
await new Promise(resolve => {
  if (pc.iceGatheringState === 'complete') return resolve();
  pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
  setTimeout(resolve, 3000);
});
const response = await fetch('/whep', {method: 'POST', headers: {'Content-Type': 'application/sdp'}, body: pc.localDescription.sdp});
const answer = await response.text();
if (response.status !== 201) return {error: 'POST /whep ' + response.status + ': ' + answer};
await pc.setRemoteDescription({type: 'answer', sdp: answer});
const within = (promise, ms, what) => Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error('timed out: ' + what)), ms))]);
const until = async (predicate, ms, what) => {
  const end = Date.now() + ms;
  while (!predicate()) { if (Date.now() > end) throw new Error('timed out: ' + what); await new Promise(r => setTimeout(r, 20)); }
};
try {
  await within(Promise.all(Object.values(channels).map(c => c.opened)), 15000, 'channels open');
  const result = {answer, maxMessageSize: pc.sctp ? pc.sctp.maxMessageSize : null};
  // Status and one command.
  const json = () => channels.rtcam.received.map(text => JSON.parse(text));
  // Once a second; the encoder's rate is measured over its first second, so wait for one with frames.
  await until(() => json().some(m => m.type === 'status' && m.fps > 0), 10000, 'a status with frames');
  result.statusCount = json().filter(m => m.type === 'status').length;
  result.status = json().filter(m => m.type === 'status' && m.fps > 0).pop();
  channels.rtcam.send(JSON.stringify({type: 'listControls', id: 7}));
  await until(() => json().some(m => m.id === 7), 5000, 'listControls answer');
  result.controls = json().find(m => m.id === 7);
  // Echo of every size, ordered and unordered.
  const sizes = [1, 2, 1000, 1100, 1200, 4096, 16384, 65535, 65536, 100000, 262144];
  const body = (size, index) => { const b = new Uint8Array(size); for (let i = 0; i < size; i++) b[i] = (i * 31 + size + index) & 255; return b; };
  const same = (data, size, index) => {
    const b = new Uint8Array(data); if (b.length !== size) return false;
    for (let i = 0; i < size; i++) if (b[i] !== ((i * 31 + size + index) & 255)) return false;
    return true;
  };
  const drain = async channel => { while (channel.bufferedAmount > 1 << 20) await new Promise(r => setTimeout(r, 10)); };
  for (const [index, size] of sizes.entries()) { await drain(channels.echo); channels.echo.send(body(size, index)); }
  channels.echo.send('hé');
  for (const [index, size] of sizes.entries()) { await drain(channels.loose); channels.loose.send(body(size, index)); }
  await until(() => channels.echo.received.length === sizes.length + 1 && channels.loose.received.length === sizes.length, 30000, 'echoes');
  result.orderedEchoes = sizes.every((size, index) => same(channels.echo.received[index], size, index)) && channels.echo.received[sizes.length] === 'hé';
  const looseLeft = sizes.map((size, index) => [size, index]);
  result.unorderedEchoes = channels.loose.received.every(data => {
    const at = looseLeft.findIndex(([size, index]) => same(data, size, index));
    if (at < 0) return false; looseLeft.splice(at, 1); return true;
  }) && looseLeft.length === 0;
  // 2,000 each way, in order.
  for (let i = 0; i < 2000; i++) channels.bulk.send('m' + i);
  await until(() => channels.bulk.received.length === 2000, 30000, '2,000 echoes');
  result.bulkInOrder = channels.bulk.received.every((text, i) => text === 'm' + i);
  // Close by stream reset (RFC 8831 §6.7): 'close' fires once rtcam reset its side too.
  channels.close.close();
  await within(channels.close.closedPromise, 5000, 'the channel to close');
  result.closedState = channels.close.readyState;
  channels.echo.send('after close');
  await until(() => channels.echo.received[channels.echo.received.length - 1] === 'after close', 5000, 'echo after close');
  result.echoAfterClose = true;
  result.session = response.headers.get('Location');
  return result;
} catch (error) {
  return {error: String(error), answer};
} finally {
  pc.close();
}
"""


def check(result: dict, rtcam) -> None:
    assert "error" not in result, f"{result.get('error')}\n{result.get('answer', '')}"
    assert "a=sctp-port:5000" in result["answer"] and "a=max-message-size:262144" in result["answer"]
    status = result["status"]
    assert status["type"] == "status" and status["viewers"] == 1 and status["talk"] == "idle", status
    assert status["fps"] > 0 and status["targetBitrateKbps"] == rtcam.bitrate_kbps, status
    assert result["statusCount"] >= 2, result["statusCount"]
    assert result["controls"]["type"] == "controls" and result["controls"]["controls"] == [], result["controls"]
    assert result["orderedEchoes"] and result["unorderedEchoes"], result
    assert result["bulkInOrder"], "the 2,000 echoes came back incomplete or out of order"
    assert result["closedState"] == "closed" and result["echoAfterClose"], result
    assert wait_for_viewers(rtcam, 0, timeout=10) == 0


def test_chromium_data_channels(rtcam, chromium, request):
    page = chromium.new_page()
    attach(request, "page console", lambda: "\n".join(str(message) for message in page.console))
    page.navigate(rtcam.url("/healthz"))
    result = page.evaluate(f"(async () => {{ {SCENARIO} }})()", timeout=90)
    attach(request, "result", lambda: str({k: v for k, v in result.items() if k != "answer"}))
    check(result, rtcam)


def test_firefox_data_channels(rtcam, firefox, request):
    firefox.navigate(rtcam.url("/healthz"))
    result = firefox.execute(f"return (async () => {{ {SCENARIO} }})();", timeout=90)
    attach(request, "result", lambda: str({k: v for k, v in result.items() if k != "answer"}))
    check(result, rtcam)


def test_chromium_viewer_page_shows_status_and_a_slider_per_control(rtcam, chromium, request):
    page = chromium.new_page()
    attach(request, "page console", lambda: "\n".join(str(message) for message in page.console))
    page.navigate(rtcam.url("/"))
    page.wait_for("window.rtcamChannel && window.rtcamChannel.status !== null && window.rtcamChannel.controls !== null", timeout=15)
    status = page.evaluate("window.rtcamChannel.status")
    assert status["type"] == "status" and status["viewers"] == 1 and status["talk"] == "idle", status
    text = page.evaluate("document.getElementById('camstatus').textContent")
    assert "fps" in text and "viewer" in text and "talk idle" in text, text
    assert page.evaluate("window.rtcamChannel.controls") == []   # the test pattern reports none
    # A camera's list (as a V4L2 device reports it) gets one input per settable control.
    drawn = page.evaluate("""(() => {
      window.rtcamChannel.render([
        {id: 9963776, name: 'Brightness', type: 'integer', min: 0, max: 255, step: 1, default: 128, value: 128, readOnly: false},
        {id: 9963777, name: 'Contrast', type: 'integer', min: 0, max: 255, step: 1, default: 128, value: 100, readOnly: false},
        {id: 9963788, name: 'Auto White Balance', type: 'boolean', min: 0, max: 1, step: 1, default: 1, value: 1, readOnly: false},
        {id: 10094849, name: 'Auto Exposure', type: 'menu', min: 0, max: 3, step: 1, default: 0, value: 0, readOnly: false,
         menu: [{index: 0, name: 'Auto Mode'}, {index: 1, name: 'Manual Mode'}]},
        {id: 9963800, name: 'Gain', type: 'integer', min: 0, max: 255, step: 1, default: 0, value: 0, readOnly: true}]);
      const box = document.getElementById('controls');
      return {sliders: box.querySelectorAll('input[type=range]').length, checkboxes: box.querySelectorAll('input[type=checkbox]').length,
              menus: box.querySelectorAll('select').length, contrast: box.querySelector("[data-control='9963777']").value};
    })()""")
    assert drawn == {"sliders": 2, "checkboxes": 1, "menus": 1, "contrast": "100"}, drawn
    # Moving a slider sends setControl; the test pattern has no camera, so the answer is an error.
    page.evaluate("""(() => { const s = document.querySelector("[data-control='9963776']"); s.value = '140';
                       s.dispatchEvent(new Event('change')); })()""")
    page.wait_for("window.rtcamChannel.lastError !== null", timeout=5)
    assert "no camera" in page.evaluate("window.rtcamChannel.lastError")
    assert page.exceptions == [], page.exceptions
