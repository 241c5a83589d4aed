// Decoding and drawing the binary frames of a screen session (live or replayed).
// The layout is documented in deskside/console/screenrelay.py.

const MAGIC = 0x31465344; // "DSF1" little-endian

// The frame pixel [x, y] under a mouse event on a (possibly scaled) canvas, within
// the frame; snap rounds the fractions (Math.floor: the pixel under the pointer).
export function framePoint(canvas, event, snap = Math.floor) {
  const box = canvas.getBoundingClientRect();
  const x = ((event.clientX - box.left) * canvas.width) / box.width;
  const y = ((event.clientY - box.top) * canvas.height) / box.height;
  return [
    Math.max(0, Math.min(canvas.width - 1, snap(x))),
    Math.max(0, Math.min(canvas.height - 1, snap(y))),
  ];
}

// One frame (part) as an object, or null if it is not one.
export function parseFrame(buffer) {
  const view = new DataView(buffer);
  if (buffer.byteLength < 42 || view.getUint32(0, true) !== MAGIC) return null;
  const flags = view.getUint8(12);
  const frame = {
    seq: view.getUint32(4, true),
    width: view.getUint16(8, true),
    height: view.getUint16(10, true),
    keyframe: !!(flags & 1),
    final: !!(flags & 2),
    encoding: view.getUint8(13),
    capturedAt: view.getFloat64(16, true),
    rects: [],
    cursor: null,
  };
  const count = view.getUint16(24, true);
  const shapeLength = view.getUint32(38, true);
  let offset = 42;
  if (flags & 4) {
    frame.cursor = {
      x: view.getInt16(26, true),
      y: view.getInt16(28, true),
      visible: !!(flags & 8),
      hotX: view.getUint16(30, true),
      hotY: view.getUint16(32, true),
      shapeId: view.getUint32(34, true),
      shape: (flags & 16) ? new Uint8Array(buffer, offset, shapeLength) : null,
    };
  }
  offset += shapeLength;
  for (let i = 0; i < count; i++) {
    const x = view.getUint16(offset, true);
    const y = view.getUint16(offset + 2, true);
    const length = view.getUint32(offset + 8, true);
    offset += 12;
    frame.rects.push({ x, y, data: new Uint8Array(buffer, offset, length) });
    offset += length;
  }
  return frame;
}

// Draws frames on a screen canvas and the pointer on a canvas above it.
export class Painter {
  constructor(screen, pointer) {
    this.screen = screen;
    this.ctx = screen.getContext("2d");
    this.pointer = pointer;
    this.pctx = pointer.getContext("2d");
    this.shapes = new Map(); // pointer shape id -> { bitmap, hotX, hotY }
    this.cursor = null;
  }

  // Draw one parsed frame (JPEG rects); resolves once it is on the canvas.
  async paint(frame) {
    if (frame.width !== this.screen.width || frame.height !== this.screen.height) {
      this.screen.width = this.pointer.width = frame.width;
      this.screen.height = this.pointer.height = frame.height;
    }
    if (frame.encoding !== 0) return; // video frames are for the video module
    const bitmaps = await Promise.all(
      frame.rects.map((r) => createImageBitmap(new Blob([r.data], { type: "image/jpeg" }))),
    );
    bitmaps.forEach((bitmap, i) => {
      this.ctx.drawImage(bitmap, frame.rects[i].x, frame.rects[i].y);
      bitmap.close();
    });
    if (frame.cursor) {
      const c = frame.cursor;
      if (c.shape) {
        const bitmap = await createImageBitmap(new Blob([c.shape], { type: "image/png" }));
        this.shapes.set(c.shapeId, { bitmap, hotX: c.hotX, hotY: c.hotY });
      }
      this.cursor = c;
      this.drawPointer();
    }
  }

  drawPointer() {
    const { pctx, pointer, cursor } = this;
    pctx.clearRect(0, 0, pointer.width, pointer.height);
    if (!cursor || !cursor.visible) return;
    const shape = this.shapes.get(cursor.shapeId);
    if (shape) {
      pctx.drawImage(shape.bitmap, cursor.x - shape.hotX, cursor.y - shape.hotY);
      return;
    }
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
