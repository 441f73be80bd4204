/**
 * PNG (eval/png.ts): CRC-32's check value, encoder output that decodes (signature, chunk CRCs,
 * dimensions, pixels), all five row filters and colour types in the decoder against files filtered
 * here, and corrupt, truncated or unsupported files rejected with the file's name.
 */

import assert from "node:assert/strict";
import { crc32, decodePng, encodePng } from "../data/png.ts";
import { imageGrid } from "../eval/grid.ts";
import { createRng } from "./helpers.ts";
import { filteredPng } from "./synthetic.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

/** The chunks of a PNG file, checked independently of the decoder. */
function chunksOf(bytes: Uint8Array): { type: string; data: Uint8Array; crcOk: boolean }[] {
  assert.deepEqual(Array.from(bytes.subarray(0, 8)), [137, 80, 78, 71, 13, 10, 26, 10], "signature");
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const out = [];
  for (let at = 8; at < bytes.length;) {
    const length = view.getUint32(at);
    const type = new TextDecoder().decode(bytes.subarray(at + 4, at + 8));
    const data = bytes.subarray(at + 8, at + 8 + length);
    out.push({
      type,
      data,
      crcOk: crc32(bytes.subarray(at + 4, at + 8 + length)) === view.getUint32(at + 8 + length),
    });
    at += 12 + length;
  }
  return out;
}

Deno.test("png: CRC-32 check value", () => {
  assert.equal(crc32(ascii("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

Deno.test("png: encoded files have valid chunks and decode to the same pixels", async () => {
  const rng = createRng(1);
  for (const [w, h] of [[1, 1], [28, 28], [37, 5]]) {
    const pixels = Uint8Array.from({ length: w * h }, () => Math.floor(rng.uniform() * 256));
    const png = await encodePng(pixels, w, h);
    const chunks = chunksOf(png);
    assert.deepEqual(chunks.map((c) => c.type), ["IHDR", "IDAT", "IEND"]);
    assert.ok(chunks.every((c) => c.crcOk), "chunk CRCs");
    const ihdr = new DataView(chunks[0].data.buffer, chunks[0].data.byteOffset);
    assert.deepEqual([ihdr.getUint32(0), ihdr.getUint32(4), chunks[0].data[8], chunks[0].data[9]], [
      w,
      h,
      8,
      0,
    ]);
    const back = await decodePng(png, "round trip");
    assert.deepEqual([back.width, back.height], [w, h]);
    assert.deepEqual(back.pixels, pixels);
  }
  await assert.rejects(encodePng(new Uint8Array(5), 2, 2), /5 bytes for 2x2x1/);
});

Deno.test("png: the decoder undoes all five filters, joins IDAT chunks, and converts colour to gray", async () => {
  const rng = createRng(2);
  const w = 7, h = 10;
  for (const [colour, channels] of [[0, 1], [4, 2], [2, 3], [6, 4]]) {
    const rows = Array.from(
      { length: h },
      () => Uint8Array.from({ length: w * channels }, () => Math.floor(rng.uniform() * 256)),
    );
    const png = await filteredPng(w, rows, channels, colour, [0, 1, 2, 3, 4]);
    const got = await decodePng(png, `colour ${colour}`);
    const expected = Array.from({ length: w * h }, (_, i) => {
      const p = rows[Math.floor(i / w)].subarray((i % w) * channels, (i % w + 1) * channels);
      const gray = channels <= 2 ? p[0] : 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
      const alpha = channels === 2 ? p[1] / 255 : channels === 4 ? p[3] / 255 : 1;
      return Math.round(gray * alpha);
    });
    assert.deepEqual(Array.from(got.pixels), expected, `colour type ${colour}`);
  }
});

Deno.test("png: corrupt, truncated and unsupported files are rejected with the file's name", async () => {
  const good = await encodePng(new Uint8Array(16).fill(9), 4, 4);
  await assert.rejects(decodePng(ascii("GIF89a.."), "a.gif"), /a\.gif: not a PNG file/);
  const flipped = good.slice();
  flipped[45] ^= 0xff; // inside IDAT's data (the chunk starts at byte 33)
  await assert.rejects(decodePng(flipped, "bad.png"), /bad\.png: corrupt PNG \(CRC mismatch in chunk IDAT/);
  await assert.rejects(decodePng(good.subarray(0, good.length - 14), "cut.png"), /cut\.png: truncated PNG/);
  const palette = await filteredPng(2, [new Uint8Array(2)], 1, 3, [0]);
  await assert.rejects(decodePng(palette, "p.png"), /p\.png: PNG colour type 3 \(palette\) is not supported/);
});

Deno.test("grid: tiles land where they should, scaled, with gaps", () => {
  const a = new Float32Array([0, 1, 1, 0]), b = new Float32Array([0.2, 0.2, 0.2, 0.2]);
  const g = imageGrid([[a, null], [null, b]], 2, 2, { scale: 2, gap: 1 });
  assert.deepEqual([g.width, g.height], [11, 11]);
  const at = (x: number, y: number) => g.pixels[y * g.width + x];
  assert.equal(at(0, 0), 128); // gap
  assert.equal(at(1, 1), 0); // a[0,0] scaled
  assert.equal(at(3, 1), 255); // a[0,1]
  assert.equal(at(4, 2), 255);
  assert.equal(at(1, 3), 255); // a[1,0]
  assert.equal(at(6, 1), 128); // the empty cell
  assert.equal(at(6, 6), 51); // b = 0.2, from (6, 6) to (9, 9)
  assert.equal(at(9, 9), 51);
  assert.equal(at(10, 10), 128);
  assert.throws(() => imageGrid([[new Float32Array(3)]], 2, 2), /tile \[0\]\[0\] has 3 values/);
});

Deno.test("png: 1-, 2- and 4-bit grayscale rows unpack to 0..255, with the filters on whole bytes", async () => {
  const width = 11, height = 3;
  for (const depth of [1, 2, 4]) {
    const max = (1 << depth) - 1;
    const levels = Array.from(
      { length: height },
      (_, y) => Array.from({ length: width }, (_, x) => (x * 3 + y) % (max + 1)),
    );
    const stride = Math.ceil((width * depth) / 8);
    const rows = levels.map((row) => {
      const packed = new Uint8Array(stride);
      row.forEach((level, x) =>
        packed[Math.floor((x * depth) / 8)] |= level << (8 - depth - ((x * depth) % 8))
      );
      return packed;
    });
    const png = await filteredPng(width, rows, 1, 0, [0, 1, 4], depth);
    const decoded = await decodePng(png, `gray${depth}.png`);
    assert.deepEqual([decoded.width, decoded.height], [width, height]);
    assert.deepEqual(
      Array.from(decoded.pixels),
      levels.flat().map((l) => Math.round((l * 255) / max)),
      `depth ${depth}`,
    );
  }
  await assert.rejects(
    decodePng(await filteredPng(2, [new Uint8Array(1)], 3, 2, [0], 4), "rgb4.png"),
    /bit depth 4 is not supported/,
  );
});
