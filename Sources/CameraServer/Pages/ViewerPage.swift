// The viewer page served at `GET /`: a <video> fed by a WHEP session (draft-ietf-wish-whep) against
// this daemon's `/whep` endpoint, with a small status bar and automatic reconnection.
//
// Plain HTML, CSS and JavaScript in one raw string: no framework, no CDN, no resources bundle (Bundle
// would pull in Foundation). Standard APIs only, so Chromium, Firefox and Safari all run it.
//
// For tests, the page keeps `window.rtcam` current (every 500 ms, from RTCPeerConnection.getStats()):
//   state, framesDecoded, framesPerSecond, width, height, audioSamplesReceived, audioEnergy,
//   bitrateKbps, rttMs, packetsLost, sessionURL, reconnects, paused, muted, lastError,
//   videoCodec and audioCodec (mime types, e.g. "video/H264"), and
//   updatedAt (performance.now() of the getStats sample the numbers come from, in ms).
enum ViewerPage {
    static let html: String = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="rtcam-stun" content="">
<title>rtcam</title>
<link rel="icon" href="data:,">
<style>
  html, body { margin: 0; height: 100%; background: #111; color: #ddd;
    font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
  #stage { position: relative; width: 100%; background: #000; }
  video { display: block; width: 100%; height: auto; max-height: calc(100vh - 2.2em); background: #000; }
  #unmute { position: absolute; inset: 0; width: 100%; border: 0; cursor: pointer;
    background: rgba(0, 0, 0, .45); color: #fff; font-size: 2em; font-weight: 600; }
  #unmute[hidden] { display: none; }
  #bar { display: flex; flex-wrap: wrap; gap: .3em 1.2em; align-items: center; padding: .35em .8em;
    background: #1c1c1c; font-variant-numeric: tabular-nums; white-space: nowrap; }
  #bar a { margin-left: auto; color: #8cf; }
  #dot { display: inline-block; width: .7em; height: .7em; border-radius: 50%; background: #888;
    margin-right: .35em; vertical-align: -.05em; }
  #dot.ok { background: #3c6; } #dot.wait { background: #fc3; } #dot.bad { background: #e43; }
\#(TalkControl.style)
  #camera { display: flex; flex-wrap: wrap; gap: .4em 1.4em; align-items: center; padding: .35em .8em;
    background: #161616; font-variant-numeric: tabular-nums; }
  #camera[hidden] { display: none; }
  #controls { display: flex; flex-wrap: wrap; gap: .4em 1.4em; }
  #controls label { display: inline-flex; gap: .5em; align-items: center; white-space: nowrap; }
  #controls input[type=range] { width: 9em; }
</style>
</head>
<body>
<div id="stage">
  <video id="video" autoplay playsinline></video>
  <button id="unmute" type="button" hidden>Click to unmute</button>
</div>
<div id="bar">
  <span><span id="dot"></span><span id="state">starting</span></span>
  <span id="resolution">–</span>
  <span id="fps">– fps</span>
  <span id="bitrate">– kb/s</span>
  <span id="rtt">RTT –</span>
  <span id="lost">lost –</span>
\#(TalkControl.controls)
  <a id="snapshot" href="/snapshot.jpg" download="rtcam-snapshot.jpg" title="Save the current picture as a JPEG">Snapshot</a>
  <a href="/settings">Settings</a>
</div>
<div id="camera" hidden>
  <span id="camstatus">–</span>
  <div id="controls"></div>
</div>
<script>
"use strict";
// The "rtcam" data channel (README "Data channels"): the camera's status once a second, and a control
// for each camera control it reports (sliders, switches, menus). The main script below opens the
// channel on every new connection (`rtcamChannel.attach(peer)`). For tests: window.rtcamChannel.status
// (the last status), .controls (the last list), .lastError, .render(list) (draws a list as given).
(function () {
  var panel = document.getElementById("camera");
  var statusText = document.getElementById("camstatus");
  var controlsBox = document.getElementById("controls");
  var nextId = 0;
  var api = window.rtcamChannel = { channel: null, status: null, controls: null, lastError: null,
                                    attach: attach, send: send, render: render };

  function attach(peer) {
    var channel = peer.createDataChannel("rtcam");
    api.channel = channel;
    channel.onopen = function () { send({ type: "listControls" }); };
    channel.onclose = function () { if (api.channel === channel) { api.channel = null; } };
    channel.onmessage = function (event) {
      if (api.channel !== channel || typeof event.data !== "string") { return; }
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.type === "status") { showStatus(message); }
      else if (message.type === "controls") { render(message.controls || []); if (message.error) { api.lastError = message.error; } }
      else if (message.type === "controlSet") { showValue(message.control, message.value); }
      else if (message.type === "error") { api.lastError = message.error; statusText.title = message.error; }
    };
  }

  function send(message) {
    if (!api.channel || api.channel.readyState !== "open") { return null; }
    message.id = ++nextId;
    api.channel.send(JSON.stringify(message));
    return message.id;
  }

  function showStatus(status) {
    api.status = status;
    panel.hidden = false;
    statusText.textContent = "camera " + status.fps.toFixed(0) + " fps · " + status.bitrateKbps.toFixed(0) + " kb/s · "
      + status.viewers + (status.viewers === 1 ? " viewer" : " viewers") + " · talk " + status.talk;
  }

  function showValue(id, value) {
    var input = controlsBox.querySelector("[data-control='" + id + "']");
    if (!input) { return; }
    if (input.type === "checkbox") { input.checked = value !== 0; } else { input.value = String(value); }
    var shown = input.parentNode.querySelector("output");
    if (shown) { shown.textContent = String(value); }
  }

  function render(list) {
    api.controls = list;
    controlsBox.textContent = "";
    list.forEach(function (control) {
      if (control.readOnly || control.type === "button") { return; }
      var label = document.createElement("label");
      label.appendChild(document.createTextNode(control.name));
      var input;
      if (control.type === "boolean") {
        input = document.createElement("input");
        input.type = "checkbox";
        input.checked = control.value !== 0;
      } else if ((control.type === "menu" || control.type === "integerMenu") && control.menu) {
        input = document.createElement("select");
        control.menu.forEach(function (item) {
          var option = document.createElement("option");
          option.value = String(item.index);
          option.textContent = item.name;
          input.appendChild(option);
        });
        input.value = String(control.value);
      } else {
        input = document.createElement("input");
        input.type = "range";
        input.min = String(control.min); input.max = String(control.max);
        input.step = String(Math.max(1, control.step));
        input.value = String(control.value);
      }
      input.setAttribute("data-control", String(control.id));
      label.appendChild(input);
      if (input.type === "range") {
        var shown = document.createElement("output");
        shown.textContent = String(control.value);
        label.appendChild(shown);
        input.addEventListener("input", function () { shown.textContent = input.value; });
      }
      input.addEventListener("change", function () {
        var value = input.type === "checkbox" ? (input.checked ? 1 : 0) : Number(input.value);
        send({ type: "setControl", control: control.id, value: value });
      });
      controlsBox.appendChild(label);
    });
  }
})();
</script>
<script>
\#(TalkControl.script)
</script>
<script>
"use strict";
(function () {
  var video = document.getElementById("video");
  var unmuteButton = document.getElementById("unmute");
  var el = {
    dot: document.getElementById("dot"), state: document.getElementById("state"),
    resolution: document.getElementById("resolution"), fps: document.getElementById("fps"),
    bitrate: document.getElementById("bitrate"), rtt: document.getElementById("rtt"),
    lost: document.getElementById("lost")
  };

  // What tests read (see the comment at the top of ViewerPage.swift).
  var rtcam = window.rtcam = {
    state: "new", framesDecoded: 0, framesPerSecond: 0, width: 0, height: 0,
    audioSamplesReceived: 0, audioEnergy: 0, bitrateKbps: 0, rttMs: null, packetsLost: 0,
    sessionURL: null, reconnects: 0, paused: true, muted: false, lastError: null,
    videoCodec: null, audioCodec: null, updatedAt: 0
  };

  var WHEP_ENDPOINT = "/whep";
  // The STUN servers the camera uses (--stun, issue 19), in a meta tag the daemon fills (the script
  // stays the same, so its CSP hash does). With them the browser learns its public address too and
  // puts it in the offer, so that both sides' checks can open their NATs.
  var STUN_URLS = (function () {
    var meta = document.querySelector('meta[name="rtcam-stun"]');
    return meta && meta.content ? meta.content.split(" ").filter(function (url) { return url; }) : [];
  })();
  var GATHERING_WAIT_MS = 1500;
  var DISCONNECTED_GRACE_MS = 3000;
  var MIN_RETRY_MS = 1000, MAX_RETRY_MS = 10000;

  var pc = null;               // the current RTCPeerConnection
  var generation = 0;          // bumps on every (re)connect; stale callbacks compare against it
  var retryDelay = MIN_RETRY_MS;
  var retryTimer = null, disconnectTimer = null;
  var previous = null;         // last stats sample, for rates: {time, bytes, frames}
  var leaving = false;

  function gathered(peer, limitMs) {
    return new Promise(function (resolve) {
      if (peer.iceGatheringState === "complete") { resolve(); return; }
      var timer = setTimeout(resolve, limitMs);
      peer.addEventListener("icegatheringstatechange", function () {
        if (peer.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
  }

  function setState(state) {
    rtcam.state = state;
    el.state.textContent = state;
    el.dot.className = state === "connected" ? "ok"
      : (state === "failed" || state === "closed" || state === "error") ? "bad" : "wait";
  }

  function absoluteURL(location) {
    try { return new URL(location, window.location.href).href; } catch (e) { return null; }
  }

  // Tells the server the session is over. fetch keepalive survives page unload (sendBeacon can only POST).
  function deleteSession(url) {
    if (!url) { return; }
    try {
      fetch(url, { method: "DELETE", keepalive: true }).catch(function () {});
    } catch (e) { /* nothing more to do */ }
  }

  function teardown() {
    generation += 1;
    clearTimeout(disconnectTimer); disconnectTimer = null;
    if (pc) {
      pc.ontrack = null; pc.onconnectionstatechange = null; pc.oniceconnectionstatechange = null;
      try { pc.close(); } catch (e) { /* already closed */ }
      pc = null;
    }
    window.rtcamTalk.detach();
    deleteSession(rtcam.sessionURL);
    rtcam.sessionURL = null;
    previous = null;
  }

  function scheduleReconnect(reason, minimumDelayMs) {
    if (leaving || retryTimer !== null) { return; }
    rtcam.lastError = reason;
    teardown();
    var delay = Math.min(Math.max(retryDelay, minimumDelayMs || 0), MAX_RETRY_MS);
    retryDelay = Math.min(retryDelay * 2, MAX_RETRY_MS);
    setState("reconnecting");
    el.state.textContent = "reconnecting in " + Math.round(delay / 1000) + " s (" + reason + ")";
    retryTimer = setTimeout(function () {
      retryTimer = null;
      rtcam.reconnects += 1;
      connect();
    }, delay);
  }

  function play() {
    var attempt = video.play();
    if (!attempt || !attempt.then) { return; }
    attempt.catch(function (error) {
      if (error && error.name === "NotAllowedError" && !video.muted) {
        // Autoplay with sound is blocked: play muted and offer the unmute overlay.
        video.muted = true;
        unmuteButton.hidden = false;
        video.play().catch(function () {});
      }
    });
  }

  unmuteButton.addEventListener("click", function () {
    video.muted = false;
    unmuteButton.hidden = true;
    play();
  });

  function connectionStateOf(peer) {
    // connectionState is everywhere now; iceConnectionState covers older engines.
    return peer.connectionState || peer.iceConnectionState;
  }

  function onConnectionStateChange(peer, myGeneration) {
    if (myGeneration !== generation) { return; }
    var state = connectionStateOf(peer);
    setState(state);
    if (state === "connected" || state === "completed") {
      clearTimeout(disconnectTimer); disconnectTimer = null;
      retryDelay = MIN_RETRY_MS;
    } else if (state === "failed") {
      scheduleReconnect("connection failed");
    } else if (state === "disconnected") {
      if (disconnectTimer === null) {
        disconnectTimer = setTimeout(function () {
          disconnectTimer = null;
          if (myGeneration !== generation) { return; }
          var now = connectionStateOf(peer);
          if (now === "disconnected" || now === "failed") { scheduleReconnect("disconnected"); }
        }, DISCONNECTED_GRACE_MS);
      }
    } else if (state === "closed") {
      scheduleReconnect("connection closed");
    }
  }

  function connect() {
    var myGeneration = ++generation;
    setState("connecting");
    var stream = new MediaStream();
    var peer = pc = new RTCPeerConnection({
      iceServers: STUN_URLS.length ? [{ urls: STUN_URLS }] : [], bundlePolicy: "max-bundle" });
    peer.addTransceiver("video", { direction: "recvonly" });
    // sendrecv from the start: talking through the camera (TalkControl.swift) then only puts the
    // microphone on this sender, without renegotiating. A camera without a speaker answers sendonly.
    var audioTransceiver = peer.addTransceiver("audio", { direction: "sendrecv" });
    if (window.rtcamChannel) { window.rtcamChannel.attach(peer); }   // status and camera controls
    peer.ontrack = function (event) {
      if (myGeneration !== generation) { return; }
      stream.addTrack(event.track);
      event.track.addEventListener("ended", function () {
        if (myGeneration === generation) { scheduleReconnect(event.track.kind + " track ended"); }
      });
      if (video.srcObject !== stream) { video.srcObject = stream; }
      play();
    };
    var onChange = function () { onConnectionStateChange(peer, myGeneration); };
    if ("connectionState" in peer) { peer.onconnectionstatechange = onChange; }
    else { peer.oniceconnectionstatechange = onChange; }

    peer.createOffer()
      .then(function (offer) { return peer.setLocalDescription(offer); })
      .then(function () {
        // Without STUN the offer needs no candidate (rtcam learns the address from the checks); with
        // it, wait a little for the server-reflexive one (no trickle: one POST, as before).
        return STUN_URLS.length ? gathered(peer, GATHERING_WAIT_MS) : null;
      })
      .then(function () {
        return fetch(WHEP_ENDPOINT, {
          method: "POST", headers: { "Content-Type": "application/sdp" }, body: peer.localDescription.sdp
        });
      })
      .then(function (response) {
        return response.text().then(function (body) {
          if (myGeneration !== generation) {
            deleteSession(absoluteURL(response.headers.get("Location")));
            throw null; // superseded: drop silently
          }
          if (response.status !== 201) {
            var error = new Error("HTTP " + response.status + ": " + body.trim().slice(0, 200));
            var retryAfter = parseInt(response.headers.get("Retry-After") || "", 10);
            error.retryAfterMs = isNaN(retryAfter) ? 0 : retryAfter * 1000;
            if (response.status === 401) {
              // Viewing is protected: the owner logs in on the settings page (same origin: the
              // session cookie comes along), then the next attempt plays.
              error = new Error("this camera needs the password: log in on the Settings page");
              error.retryAfterMs = 5000;
            }
            throw error;
          }
          var location = response.headers.get("Location");
          rtcam.sessionURL = location ? absoluteURL(location) : null;
          return peer.setRemoteDescription({ type: "answer", sdp: body }).then(function () {
            if (myGeneration === generation) { window.rtcamTalk.attach(peer, audioTransceiver, rtcam.sessionURL); }
          });
        });
      })
      .catch(function (error) {
        if (error === null || myGeneration !== generation) { return; }
        scheduleReconnect(error && error.message ? error.message : String(error), error && error.retryAfterMs);
      });
  }

  function formatNumber(value, digits) {
    return typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "–";
  }

  function render() {
    el.resolution.textContent = rtcam.width && rtcam.height ? rtcam.width + "×" + rtcam.height : "–";
    el.fps.textContent = formatNumber(rtcam.framesPerSecond, 0) + " fps";
    el.bitrate.textContent = formatNumber(rtcam.bitrateKbps, 0) + " kb/s";
    el.rtt.textContent = "RTT " + (rtcam.rttMs === null ? "–" : formatNumber(rtcam.rttMs, 0) + " ms");
    el.lost.textContent = "lost " + rtcam.packetsLost;
  }

  function kindOf(report) { return report.kind || report.mediaType; }

  function codecOf(stats, inbound) {
    var codec = inbound && inbound.codecId ? stats.get(inbound.codecId) : null;
    return codec && codec.mimeType ? codec.mimeType : null;
  }

  function sampleStats() {
    rtcam.paused = video.paused;
    rtcam.muted = video.muted;
    var peer = pc;
    if (!peer) { render(); return; }
    var myGeneration = generation;
    peer.getStats().then(function (stats) {
      if (myGeneration !== generation) { return; }
      var videoIn = null, audioIn = null, transport = null, pairs = [];
      var bytes = 0, lost = 0;
      stats.forEach(function (report) {
        if (report.type === "inbound-rtp") {
          bytes += report.bytesReceived || 0;
          lost += report.packetsLost || 0;
          if (kindOf(report) === "video") { videoIn = report; }
          else if (kindOf(report) === "audio") { audioIn = report; }
        } else if (report.type === "transport") {
          transport = report;
        } else if (report.type === "candidate-pair") {
          pairs.push(report);
        }
      });

      var now = performance.now();
      var frames = videoIn && typeof videoIn.framesDecoded === "number" ? videoIn.framesDecoded : 0;
      if (previous && now > previous.time) {
        var seconds = (now - previous.time) / 1000;
        rtcam.bitrateKbps = Math.max(0, (bytes - previous.bytes) * 8 / 1000 / seconds);
        if (!(videoIn && typeof videoIn.framesPerSecond === "number")) {
          rtcam.framesPerSecond = Math.max(0, (frames - previous.frames) / seconds);
        }
      }
      previous = { time: now, bytes: bytes, frames: frames };

      rtcam.framesDecoded = frames;
      if (videoIn && typeof videoIn.framesPerSecond === "number") {
        rtcam.framesPerSecond = videoIn.framesPerSecond;
      }
      rtcam.width = (videoIn && videoIn.frameWidth) || video.videoWidth || 0;
      rtcam.height = (videoIn && videoIn.frameHeight) || video.videoHeight || 0;
      rtcam.audioSamplesReceived = (audioIn && audioIn.totalSamplesReceived) || 0;
      rtcam.audioEnergy = (audioIn && audioIn.totalAudioEnergy) || 0;
      rtcam.packetsLost = lost;
      rtcam.videoCodec = codecOf(stats, videoIn);
      rtcam.audioCodec = codecOf(stats, audioIn);
      rtcam.updatedAt = now;

      // RTT of the pair in use: the transport names it (Chromium, Safari); else the nominated,
      // succeeded pair (Firefox marks it `selected`).
      var pair = null;
      if (transport && transport.selectedCandidatePairId) {
        pair = stats.get(transport.selectedCandidatePairId) || null;
      }
      if (!pair) {
        pairs.forEach(function (candidate) {
          if (candidate.selected || (candidate.nominated && candidate.state === "succeeded")) { pair = candidate; }
        });
      }
      rtcam.rttMs = pair && typeof pair.currentRoundTripTime === "number"
        ? pair.currentRoundTripTime * 1000 : null;
      render();
    }).catch(function () { /* the connection went away between samples */ });
  }

  window.addEventListener("pagehide", function () {
    leaving = true;
    clearTimeout(retryTimer); retryTimer = null;
    teardown();
    setState("closed");
  });
  window.addEventListener("pageshow", function (event) {
    // Back/forward cache restore: the old session was deleted on pagehide, start a new one.
    if (event.persisted) { leaving = false; retryDelay = MIN_RETRY_MS; connect(); }
  });

  setInterval(sampleStats, 500);
  if (typeof RTCPeerConnection === "undefined") {
    setState("error");
    el.state.textContent = "this browser has no WebRTC";
  } else {
    connect();
  }
})();
</script>
</body>
</html>
"""#

    /// The page with the camera's STUN servers (`--stun`, full ICE) for the browser's own use;
    /// without any it is `html` itself.
    static func html(stunServers: [String]) -> String {
        guard !stunServers.isEmpty else { return html }
        let urls = stunServers.map { "stun:" + $0 }.joined(separator: " ")
        let escaped = urls.map { character -> String in
            switch character {
            case "&": return "&amp;"
            case "\"": return "&quot;"
            case "<": return "&lt;"
            case ">": return "&gt;"
            default: return String(character)
            }
        }.joined()
        // Byte search with the standard library (no Foundation; `firstRange(of:)` would link
        // _StringProcessing: README, "Facts measured here"). Done once, at start.
        let page = Array(html.utf8), marker = Array(#"<meta name="rtcam-stun" content="">"#.utf8)
        guard let start = (0...(page.count - marker.count)).first(where: { page[$0..<$0 + marker.count].elementsEqual(marker) })
        else { return html }
        let filled = Array((#"<meta name="rtcam-stun" content=""# + escaped + #"">"#).utf8)
        // One array built step by step: Swift 6.2 (the arm64 toolchain) cannot type `slice + array + slice`.
        var joined = Array(page[..<start])
        joined += filled
        joined += page[(start + marker.count)...]
        return String(decoding: joined, as: UTF8.self)
    }
}
