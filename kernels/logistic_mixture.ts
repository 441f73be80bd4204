/**
 * The discretized logistic mixture likelihood of 8-bit images (Salimans et al. 2017, "PixelCNN++",
 * ICLR; hvae-oodd's `DiscretizedLogisticMixLikelihoodConv2d`), K components, for one channel
 * (grayscale) or three (RGB); the math is written out in docs/design.md ("The 8-bit likelihood").
 *
 * Per pixel the head gives, in PixelCNN++'s order: K mixture logits l_k, then per channel c a block of
 * K means m_ck, K log-scales s_ck (clamped below at -7) and, for RGB only, K coupling coefficients
 * r_ck: 3K numbers in all for one channel, 10K for three (`mixtureHeadChannels`). A channel's value is
 * the level v in 0..255, presented as x = 2v/255 - 1. With c = x - mu, plus = (c + 1/255) e^-s,
 * minus = (c - 1/255) e^-s, a channel's bin under a logistic of mean mu and log-scale s has
 *   v = 0     log P = log sigmoid(plus)
 *   v = 255   log P = log(1 - sigmoid(minus))
 *   else      log P = log(sigmoid(plus) - sigmoid(minus)), or where that difference is below 1e-5,
 *             the midpoint density times the bin width: log pdf(c) - log 127.5
 * For RGB the means of green and blue move with the values before them (PixelCNN++'s autoregressive
 * coupling within a pixel), through a_k = tanh(r_0k), b_k = tanh(r_1k), c_k = tanh(r_2k):
 *   mu_R = m_R,  mu_G = m_G + a_k x_R,  mu_B = m_B + b_k x_R + c_k x_G,
 * and log P_k = sum_c log P(x_c | mu_c, s_c). Then
 *   log p(x) = logsumexp_k(l_k + log P_k) - logsumexp_k(l_k).
 * Each factor is a distribution over the 256 levels of its channel given the channels before it, so
 * the 256^C probabilities of a pixel sum to one (up to the midpoint approximation; tested).
 * The difference of sigmoids is evaluated in a form that stays accurate at any scale and offset:
 *   sigmoid(p) - sigmoid(m) = sigmoid(p) sigmoid(-m) (1 - e^-(p - m)),
 * so log P = -softplus(-plus) - softplus(minus) + log(-expm1(-(plus - minus))).
 *
 * One thread per pixel loops over the components (one pass with a running logsumexp), forward and
 * VJP alike; the VJP recomputes log P_k instead of storing K values per pixel. Gradients:
 *   d/dl_k = w_k - pi_k, with w_k = softmax_k(l_k + log P_k) (the responsibilities), pi = softmax(l);
 *   d/dm_ck, d/ds_ck = w_k d log P(x_c) / d(mu_c, s_c) (0 for s_ck below the clamp);
 *   d/dr_0k = w_k d log P(x_G)/d mu_G x_R (1 - a_k^2), d/dr_1k = w_k d log P(x_B)/d mu_B x_R (1 - b_k^2),
 *   d/dr_2k = w_k d log P(x_B)/d mu_B x_G (1 - c_k^2); none for x (data).
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
/** Image channels the mixture models: grayscale, or RGB with the coupled means. */
export type MixtureChannels = 1 | 3;

/** The head's channels per pixel for K components over `channels` image channels: 3K, or 10K for RGB. */
export function mixtureHeadChannels(channels: MixtureChannels, K: number): number {
  return channels === 1 ? 3 * K : 10 * K;
}

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

/**
 * The component's log P_k and what its gradient needs: the bin of each channel and, for RGB, the
 * coupling coefficients after tanh. `o` is where the pixel's channel blocks start (after the logits),
 * `B` a block's size (2K grayscale, 3K RGB).
 */
const COMPONENT_WGSL = (rgb: boolean) => /* wgsl */ `
struct Component { logp: f32, b0: Bin, b1: Bin, b2: Bin, a: f32, b: f32, c: f32 }
fn scale_(raw: f32) -> f32 { return max(raw, ${MIN_LOG_SCALE}.0); }
fn component_(o: u32, B: u32, K: u32, k: u32, x: vec3<f32>, v: vec3<u32>) -> Component {
  var r: Component;
  r.b0 = bin_(v.x, x.x - Head[o + k], scale_(Head[o + K + k]));
  r.logp = r.b0.logp;
  ${
  rgb
    ? `r.a = tanh_(Head[o + 2u * K + k]);
  r.b = tanh_(Head[o + B + 2u * K + k]);
  r.c = tanh_(Head[o + 2u * B + 2u * K + k]);
  r.b1 = bin_(v.y, x.y - (Head[o + B + k] + r.a * x.x), scale_(Head[o + B + K + k]));
  r.b2 = bin_(v.z, x.z - (Head[o + 2u * B + k] + r.b * x.x + r.c * x.y), scale_(Head[o + 2u * B + K + k]));
  r.logp += r.b1.logp + r.b2.logp;`
    : ""
}
  return r;
}`;

function mixtureSpec(backward: boolean, channels: MixtureChannels): KernelSpec {
  return memoSpec("logistic-mixture", { backward, channels }, ({ backward, channels }) => ({
    uniforms: [["n", "u32"], ["K", "u32"]],
    inputs: [...(backward ? [["G", "f32"] as const] : []), ["Head", "f32"], ["X", "f32"]],
    outputs: [backward ? ["D", "f32"] : ["Out", "f32"]],
    body: wgsl`alias T = f32;
${MATH_WGSL}${BIN_WGSL}
${COMPONENT_WGSL(channels === 3)}
fn level_(x: f32) -> u32 { return u32(clamp(round((x + 1.0) * 127.5), 0.0, 255.0)); }
${elementwiseMain()}
  let K = P.K;
#if ${channels === 3}
  let B = 3u * K;
  let base = i * 10u * K;
  let x = vec3<f32>(X[3u * i], X[3u * i + 1u], X[3u * i + 2u]);
  let v = vec3<u32>(level_(x.x), level_(x.y), level_(x.z));
#else
  let B = 2u * K;
  let base = i * 3u * K;
  let x = vec3<f32>(X[i], 0.0, 0.0);
  let v = vec3<u32>(level_(x.x), 0u, 0u);
#endif
  let o = base + K;
  // Running logsumexps of a_k = l_k + log P_k and of the logits l_k.
  var ma = -3.0e38; var sa = 0.0;
  var ml = -3.0e38; var sl = 0.0;
  for (var k = 0u; k < K; k++) {
    let l = Head[base + k];
    let a = l + component_(o, B, K, k, x, v).logp;
    if (a > ma) { sa = sa * exp(ma - a) + 1.0; ma = a; } else { sa += exp(a - ma); }
    if (l > ml) { sl = sl * exp(ml - l) + 1.0; ml = l; } else { sl += exp(l - ml); }
  }
  let lseA = ma + log(sa);
  let lseL = ml + log(sl);
#if ${backward}
  let g = G[i];
  for (var k = 0u; k < K; k++) {
    let l = Head[base + k];
    let r = component_(o, B, K, k, x, v);
    let w = exp(l + r.logp - lseA);
    let gw = g * w;
    D[base + k] = g * (w - exp(l - lseL));
    D[o + k] = gw * r.b0.dmu;
    D[o + K + k] = select(0.0, gw * r.b0.ds, Head[o + K + k] > ${MIN_LOG_SCALE}.0);
#if ${channels === 3}
    D[o + 2u * K + k] = gw * r.b1.dmu * x.x * (1.0 - r.a * r.a);
    D[o + B + k] = gw * r.b1.dmu;
    D[o + B + K + k] = select(0.0, gw * r.b1.ds, Head[o + B + K + k] > ${MIN_LOG_SCALE}.0);
    D[o + B + 2u * K + k] = gw * r.b2.dmu * x.x * (1.0 - r.b * r.b);
    D[o + 2u * B + k] = gw * r.b2.dmu;
    D[o + 2u * B + K + k] = select(0.0, gw * r.b2.ds, Head[o + 2u * B + K + k] > ${MIN_LOG_SCALE}.0);
    D[o + 2u * B + 2u * K + k] = gw * r.b2.dmu * x.y * (1.0 - r.c * r.c);
#endif
  }
#else
  Out[i] = lseA - lseL;
#endif
}
`,
  }));
}

function checkOperands(
  op: string,
  params: Tensor,
  x: Tensor,
  K: number,
): { n: number; channels: MixtureChannels } {
  if (!Number.isInteger(K) || K < 1 || K > MAX_COMPONENTS) {
    throw new Error(`${op}: the number of components must be an integer in [1, ${MAX_COMPONENTS}], got ${K}`);
  }
  if (params.dtype !== "f32" || x.dtype !== "f32") {
    throw new Error(`${op}: expected f32, got ${params}, ${x}`);
  }
  const channels = x.shape[x.rank - 1];
  if (channels !== 1 && channels !== 3) {
    throw new Error(
      `${op}: images ${x} have ${channels} channels; the mixture models 1 (grayscale) or 3 (RGB)`,
    );
  }
  const last = params.shape[params.rank - 1], want = mixtureHeadChannels(channels, K);
  if (last !== want) {
    throw new Error(
      `${op}: the head gives ${last} channels per pixel; ${K} components over ${channels} image channel(s) need ${want}`,
    );
  }
  if (x.shape.slice(0, -1).join("x") !== params.shape.slice(0, -1).join("x")) {
    throw new Error(`${op}: images ${x} do not match the head's output ${params}`);
  }
  return { n: params.size / last, channels };
}

/**
 * log p(x | params) per pixel: params [..., 3K] (grayscale) or [..., 10K] (RGB) in the order above,
 * x [..., C] with x = 2v/255 - 1 for the levels v; returns [..., 1].
 */
export function logisticMixtureLogLik(params: Tensor, x: Tensor, K: number): Tensor {
  const { n, channels } = checkOperands("logisticMixtureLogLik", params, x, K);
  const out = emptyTensor([...x.shape.slice(0, -1), 1], "f32", "logisticMixtureLogLik");
  launch(
    mixtureSpec(false, channels),
    [params, x],
    [out],
    { n, K },
    elementwiseGrid(n),
    "logisticMixtureLogLik",
  );
  return out;
}

/** The cotangent of params for the cotangent g [..., 1] of `logisticMixtureLogLik`. */
export function logisticMixtureVjp(g: Tensor, params: Tensor, x: Tensor, K: number): Tensor {
  const { n, channels } = checkOperands("logisticMixtureVjp", params, x, K);
  const d = emptyTensor(params.shape, "f32", "logisticMixtureVjp");
  launch(
    mixtureSpec(true, channels),
    [g, params, x],
    [d],
    { n, K },
    elementwiseGrid(n),
    "logisticMixtureVjp",
  );
  return d;
}
