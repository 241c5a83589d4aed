// The screen viewer: draws the frames relayed by the console on a canvas.
// No build step: a plain ES module. The binary frame layout is documented in
// deskside/console/screenrelay.py. The token comes from the URL fragment
// (#ticket=7&token=dsv_...: a viewer link), which the browser never sends to any
// server, and is taken out of the address bar and the history once read.

import { Painter, parseFrame } from "./frames.js";

const params = new URLSearchParams(location.hash.slice(1));
const ticket = params.get("ticket");
const token = params.get("token");
// Out of the address bar and the browser's history: the link is a secret.
params.delete("token");
history.replaceState(null, "", `${location.pathname}${location.search}#${params}`);

const $ = (id) => document.getElementById(id);
const screen = $("screen");
const painter = new Painter(screen, $("pointer"));

// What tests and the next modules (guidance, control) can look at.
const state = {
  phase: "connecting", // asking | started | refused | ended | error
  session: null,
  monitors: [],
  monitor: null,
  width: 0,
  height: 0,
  frames: 0,
  bytes: 0,
  fps: 0,
  bandwidth: 0, // bytes per second
  delay: null, // seconds from capture to canvas (agent clock vs this clock)
  delays: [], // the last 500 delays, for measurements
  reason: "",
  socket: null,
};
window.deskside = { screen: state, canvas: screen, send: (o) => send(o) };

let chain = Promise.resolve();
const recent = []; // [time, bytes] of frames drawn in the last second or two

function setStatus(phase, text) {
  state.phase = phase;
  const el = $("status");
  el.dataset.state = phase;
  el.textContent = text;
  const live = phase === "started";
  window.dispatchEvent(new CustomEvent("deskside:phase", { detail: phase }));
  $("monitor").disabled = !live;
  $("refresh").disabled = !live;
}

function send(obj) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify(obj));
  }
}

function connect() {
  // Settings may come in the fragment too: #ticket=7&token=...&quality=60&fps=30
  if (params.get("quality")) $("quality").value = params.get("quality");
  if (params.get("fps")) {
    const fps = $("fps");
    if (![...fps.options].some((o) => o.value === params.get("fps"))) {
      fps.append(new Option(params.get("fps")));
    }
    fps.value = params.get("fps");
  }
  if (!ticket || !token) {
    setStatus("error", "Open this page as screen.html#ticket=N&token=API_TOKEN");
    return;
  }
  const query = new URLSearchParams({
    quality: $("quality").value,
    fps: $("fps").value,
  });
  for (const key of ["device", "monitor", "record"]) {
    if (params.get(key)) query.set(key, params.get(key));
  }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}/api/v1/tickets/${encodeURIComponent(ticket)}/screen?${query}`;
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  state.socket = socket;
  socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token }));
  socket.onmessage = (event) => {
    if (typeof event.data === "string") {
      onControl(JSON.parse(event.data));
    } else {
      const data = event.data;
      chain = chain.then(() => onFrame(data)).catch((err) => console.error("frame", err));
    }
  };
  socket.onclose = () => {
    if (state.phase === "asking" || state.phase === "started" || state.phase === "connecting") {
      setStatus("ended", "Disconnected");
    }
  };
}

function onControl(msg) {
  // Guidance and control (guide.js, control.js) listen too.
  window.dispatchEvent(new CustomEvent("deskside:message", { detail: msg }));
  if (msg.type === "asking") {
    state.session = msg.session;
    setStatus("asking", "Waiting for the user to allow viewing...");
  } else if (msg.type === "started") {
    state.session = msg.session;
    state.monitors = msg.monitors;
    state.monitor = msg.monitor;
    const select = $("monitor");
    select.replaceChildren();
    for (const mon of msg.monitors) {
      const option = document.createElement("option");
      option.value = String(mon.index);
      option.textContent = mon.index === 0
        ? `All (${mon.width}x${mon.height})`
        : `${mon.index}: ${mon.width}x${mon.height}${mon.primary ? " (primary)" : ""}`;
      option.selected = mon.index === msg.monitor;
      select.append(option);
    }
    setStatus("started", `Viewing (consent: ${msg.consent})`);
  } else if (msg.type === "refused") {
    state.reason = msg.reason;
    setStatus("refused", `Refused: ${msg.reason}${msg.error ? " - " + msg.error : ""}`);
  } else if (msg.type === "ended") {
    state.reason = msg.reason;
    setStatus("ended", `Ended: ${msg.reason}${msg.error ? " - " + msg.error : ""}`);
  } else if (msg.type === "error") {
    state.reason = msg.detail;
    setStatus("error", `Error ${msg.status}: ${msg.detail}`);
  }
}

async function onFrame(buffer) {
  const frame = parseFrame(buffer);
  if (frame === null) return;
  state.width = frame.width;
  state.height = frame.height;
  await painter.paint(frame);
  if (frame.encoding !== 0) {
    // H.264 (video.js decodes it); then the pointer, which travels apart.
    if (window.deskside.video) await window.deskside.video.paint(frame);
    if (frame.cursor) await painter.paint({ ...frame, encoding: 0, rects: [] });
  }
  if (frame.final) {
    const now = Date.now() / 1000;
    state.frames += 1;
    state.delay = Math.max(0, now - frame.capturedAt);
    state.delays.push(state.delay);
    if (state.delays.length > 500) state.delays.shift();
    send({ type: "ack", seq: frame.seq });
  }
  state.bytes += buffer.byteLength;
  recent.push([performance.now(), buffer.byteLength, frame.final ? 1 : 0]);
}

function updateStats() {
  const now = performance.now();
  while (recent.length && recent[0][0] < now - 2000) recent.shift();
  const bytes = recent.reduce((sum, r) => sum + r[1], 0);
  const frames = recent.reduce((sum, r) => sum + r[2], 0);
  state.bandwidth = bytes / 2;
  state.fps = frames / 2;
  const delay = state.delay === null ? "-" : `${Math.round(state.delay * 1000)} ms`;
  $("stats").textContent =
    `${state.fps.toFixed(1)} fps · ${(state.bandwidth * 8 / 1000).toFixed(0)} kbit/s · delay ${delay}`;
}
setInterval(updateStats, 500);

$("monitor").addEventListener("change", (e) => send({ type: "settings", monitor: Number(e.target.value) }));
$("quality").addEventListener("change", (e) => send({ type: "settings", quality: Number(e.target.value) }));
$("fps").addEventListener("change", (e) => send({ type: "settings", max_fps: Number(e.target.value) }));
$("refresh").addEventListener("click", () => send({ type: "keyframe" }));
$("stop").addEventListener("click", () => {
  send({ type: "close" });
  setStatus("ended", "Ended: you stopped viewing");
});
const fit = $("fit");
const applyFit = () => document.body.classList.toggle("fit", fit.checked);
fit.addEventListener("change", applyFit);
applyFit();

connect();
