// Remote control: "Request control" asks the user (a second consent on their screen);
// once granted, the canvas's mouse and the keyboard are sent as InputPointer and
// InputKey (frame coordinates; KeyboardEvent.code, key and modifiers), and only then.
// Moving their own mouse pauses it for the user for a few seconds; Stop on their
// side ends everything. See deskside/console/screenremote.py.

import { framePoint } from "./frames.js";

const d = window.deskside;
const $ = (id) => document.getElementById(id);
const layers = $("layers");
const button = $("request-control");
const status = $("control-status");

const MOVE_INTERVAL = 16; // ms between pointer moves sent
const BUTTONS = ["left", "middle", "right"];

const control = {
  state: "off", // off | asking | on | refused
  reason: "",
  refusedInput: 0,
  pausedUntil: 0,
  sent: 0,
};
d.control = control;

let lastMove = 0;
let pendingMove = null;

function live() {
  return d.screen.phase === "started";
}

function active() {
  return live() && control.state === "on" && !(d.guide && d.guide.tool);
}

function show() {
  button.disabled = !live() || control.state === "asking";
  button.textContent = control.state === "on" ? "Give control back"
    : control.state === "asking" ? "Asking the user..." : "Request control";
  status.dataset.state = control.state;
  layers.classList.toggle("control-on", control.state === "on");
  let text = "";
  if (control.state === "on") text = "You have control";
  if (control.state === "refused") text = `Control refused: ${control.reason}`;
  if (control.state === "off" && control.reason) text = `Control ended: ${control.reason}`;
  if (control.state === "on" && performance.now() < control.pausedUntil) {
    text = "Paused: the user is using their mouse";
  }
  status.textContent = text;
}

function send(message) {
  if (!d.screen.session) return;
  d.send({ ...message, session_id: d.screen.session });
  control.sent += 1;
}

function modifiers(event) {
  const held = [];
  if (event.shiftKey) held.push("shift");
  if (event.ctrlKey) held.push("ctrl");
  if (event.altKey) held.push("alt");
  if (event.metaKey) held.push("meta");
  return held;
}

function flushMove() {
  if (pendingMove) {
    send(pendingMove);
    pendingMove = null;
    lastMove = performance.now();
  }
}

button.addEventListener("click", () => {
  if (control.state === "on" || control.state === "asking") {
    send({ type: "control_release" });
  } else {
    control.reason = "";
    send({ type: "control_request" });
  }
});

layers.addEventListener("mousemove", (event) => {
  if (!active()) return;
  const [x, y] = framePoint(d.canvas, event);
  pendingMove = { type: "input_pointer", x, y, action: "move" };
  if (performance.now() - lastMove >= MOVE_INTERVAL) flushMove();
  else setTimeout(flushMove, MOVE_INTERVAL);
});

layers.addEventListener("mousedown", (event) => {
  if (!active()) return;
  event.preventDefault();
  document.activeElement?.blur?.();
  pendingMove = null;
  const [x, y] = framePoint(d.canvas, event);
  send({ type: "input_pointer", x, y, action: "down", button: BUTTONS[event.button] || "left" });
});

window.addEventListener("mouseup", (event) => {
  if (!active()) return;
  pendingMove = null;
  const [x, y] = framePoint(d.canvas, event);
  send({ type: "input_pointer", x, y, action: "up", button: BUTTONS[event.button] || "left" });
});

layers.addEventListener("contextmenu", (event) => {
  if (active()) event.preventDefault();
});

layers.addEventListener("wheel", (event) => {
  if (!active()) return;
  event.preventDefault();
  const [x, y] = framePoint(d.canvas, event);
  const step = (delta) => Math.max(-100, Math.min(100, Math.sign(delta) * Math.max(1, Math.round(Math.abs(delta) / 100))));
  send({
    type: "input_pointer", x, y, action: "wheel",
    wheel_x: event.deltaX ? step(event.deltaX) : 0,
    wheel_y: event.deltaY ? step(event.deltaY) : 0,
  });
}, { passive: false });

function onKey(event, down) {
  if (!active()) return;
  const target = event.target;
  if (target && (target.tagName === "INPUT" || target.tagName === "SELECT")) return;
  event.preventDefault();
  const code = /^[A-Za-z0-9]{0,32}$/.test(event.code) ? event.code : "";
  const key = (event.key || "").slice(0, 32);
  if (!key) return;
  send({ type: "input_key", code, key, down, modifiers: modifiers(event) });
}
window.addEventListener("keydown", (event) => onKey(event, true));
window.addEventListener("keyup", (event) => onKey(event, false));

window.addEventListener("deskside:message", (event) => {
  const msg = event.detail;
  if (msg.type === "control") {
    control.state = msg.state;
    control.reason = msg.reason || "";
    if (msg.state === "on" && d.guide && d.guide.tool) d.guide.select(d.guide.tool); // tool off
  } else if (msg.type === "control_paused") {
    control.pausedUntil = performance.now() + msg.seconds * 1000;
    setTimeout(show, msg.seconds * 1000 + 50);
  } else if (msg.type === "input_refused") {
    control.refusedInput += 1;
  } else if (msg.type === "ended" || msg.type === "refused") {
    control.state = "off";
  }
  show();
});
window.addEventListener("deskside:phase", show);
show();
