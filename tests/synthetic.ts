/**
 * Synthetic test data: 28x28 images (smooth blobs, shifted per image), binarised on the GPU like
 * real batches, and PNG files built without the project's encoder.
 */

import { parseIdx } from "../data/idx.ts";
import { crc32 } from "../data/png.ts";
import { type ImageSet, imageSetFromPixels, imageSetOnGpu, inputBatch } from "../data/loader.ts";
import type { ByteImageMode } from "../kernels/random.ts";
import type { Tensor } from "../kernels/tensor.ts";

/** The gray levels of `n` blob images, 784 bytes each. */
export function syntheticPixels(n: number): Uint8Array {
  const pixels = new Uint8Array(n * 784);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < 784; p++) {
      const r = Math.floor(p / 28) - 14 + (i % 3), c = (p % 28) - 14 + (i % 5);
      pixels[i * 784 + p] = Math.max(0, 255 - 3 * (r * r + c * c));
    }
  }
  return pixels;
}

/** An image set of `n` (< 256) blob images on the GPU (its bytes are kept: dispose them). */
export function syntheticSet(n: number): ImageSet {
  const header = new Uint8Array([0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 28, 0, 0, 0, 28]);
  const images = parseIdx(new Uint8Array([...header, ...syntheticPixels(n)]), "synthetic", "images");
  return imageSetOnGpu({
    dataset: "mnist",
    split: "test",
    images,
    labels: { dims: [n], data: new Uint8Array(n) },
    source: "",
  });
}

/** The bytes of `n` blob images of `image`'s shape (each channel's blob shifted its own way), NHWC. */
export function syntheticColourPixels(n: number, image: { height: number; width: number; channels: number }) {
  const { height: H, width: W, channels: C } = image;
  const pixels = new Uint8Array(n * H * W * C);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < H * W; p++) {
      for (let c = 0; c < C; c++) {
        const r = Math.floor(p / W) - H / 2 + ((i + c) % 3), q = (p % W) - W / 2 + ((i + 2 * c) % 5);
        pixels[(i * H * W + p) * C + c] = Math.max(0, 255 - 3 * (r * r + q * q));
      }
    }
  }
  return pixels;
}

/**
 * `n` blob images [n, 28, 28, 1] (or of `image`'s shape) as a likelihood reads them (binarised by
 * default).
 */
export function syntheticBatch(
  n: number,
  mode: ByteImageMode = "binarize",
  image?: { height: number; width: number; channels?: number },
): Tensor {
  const channels = image?.channels ?? 1;
  const set = image && (image.height !== 28 || image.width !== 28 || channels !== 1)
    ? imageSetFromPixels(
      "synthetic",
      syntheticColourPixels(n, { ...image, channels }),
      image.height,
      image.width,
      undefined,
      channels,
    )
    : syntheticSet(n);
  return inputBatch(
    set,
    Uint32Array.from({ length: n }, (_, i) => i),
    { seed: 1, stream: 1, offset: 0 },
    mode,
  );
}

const ascii = (s: string) => new TextEncoder().encode(s);

/**
 * A PNG built here, independently of eval/png.ts's encoder: `rows` of raw samples (channels per
 * pixel; for depths below 8, already packed, most significant bits first), each row with its own
 * filter type, the image data split over two IDAT chunks.
 */
export async function filteredPng(
  width: number,
  rows: Uint8Array[],
  channels: number,
  colour: number,
  filters: number[],
  depth = 8,
): Promise<Uint8Array> {
  const stride = Math.ceil((width * channels * depth) / 8);
  const bpp = Math.max(1, (channels * depth) / 8);
  const raw: number[] = [];
  rows.forEach((row, y) => {
    const prev = y > 0 ? rows[y - 1] : new Uint8Array(stride);
    const f = filters[y % filters.length];
    raw.push(f);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? row[i - bpp] : 0,
        b = prev[i],
        c = i >= bpp ? prev[i - bpp] : 0;
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c)
        ? a
        : Math.abs(p - b) <= Math.abs(p - c)
        ? b
        : c;
      const predictor = [0, a, b, (a + b) >> 1, paeth][f];
      raw.push((row[i] - predictor) & 0xff);
    }
  });
  const z = new Uint8Array(
    await new Response(
      new Blob([Uint8Array.from(raw)]).stream().pipeThrough(new CompressionStream("deflate")),
    )
      .arrayBuffer(),
  );
  const chunk = (type: string, data: Uint8Array) => {
    const body = new Uint8Array([...ascii(type), ...data]);
    const out = new Uint8Array(12 + data.length);
    const v = new DataView(out.buffer);
    v.setUint32(0, data.length);
    out.set(body, 4);
    v.setUint32(8 + data.length, crc32(body));
    return out;
  };
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, rows.length);
  ihdr.set([depth, colour, 0, 0, 0], 8);
  return new Uint8Array([
    137,
    80,
    78,
    71,
    13,
    10,
    26,
    10,
    ...chunk("IHDR", ihdr),
    ...chunk("IDAT", z.subarray(0, 5)),
    ...chunk("IDAT", z.subarray(5)), // split IDAT: the decoder must join them
    ...chunk("IEND", new Uint8Array(0)),
  ]);
}
