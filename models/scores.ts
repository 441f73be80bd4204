/**
 * OOD scores of a trained HVAE (paper sections 3.2 and 3.4, Eq. 6, 11, 15 and Appendix L; docs/design.md
 * section 3), following Havtorn et al.'s `scripts/ood-llr.py` in github.com/JakobHavtorn/hvae-oodd.
 * Every score is oriented so that higher = more OOD.
 *
 * The GPU part (`partialElbos`) runs, for k = 0 .. L-1, the partial pass behind L^{>k}_x (Eq. 15):
 *   1. inference with z_1 .. z_k = their posterior means and z_{k+1} .. z_L sampled from q;
 *   2. top-down from the posterior samples of z_{>k}, with KL_l for every l > k;
 *   3. z_k .. z_1 from the generative model: the prior means (the reference's default) or samples;
 *   4. L^{>k}_x = ll_k - sum_{l>k} KL_l with ll_k = log p(x | z^(k)), the pass's reconstruction.
 * k = 0 is the ordinary ELBO pass, so L^{>0}_x = L_x and LLR^{>0} = 0 exactly (one estimator for all).
 * With ladder inference (the `small` preset) the posterior of z_{>k} does not depend on z_{<=k}, nor
 * with the LVAE's top-down inference (it is built from the top down), so pass 0's inference and the
 * generative work above k serve every k; Markov inference and BIVA's (whose bottom-up path reads the
 * samples below) rerun both.
 *
 * The CPU part combines per-image values of several passes into the scores:
 *   elbo       -L_x                                   (Eq. 2/3; log-mean-exp over `iw` passes when > 1)
 *   llr>k      LLR^{>k} = L_x - L^{>k}_x, k = 1..L-1    (Eq. 6/17, Havtorn et al. 2021)
 *   llr_optk   LLR^{>k*}, k* = argmax_k R_{k-1} / R_k   (Appendix L)
 *   llr_ada    sum_k (R_{k-1} / R_k)(LLR^{>k} - LLR^{>k-1}), R_k = 1 / ll_k   (Eq. 11)
 */

import { add, concat, reparameterize, reshape, sub } from "../autograd/ops.ts";
import type { RandomKey } from "../kernels/philox.ts";
import type { Tensor } from "../kernels/tensor.ts";
import {
  encode,
  type HvaeConfig,
  type HvaeParams,
  inferenceReadsSamples,
  klElementwise,
  perImage,
  posteriorTopDown,
  priorTopDown,
  type TopDown,
} from "./hvae.ts";
import { reconstruction } from "./likelihood.ts";
import { priorStream } from "./streams.ts";

/** How z_k .. z_1 of a partial pass are generated: the prior means (default) or prior samples. */
export type GenerateMode = "mean" | "sample";

/** Settings of `partialElbos`. */
export interface PassOptions {
  /** The key of random stream s for this pass. */
  keyOf: (stream: number) => RandomKey;
  /** z_k .. z_1 as prior means or samples. */
  generate: GenerateMode;
}

/** One draw of every partial pass; each tensor is per image, [B]. */
export interface PartialPasses {
  /** L^{>k}_x for k = 0..L-1 (k = 0: the ELBO L_x). */
  elbo: Tensor[];
  /** ll_k = log p(x | z^(k)), the reconstruction term of pass k. */
  ll: Tensor[];
  /** KL_l of layers l = 1..L in the k = 0 pass. */
  kl: Tensor[];
  /** The likelihood head's output [B, H, W, channels] of pass k: the reconstructions from p(x | z_{>k}). */
  logits: Tensor[];
}

/** The L partial passes on a batch x [B, H, W, 1] of model inputs (no tape: call inside noGrad or plainly). */
export function partialElbos(params: HvaeParams, cfg: HvaeConfig, x: Tensor, o: PassOptions): PartialPasses {
  const L = cfg.layers.length;
  const out: PartialPasses = { elbo: [], ll: [], kl: [], logits: [] };
  let shared: { q: ReturnType<typeof encode>; td: TopDown; kl: Tensor[] } | null = null;
  for (let k = 0; k < L; k++) {
    let q: ReturnType<typeof encode>, td: TopDown, kl: Tensor[];
    if (shared && !inferenceReadsSamples(cfg)) {
      ({ q, td, kl } = shared);
    } else {
      q = encode(params, cfg, x, o.keyOf, k);
      td = posteriorTopDown(params, cfg, q, k, o.keyOf);
      const { priors, posteriors } = td;
      kl = posteriors.map((ql, l) => l >= k ? perImage(klElementwise(cfg, ql, priors[l])) : (null as never));
      if (k === 0) shared = { q, td, kl };
    }
    const d = k === 0 ? td.stages[0][td.stages[0].length - 1] : priorTopDown(
      params,
      cfg,
      td,
      k,
      (g, l) =>
        o.generate === "mean" ? g.mu : reparameterize(g.mu, g.u, o.keyOf(priorStream(k, l)), cfg.sigma),
    );
    const { out: logits, ll } = reconstruction(params, cfg, d, x);
    let penalty = kl[L - 1];
    for (let l = L - 2; l >= k; l--) penalty = add(penalty, kl[l]);
    out.elbo.push(sub(ll, penalty));
    out.ll.push(ll);
    out.logits.push(logits);
    if (k === 0) out.kl.push(...kl);
  }
  return out;
}

/**
 * Where each per-image value sits in a row of `packPasses`: L^{>k} for each k, then ll_k for each k,
 * then KL_l for each l; the one definition that packing, unpacking and the column names share.
 */
export function passLayout(L: number): {
  /** Values per image. */
  width: number;
  /** Column of L^{>k}_x, k = 0..L-1. */
  elbo: (k: number) => number;
  /** Column of ll_k, k = 0..L-1. */
  ll: (k: number) => number;
  /** Column of KL_l, l = 1..L. */
  kl: (l: number) => number;
} {
  return { width: 3 * L, elbo: (k) => k, ll: (k) => L + k, kl: (l) => 2 * L + l - 1 };
}

/** Column names of `packPasses`, in `passLayout`'s order. */
export function passColumns(L: number): string[] {
  const at = passLayout(L), cols = new Array<string>(at.width);
  for (let k = 0; k < L; k++) [cols[at.elbo(k)], cols[at.ll(k)]] = [`elbo>${k}`, `ll${k}`];
  for (let l = 1; l <= L; l++) cols[at.kl(l)] = `kl${l}`;
  return cols;
}

/** The per-image values of `p` as one [B, 3L] tensor in `passLayout`'s order: one readback per batch. */
export function packPasses(p: PartialPasses): Tensor {
  const L = p.elbo.length, at = passLayout(L), cols = new Array<Tensor>(at.width);
  for (let k = 0; k < L; k++) [cols[at.elbo(k)], cols[at.ll(k)]] = [p.elbo[k], p.ll[k]];
  for (let l = 1; l <= L; l++) cols[at.kl(l)] = p.kl[l - 1];
  return concat(cols.map((c) => reshape(c, [c.shape[0], 1])), 1);
}

// ---------------------------------------------------------------- scores from per-image values

/** Score names in table order (higher = more OOD); `imageScores` computes each by name. */
export function scoreNames(L: number): string[] {
  const names = ["elbo"];
  for (let k = 1; k < L; k++) names.push(`llr>${k}`);
  names.push("llr_optk", "llr_ada");
  return names;
}

/**
 * Every score of one image by name (higher = more OOD), from its L^{>k}_x (`elbo[k]`) and ll_k:
 * `elbo` = -L_x, `llr>k` = D_k = L_x - L^{>k}_x, `llr_optk` (Appendix L), `llr_ada` (Eq. 11); and the
 * chosen k of llr_optk. The one place where the scores are defined.
 */
export function imageScores(elbo: readonly number[], ll: readonly number[]): {
  scores: Record<string, number>;
  optk: number;
} {
  const llr = elbo.map((e) => elbo[0] - e); // D_k = L_x - L^{>k}_x; D_0 = 0
  const opt = optimalKLlr(ll, llr);
  const scores: Record<string, number> = { elbo: -elbo[0] };
  for (let k = 1; k < elbo.length; k++) scores[`llr>${k}`] = llr[k];
  scores.llr_optk = opt.score;
  scores.llr_ada = adaptiveLlr(ll, llr);
  return { scores, optk: opt.k };
}

/**
 * LLR^{ada} of one image (Eq. 11): sum_{k=0}^{L-1} (R_{k-1} / R_k)(D_k - D_{k-1}) with R_k = 1 / ll_k,
 * R_{-1} := R_0 and D_{-1} := 0, D_0 = LLR^{>0} = 0. The weight R_{k-1} / R_k is ll_k / ll_{k-1}.
 * `ll[k]` = ll_k, `llr[k]` = D_k (llr[0] = 0).
 */
export function adaptiveLlr(ll: readonly number[], llr: readonly number[]): number {
  let score = llr[0]; // the k = 0 term: weight R_0 / R_0 = 1 on D_0 - 0
  for (let k = 1; k < ll.length; k++) score += (ll[k] / ll[k - 1]) * (llr[k] - llr[k - 1]);
  return score;
}

/** LLR^{optk} of one image (Appendix L): LLR^{>k} at the k with the largest R_{k-1} / R_k = ll_k / ll_{k-1}. */
export function optimalKLlr(ll: readonly number[], llr: readonly number[]): { k: number; score: number } {
  let best = 0, bestRatio = 1; // k = 0: R_{-1} / R_0 = 1
  for (let k = 1; k < ll.length; k++) {
    const ratio = ll[k] / ll[k - 1];
    if (ratio > bestRatio) [best, bestRatio] = [k, ratio];
  }
  return { k: best, score: llr[best] };
}

/** log((1/n) sum exp(v_i)), stable. */
function logMeanExp(values: readonly number[]): number {
  const m = Math.max(...values);
  if (!Number.isFinite(m)) return m;
  let s = 0;
  for (const v of values) s += Math.exp(v - m);
  return m + Math.log(s / values.length);
}

/** Everything known per image of a scored set: the estimates behind the scores, and the scores. */
export interface ImageScores {
  /** Number of images. */
  count: number;
  /** L^{>k}_x per image, k = 0..L-1 (k = 0: L_x). */
  partialElbo: Float64Array[];
  /** ll_k per image. */
  ll: Float64Array[];
  /** KL_l per image, l = 1..L. */
  kl: Float64Array[];
  /** The chosen k of llr_optk per image. */
  optk: Uint8Array;
  /** Each score of `scoreNames(L)` per image (higher = more OOD). */
  scores: Record<string, Float64Array>;
}

export function emptyScores(L: number, count: number): ImageScores {
  const arrays = (n: number) => Array.from({ length: n }, () => new Float64Array(count));
  const scores: Record<string, Float64Array> = {};
  for (const name of scoreNames(L)) scores[name] = new Float64Array(count);
  return { count, partialElbo: arrays(L), ll: arrays(L), kl: arrays(L), optk: new Uint8Array(count), scores };
}

/**
 * Fills images `at .. at + B - 1` of `into` from the packed values of `samples * iw` passes over the
 * same batch (pass p = s * iw + i, each [B, 3L] row-major). Within a sample the `iw` passes give
 * importance-weighted estimates (log-mean-exp of L^{>k} for every k, the same estimator for all, so
 * LLR^{>0} stays 0; ll_k and KL_l averaged); the scores of the samples are averaged.
 */
export function combinePasses(
  into: ImageScores,
  at: number,
  passes: readonly Float32Array[],
  L: number,
  samples: number,
  iw: number,
): void {
  if (passes.length !== samples * iw) {
    throw new Error(`combinePasses: ${passes.length} passes, expected samples ${samples} x iw ${iw}`);
  }
  const col = passLayout(L), F = col.width;
  const B = passes[0].length / F;
  const names = scoreNames(L);
  for (let b = 0; b < B; b++) {
    const i = at + b;
    const acc = { elbo: new Array(L).fill(0), ll: new Array(L).fill(0), kl: new Array(L).fill(0) };
    const scoreSum: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
    const optkVotes = new Array(L).fill(0);
    for (let s = 0; s < samples; s++) {
      const elbo: number[] = [], ll: number[] = [];
      for (let k = 0; k < L; k++) {
        const values: number[] = [];
        let llSum = 0;
        for (let r = 0; r < iw; r++) {
          const row = passes[s * iw + r];
          values.push(row[b * F + col.elbo(k)]);
          llSum += row[b * F + col.ll(k)];
        }
        elbo.push(iw === 1 ? values[0] : logMeanExp(values));
        ll.push(llSum / iw);
      }
      for (let l = 1; l <= L; l++) {
        let klSum = 0;
        for (let r = 0; r < iw; r++) klSum += passes[s * iw + r][b * F + col.kl(l)];
        acc.kl[l - 1] += klSum / iw / samples;
      }
      const one = imageScores(elbo, ll);
      optkVotes[one.optk]++;
      for (const name of names) scoreSum[name] += one.scores[name] / samples;
      elbo.forEach((v, k) => acc.elbo[k] += v / samples);
      ll.forEach((v, k) => acc.ll[k] += v / samples);
    }
    for (let k = 0; k < L; k++) {
      into.partialElbo[k][i] = acc.elbo[k];
      into.ll[k][i] = acc.ll[k];
      into.kl[k][i] = acc.kl[k];
    }
    into.optk[i] = optkVotes.indexOf(Math.max(...optkVotes));
    for (const name of names) into.scores[name][i] = scoreSum[name];
  }
}
