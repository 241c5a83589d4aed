// The video mode: H.264 frames (encoding 1) decoded with WebCodecs' VideoDecoder
// (h264.js) and drawn on the screen canvas. Where the browser has no VideoDecoder, the page tells
// the console it decodes tiles only, and the agent stays with tiles. The mode
// (tiles, video, auto) is the "Mode" setting, or #mode=... in the URL fragment.

import { H264Painter, h264Supported as supported } from "./h264.js";

const d = window.deskside;
const $ = (id) => document.getElementById(id);
const select = $("mode");
const decoder = new H264Painter(d.canvas, () => d.send({ type: "keyframe" }));

const video = {
  supported,
  mode: "tiles", // what the console says the agent uses
  get decoded() {
    return decoder.decoded;
  },
  get errors() {
    return decoder.errors;
  },
  get codec() {
    return decoder.codec;
  },
  paint: (frame) => decoder.paint(frame),
};
d.video = video;

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

select.addEventListener("change", sendMode);
window.addEventListener("deskside:message", (event) => {
  const msg = event.detail;
  if (msg.type === "started") {
    sendMode();
  } else if (msg.type === "mode") {
    video.mode = msg.mode;
  } else if (msg.type === "ended" || msg.type === "refused") {
    decoder.close();
  }
});
