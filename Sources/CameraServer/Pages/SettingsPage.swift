/// GET /settings: choose the password on first run, log in, and change the camera's settings. Plain
/// HTML, CSS and JavaScript (no framework, no CDN), compiled into the binary.
enum SettingsPage {
    static let html: String = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rtcam settings</title>
<style>
  :root { color-scheme: light dark; --accent: #2f7cf6; --bad: #d33; --ok: #2a8a3a; }
  body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; padding: 0 1rem 3rem; max-width: 40rem; margin-inline: auto; }
  header { display: flex; justify-content: space-between; align-items: baseline; padding: 1rem 0; }
  h1 { font-size: 1.3rem; margin: 0; }
  h2 { font-size: 1.05rem; margin: 1.6rem 0 .6rem; }
  a { color: var(--accent); }
  form { display: grid; gap: .8rem; }
  label { display: grid; gap: .25rem; font-weight: 600; }
  label.check { display: flex; gap: .5rem; align-items: center; font-weight: 400; }
  fieldset { border: 1px solid #8886; border-radius: .4rem; display: grid; gap: .4rem; }
  #new-token { word-break: break-all; }
  input, select, button { font: inherit; padding: .45rem .6rem; border-radius: .4rem; border: 1px solid #8886; }
  button { background: var(--accent); color: white; border: 0; cursor: pointer; justify-self: start; padding-inline: 1.1rem; }
  button.secondary { background: transparent; color: var(--accent); border: 1px solid var(--accent); }
  .row { display: grid; grid-template-columns: 1fr 1fr; gap: .8rem; }
  .error { color: var(--bad); font-weight: 400; font-size: .9rem; }
  .banner { padding: .6rem .8rem; border-radius: .4rem; margin: .6rem 0; }
  .banner.bad { background: #d332; border: 1px solid var(--bad); }
  .banner.ok { background: #2a8a3a22; border: 1px solid var(--ok); }
  .hint { font-weight: 400; opacity: .75; font-size: .9rem; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<header><h1>rtcam settings</h1><nav><a href="/">Live view</a></nav></header>
<div id="message" class="banner" hidden></div>

<section id="choose" hidden>
  <h2>Choose a password</h2>
  <p class="hint">This camera has no password yet, so for now anyone on the network can watch it. The settings (and, unless you choose otherwise below, viewing) are protected by the password you choose now. There is no default password.</p>
  <p class="hint">To prove you own the camera, type its <strong>setup code</strong> (like <code>ABCD-EFGH-JKMN</code>). Find it in <span id="setup-where">the journal (<code>journalctl -u rtcam</code>) and the file <code>setup-code</code> in rtcam's state directory</span>.</p>
  <form id="choose-form">
    <label>Setup code <input name="setupCode" autocomplete="off" autocapitalize="characters" spellcheck="false" required></label>
    <label>New password <input type="password" name="password" autocomplete="new-password" minlength="8" required></label>
    <label>Repeat it <input type="password" name="repeat" autocomplete="new-password" minlength="8" required></label>
    <fieldset>
      <legend>Who may watch</legend>
      <label class="check"><input type="radio" name="viewing" value="protected" checked> Only with the password or a viewing token: the live view asks for the password; other players need a token made on this page (recommended)</label>
      <label class="check"><input type="radio" name="viewing" value="open"> Anyone who can reach the camera: only the settings need the password</label>
    </fieldset>
    <button>Set password</button>
  </form>
</section>

<section id="login" hidden>
  <h2>Log in</h2>
  <form id="login-form">
    <label>Password <input type="password" name="password" autocomplete="current-password" required></label>
    <button>Log in</button>
  </form>
</section>

<section id="settings" hidden>
  <form id="settings-form" novalidate>
    <h2>Camera</h2>
    <label>Video source <select name="source"></select><span class="error" data-for="source"></span></label>
    <label id="exec-row" hidden>Program writing H.264 to stdout (run through /bin/sh; {width} {height} {fps} {bitrate} filled in)
      <input name="execCommand" size="70" maxlength="2000" spellcheck="false"
             placeholder="rpicam-vid -t 0 -n --codec h264 --inline --flush --intra {fps} --width {width} --height {height} --framerate {fps} --bitrate {bitrate} -o -"></label>
    <div class="row">
      <label>Resolution <select name="size"></select><span class="error" data-for="width"></span><span class="error" data-for="height"></span></label>
      <label>Frame rate <select name="fps"></select><span class="error" data-for="fps"></span></label>
    </div>
    <div class="row">
      <label>Bitrate (kbit/s) <input type="number" name="bitrateKbps" min="50" max="50000" step="50"><span class="error" data-for="bitrateKbps"></span></label>
      <label>Encoder <select name="encoder">
        <option value="auto">Automatic (camera H.264, else hardware, else x264)</option>
        <option value="hardware">Hardware (V4L2 M2M)</option>
        <option value="x264">Software (x264)</option>
        <option value="passthrough">The camera's own H.264 (passthrough)</option>
      </select><span class="error" data-for="encoder"></span></label>
      <label>Camera format <select name="cameraFormat">
        <option value="auto">Automatic (raw, else MJPEG where only it reaches the size and rate)</option>
        <option value="raw">Raw pictures (NV12, YU12, YUYV)</option>
        <option value="mjpeg">The camera's MJPEG (snapshots as it sends them, decoded for H.264)</option>
      </select><span class="error" data-for="cameraFormat"></span></label>
    </div>
    <p id="camera-format" class="note"></p>
    <div class="row">
      <label>When the CPU cannot keep up <select name="degradation">
        <option value="resolution">Encode a smaller picture</option>
        <option value="framerate">Send fewer frames</option>
        <option value="balanced">Both, in turn</option>
        <option value="off">Nothing (skip the frames it cannot encode)</option>
      </select><span class="error" data-for="degradation"></span></label>
      <label class="check"><input type="checkbox" name="intraRefresh"> Intra refresh instead of periodic keyframes (x264: no keyframe bursts on the link)</label>
    </div>
    <p id="encoder-load" class="note"></p>
    <h2>Sound</h2>
    <label>Audio source <select name="audio"></select><span class="error" data-for="audio"></span></label>
    <label>Talkback speaker <select name="speaker"></select><span class="error" data-for="speaker"></span></label>
    <label>Speaker volume <input type="range" name="speakerVolume" min="0" max="100" step="1"><span class="error" data-for="speakerVolume"></span></label>
    <label>Who may talk <select name="whoMayTalk">
        <option value="viewers">Everyone who may watch</option>
        <option value="owner">Only me (logged in)</option>
      </select><span class="error" data-for="whoMayTalk"></span></label>
    <label>Echo <select name="echo">
        <option value="half-duplex">Mute the microphone while a viewer talks (half duplex)</option>
        <option value="cancel">Cancel the echo (full duplex, speexdsp)</option>
        <option value="off">Nothing (full duplex: a headset, or a speaker far from the microphone)</option>
      </select><span class="error" data-for="echo"></span></label>
    <h2>Viewers</h2>
    <label>Most viewers at once <input type="number" name="maxViewers" min="1" max="1000"><span class="error" data-for="maxViewers"></span></label>
    <label class="check"><input type="checkbox" name="viewingRequiresPassword"> Viewing needs the password (or a viewing token); turning this on ends the sessions of viewers without one at once</label>
    <h2>Watching from outside</h2>
    <p class="hint">A STUN server tells the camera its public address; a TURN server (e.g. coturn) relays the video when no direct path crosses the two networks' routers. New viewers get them; the passwords are kept on the camera and never shown here.</p>
    <label>STUN servers <input name="stun" placeholder="stun.example.org:3478 (several: separated by spaces)"><span class="error" data-for="stun"></span></label>
    <label>TURN server (turn:HOST:3478, ?transport=tcp, or turns:HOST:443 where UDP is blocked) <input name="turn" placeholder="turn:turn.example.org:3478?transport=udp"><span class="error" data-for="turn"></span></label>
    <label>TURN user <input name="turnUser" autocomplete="off"><span class="error" data-for="turnUser"></span></label>
    <label>TURN password <input type="password" name="turnPassword" autocomplete="new-password"><span class="error" data-for="turnPassword"></span></label>
    <label>TURN shared secret (coturn static-auth-secret, instead of a password) <input type="password" name="turnSecret" autocomplete="new-password"><span class="error" data-for="turnSecret"></span></label>
    <button>Save and apply</button>
  </form>

  <h2>Watching now</h2>
  <p id="bitrate-line" class="hint"></p>
  <ul id="watching"></ul>

  <h2>Viewing tokens</h2>
  <p class="hint">A token lets a third-party WHEP player watch a protected camera (<code>Authorization: Bearer &lt;token&gt;</code>). It is shown once, when made; revoking it ends its viewers at once.</p>
  <ul id="token-list"></ul>
  <form id="token-form">
    <label>Name <input name="tokenName" maxlength="64" required placeholder="e.g. living-room tablet"></label>
    <button class="secondary">Make a token</button>
  </form>
  <p id="new-token" class="banner ok" hidden></p>

  <h2>Password</h2>
  <form id="password-form">
    <label>Current password <input type="password" name="currentPassword" autocomplete="current-password" required></label>
    <label>New password <input type="password" name="newPassword" autocomplete="new-password" minlength="8" required></label>
    <button class="secondary">Change password</button>
  </form>
  <h2>HTTPS certificate</h2>
  <p class="hint">rtcam presents a self-signed certificate made for this camera's names. To use one of
  your own (from your router's or your home's certificate authority), paste its chain (PEM, the
  camera's certificate first) and its unencrypted private key.</p>
  <form id="certificate-form">
    <label>Certificate chain <textarea name="certificate" rows="4" placeholder="-----BEGIN CERTIFICATE-----"></textarea></label>
    <label>Private key <textarea name="key" rows="4" placeholder="-----BEGIN PRIVATE KEY-----"></textarea></label>
    <button class="secondary">Use this certificate</button>
    <button type="button" id="self-signed" class="secondary">Back to the self-signed one</button>
  </form>
  <p><button id="logout" class="secondary">Log out</button></p>
</section>

<p id="https-fingerprint" class="hint" hidden>HTTPS certificate SHA-256: <code id="fingerprint"></code>. If your
browser warns about this camera's certificate, compare the fingerprint it shows with this one (and with
<code>journalctl -u rtcam | grep "certificate SHA-256"</code>) before you accept it.</p>

<script>
"use strict";
const $ = (s) => document.querySelector(s);
const message = $("#message");
function show(text, ok) {
  message.textContent = text;
  message.className = "banner " + (ok ? "ok" : "bad");
  message.hidden = !text;
}
async function api(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const response = await fetch(path, init);
  let data = {};
  try { data = await response.json(); } catch (e) { /* not JSON */ }
  return { status: response.status, data };
}
function section(name) {
  for (const id of ["choose", "login", "settings"]) $("#" + id).hidden = id !== name;
}

let devices = { cameras: [], microphones: [] };
let settings = null;

function option(select, value, text, selected) {
  const o = document.createElement("option");
  o.value = value; o.textContent = text; o.selected = selected;
  select.appendChild(o);
}
function cameraFor(source) { return devices.cameras.find((c) => c.source === source); }

function fillSizes() {
  const form = $("#settings-form");
  const size = form.size, fps = form.fps;
  const camera = cameraFor(form.source.value);
  const current = settings.width + "x" + settings.height;
  size.innerHTML = "";
  const sizes = camera ? camera.sizes.map((s) => s.width + "x" + s.height) : [];
  if (!sizes.includes(current)) sizes.unshift(current);
  for (const s of sizes) option(size, s, s.replace("x", " × "), s === current);
  fillRates();
}
function fillRates() {
  const form = $("#settings-form");
  const camera = cameraFor(form.source.value);
  const [w, h] = form.size.value.split("x").map(Number);
  const entry = camera && camera.sizes.find((s) => s.width === w && s.height === h);
  const rates = entry ? entry.fps.slice() : [];
  if (!rates.includes(settings.fps)) rates.unshift(settings.fps);
  form.fps.innerHTML = "";
  for (const r of rates) option(form.fps, r, r + " fps", r === settings.fps);
}
function fillForm() {
  const form = $("#settings-form");
  form.source.innerHTML = "";
  option(form.source, "auto", "Automatic (first camera, else test pattern)", settings.source === "auto");
  for (const c of devices.cameras) option(form.source, c.source, c.name, c.source === settings.source);
  const isExec = settings.source.startsWith("exec:");
  option(form.source, "exec", "A program's H.264 (rpicam-vid for Pi cameras)", isExec);
  form.execCommand.value = isExec ? settings.source.slice(5) : "";
  $("#exec-row").hidden = !isExec;
  if (![...form.source.options].some((o) => o.value === settings.source || (isExec && o.value === "exec"))) {
    option(form.source, settings.source, settings.source, true);
  }
  form.audio.innerHTML = "";
  option(form.audio, "auto", "Automatic (first microphone, else test tone)", settings.audio === "auto");
  for (const m of devices.microphones) option(form.audio, m.source, m.name, m.source === settings.audio);
  option(form.audio, "none", "Off", settings.audio === "none");
  if (![...form.audio.options].some((o) => o.value === settings.audio)) option(form.audio, settings.audio, settings.audio, true);
  form.speaker.innerHTML = "";
  option(form.speaker, "auto", "Automatic (first speaker, else none)", settings.speaker === "auto");
  for (const s of (devices.speakers || [])) option(form.speaker, s.source, s.name, s.source === settings.speaker);
  option(form.speaker, "none", "Off (no talkback)", settings.speaker === "none");
  if (![...form.speaker.options].some((o) => o.value === settings.speaker)) option(form.speaker, settings.speaker, settings.speaker, true);
  form.speakerVolume.value = settings.speakerVolume;
  form.whoMayTalk.value = settings.whoMayTalk;
  form.echo.value = settings.echo;
  form.bitrateKbps.value = settings.bitrateKbps;
  form.encoder.value = settings.encoder;
  form.degradation.value = settings.degradation;
  form.cameraFormat.value = settings.cameraFormat;
  form.intraRefresh.checked = settings.intraRefresh;
  form.maxViewers.value = settings.maxViewers;
  form.viewingRequiresPassword.checked = settings.viewingRequiresPassword;
  form.stun.value = settings.stun || "";
  form.turn.value = settings.turn || "";
  form.turnUser.value = settings.turnUser || "";
  // The secrets never come back: an empty field keeps the saved one.
  form.turnPassword.value = "";
  form.turnPassword.placeholder = settings.turnPasswordSet ? "saved (type to replace)" : "";
  form.turnSecret.value = "";
  form.turnSecret.placeholder = settings.turnSecretSet ? "saved (type to replace)" : "";
  fillSizes();
}

async function loadSettings() {
  const [config, list] = await Promise.all([api("GET", "/api/config"), api("GET", "/api/devices")]);
  if (config.status === 401) { section("login"); return; }
  settings = config.data.settings;
  devices = list.status === 200 ? list.data : devices;
  if (config.data.problem) show(config.data.problem + " Viewing stays locked until the settings are saved again.", false);
  fillForm();
  section("settings");
  await loadTokens();
  showEncoderLoad();
}

// What x264 encodes now against what was configured, and why (CPU adaptation), every 2 s.
let encoderLoadTimer = null;
async function showEncoderLoad() {
  clearTimeout(encoderLoadTimer);
  if ($("#settings").hidden) return;
  const { status, data } = await api("GET", "/api/status");
  const a = status === 200 ? data.adaptation : null;
  const line = $("#encoder-load");
  if (!a) { line.textContent = ""; }
  else {
    const f = (x) => x.width + "×" + x.height + " at " + x.fps + " fps";
    const usage = a.encodeUsagePercent == null ? "" : " Encoding takes " + a.encodeUsagePercent.toFixed(0) + " % of each frame's time.";
    line.textContent = (a.adapted
      ? "The CPU cannot keep up with " + f(a.configured) + ": encoding " + f(a.current) + " (" + a.reason + ")."
      : "Encoding " + f(a.current) + " as configured" + (a.reason ? " (last change: " + a.reason + ")." : ".")) + usage;
  }
  showCameraFormat(status === 200 ? data : null);
  showWatching(status === 200 ? data : null);
  encoderLoadTimer = setTimeout(showEncoderLoad, 2000);
}

// Which pixel format the camera gives, why, and what became of its own JPEGs (MJPEG).
function showCameraFormat(data) {
  const line = $("#camera-format");
  if (!data || !data.pixelFormat) { line.textContent = ""; return; }
  let text = "The camera gives " + data.pixelFormat + (data.pixelFormatReason ? " (" + data.pixelFormatReason + ")." : ".");
  const j = data.cameraJPEG;
  if (j) {
    text += " Snapshots and MJPEG are its own JPEGs; " + j.decoded + " decoded for H.264" + (j.subsampling ? " (" + j.subsampling + ")" : "") +
      ", " + j.badFrames + " bad ones skipped" + (j.lastProblem ? " (last: " + j.lastProblem + ")" : "") + ".";
  }
  line.textContent = text;
}

// Each viewer's path (ICE pair, round trip) and link (the congestion controller's estimate, what
// waits in its pacer, loss), and the one encoder's bitrate (issues 19 and 24). Text only.
function showWatching(data) {
  const list = $("#watching");
  list.textContent = "";
  const b = data && data.bitrateControl;
  $("#bitrate-line").textContent = !b ? "" : (b.capped
    ? "Video at " + b.encoderTargetKbps + " kb/s: the slowest viewer's link (configured " + b.configuredKbps + " kb/s, floor " + b.floorKbps + " kb/s)."
    : "Video at the configured " + b.configuredKbps + " kb/s.") +
    (b && b.reducedLayerKbps != null ? " A smaller picture at " + b.reducedLayerKbps + " kb/s for viewers below the floor." : "");
  for (const v of (data && data.viewers) || []) {
    const li = document.createElement("li");
    const pair = v.icePair ? v.icePair.local + " → " + v.icePair.remote + (v.icePair.local === "relay" ? " (through the TURN relay)" : "") : "";
    const parts = [v.address || "(connecting)", v.state];
    if (v.layer) parts.push(v.layer);
    if (pair) parts.push("path " + pair);
    if (v.rttMs != null) parts.push("round trip " + v.rttMs.toFixed(1) + " ms");
    if (v.estimateKbps != null) parts.push("link ≈ " + Math.round(v.estimateKbps) + " kb/s" + (v.belowFloor ? " (below the floor)" : ""));
    if (v.pacerQueueMs != null) parts.push("queued " + Math.round(v.pacerQueueMs) + " ms");
    if (v.fractionLost) parts.push("lost " + (v.fractionLost * 100).toFixed(1) + " %");
    li.textContent = parts.join(" · ");
    list.appendChild(li);
  }
  if (!list.children.length) { const li = document.createElement("li"); li.textContent = "Nobody."; list.appendChild(li); }
}

async function loadTokens() {
  const r = await api("GET", "/api/tokens");
  const list = $("#token-list");
  list.innerHTML = "";
  for (const t of (r.data.tokens || [])) {
    const item = document.createElement("li");
    item.textContent = t.name + " ";
    const revoke = document.createElement("button");
    revoke.className = "secondary"; revoke.type = "button"; revoke.textContent = "Revoke";
    revoke.addEventListener("click", async () => {
      const answer = await api("DELETE", "/api/tokens/" + encodeURIComponent(t.id));
      if (answer.status === 200) { show("Token '" + t.name + "' revoked; its viewers were disconnected.", true); loadTokens(); }
      else show(answer.data.error || "Could not revoke the token.", false);
    });
    item.appendChild(revoke);
    list.appendChild(item);
  }
}

async function start() {
  const { data } = await api("GET", "/api/session");
  if (data.httpsFingerprint) { $("#fingerprint").textContent = data.httpsFingerprint; $("#https-fingerprint").hidden = false; }
  if (data.passwordProblem) { show(data.passwordProblem, false); section(null); return; }
  if (!data.passwordSet) {
    if (data.setupCodeLocation) $("#setup-where").textContent = data.setupCodeLocation;
    section("choose"); return;
  }
  if (!data.authenticated) { section("login"); return; }
  await loadSettings();
}

$("#choose-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target;
  if (f.password.value !== f.repeat.value) { show("The two passwords differ.", false); return; }
  const r = await api("POST", "/api/password", {
    password: f.password.value, setupCode: f.setupCode.value,
    viewingRequiresPassword: f.viewing.value !== "open" });
  if (r.status === 200) { show(r.data.warning || "Password set.", !r.data.warning); await loadSettings(); }
  else show(r.data.error || "Could not set the password.", false);
});
async function certificateChanged(answer) {
  if (answer.status === 200) {
    $("#fingerprint").textContent = answer.data.fingerprint; $("#https-fingerprint").hidden = false;
    show("HTTPS now presents the certificate with SHA-256 " + answer.data.fingerprint + ".", true);
  } else show(answer.data.error || "Could not change the certificate.", false);
}
$("#certificate-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target;
  await certificateChanged(await api("PUT", "/api/tls-certificate", { certificate: f.certificate.value, key: f.key.value }));
  f.key.value = "";
});
$("#self-signed").addEventListener("click", async () => certificateChanged(await api("DELETE", "/api/tls-certificate")));
$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await api("POST", "/api/login", { password: e.target.password.value });
  if (r.status === 200) { show("", true); e.target.reset(); await loadSettings(); }
  else show(r.data.error || "Could not log in.", false);
});
$("#settings-form").addEventListener("change", (e) => {
  if (e.target.name === "source") { fillSizes(); $("#exec-row").hidden = e.target.value !== "exec"; }
  if (e.target.name === "size") fillRates();
});
$("#settings-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target;
  for (const el of f.querySelectorAll(".error")) el.textContent = "";
  const [width, height] = f.size.value.split("x").map(Number);
  const body = {
    source: f.source.value === "exec" ? "exec:" + f.execCommand.value.trim() : f.source.value,
    audio: f.audio.value, width, height, fps: Number(f.fps.value),
    bitrateKbps: Number(f.bitrateKbps.value), encoder: f.encoder.value,
    degradation: f.degradation.value, cameraFormat: f.cameraFormat.value, intraRefresh: f.intraRefresh.checked,
    maxViewers: Number(f.maxViewers.value), viewingRequiresPassword: f.viewingRequiresPassword.checked,
    speaker: f.speaker.value, speakerVolume: Number(f.speakerVolume.value), whoMayTalk: f.whoMayTalk.value, echo: f.echo.value,
    stun: f.stun.value.trim(), turn: f.turn.value.trim(), turnUser: f.turnUser.value,
    turnPassword: f.turnPassword.value, turnSecret: f.turnSecret.value,
  };
  const r = await api("PUT", "/api/config", body);
  if (r.status === 200) { settings = r.data.settings; fillForm(); show("Saved and applied. Viewers stay connected.", true); return; }
  if (r.status === 401) { section("login"); return; }
  for (const err of (r.data.errors || [])) {
    const el = f.querySelector('[data-for="' + err.field + '"]');
    if (el) el.textContent = err.message;
  }
  show(r.data.error || "Could not save the settings.", false);
});
$("#password-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target;
  const r = await api("POST", "/api/password", { currentPassword: f.currentPassword.value, newPassword: f.newPassword.value });
  if (r.status === 200) { f.reset(); show("Password changed; other sessions were logged out.", true); }
  else show(r.data.error || "Could not change the password.", false);
});
$("#token-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await api("POST", "/api/tokens", { name: e.target.tokenName.value });
  const shown = $("#new-token");
  if (r.status === 201) {
    shown.textContent = "Token '" + r.data.name + "' (copy it now, it is not shown again): " + r.data.token;
    shown.hidden = false; e.target.reset(); await loadTokens();
  } else show(r.data.error || "Could not make a token.", false);
});
$("#logout").addEventListener("click", async () => { await api("POST", "/api/logout"); section("login"); });
start().catch((e) => show("Could not reach the camera: " + e, false));
</script>
</body>
</html>
"""#
}
