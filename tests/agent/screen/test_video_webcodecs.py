"""The video mode's stream decodes in a real browser's WebCodecs (Debian's chromium).

The viewer will hand ``VideoFrame`` messages to ``VideoDecoder`` as they come: here
the encoder's chunks, its ``codec`` string and (in AVCC form) its ``description``
go to Chromium's decoder exactly that way, and the decoded pictures are compared
with the frames that went in.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Page, async_playwright

from deskside.agent.screen.video import VideoEncoder
from tests.agent.screen.test_video import pattern

CHROMIUM = "/usr/bin/chromium"
assert shutil.which(CHROMIUM), "run scripts/test.sh: it installs chromium"

# Decodes the chunks; answers each picture's RGBA pixels, base64-encoded.
DECODE = """
async ({config, chunks}) => {
  const pictures = [];
  let failure = null;
  const decoder = new VideoDecoder({
    output: (frame) => {
      const canvas = new OffscreenCanvas(frame.displayWidth, frame.displayHeight);
      const context = canvas.getContext("2d");
      context.drawImage(frame, 0, 0);
      frame.close();
      const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
      let text = "";
      for (let i = 0; i < pixels.length; i += 8192) {
        text += String.fromCharCode(...pixels.subarray(i, i + 8192));
      }
      pictures.push({width: canvas.width, height: canvas.height, rgba: btoa(text)});
    },
    error: (error) => { failure = String(error); },
  });
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  if (config.description) config.description = bytes(config.description);
  const support = await VideoDecoder.isConfigSupported(config);
  if (!support.supported) return {failure: "not supported: " + config.codec};
  decoder.configure(config);
  for (const chunk of chunks) {
    decoder.decode(new EncodedVideoChunk({
      type: chunk.key ? "key" : "delta", timestamp: chunk.timestamp, data: bytes(chunk.data),
    }));
  }
  await decoder.flush();
  decoder.close();
  return {failure, pictures};
}
"""


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    """A page of a secure context (WebCodecs needs one) in headless chromium."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            page = await browser.new_page()
            await page.route(
                "**/*",
                lambda route: route.fulfill(body="<!doctype html>", content_type="text/html"),
            )
            await page.goto("http://localhost/")  # localhost is a secure context
            yield page
        finally:
            await browser.close()


@pytest.mark.parametrize("avcc", [False, True], ids=["annexb", "avcc"])
async def test_chromium_decodes_the_stream(page: Page, avcc: bool) -> None:
    width, height = 320, 240
    encoder = VideoEncoder(width, height, avcc=avcc)
    sources = [pattern(width, height, t) for t in range(8)]
    chunks = []
    for t, source in enumerate(sources):
        if t == 5:
            encoder.request_keyframe()
        chunks += encoder.encode(source, t * 33_333)
    config: dict[str, Any] = {"codec": encoder.codec, "codedWidth": width, "codedHeight": height}
    if avcc:
        assert encoder.description is not None
        config["description"] = base64.b64encode(encoder.description).decode()
    result = await page.evaluate(
        DECODE,
        {
            "config": config,
            "chunks": [
                {
                    "key": chunk.keyframe,
                    "timestamp": chunk.timestamp_us,
                    "data": base64.b64encode(chunk.data).decode(),
                }
                for chunk in chunks
            ],
        },
    )
    assert result["failure"] is None
    pictures = result["pictures"]
    assert len(pictures) == len(sources)
    for picture, source in zip(pictures, sources, strict=True):
        assert (picture["width"], picture["height"]) == (width, height)
        rgba = np.frombuffer(base64.b64decode(picture["rgba"]), np.uint8)
        decoded = rgba.reshape(height, width, 4)[..., :3].astype(int)
        expected = source[..., 2::-1].astype(int)  # BGRA to RGB
        error = np.abs(decoded - expected)
        assert error.mean() < 4, error.mean()  # a wrong colour matrix gives 6 or more
