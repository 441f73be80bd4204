/**
 * Layers as pure functions of parameter trees: convolution, transposed convolution, dense (`dense`,
 * `initDense`), each
 * optionally weight-normalised (w = g v / ||v||), and the residual blocks of the HVAE presets.
 *
 * Parameter trees are plain objects, so their dotted paths are the checkpoint names:
 * `{ weight, bias }`, or `{ weight, gain, bias }` with weight normalisation (`weight` is then v).
 * Initialisation: PyTorch's defaults, W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). With weight
 * normalisation (per output channel, also for transposed convs, as hvae-oodd) v ~ N(0, 2 / fan_in)
 * (Kaiming normal, the reference's) and g = ||v||, so w = v until `initWeightNormFromData` runs the
 * data-dependent initialisation of Salimans & Kingma (2016, section 3) on a first batch.
 *
 * Residual block (the `small` preset's; docs/design.md section 1):
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
  div,
  full,
  matmul,
  mean,
  mul,
  neg,
  pad as padOp,
  relu,
  reshape,
  silu,
  slice,
  sqrt,
  square,
  sub,
  weightNorm,
} from "../autograd/ops.ts";
import { keep, type Tensor, tensor } from "../kernels/tensor.ts";
import type { Padding2d } from "../kernels/conv_geometry.ts";
import type { Rng } from "./rng.ts";

/** The activation functions the models use. */
export type Activation = "relu" | "silu";

/** relu(x) or silu(x) = x sigmoid(x). */
export function activate(kind: Activation, x: Tensor): Tensor {
  return kind === "relu" ? relu(x) : silu(x);
}

/** The parameters of a dense, convolution or transposed-convolution layer. */
export interface LinearParams {
  /** Conv [kh, kw, Ci, Co], transposed conv [kh, kw, Co, Ci], dense [in, out]; v under weight norm. */
  weight: Tensor;
  /** Per output unit (weight norm only): the last axis of the weight, axis 2 of a transposed conv's. */
  gain?: Tensor;
  /** Per output unit. */
  bias: Tensor;
}

function randomData(n: number, draw: () => number): Float32Array {
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = draw();
  return data;
}

/**
 * Weight and bias; with weight norm, v ~ N(0, 2 / fan_in) and gain = ||v|| per output unit (the index
 * of `unitAxis` of the weight).
 */
function initLinear(
  shape: number[],
  fanIn: number,
  outputs: number,
  rng: Rng,
  weightNorm: boolean,
  unitAxis = shape.length - 1,
): LinearParams {
  const bound = 1 / Math.sqrt(fanIn), std = Math.sqrt(2 / fanIn);
  const uniform = () => (2 * rng.uniform() - 1) * bound;
  const size = shape.reduce((a, b) => a * b, 1);
  const w = randomData(size, weightNorm ? () => std * rng.normal() : uniform);
  const params: LinearParams = {
    weight: tensor(w, shape),
    bias: tensor(randomData(outputs, uniform), [outputs]),
  };
  if (weightNorm) {
    const units = shape[unitAxis];
    const inner = shape.slice(unitAxis + 1).reduce((a, b) => a * b, 1);
    const sq = new Float64Array(units);
    w.forEach((x, j) => sq[Math.floor(j / inner) % units] += x * x);
    params.gain = tensor(Float32Array.from(sq, Math.sqrt), [units]);
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
  // Weight norm normalises per output channel, axis 2 of [k, k, co, ci] (the reference: dim 1 of
  // PyTorch's [ci, co, k, k]).
  return initLinear([k, k, co, ci], k * k * ci, co, rng, weightNorm, 2);
}

/** A dense layer from `inputs` to `outputs` features. */
export function initDense(inputs: number, outputs: number, rng: Rng, weightNorm = false): LinearParams {
  return initLinear([inputs, outputs], inputs, outputs, rng, weightNorm);
}

/** The effective weight: v itself, or g v / ||v|| per output unit (`unitAxis` of the weight). */
function effectiveWeight(p: LinearParams, unitAxis: number): Tensor {
  return p.gain ? weightNorm(p.weight, p.gain, unitAxis) : p.weight;
}

/** The weight-normalised layers already initialised by the running `initWeightNormFromData`. */
let initialising: Set<LinearParams> | null = null;

/**
 * A linear layer's output apply(w, b). While `initWeightNormFromData` runs, a weight-normalised layer
 * met for the first time is initialised from its input instead (Salimans & Kingma 2016, section 3, as
 * hvae-oodd's data_dependent_init): with g = 1 and b = 0 its output y has per-channel mean m and
 * (unbiased) variance s^2; then g = 1 / sqrt(s^2 + 1e-8), b = -m g, and the layer returns (y - m) g,
 * which is what it now computes, so the layers after it initialise on normalised features.
 */
function linearOutput(p: LinearParams, unitAxis: number, apply: (w: Tensor, b: Tensor) => Tensor): Tensor {
  if (!initialising || !p.gain || initialising.has(p)) return apply(effectiveWeight(p, unitAxis), p.bias);
  initialising.add(p);
  const units = p.gain.shape[0];
  const y = apply(weightNorm(p.weight, full([units], 1), unitAxis), full([units], 0));
  const axes = y.shape.map((_, i) => i).slice(0, -1);
  const n = y.size / units;
  const m = mean(y, axes);
  const centred = sub(y, m);
  const variance = mul(mean(square(centred), axes), n / Math.max(n - 1, 1));
  const g = div(1, sqrt(add(variance, 1e-8)));
  p.gain.dispose();
  p.bias.dispose();
  p.gain = keep(g);
  p.bias = keep(neg(mul(m, g)));
  return mul(centred, g);
}

/**
 * Runs `forward` (a pass of the model on a first batch) with data-dependent initialisation: every
 * weight-normalised layer it reaches gets gain and bias from the statistics of its output, in the
 * order the pass meets them. The LinearParams objects of the tree are updated in place: their old
 * gain and bias tensors are released, the new ones live outside any scope like the rest of the tree.
 * Without weight normalisation nothing changes. Run it without a tape (noGrad or plainly).
 */
export function initWeightNormFromData<T>(forward: () => T): T {
  if (initialising) throw new Error("initWeightNormFromData: already running");
  initialising = new Set();
  try {
    return forward();
  } finally {
    initialising = null;
  }
}

/**
 * A convolution layer: stride 1 and "same" padding by default (with weight norm where the layer has
 * a gain).
 */
/** conv(x) + b, or with `activation` conv(act(x)) + b as one op (autograd/ops.ts `ConvOptions`). */
export function convLayer(
  p: LinearParams,
  x: Tensor,
  stride = 1,
  padding: "same" | number = "same",
  activation?: Activation,
): Tensor {
  return linearOutput(p, 3, (w, b) => conv2d(x, w, b, { stride, padding, activation }));
}

/**
 * Transposed conv with the crop rules of kernels/conv.ts ("same": output = input x stride); PyTorch's
 * padding p with output_padding q is the crop [[p, p - q], [p, p - q]].
 */
export function convTransposeLayer(
  p: LinearParams,
  x: Tensor,
  stride: number,
  padding: Padding2d,
  activation?: Activation,
): Tensor {
  return linearOutput(p, 2, (w, b) => conv2dTranspose(x, w, b, { stride, padding, activation }));
}

/** y = x W + b over the last axis. */
export function dense(p: LinearParams, x: Tensor): Tensor {
  return linearOutput(p, 1, (w, b) => add(matmul(x, w), b));
}

/** 2x nearest-neighbour upsampling of NHWC x, as a broadcast (differentiable). */
export function upsampleNearest2x(x: Tensor): Tensor {
  const [B, H, W, C] = x.shape;
  const wide = broadcastTo(reshape(x, [B, H, 1, W, 1, C]), [B, H, 2, W, 2, C]);
  return reshape(wide, [B, 2 * H, 2 * W, C]);
}

/** A residual block that keeps the size (`res`), halves it (`down`) or doubles it (`up`). */
export type BlockKind = "res" | "down" | "up";

/**
 * Two families of residual block:
 *   "small"    the CPU preset's: strided conv pad k/2, 2x2 average-pool shortcut down, nearest 2x
 *              upsampling shortcut up, 1x1 conv where channels change;
 *   "havtorn"  the reference backbone's (hvae-oodd; docs/design.md section 1): TF-"same" strided
 *              conv, AvgPool k3 s2 "same" (divisor 9) shortcut down, no shortcut up, zero-padded channels
 *              where they grow, the first channels kept where they shrink (hvae-oodd's
 *              ResidualConnectionConv2d); with `skip`, a transposed conv (stride 2) of act(skip) from the stage
 *              above is added after conv1.
 * `preact` applies act(x) before conv1; `residual` adds the shortcut. Both on by default.
 */
export type BlockStyle = "small" | "havtorn";

/** How a block is wired (`block`). */
export interface BlockOptions {
  /** The block family (`BlockStyle`). */
  style: BlockStyle;
  /** Apply the activation to the block's input before conv1. */
  preact: boolean;
  /** Add the shortcut to the output. */
  residual: boolean;
}

/** The parameters of a residual block. */
export interface BlockParams {
  /** The first convolution. */
  conv1: LinearParams;
  /** The second convolution (strided in a `down` block, transposed in an `up` block). */
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
  // Each activation feeds one convolution, so it goes in as the convolution's `activation` option.
  let h = convLayer(p.conv1, x, 1, "same", o.preact ? act : undefined);
  if (p.skip && skip) {
    h = add(h, convTransposeLayer(p.skip, skip, 2, "same", act));
  }
  let y: Tensor;
  let short: Tensor | null = null;
  if (kind === "res") y = convLayer(p.conv2, h, 1, "same", act);
  else if (kind === "down") y = convLayer(p.conv2, h, 2, havtorn ? "same" : pad, act);
  else y = convTransposeLayer(p.conv2, h, 2, havtorn ? "same" : [[pad, pad - 1], [pad, pad - 1]], act);
  if (!o.residual || (havtorn && kind === "up")) return y;
  short = x;
  const C = y.shape[3];
  if (p.shortcut) short = convLayer(p.shortcut, short, 1, 0);
  else if (short.shape[3] < C) short = pad4(short, C - short.shape[3]);
  // Fewer channels out than in ("havtorn" style, a narrowing decoder): the shortcut keeps the first C.
  else if (short.shape[3] > C) short = slice(short, [0, 0, 0, 0], [...short.shape.slice(0, 3), C]);
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
