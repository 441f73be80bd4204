/**
 * Random tensors from the counter-based generator (kernels/philox.ts): raw bits, uniform, standard
 * normal, Bernoulli, and two views of byte images: the dynamic binarisation x ~ Bernoulli(pixel / 255)
 * and the uniform dequantisation x = (pixel + u) / 256 (one kernel template, a branch each).
 *
 * Element i of a draw uses Philox block (i, offset) under key (seed, stream). None of these carries a
 * gradient (the reparameterised Gaussian, which does, lives in kernels/distributions.ts).
 */

import { wgsl } from "wgsl-preprocessor";
import { elementwiseGrid, elementwiseMain, launch } from "./launch.ts";
import { KEY_UNIFORMS, keyedBlockWgsl, keyUniforms, PHILOX_WGSL, type RandomKey } from "./philox.ts";
import { type KernelBody, type KernelSpec, memoSpec } from "./runtime/program.ts";
import { checkShape, type Shape, sizeOf } from "./shape.ts";
import { emptyTensor, type Tensor } from "./tensor.ts";

type Draw = "bits" | "uniform" | "normal" | "bernoulli";

function drawSpec({ draw, rows }: { draw: Draw; rows: boolean }): KernelBody {
  return {
    uniforms: [["n", "u32"], ...KEY_UNIFORMS],
    inputs: draw === "bernoulli" ? [["Prob", "f32"]] : [],
    outputs: [["Out", draw === "bits" ? "u32" : "f32"]],
    body: wgsl`${PHILOX_WGSL}${keyedBlockWgsl(rows)}
${elementwiseMain()}
#if ${draw === "bits"}
  // Four words per element: Out is [n, 4].
  let block = keyedBlock(i);
  Out[4u * i] = block.x;
  Out[4u * i + 1u] = block.y;
  Out[4u * i + 2u] = block.z;
  Out[4u * i + 3u] = block.w;
#elif ${draw === "uniform"}
  Out[i] = uniform01(keyedBlock(i).x);
#elif ${draw === "normal"}
  let block = keyedBlock(i);
  Out[i] = boxMuller(block.x, block.y);
#else
  Out[i] = select(0.0, 1.0, uniform01(keyedBlock(i).x) < Prob[i]);
#endif
}
`,
  };
}

const spec = (draw: Draw, key: RandomKey) =>
  memoSpec("random", { draw, rows: key.rowInvariant === true }, drawSpec);

function draw(kind: Draw, shape: Shape, key: RandomKey, inputs: Tensor[] = []): Tensor {
  checkShape(shape, kind);
  const n = sizeOf(shape);
  const out = emptyTensor(kind === "bits" ? [...shape, 4] : shape, kind === "bits" ? "u32" : "f32", kind);
  const rowSize = shape.length ? n / Math.max(1, shape[0]) : 1;
  launch(spec(kind, key), inputs, [out], { n, ...keyUniforms(key, kind, rowSize) }, elementwiseGrid(n), kind);
  return out;
}

/** The raw Philox blocks: u32 [...shape, 4], four words per element. */
export function randomBits(shape: Shape, key: RandomKey): Tensor {
  return draw("bits", shape, key);
}

/** Uniform in [0, 1) (24-bit resolution). */
export function uniform(shape: Shape, key: RandomKey): Tensor {
  return draw("uniform", shape, key);
}

/** Standard normal (Box-Muller). */
export function normal(shape: Shape, key: RandomKey): Tensor {
  return draw("normal", shape, key);
}

/** 1 with probability p (elementwise), else 0. */
export function bernoulli(p: Tensor, key: RandomKey): Tensor {
  if (p.dtype !== "f32") throw new Error(`bernoulli: probabilities must be f32, got ${p}`);
  return draw("bernoulli", p.shape, key, [p]);
}

/**
 * What `imagesFromBytes` makes of a byte: a Bernoulli bit, a uniformly dequantised value, or the
 * level itself on [-1, 1] ("levels": no randomness, the key is unused).
 */
export type ByteImageMode = "binarize" | "dequantize" | "levels";

const byteImageSpec = (mode: ByteImageMode, key: RandomKey): KernelSpec =>
  memoSpec("byte-image", { mode, rows: key.rowInvariant === true }, ({ mode, rows }) => ({
    uniforms: [["n", "u32"], ["rowBytes", "u32"], ...KEY_UNIFORMS],
    inputs: [["Bytes", "u32"], ["Index", "u32"]],
    outputs: [["Out", "f32"]],
    body: wgsl`${PHILOX_WGSL}${keyedBlockWgsl(rows)}
${elementwiseMain()}
  let row = i / P.rowBytes;
  let j = i % P.rowBytes;
  let image = Index[row];
  // The pixel's own index keys its draw: the same image gets the same bits in any batch (with a
  // row-invariant key, its index within the image: the same pixels get the same bits in any set).
  let pixel = image * P.rowBytes + j;
  let byte = (Bytes[pixel / 4u] >> (8u * (pixel % 4u))) & 0xffu;
#if ${mode === "levels"}
  // The 8-bit level v as x = 2v/255 - 1 (the discretized logistic mixture's input and target): no draw.
  Out[i] = f32(byte) * ${2 / 255} - 1.0;
#else
  let u24 = keyedBlock(pixel).x >> 8u;
#endif
#if ${mode === "binarize"}
  // u < byte / 255 exactly, in integers: u24 * 255 < byte * 2^24.
  Out[i] = select(0.0, 1.0, u24 * 255u < (byte << 24u));
#elif ${mode === "dequantize"}
  // (byte + u) / 256 with u uniform in [0, 1): a density on [0, 1) whose bin of width 1/256 is the byte.
  Out[i] = (f32(byte) + f32(u24) * 5.9604644775390625e-8) * 0.00390625;
#endif
}
`,
  }));

function imagesFromBytes(
  mode: ByteImageMode,
  bytes: Tensor,
  rows: Tensor,
  rowBytes: number,
  key: RandomKey,
): Tensor {
  if (bytes.dtype !== "u32" || rows.dtype !== "u32" || rows.rank !== 1) {
    throw new Error(`${mode}: expected packed u32 bytes and a u32 index vector, got ${bytes} and ${rows}`);
  }
  if (!Number.isInteger(rowBytes) || rowBytes < 1) {
    throw new Error(`${mode}: rowBytes must be >= 1, got ${rowBytes}`);
  }
  const out = emptyTensor([rows.size, rowBytes], "f32", mode);
  const n = rows.size * rowBytes;
  launch(
    byteImageSpec(mode, key),
    [bytes, rows],
    [out],
    { n, rowBytes, ...keyUniforms(key, mode, rowBytes) },
    elementwiseGrid(n),
    mode,
  );
  return out;
}

/**
 * Dynamic binarisation: for each image index in `rows` (u32 [B]), the `rowBytes` pixels of that
 * image in `bytes` (u8 values packed little-endian into u32 words) become 1 with probability
 * pixel / 255. Returns f32 [B, rowBytes]. Draws are keyed by the pixel's index in the whole image
 * set, so one key binarises each image the same way in every batch; change `key.offset` for fresh
 * bits (every epoch or step of training). Indices are not checked on the GPU: every entry of `rows`
 * must be below the number of images in `bytes`.
 */
export function binarize(bytes: Tensor, rows: Tensor, rowBytes: number, key: RandomKey): Tensor {
  return imagesFromBytes("binarize", bytes, rows, rowBytes, key);
}

/**
 * Uniform dequantisation (Theis et al. 2016, "A note on the evaluation of generative models"): each
 * pixel becomes (byte + u) / 256, u ~ U[0, 1) drawn as `binarize` draws its bits (same keys, same
 * layout), for a model with a density on [0, 1) such as the Gaussian likelihood (models/hvae.ts).
 */
export function dequantize(bytes: Tensor, rows: Tensor, rowBytes: number, key: RandomKey): Tensor {
  return imagesFromBytes("dequantize", bytes, rows, rowBytes, key);
}

/**
 * The 8-bit levels as they are, x = 2v/255 - 1 in [-1, 1], gathered like `binarize` (no draw): the
 * input and the target of the discretized logistic mixture likelihood (models/likelihood.ts).
 */
export function scaledLevels(bytes: Tensor, rows: Tensor, rowBytes: number): Tensor {
  return imagesFromBytes("levels", bytes, rows, rowBytes, { seed: 0, stream: 0, offset: 0 });
}

/** Packs u8 values into u32 words, little-endian (the layout `binarize` reads; hosts are little-endian). */
export function packBytes(values: Uint8Array): Uint32Array {
  const words = new Uint32Array(Math.ceil(values.length / 4));
  new Uint8Array(words.buffer).set(values);
  return words;
}
