// Guidance: the technician's pointer and drawings, sent to the user's screen (the
// agent's overlay draws them there) and shown here too, on a canvas over the screen.
// Coordinates are pixels of the frame (the canvas's own size), whatever the canvas
// is scaled to on the page. Messages are the wire messages GuidePointer, GuideDraw
// and GuideClear as JSON (see deskside/console/screenremote.py).

import { framePoint } from "./frames.js";

const d = window.deskside;
const $ = (id) => document.getElementById(id);
const layers = $("layers");
const layer = $("guide");
const tools = [...document.querySelectorAll("#guidance-tools [data-tool]")];
const colour = $("guide-colour");
const clearButton = $("guide-clear");

const MAX_POINTS = 1024;
const POINTER_INTERVAL = 33; // ms between pointer messages (30 a second at most)

const guide = {
  available: null, // null: not known yet; true / false once the agent said
  error: "",
  tool: null, // pointer | arrow | circle | line | text | null
  shapes: new Map(), // shape_id -> GuideDraw fields
  sent: 0,
  select,
};
d.guide = guide;

let counter = 0;
let drawing = null; // the shape being drawn
let lastPointer = 0;

function enabled() {
  return d.screen.phase === "started" && guide.available === true;
}

function updateTools() {
  const on = enabled();
  for (const button of tools) {
    button.disabled = !on;
    button.setAttribute("aria-pressed", String(on && guide.tool === button.dataset.tool));
  }
  colour.disabled = !on;
  clearButton.disabled = !on;
  layers.classList.toggle("tool-on", on && guide.tool !== null);
  const status = $("guide-status");
  if (guide.available === false) {
    status.textContent = "Guidance unavailable";
    status.title = guide.error;
  } else {
    status.textContent = "";
    status.title = "";
  }
}

function select(tool) {
  if (guide.tool === "pointer" && tool !== "pointer") sendPointer(0, 0, false);
  guide.tool = guide.tool === tool ? null : tool;
  updateTools();
}

function send(message) {
  if (!d.screen.session) return;
  d.send({ ...message, session_id: d.screen.session });
  guide.sent += 1;
}

function sendPointer(x, y, visible) {
  send({ type: "guide_pointer", x, y, visible });
}

function sendShape(shape) {
  guide.shapes.set(shape.shape_id, shape);
  render();
  send({ type: "guide_draw", ...shape });
}

// -- Drawing here --------------------------------------------------------------------

function render() {
  const canvas = d.canvas;
  if (layer.width !== canvas.width || layer.height !== canvas.height) {
    layer.width = canvas.width;
    layer.height = canvas.height;
  }
  const ctx = layer.getContext("2d");
  ctx.clearRect(0, 0, layer.width, layer.height);
  const all = [...guide.shapes.values()];
  if (drawing) all.push(drawing);
  for (const shape of all) paint(ctx, shape);
}

function paint(ctx, shape) {
  const pts = shape.points;
  ctx.strokeStyle = ctx.fillStyle = shape.colour;
  ctx.lineWidth = shape.width;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  if (shape.kind === "line") {
    ctx.moveTo(pts[0][0], pts[0][1]);
    for (const [x, y] of pts.slice(1)) ctx.lineTo(x, y);
    ctx.stroke();
  } else if (shape.kind === "circle") {
    const [cx, cy] = pts[0];
    const [rx, ry] = pts[pts.length - 1];
    ctx.arc(cx, cy, Math.hypot(rx - cx, ry - cy), 0, 2 * Math.PI);
    ctx.stroke();
  } else if (shape.kind === "arrow") {
    const [x0, y0] = pts[0];
    const [x1, y1] = pts[pts.length - 1];
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    const angle = Math.atan2(y1 - y0, x1 - x0);
    const head = 6 * shape.width + 8;
    for (const side of [-1, 1]) {
      ctx.moveTo(x1, y1);
      ctx.lineTo(x1 - head * Math.cos(angle + side * 0.45), y1 - head * Math.sin(angle + side * 0.45));
    }
    ctx.stroke();
  } else if (shape.kind === "text") {
    ctx.font = "bold 18px sans-serif";
    const metrics = ctx.measureText(shape.text);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(pts[0][0] - 2, pts[0][1] - 18, metrics.width + 4, 24);
    ctx.fillStyle = shape.colour;
    ctx.fillText(shape.text, pts[0][0], pts[0][1]);
  }
}

// -- Mouse on the canvas -------------------------------------------------------------

function newShape(kind, point) {
  counter += 1;
  return {
    shape_id: `g${Date.now().toString(36)}-${counter}`,
    kind,
    points: [point],
    colour: colour.value,
    width: 4,
    text: "",
  };
}

layers.addEventListener("mousedown", (event) => {
  if (!enabled() || guide.tool === null || event.button !== 0) return;
  event.preventDefault();
  const point = framePoint(d.canvas, event, Math.round);
  if (guide.tool === "text") {
    const text = (window.prompt("Text to show on the user's screen", "") || "").slice(0, 200);
    if (text) sendShape({ ...newShape("text", point), text });
    return;
  }
  if (guide.tool === "pointer") return;
  drawing = newShape(guide.tool, point);
  drawing.points.push(point);
  render();
});

layers.addEventListener("mousemove", (event) => {
  if (!enabled() || guide.tool === null) return;
  const point = framePoint(d.canvas, event, Math.round);
  if (guide.tool === "pointer") {
    const now = performance.now();
    if (now - lastPointer >= POINTER_INTERVAL) {
      lastPointer = now;
      sendPointer(point[0], point[1], true);
    }
    return;
  }
  if (!drawing) return;
  if (drawing.kind === "line") {
    const [lx, ly] = drawing.points[drawing.points.length - 1];
    if (Math.abs(point[0] - lx) + Math.abs(point[1] - ly) >= 2 && drawing.points.length < MAX_POINTS) {
      drawing.points.push(point);
    }
  } else {
    drawing.points[drawing.points.length - 1] = point;
  }
  render();
});

function finish(event) {
  if (!drawing) return;
  const shape = drawing;
  drawing = null;
  if (event && event.type === "mouseup") {
    const point = framePoint(d.canvas, event, Math.round);
    if (shape.kind === "line") {
      if (shape.points.length < MAX_POINTS) shape.points.push(point);
    } else {
      shape.points[shape.points.length - 1] = point;
    }
  }
  sendShape(shape);
}

window.addEventListener("mouseup", finish);
layers.addEventListener("mouseleave", () => {
  if (guide.tool === "pointer" && enabled()) sendPointer(0, 0, false);
});

for (const button of tools) {
  button.addEventListener("click", () => select(button.dataset.tool));
}
clearButton.addEventListener("click", () => {
  guide.shapes.clear();
  drawing = null;
  render();
  send({ type: "guide_clear" });
});

window.addEventListener("deskside:message", (event) => {
  const msg = event.detail;
  if (msg.type === "guidance") {
    guide.available = msg.available;
    guide.error = msg.error || "";
    updateTools();
  } else if (msg.type === "ended" || msg.type === "refused") {
    guide.shapes.clear();
    render();
  }
});
window.addEventListener("deskside:phase", updateTools);
updateTools();
