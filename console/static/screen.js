// The screen viewer: draws the frames relayed by the console on a canvas.
// No build step: a plain ES module. The binary frame layout is documented in
// deskside/console/screenrelay.py. The token comes from the URL fragment
// (#ticket=7&token=dsk_...), which the browser never sends to any server.

const params = new URLSearchParams(location.hash.slice(1));
const ticket = params.get("ticket");
const token = params.get("token");

const $ = (id) => document.getElementById(id);
const screen = $("screen");
const ctx = screen.getContext("2d");
const pointer = $("pointer");
const pctx = pointer.getContext("2d");

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

const MAGIC = 0x31465344; // "DSF1" little-endian
const shapes = new Map(); // pointer shape id -> { bitmap, hotX, hotY }
let cursor = null;
let chain = Promise.resolve();
const recent = []; // [time, bytes] of frames drawn in the last second or two

function setStatus(phase, text) {
  state.phase = phase;
  const el = $("status");
  el.dataset.state = phase;
  el.textContent = text;
  const live = phase === "started";
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
  for (const key of ["device", "monitor"]) {
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
  const view = new DataView(buffer);
  if (buffer.byteLength < 42 || view.getUint32(0, true) !== MAGIC) return;
  const seq = view.getUint32(4, true);
  const width = view.getUint16(8, true);
  const height = view.getUint16(10, true);
  const flags = view.getUint8(12);
  const encoding = view.getUint8(13);
  const capturedAt = view.getFloat64(16, true);
  const count = view.getUint16(24, true);
  let offset = 42;
  const shapeLength = view.getUint32(38, true);
  let shape = null;
  if (flags & 16) shape = new Uint8Array(buffer, offset, shapeLength);
  offset += shapeLength;
  if (width !== state.width || height !== state.height) {
    state.width = screen.width = pointer.width = width;
    state.height = screen.height = pointer.height = height;
  }
  if (encoding !== 0) {
    // Video frames are for the video module (WebCodecs); ask for tiles meanwhile.
    return;
  }
  const rects = [];
  for (let i = 0; i < count; i++) {
    const x = view.getUint16(offset, true);
    const y = view.getUint16(offset + 2, true);
    const length = view.getUint32(offset + 8, true);
    offset += 12;
    rects.push({ x, y, blob: new Blob([new Uint8Array(buffer, offset, length)], { type: "image/jpeg" }) });
    offset += length;
  }
  const bitmaps = await Promise.all(rects.map((r) => createImageBitmap(r.blob)));
  bitmaps.forEach((bitmap, i) => {
    ctx.drawImage(bitmap, rects[i].x, rects[i].y);
    bitmap.close();
  });
  if (flags & 4) {
    const shapeId = view.getUint32(34, true);
    if (shape !== null) {
      const bitmap = await createImageBitmap(new Blob([shape], { type: "image/png" }));
      shapes.set(shapeId, { bitmap, hotX: view.getUint16(30, true), hotY: view.getUint16(32, true) });
    }
    cursor = { x: view.getInt16(26, true), y: view.getInt16(28, true), visible: !!(flags & 8), shapeId };
    drawPointer();
  }
  if (flags & 2) {
    const now = Date.now() / 1000;
    state.frames += 1;
    state.delay = Math.max(0, now - capturedAt);
    state.delays.push(state.delay);
    if (state.delays.length > 500) state.delays.shift();
    send({ type: "ack", seq });
  }
  state.bytes += buffer.byteLength;
  recent.push([performance.now(), buffer.byteLength, (flags & 2) ? 1 : 0]);
}

function drawPointer() {
  pctx.clearRect(0, 0, pointer.width, pointer.height);
  if (!cursor || !cursor.visible) return;
  const shape = shapes.get(cursor.shapeId);
  if (shape) {
    pctx.drawImage(shape.bitmap, cursor.x - shape.hotX, cursor.y - shape.hotY);
  } else {
    // No shape from the agent: a plain arrow.
    pctx.fillStyle = "white";
    pctx.strokeStyle = "black";
    pctx.beginPath();
    pctx.moveTo(cursor.x, cursor.y);
    pctx.lineTo(cursor.x, cursor.y + 16);
    pctx.lineTo(cursor.x + 11, cursor.y + 11);
    pctx.closePath();
    pctx.fill();
    pctx.stroke();
  }
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
