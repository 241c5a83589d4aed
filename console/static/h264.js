// H.264 frames (encoding 1) decoded with WebCodecs' VideoDecoder onto a canvas: the
// viewer's video mode (video.js) and the replay of a recording (replay.js) share it.
// A frame's rects, joined in order over its parts, are one Annex B access unit.

function hex(byte) {
  return byte.toString(16).padStart(2, "0");
}

// The WebCodecs codec string from the stream's SPS ("avc1.42c01f"), or null.
function codecOf(data) {
  for (let i = 0; i + 7 < data.length; i++) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1 && (data[i + 3] & 0x1f) === 7) {
      return `avc1.${hex(data[i + 4])}${hex(data[i + 5])}${hex(data[i + 6])}`;
    }
  }
  return null;
}

export const h264Supported = "VideoDecoder" in window && "EncodedVideoChunk" in window;

// Draws on `canvas`, which the caller sizes to the frame (frames.js's Painter does).
export class H264Painter {
  // needKeyframe(): called when decoding cannot go on without a keyframe.
  constructor(canvas, needKeyframe = () => {}) {
    this.canvas = canvas;
    this.needKeyframe = needKeyframe;
    this.decoded = 0;
    this.errors = 0;
    this.codec = null;
    this.decoder = null;
    this.configured = ""; // "codec WxH"
    this.pieces = [];
    this.piecesSeq = -1;
    this.timestamp = 0;
    this.waiting = []; // resolvers of frames given to the decoder, in order
  }

  drawn() {
    const resolve = this.waiting.shift();
    if (resolve) resolve();
  }

  makeDecoder() {
    const ctx = this.canvas.getContext("2d");
    return new VideoDecoder({
      output: (picture) => {
        ctx.drawImage(picture, 0, 0);
        picture.close();
        this.decoded += 1;
        this.drawn();
      },
      error: (error) => {
        console.error("video decoder", error);
        this.errors += 1;
        this.decoder = null;
        this.configured = "";
        while (this.waiting.length) this.drawn();
        this.needKeyframe();
      },
    });
  }

  // Decode (a part of) a frame; resolves once it is drawn (or given up on).
  async paint(frame) {
    if (!h264Supported || frame.encoding !== 1) return;
    if (frame.seq !== this.piecesSeq) {
      this.pieces = [];
      this.piecesSeq = frame.seq;
    }
    for (const rect of frame.rects) this.pieces.push(rect.data);
    if (!frame.final) return;
    const size = this.pieces.reduce((sum, p) => sum + p.length, 0);
    const data = new Uint8Array(size);
    let at = 0;
    for (const piece of this.pieces) {
      data.set(piece, at);
      at += piece.length;
    }
    this.pieces = [];
    const width = frame.width & ~1;
    const height = frame.height & ~1;
    if (frame.keyframe) {
      const codec = codecOf(data);
      const key = `${codec} ${width}x${height}`;
      if (codec && (this.decoder === null || key !== this.configured)) {
        if (this.decoder === null || this.decoder.state === "closed") {
          this.decoder = this.makeDecoder();
        }
        this.decoder.configure({
          codec,
          codedWidth: width,
          codedHeight: height,
          optimizeForLatency: true,
        });
        this.configured = key;
        this.codec = codec;
      }
    }
    if (this.decoder === null || !this.configured) {
      this.needKeyframe(); // joined mid-stream: start from a keyframe
      return;
    }
    this.timestamp += 33333;
    const shown = new Promise((resolve) => {
      this.waiting.push(resolve);
      setTimeout(resolve, 500); // never hold the acknowledgements for long
    });
    this.decoder.decode(
      new EncodedVideoChunk({ type: frame.keyframe ? "key" : "delta", timestamp: this.timestamp, data }),
    );
    await shown;
  }

  close() {
    if (this.decoder && this.decoder.state !== "closed") this.decoder.close();
    this.decoder = null;
    this.configured = "";
  }
}
