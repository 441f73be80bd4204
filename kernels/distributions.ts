/**
 * The VAE's probability primitives as fused elementwise kernels, from one table: each row names its
 * inputs, gives the forward expression and, per input, the expression of its vector-Jacobian
 * product. One template renders a row's forward kernel (one output) and its backward kernel (one
 * output per input that needs a gradient, all in one dispatch). Inputs broadcast like NumPy.
 *
 * The scale of every Gaussian comes from a raw head output u through a softplus-type map
 *   sigma(u) = max(softplus(beta * u) / beta + offset, floor),
 * with dsigma/du = sigmoid(beta * u) (0 where the floor binds). Two maps are used:
 *   SIGMA_LOG2: beta = ln 2, offset 0, floor 1e-6  ->  sigma = log2(1 + 2^u), sigma(0) = 1; the
 *               reference backbone's (Havtorn et al.'s hvae-oodd; docs/design.md section 1);
 *   SIGMA_SOFTPLUS: beta 1, offset 1e-3, floor 0   ->  softplus(u) + 1e-3; the `small` preset's.
 *
 * Rows (all per element; sum over a layer's elements with `sum`):
 *   sigma            sigma(u)
 *   reparameterize   z = mu + sigma(u) eps, eps ~ N(0, 1) from Philox keyed by the element index:
 *                    the backward pass regenerates eps from the same key instead of storing it
 *   gaussianLogProb  log N(z; mu, sigma(u)^2)
 *   gaussianKl       KL(N(mq, sq^2) || N(mp, sp^2)) = log(sp/sq) + (sq^2 + (mq - mp)^2) / (2 sp^2) - 1/2
 *   precisionMean    the mean of the precision-weighted product of two Gaussians (LVAE's posterior)
 *   precisionScale   its raw scale u, through the map's inverse (sigma(u) = the product's sigma)
 *   bernoulliLogLik  x l - softplus(l), the log-likelihood of x in {0, 1} under logits l (stable)
 */

import { wgsl } from "wgsl-preprocessor";
import { stridedOffsets } from "./binary.ts";
import { type ElementsPerThread, elementType, elementwiseGrid, elementwiseMain, launch } from "./launch.ts";
import { KEY_UNIFORMS, keyedBlockWgsl, keyUniforms, PHILOX_WGSL, type RandomKey } from "./philox.ts";
import { type KernelBody, memoSpec, type UniformType, type Variant } from "./runtime/program.ts";
import { broadcastShapes, broadcastStrides, sameShape, type Shape, sizeOf } from "./shape.ts";
import { emptyTensor, type Tensor } from "./tensor.ts";
import { MATH_WGSL } from "./unary.ts";

/** sigma(u) = max(softplus(beta u) / beta + offset, floor). */
export interface SigmaMap {
  /** The softplus sharpness beta (> 0). */
  beta: number;
  /** Added to the softplus. */
  offset: number;
  /** The smallest sigma. */
  floor: number;
}

/** log2(1 + 2^u), floored at 1e-6: sigma(0) = 1 (the reference backbone's map). */
export const SIGMA_LOG2: SigmaMap = { beta: Math.LN2, offset: 0, floor: 1e-6 };
/** softplus(u) + 1e-3 (the `small` preset's map). */
export const SIGMA_SOFTPLUS: SigmaMap = { beta: 1, offset: 1e-3, floor: 0 };

/** u with sigma(u) = 1 under the map (the standard normal prior of the top layer, a unit scale). */
export function unitScaleU(map: SigmaMap): number {
  // softplus(beta u) / beta + offset = 1  <=>  u = log(exp(beta (1 - offset)) - 1) / beta
  return Math.log(Math.expm1(map.beta * (1 - map.offset))) / map.beta;
}

interface Row {
  inputs: readonly string[];
  /**
   * WGSL statements shared by forward and backward (may use the inputs and `i`; `g` is not yet
   * defined). `noise_(i)` is the standard normal of the thread's element(s), keyed by element index.
   */
  pre?: string;
  f: string;
  vjp: Record<string, string>;
  random?: boolean;
}

/** The precisions p_i = 1 / sigma(u_i)^2 of two Gaussians and the variance v of their product. */
const PRECISION_PRE =
  "let s1 = sigma_(u1); let s2 = sigma_(u2); let p1 = 1.0 / (s1 * s1); let p2 = 1.0 / (s2 * s2); let v = 1.0 / (p1 + p2);";

export const DISTRIBUTIONS = {
  sigma: {
    inputs: ["u"],
    f: "sigma_(u)",
    vjp: { u: "g * dsigma_(u)" },
  },
  reparameterize: {
    inputs: ["mu", "u"],
    random: true,
    pre: "let e = noise_(i);",
    f: "mu + sigma_(u) * e",
    vjp: { mu: "g", u: "g * e * dsigma_(u)" },
  },
  gaussianLogProb: {
    inputs: ["z", "mu", "u"],
    pre: "let s = sigma_(u); let d = (z - mu) / s;",
    // -log(sqrt(2 pi)) - log s - d^2 / 2
    f: "-0.9189385332046727 - log(s) - 0.5 * d * d",
    vjp: { z: "-g * d / s", mu: "g * d / s", u: "g * (d * d - 1.0) / s * dsigma_(u)" },
  },
  gaussianKl: {
    inputs: ["mq", "uq", "mp", "up"],
    pre: "let sq = sigma_(uq); let sp = sigma_(up); let dm = mq - mp; let vp = sp * sp;",
    f: "log(sp) - log(sq) + (sq * sq + dm * dm) / (2.0 * vp) - 0.5",
    vjp: {
      mq: "g * dm / vp",
      mp: "-g * dm / vp",
      uq: "g * (sq / vp - 1.0 / sq) * dsigma_(uq)",
      up: "g * (1.0 / sp - (sq * sq + dm * dm) / (vp * sp)) * dsigma_(up)",
    },
  },
  // LVAE's posterior (Sonderby et al. 2016, Eq. 17-18): the precision-weighted combination of a
  // bottom-up Gaussian (m1, sigma(u1)) and the top-down prior (m2, sigma(u2)). With p_i = 1 / s_i^2:
  // s^2 = 1 / (p1 + p2), m = (m1 p1 + m2 p2) s^2. The mean and the raw scale are two rows that share
  // this prelude; dp_i/du_i = -2 p_i / s_i * dsigma(u_i).
  precisionMean: {
    inputs: ["m1", "u1", "m2", "u2"],
    pre: PRECISION_PRE + "let m = (m1 * p1 + m2 * p2) * v;",
    f: "m",
    vjp: {
      m1: "g * p1 * v",
      m2: "g * p2 * v",
      u1: "g * 2.0 * (m - m1) * v * p1 / s1 * dsigma_(u1)",
      u2: "g * 2.0 * (m - m2) * v * p2 / s2 * dsigma_(u2)",
    },
  },
  // The raw scale u of the combination: sigma(u) = s, u = unsigma_(s) (the map's inverse). s is held
  // just above the map's lowest value, where the inverse ends (gradient 0 there); du/ds =
  // 1 / dsigma(u) = 1 / (1 - exp(-beta (s - offset))), ds/du_i = (s / s_i)^3 dsigma(u_i).
  precisionScale: {
    inputs: ["u1", "u2"],
    pre: PRECISION_PRE +
      "let s = sqrt(v); let inside = s > sigmaLow_(); let y = P.beta * (max(s, sigmaLow_()) - P.offset);" +
      " let dsdu = select(T(0.0), 1.0 / -expm1_(-y), inside);",
    f: "unsoftplus_(y) / P.beta",
    vjp: {
      u1: "g * dsdu * pow(s / s1, T(3.0)) * dsigma_(u1)",
      u2: "g * dsdu * pow(s / s2, T(3.0)) * dsigma_(u2)",
    },
  },
  bernoulliLogLik: {
    inputs: ["l", "x"],
    f: "x * l - softplus_(l)",
    vjp: { l: "g * (x - sigmoid_(l))", x: "g * l" },
  },
} satisfies Record<string, Row>;

export type DistributionOp = keyof typeof DISTRIBUTIONS;

const SIGMA_WGSL = /* wgsl */ `
fn sigma_(u: T) -> T { return max(softplus_(P.beta * u) / P.beta + P.offset, T(P.floor)); }
// The smallest sigma the inverse maps back: just above offset and floor (relative 1e-6, at least 1e-6).
fn sigmaLow_() -> T { let lo = max(P.offset, P.floor); return T(lo + max(1e-6 * lo, 1e-6)); }
// softplus^-1(y) = log(expm1(y)) = y + log1p(-exp(-y)) (the second form for large y, no overflow).
fn unsoftplus_(y: T) -> T { return select(log(expm1_(y)), y + log1p_(-exp(-y)), y > T(1.0)); }
fn dsigma_(u: T) -> T {
  return select(T(0.0), sigmoid_(P.beta * u), softplus_(P.beta * u) / P.beta + P.offset > T(P.floor));
}`;

/** The normal of element e: Box-Muller on the first two words of its Philox block. */
const NOISE_WGSL = (per: ElementsPerThread) => /* wgsl */ `
fn normalAt(e: u32) -> f32 {
  let block = keyedBlock(e);
  return boxMuller(block.x, block.y);
}
fn noise_(i: u32) -> T {
  return ${
  per === 4
    ? "T(normalAt(4u * i), normalAt(4u * i + 1u), normalAt(4u * i + 2u), normalAt(4u * i + 3u))"
    : "normalAt(i)"
};
}`;

const MAX_INPUTS = 4;

/** A kernel of a row: forward (`grads` ""), or backward with one output per name in `grads` ("mu-u"). */
interface DistributionVariant extends Variant {
  op: DistributionOp;
  /** All inputs of the output's shape (four elements per thread), else broadcast. */
  same: boolean;
  grads: string;
  /** The noise keyed row-invariantly (kernels/philox.ts), for rows that draw. */
  rows: boolean;
}

function distributionSpec({ op, same, grads: gradList, rows }: DistributionVariant): KernelBody {
  const grads = gradList === "" ? [] : gradList.split("-");
  const row: Row = DISTRIBUTIONS[op];
  const backward = grads.length > 0;
  const names = row.inputs.map((_, k) => `In${k}`);
  const uniforms: [string, UniformType][] = [
    ["n", "u32"],
    ["rank", "u32"],
    ["beta", "f32"],
    ["offset", "f32"],
    ["floor", "f32"],
    ...KEY_UNIFORMS,
    ["shape", "u32x8"],
    ...names.map((n): [string, UniformType] => [`${n}Str`, "u32x8"]),
  ];
  const per: ElementsPerThread = same ? 4 : 1;
  const T = elementType(per);
  const loads = row.inputs.map((name, k) => `  let ${name} = In${k}[${same ? "i" : `off_In${k}`}];`).join(
    "\n",
  );
  const stores = grads.map((name, k) => `  D${k}[i] = ${row.vjp[name]};`).join("\n");
  return {
    uniforms,
    inputs: [...(backward ? [["G", T] as const] : []), ...names.map((n) => [n, T] as const)],
    outputs: backward ? grads.map((_, k) => [`D${k}`, T] as const) : [["Out", T]],
    body: wgsl`alias T = ${T};
${MATH_WGSL}${SIGMA_WGSL}${row.random ? PHILOX_WGSL + keyedBlockWgsl(rows) + NOISE_WGSL(per) : ""}
${elementwiseMain(per)}
${same ? "" : stridedOffsets(names)}
${loads}
  ${row.pre ?? ""}
#if ${backward}
  let g = G[i];
${stores}
#else
  Out[i] = ${row.f};
#endif
}
`,
  };
}

function broadcastInfo(
  op: string,
  inputs: readonly Tensor[],
): { shape: number[]; same: boolean; strides: Record<string, number[]> } {
  for (const t of inputs) if (t.dtype !== "f32") throw new Error(`${op}: expected f32 inputs, got ${t}`);
  const shape = broadcastShapes(op, ...inputs.map((t) => t.shape));
  const same = inputs.every((t) => sameShape(t.shape, shape));
  const strides: Record<string, number[]> = {};
  inputs.forEach((t, k) => strides[`In${k}Str`] = broadcastStrides(t.shape, shape));
  return { shape, same, strides };
}

const NO_KEY: RandomKey = { seed: 0, stream: 0, offset: 0 };

function uniformsFor(
  shape: Shape,
  strides: Record<string, number[]>,
  sigma: SigmaMap,
  key: RandomKey,
  op: string,
) {
  if (!(sigma.beta > 0) || !(sigma.floor >= 0) || !Number.isFinite(sigma.offset)) {
    throw new Error(`${op}: sigma map ${JSON.stringify(sigma)} needs beta > 0, floor >= 0`);
  }
  const n = sizeOf(shape);
  const rowSize = shape.length ? n / Math.max(1, shape[0]) : 1;
  return { n, rank: shape.length, shape, ...strides, ...sigma, ...keyUniforms(key, op, rowSize) };
}

/** Forward value of a distribution row, elementwise with broadcasting. */
export function distribution(
  op: DistributionOp,
  inputs: readonly Tensor[],
  sigma: SigmaMap = SIGMA_LOG2,
  key: RandomKey = NO_KEY,
): Tensor {
  const row: Row = DISTRIBUTIONS[op];
  if (inputs.length !== row.inputs.length || inputs.length > MAX_INPUTS) {
    throw new Error(
      `${op}: expected ${row.inputs.length} inputs (${row.inputs.join(", ")}), got ${inputs.length}`,
    );
  }
  const { shape, same, strides } = broadcastInfo(op, inputs);
  const rows = row.random === true && key.rowInvariant === true;
  const spec = memoSpec("dist", { op, same, grads: "", rows }, distributionSpec);
  const out = emptyTensor(shape, "f32", op);
  const grid = elementwiseGrid(out.size, same ? 4 : 1);
  launch(spec, inputs, [out], uniformsFor(shape, strides, sigma, key, op), grid, op);
  return out;
}

/**
 * Cotangents of the inputs flagged in `needs`, each of the broadcast output's shape (the caller
 * sums them back to the input shapes); null where not needed. One dispatch for all of them.
 */
export function distributionVjp(
  op: DistributionOp,
  g: Tensor,
  inputs: readonly Tensor[],
  needs: readonly boolean[],
  sigma: SigmaMap = SIGMA_LOG2,
  key: RandomKey = NO_KEY,
): (Tensor | null)[] {
  const row: Row = DISTRIBUTIONS[op];
  const grads = row.inputs.filter((_, k) => needs[k]);
  if (grads.length === 0) return inputs.map(() => null);
  const { shape, same, strides } = broadcastInfo(op, inputs);
  const rows = row.random === true && key.rowInvariant === true;
  const spec = memoSpec("dist", { op, same, grads: grads.join("-"), rows }, distributionSpec);
  const outs = grads.map(() => emptyTensor(shape, "f32", `${op}-vjp`));
  launch(
    spec,
    [g, ...inputs],
    outs,
    uniformsFor(shape, strides, sigma, key, op),
    elementwiseGrid(sizeOf(shape), same ? 4 : 1),
    `${op}-vjp`,
  );
  let k = 0;
  return row.inputs.map((_, j) => needs[j] ? outs[k++] : null);
}
