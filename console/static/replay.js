// Plays a recorded screen session ("DSR1", see deskside/console/screenrelay.py):
// replay.html#session=ID&token=dsv_... (a replay link: the token stays out of
// requests' URLs and goes only into the Authorization header of the one request).

import { Painter, parseFrame } from "./frames.js";
import { H264Painter } from "./h264.js";

const params = new URLSearchParams(location.hash.slice(1));
const token = params.get("token") || "";
// Out of the address bar and the browser's history: the link is a secret.
params.delete("token");
history.replaceState(null, "", `${location.pathname}${location.search}#${params}`);
const $ = (id) => document.getElementById(id);
const painter = new Painter($("screen"), $("pointer"));
// Frames of the video mode; a recording starts with a keyframe (the agent sends one
// when a viewer joins), so nothing needs to be asked for.
const video = new H264Painter($("screen"));
const state = { phase: "loading", header: null, records: [], played: 0, done: false };
window.deskside = { replay: state, canvas: $("screen"), video };

function status(phase, text) {
  state.phase = phase;
  $("status").dataset.state = phase;
  $("status").textContent = text;
}

async function load() {
  const response = await fetch(
    `/api/v1/screens/${encodeURIComponent(params.get("session") || "")}/recording`,
    { headers: { Authorization: `Bearer ${token}` } },
  );
  if (!response.ok) {
    status("error", `Error ${response.status}: ${(await response.json()).detail || ""}`);
    return;
  }
  const buffer = await response.arrayBuffer();
  const view = new DataView(buffer);
  if (buffer.byteLength < 8 || view.getUint32(0, true) !== 0x31525344) { // "DSR1"
    status("error", "Not a recording");
    return;
  }
  const headerLength = view.getUint32(4, true);
  state.header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, headerLength)));
  let offset = 8 + headerLength;
  while (offset + 12 <= buffer.byteLength) {
    const length = view.getUint32(offset, true);
    const at = view.getFloat64(offset + 4, true);
    offset += 12;
    if (offset + length > buffer.byteLength) break;
    state.records.push({ at, frame: parseFrame(buffer.slice(offset, offset + length)) });
    offset += length;
  }
  const h = state.header;
  status("ready", `Ticket #${h.ticket}, ${h.requested_by}, ${h.started_at}: ${state.records.length} frames`);
  $("play").disabled = false;
}

async function play() {
  $("play").disabled = true;
  status("playing", "Playing");
  const speed = Number($("speed").value);
  const start = performance.now();
  for (const [index, record] of state.records.entries()) {
    const due = start + (record.at * 1000) / speed;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const frame = record.frame;
    if (frame) await painter.paint(frame); // sizes the canvas; draws JPEG tiles
    if (frame && frame.encoding === 1) {
      await video.paint(frame);
      if (frame.cursor) await painter.paint({ ...frame, encoding: 0, rects: [] });
    }
    state.played = index + 1;
    $("position").textContent = `${record.at.toFixed(1)} s`;
  }
  state.done = true;
  status("ended", "Done");
  $("play").disabled = false;
}

$("play").addEventListener("click", play);
load().then(() => {
  if (params.get("autoplay") && state.phase === "ready") play();
});
