/**
 * The discretized logistic mixture likelihood of 8-bit images (Salimans et al. 2017, "PixelCNN++",
 * ICLR; hvae-oodd's `DiscretizedLogisticMixLikelihoodConv2d`), one channel, K components; the math
 * is written out in docs/design.md ("The 8-bit likelihood").
 *
 * Per pixel the head gives 3K numbers, in this order: K mixture logits l_k, K means mu_k, K log-scales
 * s_k (clamped below at -7). The pixel is the level v in 0..255, presented as x = 2v/255 - 1. With
 * c = x - mu_k, plus = (c + 1/255) e^-s, minus = (c - 1/255) e^-s:
 *   v = 0     log P_k = log sigmoid(plus)
 *   v = 255   log P_k = log(1 - sigmoid(minus))
 *   else      log P_k = log(sigmoid(plus) - sigmoid(minus)), or where that difference is below 1e-5,
 *             the midpoint density times the bin width: log pdf(c) - log 127.5
 *   log p(x) = logsumexp_k(l_k + log P_k) - logsumexp_k(l_k).
 * The difference of sigmoids is evaluated in a form that stays accurate at any scale and offset:
 *   sigmoid(p) - sigmoid(m) = sigmoid(p) sigmoid(-m) (1 - e^-(p - m)),
 * so log P_k = -softplus(-plus) - softplus(minus) + log(-expm1(-(plus - minus))).
 *
 * One thread per pixel loops over the components (one pass with a running logsumexp), forward and
 * VJP alike; the VJP recomputes log P_k instead of storing K values per pixel. Gradients:
 *   d/dl_k = w_k - pi_k, with w_k = softmax_k(l_k + log P_k) (the responsibilities), pi = softmax(l);
 *   d/dmu_k, d/ds_k = w_k d log P_k / d(mu_k, s_k) (0 for s_k below the clamp); none for x (data).
 */

import { wgsl } from "wgsl-preprocessor";
import { elementwiseGrid, elementwiseMain, launch } from "./launch.ts";
import { type KernelSpec, memoSpec } from "./runtime/program.ts";
import { emptyTensor, type Tensor } from "./tensor.ts";
import { MATH_WGSL } from "./unary.ts";

/** The smallest log-scale of a component (PixelCNN++'s clamp). */
export const MIN_LOG_SCALE = -7;
/** Below this probability a middle bin takes the midpoint density times the bin width. */
export const MIN_BIN_PROBABILITY = 1e-5;
/** Components a head may have (the kernel loops over them; far above the paper's 10). */
export const MAX_COMPONENTS = 64;

/** log P_k of the bin and its derivatives by mu and by the clamped log-scale, for one component. */
const BIN_WGSL = /* wgsl */ `
struct Bin { logp: f32, dmu: f32, ds: f32 }
// v: the pixel's level, c = x - mu, s: the clamped log-scale.
fn bin_(v: u32, c: f32, s: f32) -> Bin {
  let inv = exp(-s);
  let plus = (c + ${1 / 255}) * inv;
  let minus = (c - ${1 / 255}) * inv;
  var b: Bin;
  if (v == 0u) {
    // log sigmoid(plus) = -softplus(-plus)
    let sp = sigmoid_(-plus);
    b = Bin(-softplus_(-plus), -inv * sp, -plus * sp);
  } else if (v == 255u) {
    // log(1 - sigmoid(minus)) = -softplus(minus)
    let sm = sigmoid_(minus);
    b = Bin(-softplus_(minus), inv * sm, minus * sm);
  } else {
    let r = plus - minus;
    let logDelta = -softplus_(-plus) - softplus_(minus) + log(-expm1_(-r));
    if (logDelta > ${Math.log(MIN_BIN_PROBABILITY)}) {
      let sp = sigmoid_(-plus);
      let sm = sigmoid_(minus);
      b = Bin(logDelta, -inv * (sp - sm), -(plus * sp - minus * sm + r / expm1_(r)));
    } else {
      // The logistic log density at the bin's centre, log pdf(c) = z - s - 2 softplus(z), z = c e^-s,
      // times the bin width 2/255.
      let z = c * inv;
      let dz = 1.0 - 2.0 * sigmoid_(z);
      b = Bin(z - s - 2.0 * softplus_(z) - ${Math.log(127.5)}, -inv * dz, -z * dz - 1.0);
    }
  }
  return b;
}`;

function mixtureSpec(backward: boolean): KernelSpec {
  return memoSpec("logistic-mixture", { backward }, ({ backward }) => ({
    uniforms: [["n", "u32"], ["K", "u32"]],
    inputs: [...(backward ? [["G", "f32"] as const] : []), ["Head", "f32"], ["X", "f32"]],
    outputs: [backward ? ["D", "f32"] : ["Out", "f32"]],
    body: wgsl`alias T = f32;
${MATH_WGSL}${BIN_WGSL}
${elementwiseMain()}
  let K = P.K;
  let base = i * 3u * K;
  let x = X[i];
  let v = u32(clamp(round((x + 1.0) * 127.5), 0.0, 255.0));
  // Running logsumexps of a_k = l_k + log P_k and of the logits l_k.
  var ma = -3.0e38; var sa = 0.0;
  var ml = -3.0e38; var sl = 0.0;
  for (var k = 0u; k < K; k++) {
    let l = Head[base + k];
    let a = l + bin_(v, x - Head[base + K + k], max(Head[base + 2u * K + k], ${MIN_LOG_SCALE}.0)).logp;
    if (a > ma) { sa = sa * exp(ma - a) + 1.0; ma = a; } else { sa += exp(a - ma); }
    if (l > ml) { sl = sl * exp(ml - l) + 1.0; ml = l; } else { sl += exp(l - ml); }
  }
  let lseA = ma + log(sa);
  let lseL = ml + log(sl);
#if ${backward}
  let g = G[i];
  for (var k = 0u; k < K; k++) {
    let l = Head[base + k];
    let rawS = Head[base + 2u * K + k];
    let b = bin_(v, x - Head[base + K + k], max(rawS, ${MIN_LOG_SCALE}.0));
    let w = exp(l + b.logp - lseA);
    D[base + k] = g * (w - exp(l - lseL));
    D[base + K + k] = g * w * b.dmu;
    D[base + 2u * K + k] = select(0.0, g * w * b.ds, rawS > ${MIN_LOG_SCALE}.0);
  }
#else
  Out[i] = lseA - lseL;
#endif
}
`,
  }));
}

function checkOperands(op: string, params: Tensor, x: Tensor, K: number): number {
  if (!Number.isInteger(K) || K < 1 || K > MAX_COMPONENTS) {
    throw new Error(`${op}: the number of components must be an integer in [1, ${MAX_COMPONENTS}], got ${K}`);
  }
  if (params.dtype !== "f32" || x.dtype !== "f32") {
    throw new Error(`${op}: expected f32, got ${params}, ${x}`);
  }
  const last = params.shape[params.rank - 1];
  if (last !== 3 * K) {
    throw new Error(`${op}: the head gives ${last} channels per pixel; ${K} components need ${3 * K}`);
  }
  const pixels = params.size / last;
  const xPixels = x.shape[x.rank - 1] === 1 ? x.size : -1;
  const leading = params.shape.slice(0, -1).join("x");
  if (xPixels !== pixels || x.shape.slice(0, -1).join("x") !== leading) {
    throw new Error(`${op}: images ${x} do not match the head's output ${params} (one channel per pixel)`);
  }
  return pixels;
}

/**
 * log p(x | params) per pixel: params [..., 3K] (logits, means, log-scales), x [..., 1] with
 * x = 2v/255 - 1 for the levels v; returns [..., 1].
 */
export function logisticMixtureLogLik(params: Tensor, x: Tensor, K: number): Tensor {
  const n = checkOperands("logisticMixtureLogLik", params, x, K);
  const out = emptyTensor(x.shape, "f32", "logisticMixtureLogLik");
  launch(mixtureSpec(false), [params, x], [out], { n, K }, elementwiseGrid(n), "logisticMixtureLogLik");
  return out;
}

/** The cotangent of params [..., 3K] for the cotangent g [..., 1] of `logisticMixtureLogLik`. */
export function logisticMixtureVjp(g: Tensor, params: Tensor, x: Tensor, K: number): Tensor {
  const n = checkOperands("logisticMixtureVjp", params, x, K);
  const d = emptyTensor(params.shape, "f32", "logisticMixtureVjp");
  launch(mixtureSpec(true), [g, params, x], [d], { n, K }, elementwiseGrid(n), "logisticMixtureVjp");
  return d;
}
