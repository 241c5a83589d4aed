// The video mode: H.264 frames (encoding 1) decoded with WebCodecs' VideoDecoder and
// drawn on the screen canvas. Where the browser has no VideoDecoder, the page tells
// the console it decodes tiles only, and the agent stays with tiles. The mode
// (tiles, video, auto) is the "Mode" setting, or #mode=... in the URL fragment.
// A frame's rects, joined in order over its parts, are one Annex B access unit.

const d = window.deskside;
const $ = (id) => document.getElementById(id);
const select = $("mode");
const supported = "VideoDecoder" in window && "EncodedVideoChunk" in window;

const video = {
  supported,
  mode: "tiles", // what the console says the agent uses
  decoded: 0,
  errors: 0,
  codec: null,
  paint,
};
d.video = video;

let decoder = null;
let configured = ""; // "codec WxH"
let pieces = [];
let piecesSeq = -1;
let timestamp = 0;
const waiting = []; // resolvers of frames given to the decoder, in order

const params = new URLSearchParams(location.hash.slice(1));
if (["tiles", "video", "auto"].includes(params.get("mode"))) select.value = params.get("mode");
if (!supported) {
  select.value = "tiles";
  select.disabled = true;
  select.title = "This browser cannot decode video (no WebCodecs): tiles only";
}

function sendMode() {
  d.send({ type: "mode", mode: supported ? select.value : "tiles", video: supported });
}

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

function drawn() {
  const resolve = waiting.shift();
  if (resolve) resolve();
}

function makeDecoder() {
  const ctx = d.canvas.getContext("2d");
  return new VideoDecoder({
    output: (picture) => {
      ctx.drawImage(picture, 0, 0);
      picture.close();
      video.decoded += 1;
      drawn();
    },
    error: (error) => {
      console.error("video decoder", error);
      video.errors += 1;
      decoder = null;
      configured = "";
      while (waiting.length) drawn();
      d.send({ type: "keyframe" });
    },
  });
}

async function paint(frame) {
  if (!supported || frame.encoding !== 1) return;
  if (frame.seq !== piecesSeq) {
    pieces = [];
    piecesSeq = frame.seq;
  }
  for (const rect of frame.rects) pieces.push(rect.data);
  if (!frame.final) return;
  const size = pieces.reduce((sum, p) => sum + p.length, 0);
  const data = new Uint8Array(size);
  let at = 0;
  for (const piece of pieces) {
    data.set(piece, at);
    at += piece.length;
  }
  pieces = [];
  const width = frame.width & ~1;
  const height = frame.height & ~1;
  if (frame.keyframe) {
    const codec = codecOf(data);
    const key = `${codec} ${width}x${height}`;
    if (codec && (decoder === null || key !== configured)) {
      if (decoder === null || decoder.state === "closed") decoder = makeDecoder();
      decoder.configure({ codec, codedWidth: width, codedHeight: height, optimizeForLatency: true });
      configured = key;
      video.codec = codec;
    }
  }
  if (decoder === null || !configured) {
    d.send({ type: "keyframe" }); // joined mid-stream: start from a keyframe
    return;
  }
  timestamp += 33333;
  const shown = new Promise((resolve) => {
    waiting.push(resolve);
    setTimeout(resolve, 500); // never hold the acknowledgements for long
  });
  decoder.decode(new EncodedVideoChunk({ type: frame.keyframe ? "key" : "delta", timestamp, data }));
  await shown;
}

select.addEventListener("change", sendMode);
window.addEventListener("deskside:message", (event) => {
  const msg = event.detail;
  if (msg.type === "started") {
    sendMode();
  } else if (msg.type === "mode") {
    video.mode = msg.mode;
  } else if (msg.type === "ended" || msg.type === "refused") {
    if (decoder && decoder.state !== "closed") decoder.close();
    decoder = null;
  }
});
