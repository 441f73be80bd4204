/**
 * Image sets on the GPU and the batches drawn from them.
 *
 * A split's images stay bytes on the GPU, four pixels to a u32 word (60000 x 784 floats would be
 * 188 MB, over WebGPU's 128 MiB binding limit; the bytes are 47 MB). A batch is a list of image
 * indices, uploaded as a small u32 tensor, from which one kernel gathers the pixels and makes them
 * what the likelihood reads (models/likelihood.ts): the 8-bit levels as 2v/255 - 1 (no draw), or
 * binarised, x ~ Bernoulli(pixel / 255) keyed by the pixel's index in the set (kernels/random.ts), or
 * dequantised. Training changes the key's offset every epoch, so each use of an image draws fresh bits;
 * an evaluation set keeps one fixed key, so it is binarised the same way in every batch and every run.
 */

import { binarize, type ByteImageMode, dequantize, packBytes, scaledLevels } from "../kernels/random.ts";
import type { RandomKey } from "../kernels/philox.ts";
import { reshape } from "../kernels/movement.ts";
import { keep, type Tensor, tensor } from "../kernels/tensor.ts";
import type { LoadedSplit } from "./datasets.ts";

/** Images on the GPU as bytes, with their labels on the CPU. */
export interface ImageSet {
  /** A name for messages (e.g. `fashion-mnist test`). */
  name: string;
  /** Number of images. */
  count: number;
  /** Image height. */
  height: number;
  /** Image width. */
  width: number;
  /** u8 pixels packed into u32 words, [count * height * width / 4] (long-lived). */
  bytes: Tensor;
  /** One label per image. */
  labels: Uint8Array;
}

/**
 * Uploads the first `limit` images (all by default) of a split (already checked by `loadSplit`);
 * with `expect`, images of another size are an error naming the split, its source and both sizes.
 */
export function imageSetOnGpu(
  split: LoadedSplit,
  limit?: number,
  expect?: { height: number; width: number },
): ImageSet {
  const [count, height, width] = split.images.dims;
  const name = `${split.dataset} ${split.split}`;
  if (split.images.dims.length !== 3) {
    throw new Error(`${name}: images must be N x rows x cols, got ${split.images.dims}`);
  }
  if (expect && (height !== expect.height || width !== expect.width)) {
    throw new Error(
      `${name} (from ${split.source}): the images are ${height}x${width}; the model takes ${expect.height}x${expect.width}`,
    );
  }
  if (count < 1) throw new Error(`${name} (from ${split.source}): the split holds no images`);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new Error(`${name}: the image limit must be a positive integer, got ${limit}`);
  }
  const n = Math.min(count, limit ?? count);
  return imageSetFromPixels(
    name,
    split.images.data.subarray(0, n * height * width),
    height,
    width,
    split.labels.data.slice(0, n),
  );
}

/**
 * Uploads gray levels (images of height x width, one after another) as an image set; labels default
 * to 0.
 */
export function imageSetFromPixels(
  name: string,
  pixels: Uint8Array,
  height: number,
  width: number,
  labels?: Uint8Array,
): ImageSet {
  const count = pixels.length / (height * width);
  if (!Number.isInteger(count) || count < 1) {
    throw new Error(`${name}: ${pixels.length} pixels is not a whole number of ${height}x${width} images`);
  }
  return {
    name,
    count,
    height,
    width,
    bytes: keep(tensor(packBytes(pixels), undefined, "u32")),
    labels: labels ?? new Uint8Array(count),
  };
}

/** Binarised images [B, height, width, 1] (NHWC) for the given image indices. */
export function binarizedBatch(set: ImageSet, indices: Uint32Array, key: RandomKey): Tensor {
  return inputBatch(set, indices, key, "binarize");
}

/**
 * The model's input for the given image indices, [B, height, width, 1] (NHWC), as the likelihood
 * reads its images (`Likelihood.input`, models/likelihood.ts; kernels/random.ts): binarised for the
 * Bernoulli, uniformly dequantised in [0, 1) for the Gaussian, the 8-bit levels as 2v/255 - 1 for the
 * logistic mixture. The same key gives the same images in any batch (the levels need none).
 */
export function inputBatch(
  set: ImageSet,
  indices: Uint32Array,
  key: RandomKey,
  mode: ByteImageMode = "binarize",
): Tensor {
  const rowBytes = set.height * set.width;
  const rows = tensor(indices, [indices.length], "u32");
  const flat = mode === "levels"
    ? scaledLevels(set.bytes, rows, rowBytes)
    : (mode === "dequantize" ? dequantize : binarize)(set.bytes, rows, rowBytes, key);
  return reshape(flat, [indices.length, set.height, set.width, 1]);
}
