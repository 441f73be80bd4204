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
import { shapeName } from "./dataset_names.ts";

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
  /** Channels per pixel: 1 (grayscale) or 3 (RGB, interleaved: height x width x channels bytes an image). */
  channels: number;
  /** u8 pixels packed into u32 words, [count * height * width * channels / 4] (long-lived). */
  bytes: Tensor;
  /** One label per image. */
  labels: Uint8Array;
}

/**
 * Uploads the first `limit` images (all by default) of a split (already checked by `loadSplit`);
 * with `expect`, images of another size or channel count are an error naming the split, its source
 * and both shapes.
 */
export function imageSetOnGpu(
  split: LoadedSplit,
  limit?: number,
  expect?: { height: number; width: number; channels?: number },
): ImageSet {
  const dims = split.images.dims;
  const [count, height, width] = dims;
  const channels = dims[3] ?? 1;
  const name = `${split.dataset} ${split.split}`;
  if (dims.length !== 3 && !(dims.length === 4 && (channels === 1 || channels === 3))) {
    throw new Error(`${name}: images must be N x rows x cols (or N x rows x cols x 3, RGB), got ${dims}`);
  }
  if (
    expect && (height !== expect.height || width !== expect.width || channels !== (expect.channels ?? 1))
  ) {
    throw new Error(
      `${name} (from ${split.source}): the images are ${
        shapeName(height, width, channels)
      }; the model takes ${shapeName(expect.height, expect.width, expect.channels ?? 1)}`,
    );
  }
  if (count < 1) throw new Error(`${name} (from ${split.source}): the split holds no images`);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new Error(`${name}: the image limit must be a positive integer, got ${limit}`);
  }
  const n = Math.min(count, limit ?? count);
  return imageSetFromPixels(
    name,
    split.images.data.subarray(0, n * height * width * channels),
    height,
    width,
    split.labels.data.slice(0, n),
    channels,
  );
}

/**
 * Uploads pixel bytes (images of height x width x channels, one after another) as an image set;
 * labels default to 0.
 */
export function imageSetFromPixels(
  name: string,
  pixels: Uint8Array,
  height: number,
  width: number,
  labels?: Uint8Array,
  channels = 1,
): ImageSet {
  const count = pixels.length / (height * width * channels);
  if (!Number.isInteger(count) || count < 1) {
    const what = channels === 1 ? `${height}x${width}` : `${height}x${width}x${channels}`;
    throw new Error(`${name}: ${pixels.length} bytes is not a whole number of ${what} images`);
  }
  return {
    name,
    count,
    height,
    width,
    channels,
    bytes: keep(tensor(packBytes(pixels), undefined, "u32")),
    labels: labels ?? new Uint8Array(count),
  };
}

/** Binarised images [B, height, width, channels] (NHWC) for the given image indices. */
export function binarizedBatch(set: ImageSet, indices: Uint32Array, key: RandomKey): Tensor {
  return inputBatch(set, indices, key, "binarize");
}

/**
 * The model's input for the given image indices, [B, height, width, channels] (NHWC), as the likelihood
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
  const rowBytes = set.height * set.width * set.channels;
  const rows = tensor(indices, [indices.length], "u32");
  const flat = mode === "levels"
    ? scaledLevels(set.bytes, rows, rowBytes)
    : (mode === "dequantize" ? dequantize : binarize)(set.bytes, rows, rowBytes, key);
  return reshape(flat, [indices.length, set.height, set.width, set.channels]);
}
