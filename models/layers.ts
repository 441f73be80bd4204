/**
 * Layers as pure functions of parameter trees: convolution, transposed convolution, dense (`dense`,
 * `initDense`), each
 * optionally weight-normalised (w = g v / ||v||), and the residual blocks of the HVAE presets.
 *
 * Parameter trees are plain objects, so their dotted paths are the checkpoint names:
 * `{ weight, bias }`, or `{ weight, gain, bias }` with weight normalisation (`weight` is then v).
 * Initialisation: PyTorch's defaults, W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); with weight
 * normalisation v is drawn the same way and g = ||v|| per output unit, so w = v at the start (the
 * reference's data-dependent initialisation is not done; see models/presets.ts).
 *
 * Residual block (the `small` preset's, SPEC and issue text):
 *   y = shortcut(x) + conv2(act(conv1(act(x))))
 *   res:  conv1, conv2 k x k stride 1 ("same"); shortcut identity
 *   down: conv2 stride 2 (pad k/2); shortcut 2x2 average pooling
 *   up:   conv2 a stride-2 transposed conv (pad k/2, output padding 1); shortcut 2x nearest upsampling
 * and a 1x1 conv on the shortcut where the channel count changes.
 */

import {
  add,
  avgPool2d,
  broadcastTo,
  conv2d,
  conv2dTranspose,
  matmul,
  mul,
  pad as padOp,
  relu,
  reshape,
  sigmoid,
  weightNorm,
} from "../autograd/ops.ts";
import { type Tensor, tensor } from "../kernels/tensor.ts";
import type { Padding2d } from "../kernels/conv.ts";
import { type Rng } from "./rng.ts";

export type Activation = "relu" | "silu";

/** relu(x) or silu(x) = x sigmoid(x). */
export function activate(kind: Activation, x: Tensor): Tensor {
  return kind === "relu" ? relu(x) : mul(x, sigmoid(x));
}

export interface LinearParams {
  /** Conv [kh, kw, Ci, Co], transposed conv [kh, kw, Co, Ci], dense [in, out]; v under weight norm. */
  weight: Tensor;
  /** Per output unit (weight norm only). */
  gain?: Tensor;
  bias: Tensor;
}

function uniformData(n: number, bound: number, rng: Rng): Float32Array {
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (2 * rng.uniform() - 1) * bound;
  return data;
}

/** Weight and bias (and, with weight norm, gain = ||v|| per unit of the weight's last axis). */
function initLinear(
  shape: number[],
  fanIn: number,
  outputs: number,
  rng: Rng,
  weightNorm: boolean,
): LinearParams {
  const bound = 1 / Math.sqrt(fanIn);
  const size = shape.reduce((a, b) => a * b, 1);
  const w = uniformData(size, bound, rng);
  const params: LinearParams = {
    weight: tensor(w, shape),
    bias: tensor(uniformData(outputs, bound, rng), [outputs]),
  };
  if (weightNorm) {
    const units = shape[shape.length - 1], rows = size / units;
    const gain = new Float32Array(units);
    for (let c = 0; c < units; c++) {
      let s = 0;
      for (let r = 0; r < rows; r++) s += w[r * units + c] ** 2;
      gain[c] = Math.sqrt(s);
    }
    params.gain = tensor(gain, [units]);
  }
  return params;
}

/** A k x k convolution from ci to co channels. */
export function initConv(k: number, ci: number, co: number, rng: Rng, weightNorm = false): LinearParams {
  return initLinear([k, k, ci, co], k * k * ci, co, rng, weightNorm);
}

/** A k x k transposed convolution from ci to co channels (filter [k, k, co, ci]). */
export function initConvTranspose(
  k: number,
  ci: number,
  co: number,
  rng: Rng,
  weightNorm = false,
): LinearParams {
  // Weight norm normalises per output unit; for [k, k, co, ci] the last axis is ci, so the norm is
  // taken per input channel here (the reference normalises dim 0 of PyTorch's [ci, co, k, k] alike).
  return initLinear([k, k, co, ci], k * k * ci, co, rng, weightNorm);
}

/** A dense layer from `inputs` to `outputs` features. */
export function initDense(inputs: number, outputs: number, rng: Rng, weightNorm = false): LinearParams {
  return initLinear([inputs, outputs], inputs, outputs, rng, weightNorm);
}

/** The effective weight: v itself, or g v / ||v||. */
function effectiveWeight(p: LinearParams): Tensor {
  return p.gain ? weightNorm(p.weight, p.gain) : p.weight;
}

export function convLayer(p: LinearParams, x: Tensor, stride = 1, padding: "same" | number = "same"): Tensor {
  return conv2d(x, effectiveWeight(p), p.bias, { stride, padding });
}

/**
 * Transposed conv with the crop rules of kernels/conv.ts ("same": output = input x stride); PyTorch's
 * padding p with output_padding q is the crop [[p, p - q], [p, p - q]].
 */
export function convTransposeLayer(p: LinearParams, x: Tensor, stride: number, padding: Padding2d): Tensor {
  return conv2dTranspose(x, effectiveWeight(p), p.bias, { stride, padding });
}

/** y = x W + b over the last axis. */
export function dense(p: LinearParams, x: Tensor): Tensor {
  return add(matmul(x, effectiveWeight(p)), p.bias);
}

/** 2x nearest-neighbour upsampling of NHWC x, as a broadcast (differentiable). */
export function upsampleNearest2x(x: Tensor): Tensor {
  const [B, H, W, C] = x.shape;
  const wide = broadcastTo(reshape(x, [B, H, 1, W, 1, C]), [B, H, 2, W, 2, C]);
  return reshape(wide, [B, 2 * H, 2 * W, C]);
}

export type BlockKind = "res" | "down" | "up";

/**
 * Two families of residual block:
 *   "small"    the CPU preset's: strided conv pad k/2, 2x2 average-pool shortcut down, nearest 2x
 *              upsampling shortcut up, 1x1 conv where channels change;
 *   "havtorn"  the reference backbone's (shared/notes/paper-anchors.md section 3.1): TF-"same" strided
 *              conv, AvgPool k3 s2 "same" (divisor 9) shortcut down, no shortcut up, zero-padded channels
 *              where they grow; with `skip`, a transposed conv (stride 2) of act(skip) from the stage
 *              above is added after conv1.
 * `preact` applies act(x) before conv1; `residual` adds the shortcut. Both on by default.
 */
export type BlockStyle = "small" | "havtorn";

export interface BlockOptions {
  style: BlockStyle;
  preact: boolean;
  residual: boolean;
}

export interface BlockParams {
  conv1: LinearParams;
  conv2: LinearParams;
  /** 1x1 conv on the shortcut when the channel count changes ("small" style). */
  shortcut?: LinearParams;
  /** Transposed conv bringing the stage above's block output to this block's size ("havtorn" skips). */
  skip?: LinearParams;
}

/** Parameters of a block from ci to co channels; `skipChannels` adds a skip transposed conv. */
export function initBlock(
  kind: BlockKind,
  k: number,
  ci: number,
  co: number,
  rng: Rng,
  weightNorm = false,
  style: BlockStyle = "small",
  skipChannels = 0,
): BlockParams {
  const params: BlockParams = {
    conv1: initConv(k, ci, co, rng, weightNorm),
    conv2: kind === "up"
      ? initConvTranspose(k, co, co, rng, weightNorm)
      : initConv(k, co, co, rng, weightNorm),
  };
  if (ci !== co && style === "small") params.shortcut = initConv(1, ci, co, rng, weightNorm);
  if (skipChannels > 0) params.skip = initConvTranspose(k, skipChannels, co, rng, weightNorm);
  return params;
}

/**
 * y = shortcut(x) + conv2(act(conv1(act(x)) [+ skipOp(act(skip))])) for a res / down / up block
 * (`preact` and `residual` switch the first act and the shortcut).
 */
export function block(
  kind: BlockKind,
  p: BlockParams,
  x: Tensor,
  act: Activation,
  o: BlockOptions = { style: "small", preact: true, residual: true },
  skip?: Tensor,
): Tensor {
  const k = p.conv1.weight.shape[0];
  const pad = Math.floor(k / 2);
  const havtorn = o.style === "havtorn";
  let h = convLayer(p.conv1, o.preact ? activate(act, x) : x, 1, "same");
  if (p.skip && skip) {
    h = add(h, convTransposeLayer(p.skip, activate(act, skip), 2, "same"));
  }
  const a = activate(act, h);
  let y: Tensor;
  let short: Tensor | null = null;
  if (kind === "res") y = convLayer(p.conv2, a, 1, "same");
  else if (kind === "down") y = convLayer(p.conv2, a, 2, havtorn ? "same" : pad);
  else y = convTransposeLayer(p.conv2, a, 2, havtorn ? "same" : [[pad, pad - 1], [pad, pad - 1]]);
  if (!o.residual || (havtorn && kind === "up")) return y;
  short = x;
  const C = y.shape[3];
  if (p.shortcut) short = convLayer(p.shortcut, short, 1, 0);
  else if (short.shape[3] < C) short = pad4(short, C - short.shape[3]);
  if (kind === "down") {
    short = havtorn
      ? avgPool2d(short, { kernel: 3, stride: 2, padding: "same" })
      : avgPool2d(short, { kernel: 2, stride: 2 });
  } else if (kind === "up") short = upsampleNearest2x(short);
  return add(short, y);
}

/** Zero channels appended to NHWC x. */
function pad4(x: Tensor, extra: number): Tensor {
  return padOp(x, [[0, 0], [0, 0], [0, 0], [0, extra]]);
}
