/**
 * PNG (ISO/IEC 15948, W3C PNG 2nd edition) for the pictures we write and the images users score.
 *
 * Encoder: 8-bit grayscale or RGB, filter type 0 on every row, the zlib stream from the built-in
 * `CompressionStream("deflate")` (RFC 1950), chunks IHDR / IDAT / IEND, each with its CRC-32
 * (the reflected polynomial 0xEDB88320, table-driven).
 * Decoder: the signature and every chunk's CRC are checked; 8-bit, non-interlaced images of colour
 * type grayscale, grayscale + alpha, RGB or RGBA; the five row filters (None, Sub, Up, Average, Paeth);
 * for a grayscale model colour becomes gray by the Rec. 601 luma weights; for an RGB model
 * (`channels: 3`) the image must be RGB or RGBA (a gray one is an error: no silent conversion); alpha is
 * composited on black. Anything else (palette, 16-bit, interlaced) is an error naming the file and the
 * property.
 */

import { inflate } from "./inflate.ts";

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 of `bytes` (as in PNG, zip and gzip). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function through(
  bytes: Uint8Array,
  stream: CompressionStream | DecompressionStream,
): Promise<Uint8Array> {
  const out = new Response(new Blob([bytes as BlobPart]).stream().pipeThrough(stream));
  return new Uint8Array(await out.arrayBuffer());
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * An 8-bit PNG of `pixels` (row-major, `width` x `height`, 0 = black): grayscale, or RGB with
 * `channels` 3 (interleaved R, G, B per pixel).
 */
export async function encodePng(
  pixels: Uint8Array,
  width: number,
  height: number,
  channels: 1 | 3 = 1,
): Promise<Uint8Array> {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`encodePng: bad size ${width}x${height}`);
  }
  if (pixels.length !== width * height * channels) {
    throw new Error(`encodePng: ${pixels.length} bytes for ${width}x${height}x${channels}`);
  }
  const stride = width * channels;
  const raw = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  // Bit depth 8, colour type 0 (grayscale) or 2 (RGB), deflate, filter method 0, no interlace.
  header.set([8, channels === 3 ? 2 : 0, 0, 0, 0], 8);
  const parts = [
    new Uint8Array(SIGNATURE),
    chunk("IHDR", header),
    chunk("IDAT", await through(raw, new CompressionStream("deflate"))),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) [out.set(p, at), at += p.length];
  return out;
}

export interface DecodedPng {
  width: number;
  height: number;
  /** Gray levels, or RGB triples with `channels: 3`, row-major, 0 = black. */
  pixels: Uint8Array;
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * The size and colour of a PNG from its first 33 bytes (signature and IHDR), or null when they are
 * not a PNG's: for checking a file against a model before reading it whole.
 */
export function pngHeader(head: Uint8Array): { width: number; height: number; rgb: boolean } | null {
  if (head.length < 33 || SIGNATURE.some((b, i) => head[i] !== b)) return null;
  if (String.fromCharCode(...head.subarray(12, 16)) !== "IHDR") return null;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const colour = head[25];
  return { width: view.getUint32(16), height: view.getUint32(20), rgb: colour === 2 || colour === 6 };
}

/** Limits of `decodePng`, checked on the header before any image data is inflated. */
export interface PngLimits {
  /** The only size accepted (a model's input): any other is an error naming both sizes. */
  expect?: { width: number; height: number };
  /** The most pixels accepted (default 2^24: a 4096 x 4096 image). */
  maxPixels?: number;
  /** The channels wanted: 1 (gray levels, the default) or 3 (RGB: the PNG must be RGB or RGBA). */
  channels?: 1 | 3;
}

/**
 * Decodes a PNG file's bytes to gray levels; `name` is the file, for the errors. The size in the
 * header is checked against `limits` first, and the image data is inflated no further than that
 * size needs (a small file that claims or inflates to a huge image costs nothing).
 */
export async function decodePng(
  bytes: Uint8Array,
  name: string,
  limits: PngLimits = {},
): Promise<DecodedPng> {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new Error(`${name}: not a PNG file (bad signature)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 8, header: Uint8Array | null = null, ended = false;
  const idat: Uint8Array[] = [];
  while (at < bytes.length && !ended) {
    if (at + 12 > bytes.length) throw new Error(`${name}: truncated PNG (chunk header at byte ${at})`);
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (at + 12 + length > bytes.length) {
      throw new Error(`${name}: truncated PNG (chunk ${type} at byte ${at})`);
    }
    const stored = view.getUint32(at + 8 + length);
    if (crc32(bytes.subarray(at + 4, at + 8 + length)) !== stored) {
      throw new Error(`${name}: corrupt PNG (CRC mismatch in chunk ${type} at byte ${at})`);
    }
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") header = data;
    else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") ended = true;
    at += 12 + length;
  }
  if (!header || header.length !== 13) throw new Error(`${name}: PNG without a valid IHDR chunk`);
  if (!ended) throw new Error(`${name}: truncated PNG (no IEND chunk)`);
  const h = new DataView(header.buffer, header.byteOffset, 13);
  const width = h.getUint32(0), height = h.getUint32(4);
  const [depth, colour, , , interlace] = header.subarray(8);
  // 8-bit in every colour type; 1, 2 and 4 bits in grayscale (Omniglot's strokes are 1-bit PNGs).
  if (depth !== 8 && !(colour === 0 && (depth === 1 || depth === 2 || depth === 4))) {
    throw new Error(`${name}: PNG bit depth ${depth} is not supported (8-bit, or 1/2/4-bit grayscale)`);
  }
  const channels = CHANNELS[colour];
  if (!channels) {
    throw new Error(
      `${name}: PNG colour type ${colour} (${colour === 3 ? "palette" : "unknown"}) is not supported`,
    );
  }
  if (interlace !== 0) throw new Error(`${name}: interlaced PNGs are not supported`);
  const { expect, maxPixels = 2 ** 24, channels: wanted = 1 } = limits;
  if (wanted === 3 && channels < 3) {
    throw new Error(
      `${name}: a grayscale PNG; the model takes RGB images (save it as RGB: no silent conversion)`,
    );
  }
  if (expect && (width !== expect.width || height !== expect.height)) {
    throw new Error(
      `${name}: the image is ${width}x${height}; the model takes ${expect.width}x${expect.height} ` +
        `(resize it yourself: no silent resizing)`,
    );
  }
  if (width === 0 || height === 0 || width * height > maxPixels) {
    throw new Error(`${name}: a PNG of ${width}x${height} pixels is refused (at most ${maxPixels} pixels)`);
  }
  const compressed = new Uint8Array(idat.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of idat) [compressed.set(c, o), o += c.length];
  // Bytes per row, and the filters' "bytes per pixel" (1 for sub-byte depths, as the PNG spec says).
  const stride = Math.ceil((width * channels * depth) / 8);
  const bpp = Math.max(1, (channels * depth) / 8);
  const raw = await inflate(compressed, "deflate", `${name} (PNG image data)`, height * (stride + 1));
  if (raw.length < height * (stride + 1)) {
    throw new Error(`${name}: PNG image data holds ${raw.length} bytes, ${height * (stride + 1)} expected`);
  }
  const rows = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const cur = rows.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? rows.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? cur[i - bpp] : 0,
        b = prev[i],
        c = i >= bpp ? prev[i - bpp] : 0;
      const predictor = filter === 0
        ? 0
        : filter === 1
        ? a
        : filter === 2
        ? b
        : filter === 3
        ? (a + b) >> 1
        : filter === 4
        ? paeth(a, b, c)
        : -1;
      if (predictor < 0) throw new Error(`${name}: corrupt PNG (row ${y} has filter type ${filter})`);
      cur[i] = (src[i] + predictor) & 0xff;
    }
  }
  const pixels = new Uint8Array(width * height);
  if (depth < 8) {
    // Packed gray levels, most significant bits first, scaled to 0..255 (1-bit: 0 and 255).
    const max = (1 << depth) - 1, perByte = 8 / depth;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const byte = rows[y * stride + Math.floor(x / perByte)];
        const level = (byte >> (8 - depth * (1 + (x % perByte)))) & max;
        pixels[y * width + x] = Math.round((level * 255) / max);
      }
    }
    return { width, height, pixels };
  }
  if (wanted === 3) {
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) {
      const alpha = channels === 4 ? rows[i * 4 + 3] / 255 : 1;
      for (let c = 0; c < 3; c++) rgb[3 * i + c] = Math.round(rows[i * channels + c] * alpha);
    }
    return { width, height, pixels: rgb };
  }
  for (let i = 0; i < width * height; i++) {
    const p = rows.subarray(i * channels, (i + 1) * channels);
    const gray = channels <= 2 ? p[0] : 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
    const alpha = channels === 2 ? p[1] / 255 : channels === 4 ? p[3] / 255 : 1;
    pixels[i] = Math.round(gray * alpha);
  }
  return { width, height, pixels };
}
