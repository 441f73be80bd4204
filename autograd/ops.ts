/**
 * The differentiable ops users call: each runs its kernel (kernels/) and records itself on the
 * active tape (autograd/tape.ts) so that its VJP rule (autograd/rules.ts) can run in the backward
 * pass. Outside `valueAndGrad` the recording is a no-op.
 *
 * Binary ops take numbers on either side (`mul(x, 2)`, `sub(1, x)`): the number travels in the
 * kernel's uniforms, so it costs no upload. Comparisons return f32 masks (1 / 0) and carry no
 * gradient.
 */

import { binary, type BinaryOp, where as whereKernel } from "../kernels/binary.ts";
import { matmul as matmulKernel, type MatmulOptions } from "../kernels/matmul.ts";
import { convBackwardInput, convForward, type InputActivation } from "../kernels/conv.ts";
import {
  conv2dGeometry,
  type Conv2dOptions,
  conv2dTransposeGeometry,
  type ConvGeometry,
} from "../kernels/conv_geometry.ts";
import * as mv from "../kernels/movement.ts";
import { reduce } from "../kernels/reduce.ts";
import { distribution, type DistributionOp, SIGMA_LOG2, type SigmaMap } from "../kernels/distributions.ts";
import type { RandomKey } from "../kernels/philox.ts";
import { avgPoolForward, type PoolDivisor } from "../kernels/avgpool.ts";
import { logisticMixtureLogLik as logisticMixtureKernel } from "../kernels/logistic_mixture.ts";
import { weightNormForward } from "../kernels/weightnorm.ts";
import { normalizeAxes, type Shape } from "../kernels/shape.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { unary, type UnaryOp } from "../kernels/unary.ts";
import { type Operand, record } from "./tape.ts";

const un = (op: Exclude<UnaryOp, "sign" | "pow">) => (x: Tensor): Tensor => record(op, [x], unary(op, x));

/** -x */
export const neg: (x: Tensor) => Tensor = un("neg");
/** |x| */
export const abs: (x: Tensor) => Tensor = un("abs");
/** e^x */
export const exp: (x: Tensor) => Tensor = un("exp");
/** Natural logarithm. */
export const log: (x: Tensor) => Tensor = un("log");
/** log(1 + x), accurate for small x. */
export const log1p: (x: Tensor) => Tensor = un("log1p");
/** e^x - 1, accurate for small x. */
export const expm1: (x: Tensor) => Tensor = un("expm1");
/** Square root. */
export const sqrt: (x: Tensor) => Tensor = un("sqrt");
/** x * x */
export const square: (x: Tensor) => Tensor = un("square");
/** 1 / x */
export const reciprocal: (x: Tensor) => Tensor = un("reciprocal");
/** max(x, 0) */
export const relu: (x: Tensor) => Tensor = un("relu");
/** 1 / (1 + e^-x), stable for large |x|. */
export const sigmoid: (x: Tensor) => Tensor = un("sigmoid");
/** x sigmoid(x) (SiLU), one kernel each way. */
export const silu: (x: Tensor) => Tensor = un("silu");
/** log(1 + e^x), stable for large |x|. */
export const softplus: (x: Tensor) => Tensor = un("softplus");
/** Hyperbolic tangent. */
export const tanh: (x: Tensor) => Tensor = un("tanh");

/** sign(x) in {-1, 0, 1}; no gradient. */
export function sign(x: Tensor): Tensor {
  return unary("sign", x);
}

/** x^p for a scalar exponent p (negative x allowed for integer p). */
export function pow(x: Tensor, p: number): Tensor {
  return record("pow", [x], unary("pow", x, p), { p });
}

const bin =
  (op: BinaryOp & ("add" | "sub" | "mul" | "div" | "maximum" | "minimum")) => (a: Operand, b: Operand) =>
    record(op, [a, b], binary(op, a, b));

/** a + b, broadcasting. */
export const add: (a: Operand, b: Operand) => Tensor = bin("add");
/** a - b, broadcasting. */
export const sub: (a: Operand, b: Operand) => Tensor = bin("sub");
/** a * b, broadcasting. */
export const mul: (a: Operand, b: Operand) => Tensor = bin("mul");
/** a / b, broadcasting. */
export const div: (a: Operand, b: Operand) => Tensor = bin("div");
/** Elementwise max; on ties the gradient is split evenly. */
export const maximum: (a: Operand, b: Operand) => Tensor = bin("maximum");
/** Elementwise min; on ties the gradient is split evenly. */
export const minimum: (a: Operand, b: Operand) => Tensor = bin("minimum");

/** 1 where a > b, else 0 (f32 mask; no gradient). */
export const greater = (a: Operand, b: Operand): Tensor => binary("greater", a, b);
/** 1 where a >= b, else 0. */
export const greaterEqual = (a: Operand, b: Operand): Tensor => binary("greaterEqual", a, b);
/** 1 where a < b, else 0. */
export const less = (a: Operand, b: Operand): Tensor => binary("less", a, b);
/** 1 where a <= b, else 0. */
export const lessEqual = (a: Operand, b: Operand): Tensor => binary("lessEqual", a, b);
/** 1 where a == b, else 0. */
export const equal = (a: Operand, b: Operand): Tensor => binary("equal", a, b);
/** 1 where a != b, else 0. */
export const notEqual = (a: Operand, b: Operand): Tensor => binary("notEqual", a, b);

/** cond != 0 ? a : b, broadcasting all three; a and b may be numbers. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  return record("where", [cond, a, b], whereKernel(cond, a, b));
}

/** The axes a reduction runs over: one, several, or (undefined) all. Negative axes count from the end. */
export type Axes = number | readonly number[] | undefined;

/** Sum over `axes` (all by default). */
export function sum(x: Tensor, axes?: Axes, keepdims = false): Tensor {
  return record("sum", [x], reduce("sum", x, axes, keepdims), { axes, keepdims });
}

/** Mean over `axes` (all by default). */
export function mean(x: Tensor, axes?: Axes, keepdims = false): Tensor {
  const ax = normalizeAxes(axes, x.rank, "mean");
  const n = ax.reduce((acc, a) => acc * x.shape[a], 1);
  return record("mean", [x], reduce("sum", x, axes, keepdims, n > 0 ? 1 / n : NaN), { axes, keepdims });
}

/** Max over `axes` (all by default); the gradient is split evenly between tied maxima. */
export function max(x: Tensor, axes?: Axes, keepdims = false): Tensor {
  return record("max", [x], reduce("max", x, axes, keepdims), { axes, keepdims });
}

/** log(sum(exp(x))) over `axes`, computed as m + log(sum(exp(x - m))) with m the max. */
export function logsumexp(x: Tensor, axes?: Axes, keepdims = false): Tensor {
  const m = reduce("max", x, axes, true);
  const shifted = binary("sub", x, m);
  const e = unary("exp", shifted);
  const s = reduce("sum", e, axes, true);
  const ls = unary("log", s);
  const y = binary("add", ls, m);
  for (const tmp of [m, shifted, e, s, ls]) tmp.dispose();
  let out = y;
  if (!keepdims) {
    const ax = normalizeAxes(axes, x.rank, "logsumexp");
    out = mv.reshape(y, x.shape.filter((_, i) => !ax.includes(i)));
    y.dispose();
  }
  return record("logsumexp", [x], out, { axes, keepdims });
}

/** Same data, new shape (one entry may be -1); a view, no copy. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  return record("reshape", [x], mv.reshape(x, shape));
}

/** out.shape[i] = x.shape[perm[i]]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  return record("permute", [x], mv.permute(x, perm), { perm: [...perm] });
}

/** Swaps the last two axes (or the two given). */
export function transpose(x: Tensor, axis1 = -2, axis2 = -1): Tensor {
  const [a, b] = [axis1 < 0 ? axis1 + x.rank : axis1, axis2 < 0 ? axis2 + x.rank : axis2];
  const perm = x.shape.map((_, i) => i === a ? b : i === b ? a : i);
  return permute(x, perm);
}

/** Materialises x broadcast to `shape`. */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  return record("broadcastTo", [x], mv.broadcastTo(x, shape));
}

/** x[begin:end] per axis (negative indices count from the end). */
export function slice(x: Tensor, begin: readonly number[], end?: readonly (number | undefined)[]): Tensor {
  const { start } = mv.resolveSlice(x, begin, end);
  return record("slice", [x], mv.slice(x, begin, end), { start });
}

/** Pads each axis with [before, after] elements of `value`. */
export function pad(x: Tensor, pads: readonly (readonly [number, number])[], value = 0): Tensor {
  return record("pad", [x], mv.pad(x, pads, value), { pads: pads.map(([a, b]) => [a, b]) });
}

/** Joins tensors along `axis`. */
export function concat(parts: readonly Tensor[], axis = 0): Tensor {
  const out = mv.concat(parts, axis);
  return record("concat", parts, out, { axis: axis < 0 ? axis + parts[0].rank : axis });
}

/**
 * op(a) @ op(b) over the last two axes, broadcasting batch axes (see kernels/matmul.ts); the kernel
 * family and tile are the adapter's (the kernel's own `tiling` and `kernel` options are for tests).
 */
export function matmul(a: Tensor, b: Tensor, options: Omit<MatmulOptions, "tiling" | "kernel"> = {}): Tensor {
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  return record("matmul", [a, b], matmulKernel(a, b, { transA, transB }), { transA, transB });
}

/** The same values (a view) with no gradient flowing back through them: it is simply not recorded. */
export function stopGradient(x: Tensor): Tensor {
  return mv.reshape(x, x.shape);
}

/** A tensor of `shape` filled with `value`. */
export function full(shape: Shape, value: number, dtype: "f32" | "u32" = "f32"): Tensor {
  return mv.full(shape, value, dtype);
}

/** Zeros of `shape`. */
export function zeros(shape: Shape): Tensor {
  return mv.full(shape, 0);
}

/** Ones of `shape`. */
export function ones(shape: Shape): Tensor {
  return mv.full(shape, 1);
}

/**
 * Options of a convolution op: stride and padding, and `activation`: convolve act(x) instead of x, as
 * one differentiable op whose input gradient applies act' on the way out (kernels/conv.ts
 * `ActivationGrad`: one pass over the gradient fewer than `conv2d(silu(x), ...)`, the same values).
 */
export interface ConvOptions extends Conv2dOptions {
  /** Convolve act(x): "relu" or "silu"; none by default. */
  activation?: InputActivation;
}

/** A convolution op: input x, filter w, an optional bias and the stride, padding and activation options. */
export type ConvolutionOp = (x: Tensor, w: Tensor, bias?: Tensor | null, options?: ConvOptions) => Tensor;

/** act(x) for a convolution's `activation` option (not recorded: the convolution records x). */
function activated(x: Tensor, activation: InputActivation | undefined): Tensor {
  return activation ? unary(activation, x) : x;
}

/** The attributes of a convolution: its geometry, and the activated input when there is one. */
function convAttrs(geometry: ConvGeometry, input: Tensor, activation: InputActivation | undefined) {
  return activation ? { geometry, activation: { op: activation, input } } : { geometry };
}

/** A convolution's operands as the tape records them: the bias only when there is one. */
const convOperands = (x: Tensor, w: Tensor, bias: Tensor | null) => (bias ? [x, w, bias] : [x, w]);

/**
 * 2-D convolution of NHWC input x [B, H, W, Ci] with filter w [kh, kw, Ci, Co], plus bias [Co].
 * See kernels/conv.ts for the layout and the padding rules.
 */
export const conv2d: ConvolutionOp = (x, w, bias = null, options = {}): Tensor => {
  const geometry = conv2dGeometry(x.shape, w.shape, bias?.shape ?? null, options);
  const input = activated(x, options.activation);
  const y = convForward(input, w, bias, geometry);
  return record("conv2d", convOperands(x, w, bias), y, convAttrs(geometry, input, options.activation));
};

/**
 * Transposed 2-D convolution of x [B, H, W, Cin] with filter w [kh, kw, Cout, Cin] (TensorFlow's
 * layout), plus bias [Cout]: output [B, (H - 1) s + kh - crop, ..., Cout]. Its forward pass is the
 * convolution's input gradient.
 */
export const conv2dTranspose: ConvolutionOp = (x, w, bias = null, options = {}): Tensor => {
  const geometry = conv2dTransposeGeometry(x.shape, w.shape, bias?.shape ?? null, options);
  const input = activated(x, options.activation);
  const out = convBackwardInput(input, w, bias, geometry);
  return record(
    "conv2dTranspose",
    convOperands(x, w, bias),
    out,
    convAttrs(geometry, input, options.activation),
  );
};

function dist(op: DistributionOp, inputs: Tensor[], sigma: SigmaMap, key?: RandomKey): Tensor {
  return record("distribution", inputs, distribution(op, inputs, sigma, key), { op, sigma, key });
}

/** The Gaussian scale sigma(u) from a raw head output (see kernels/distributions.ts for the map). */
export function sigma(u: Tensor, map: SigmaMap = SIGMA_LOG2): Tensor {
  return dist("sigma", [u], map);
}

/**
 * z = mu + sigma(u) * eps with eps ~ N(0, 1) drawn from `key` (element index as counter). The
 * backward pass regenerates eps from the key; nothing is stored.
 */
export function reparameterize(mu: Tensor, u: Tensor, key: RandomKey, map: SigmaMap = SIGMA_LOG2): Tensor {
  return dist("reparameterize", [mu, u], map, key);
}

/** log N(z; mu, sigma(u)^2) per element. */
export function gaussianLogProb(z: Tensor, mu: Tensor, u: Tensor, map: SigmaMap = SIGMA_LOG2): Tensor {
  return dist("gaussianLogProb", [z, mu, u], map);
}

/** Analytic KL(N(mq, sigma(uq)^2) || N(mp, sigma(up)^2)) per element, differentiable in all four. */
export function gaussianKl(
  mq: Tensor,
  uq: Tensor,
  mp: Tensor,
  up: Tensor,
  map: SigmaMap = SIGMA_LOG2,
): Tensor {
  return dist("gaussianKl", [mq, uq, mp, up], map);
}

/**
 * log q(z) - log p(z) per element: the single-sample Monte-Carlo estimate of the KL at a sample z
 * (the reference implementation's estimator; `gaussianKl` is the analytic alternative).
 */
export function gaussianLogRatio(
  z: Tensor,
  mq: Tensor,
  uq: Tensor,
  mp: Tensor,
  up: Tensor,
  map: SigmaMap = SIGMA_LOG2,
): Tensor {
  return sub(gaussianLogProb(z, mq, uq, map), gaussianLogProb(z, mp, up, map));
}

/**
 * The precision-weighted combination of N(m1, sigma(u1)^2) and N(m2, sigma(u2)^2) (LVAE's posterior,
 * Sonderby et al. 2016, Eq. 17-18): sigma^-2 = sigma1^-2 + sigma2^-2, mu = (m1 sigma1^-2 + m2 sigma2^-2)
 * sigma^2, returned as (mu, u) with sigma(u) = sigma under the same map; differentiable in all four.
 */
export function precisionWeighted(
  m1: Tensor,
  u1: Tensor,
  m2: Tensor,
  u2: Tensor,
  map: SigmaMap = SIGMA_LOG2,
): { mu: Tensor; u: Tensor } {
  return { mu: dist("precisionMean", [m1, u1, m2, u2], map), u: dist("precisionScale", [u1, u2], map) };
}

/** log p(x | logits) = x l - softplus(l) per element, for x in {0, 1}. */
export function bernoulliLogLik(logits: Tensor, x: Tensor): Tensor {
  return dist("bernoulliLogLik", [logits, x], SIGMA_LOG2);
}

/**
 * log p(x | params) per pixel of the discretized logistic mixture with `components` components
 * (kernels/logistic_mixture.ts): params [..., 3K] (logits, means, log-scales) for grayscale x [..., 1],
 * or [..., 10K] (logits, then per channel means, log-scales and coupling coefficients) for RGB
 * x [..., 3]; x holds the levels as 2v/255 - 1; returns [..., 1]. Differentiable in params (x is data:
 * no gradient).
 */
export function logisticMixtureLogLik(params: Tensor, x: Tensor, components: number): Tensor {
  return record("logisticMixture", [params, x], logisticMixtureKernel(params, x, components), { components });
}

/**
 * Options of `avgPool2d`: the window, and stride and padding as for convolutions (the stride defaults
 * to the window).
 */
export interface AvgPool2dOptions extends Conv2dOptions {
  /** Window size: one number or [kh, kw]. */
  kernel: number | readonly [number, number];
  /** "window": divide by kh * kw even where the window overlaps padding (default); "valid": by the taps inside. */
  divisor?: PoolDivisor;
}

/** Average pooling of NHWC x over kh x kw windows (stride defaults to the window size). */
export function avgPool2d(x: Tensor, options: AvgPool2dOptions): Tensor {
  const [kh, kw] = typeof options.kernel === "number" ? [options.kernel, options.kernel] : options.kernel;
  if (x.rank !== 4) throw new Error(`avgPool2d: input must be NHWC, got ${x}`);
  if (![kh, kw].every((k) => Number.isInteger(k) && k > 0)) {
    throw new Error(
      `avgPool2d: kernel must be a positive integer or a pair of them, got ${JSON.stringify(options.kernel)}`,
    );
  }
  const C = x.shape[3];
  const geometry = conv2dGeometry(x.shape, [kh, kw, C, C], null, {
    stride: options.stride ?? [kh, kw],
    padding: options.padding,
  }, "avgPool2d");
  const divisor = options.divisor ?? "window";
  return record("avgPool2d", [x], avgPoolForward(x, geometry, divisor), { geometry, divisor });
}

/**
 * Weight normalisation: w = g * v / ||v|| with one norm per output unit, the index of `axis` (default
 * the last: HWIO filters and dense weights; 2 for transposed-conv filters [kh, kw, Co, Ci]).
 */
export function weightNorm(v: Tensor, g: Tensor, axis = -1): Tensor {
  return record("weightNorm", [v, g], weightNormForward(v, g, axis), { axis });
}
