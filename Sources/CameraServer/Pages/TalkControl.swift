// The viewer page's Talk controls (issue 17), kept apart from ViewerPage.swift and inserted into it:
// a "Hold to talk" button and a "Talk" toggle, shown when the camera answered the page's sendrecv
// audio with sendrecv (it has a speaker, and this viewer may talk) on a secure page (browsers give
// the microphone to secure contexts only).
//
// Talking needs no renegotiation: the page offers audio sendrecv from the start, and a press puts
// the microphone's track on that transceiver's sender (replaceTrack) while it claims the talk floor
// (POST {session}/talk); a release takes the track off (replaceTrack(null)) and gives the floor
// back (DELETE). A second viewer's claim is refused: the page says "someone is talking".
//
// For tests: window.rtcamTalk = { state, message, pressedAt, talkingAt, constraints, start(), stop() },
// state one of "unavailable", "idle", "starting", "talking", "busy", "denied", "error".
enum TalkControl {
    static let style = """
      #talk, #talk-toggle { font: inherit; color: #fff; background: #2a5; border: 0; border-radius: .3em;
        padding: .15em .8em; cursor: pointer; user-select: none; touch-action: none; }
      #talk-toggle { background: #357; }
      #talk[hidden], #talk-toggle[hidden] { display: none; }
      #talk.on, #talk-toggle.on { background: #d33; }
      #talk-state:empty { display: none; }
    """

    static let controls = """
      <button id="talk" type="button" hidden>Hold to talk</button>
      <button id="talk-toggle" type="button" hidden aria-pressed="false">Talk</button>
      <span id="talk-state"></span>
    """

    static let script = #"""
"use strict";
window.rtcamTalk = (function () {
  var talkButton = document.getElementById("talk");
  var toggleButton = document.getElementById("talk-toggle");
  var stateText = document.getElementById("talk-state");
  var api = {
    state: "unavailable", message: "", pressedAt: null, talkingAt: null,
    // What getUserMedia is asked for; the browser's echo canceller keeps the camera's own sound
    // (which this page plays) out of what the talker sends back.
    constraints: { echoCancellation: true, noiseSuppression: true, autoGainControl: true }
  };
  var peer = null, transceiver = null, sessionURL = null;
  var track = null, stopTrackTimer = null;
  var wanted = false;       // the button is held, or the toggle is on
  var attempt = 0;          // bumps on every start and stop: stale answers compare against it

  function setState(state, message) {
    api.state = state;
    api.message = message || "";
    stateText.textContent = api.message;
    var on = state === "talking" || state === "starting";
    talkButton.classList.toggle("on", on && !toggleButton.classList.contains("on"));
  }

  function showControls(show) {
    talkButton.hidden = !show;
    toggleButton.hidden = !show;
  }

  function microphone() {
    clearTimeout(stopTrackTimer); stopTrackTimer = null;
    if (track && track.readyState === "live") { return Promise.resolve(track); }
    return navigator.mediaDevices.getUserMedia({ audio: api.constraints, video: false }).then(function (stream) {
      track = stream.getAudioTracks()[0];
      return track;
    });
  }

  function start() {
    if (!transceiver || api.state === "unavailable") { return; }
    wanted = true;
    var mine = ++attempt;
    api.pressedAt = performance.now();
    api.talkingAt = null;
    setState("starting", "");
    var claim = fetch(sessionURL + "/talk", { method: "POST" }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return { status: response.status, body: body };
      });
    });
    var sending = microphone().then(function (microphoneTrack) {
      if (mine !== attempt || !transceiver) { return false; }
      return transceiver.sender.replaceTrack(microphoneTrack).then(function () { return true; });
    });
    Promise.all([claim, sending]).then(function (results) {
      if (mine !== attempt) { return; }
      var answer = results[0];
      if (answer.status === 200) {
        api.talkingAt = performance.now();
        setState("talking", "talking…");
        return;
      }
      quiet();
      wanted = false;
      toggleButton.classList.remove("on");
      if (answer.status === 409 && answer.body && answer.body.busy) {
        setState("busy", "someone is talking");
      } else if (answer.status === 403) {
        setState("denied", (answer.body && answer.body.error) || "you may not talk through this camera");
      } else {
        setState("error", (answer.body && answer.body.error) || ("talk refused: HTTP " + answer.status));
      }
    }).catch(function (error) {
      if (mine !== attempt) { return; }
      quiet();
      wanted = false;
      toggleButton.classList.remove("on");
      setState("error", "no microphone: " + (error && error.message ? error.message : String(error)));
    });
  }

  // Takes the microphone off the sender (nothing is sent; the track is kept a while for the next press).
  function quiet() {
    if (transceiver) { transceiver.sender.replaceTrack(null).catch(function () {}); }
    clearTimeout(stopTrackTimer);
    stopTrackTimer = setTimeout(function () {
      if (track && !wanted) { track.stop(); track = null; }
    }, 10000);
  }

  function stop() {
    if (!wanted) { return; }
    wanted = false;
    attempt += 1;
    quiet();
    if (sessionURL) { fetch(sessionURL + "/talk", { method: "DELETE", keepalive: true }).catch(function () {}); }
    if (api.state === "talking" || api.state === "starting") { setState("idle", ""); }
  }

  // Hold to talk: pointer (mouse, touch, pen) and keyboard (Space/Enter held).
  talkButton.addEventListener("pointerdown", function (event) {
    if (event.button !== 0) { return; }
    talkButton.setPointerCapture(event.pointerId);
    start();
  });
  talkButton.addEventListener("pointerup", stop);
  talkButton.addEventListener("pointercancel", stop);
  talkButton.addEventListener("keydown", function (event) {
    if ((event.key === " " || event.key === "Enter") && !event.repeat) { event.preventDefault(); start(); }
  });
  talkButton.addEventListener("keyup", function (event) {
    if (event.key === " " || event.key === "Enter") { event.preventDefault(); stop(); }
  });
  toggleButton.addEventListener("click", function () {
    var on = !toggleButton.classList.contains("on");
    toggleButton.classList.toggle("on", on);
    toggleButton.setAttribute("aria-pressed", on ? "true" : "false");
    if (on) { start(); } else { stop(); }
  });

  // Called by the viewer script when a session is up, and when it goes away.
  api.attach = function (newPeer, audioTransceiver, url) {
    peer = newPeer; transceiver = audioTransceiver; sessionURL = url;
    var canTalk = !!(audioTransceiver && audioTransceiver.currentDirection === "sendrecv" && url
      && window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
    showControls(canTalk);
    setState(canTalk ? "idle" : "unavailable", "");
  };
  api.detach = function () {
    if (wanted) { stop(); }
    peer = null; transceiver = null; sessionURL = null;
    showControls(false);
    setState("unavailable", "");
  };
  api.start = start;
  api.stop = stop;
  return api;
})();
"""#
}
