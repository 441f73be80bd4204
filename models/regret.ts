/**
 * Likelihood Regret (Xiao, Yan & Amit, "Likelihood Regret: An Out-of-Distribution Detection Score for
 * Variational Auto-encoder", NeurIPS 2020; the paper's "LRe" of Table 1):
 *   LR(x) = L(x; q*_x) - L(x; q_x)
 * the gain in the ELBO L when the inference for x alone is optimised, q_x being the model's posterior
 * and q*_x the optimised one. An image like the training data is already well explained by the
 * amortised encoder (a small regret); an OOD image gains more (higher = more OOD).
 *
 * Xiao et al. optimise a copy of the encoder's weights per test image (Adam, 100 steps). Here each
 * image's posterior parameters (mu, u of every layer's diagonal Gaussian) are optimised directly,
 * for a whole batch at once, starting from the model's posterior: that is the family an encoder
 * specialised to one image can reach, so q* is at least as good, and it runs batched on the GPU. The
 * optimised posterior is mean-field across layers (each layer's Gaussian is free, not conditioned on
 * the sample above or below): for "ladder" inference that is the model's own family; for "markov",
 * "topdown" and "bidirectional" (BIVA: both halves of a layer, one Gaussian) the starting point is the
 * model's posterior at one draw of the layers it conditions on.
 *
 * The steps maximise the ELBO (the KL analytic or sampled, as the model's configuration says); L
 * before and after is the importance-weighted bound of Burda et al. (2016) with `iw` draws of z from q,
 * log (1/K) sum_k p(x, z_k) / q(z_k), as Xiao et al. estimate it (their 1000 draws), with the same draws
 * before and after (common random numbers), so the regret's noise is the optimisation's.
 */

import { concat, logsumexp, neg, reparameterize, reshape, stopGradient, sub, sum } from "../autograd/ops.ts";
import { valueAndGrad } from "../autograd/tape.ts";
import { dispose, keep, scope, type Tensor } from "../kernels/tensor.ts";
import { adamInit, adamUpdate } from "./adam.ts";
import {
  encode,
  type Gaussian,
  type HvaeConfig,
  type HvaeParams,
  klElementwise,
  perImage,
  posteriorTopDown,
} from "./hvae.ts";
import { reconstruction } from "./likelihood.ts";
import {
  type KeyOf,
  posteriorStream,
  regretEstimateKeys,
  regretFitKeys,
  rowInvariantKeys,
} from "./streams.ts";

/** Settings of `likelihoodRegret`. */
export interface RegretOptions {
  /** Adam steps on each image's posterior. */
  steps: number;
  /** Adam's learning rate. */
  lr: number;
  /** Draws of z in the importance-weighted bounds before and after. */
  iw: number;
  /** The run's seed (the keys of models/streams.ts). */
  seed: number;
  /** The batch's number in its set (the keys' offsets). */
  batch: number;
  /**
   * Regret every image as if it were alone (`deno task score`): row-invariant keys of batch 0
   * (kernels/philox.ts), so an image's draws, and its regret, do not depend on the other images.
   */
  eachImageAlone?: boolean;
}

/** `o`'s key makers: as they are, or row-invariant at batch 0 when every image counts alone. */
function regretKeys(o: RegretOptions) {
  const alone = o.eachImageAlone === true;
  const batch = alone ? 0 : o.batch;
  const wrap = (keyOf: KeyOf): KeyOf => alone ? rowInvariantKeys(keyOf) : keyOf;
  return {
    estimate: (k: number) => wrap(regretEstimateKeys(o.seed, batch, o.iw, k)),
    fit: (step: number) => wrap(regretFitKeys(o.seed, batch, o.steps, step)),
  };
}

/** The model's posterior of every layer for x [B, H, W, 1], as free parameters (no gradient path back). */
export function modelPosterior(params: HvaeParams, cfg: HvaeConfig, x: Tensor, keyOf: KeyOf): Gaussian[] {
  const q = encode(params, cfg, x, keyOf);
  return posteriorTopDown(params, cfg, q, 0, keyOf).posteriors.map((p) => ({
    mu: stopGradient(p.mu),
    u: stopGradient(p.u),
  }));
}

/**
 * The ELBO per image [B] under the given posterior of every layer: z_l drawn from q_l by `keyOf`,
 * the generative pass top down from them, log p(x | z) - sum_l KL_l, with KL_l analytic or, with
 * `kl` "sample", log q(z_l) - log p(z_l | z_{l+1}) at the draw (then the value is log p(x, z) / q(z)).
 */
export function elboUnder(
  params: HvaeParams,
  cfg: HvaeConfig,
  x: Tensor,
  q: Gaussian[],
  keyOf: KeyOf,
  kl: HvaeConfig["kl"] = cfg.kl,
): Tensor {
  const posteriors = q.map((g, l) => ({
    ...g,
    z: reparameterize(g.mu, g.u, keyOf(posteriorStream(l)), cfg.sigma),
  }));
  // The posteriors are given: the generative pass of any wiring, nothing merged on the way down.
  const td = posteriorTopDown(params, cfg, posteriors, 0, undefined, "given");
  const stage = td.stages[0];
  let elbo = reconstruction(params, cfg, stage[stage.length - 1], x).ll;
  const terms: HvaeConfig = { ...cfg, kl };
  posteriors.forEach((ql, l) => elbo = sub(elbo, perImage(klElementwise(terms, ql, td.priors[l]))));
  return elbo;
}

/** The importance-weighted bound per image [B] with `iw` draws, by the fixed estimate keys of the batch. */
export function iwBound(
  params: HvaeParams,
  cfg: HvaeConfig,
  x: Tensor,
  q: Gaussian[],
  o: RegretOptions,
): Tensor {
  const B = x.shape[0];
  const draws = Array.from(
    { length: o.iw },
    (_, k) => reshape(elboUnder(params, cfg, x, q, regretKeys(o).estimate(k), "sample"), [B, 1]),
  );
  return sub(logsumexp(concat(draws, 1), [1]), Math.log(o.iw));
}

/**
 * Likelihood Regret per image of the batch x [B, H, W, 1] of model inputs (models/likelihood.ts): [B], on the GPU, no
 * readback. Each image's posterior is optimised by the sum of the images' ELBOs (their gradients do
 * not mix), `steps` Adam steps at `lr`, each with fresh draws.
 */
export function likelihoodRegret(params: HvaeParams, cfg: HvaeConfig, x: Tensor, o: RegretOptions): Tensor {
  return scope(() => {
    const keys = regretKeys(o);
    const start = modelPosterior(params, cfg, x, keys.estimate(0));
    const before = iwBound(params, cfg, x, start, o);
    // The optimised parameters and Adam's moments outlive the steps' scopes, and go at the end.
    const q = keep(start);
    const adam = adamInit(q);
    try {
      for (let step = 0; step < o.steps; step++) {
        scope(() => {
          const keyOf = keys.fit(step);
          const { grads } = valueAndGrad((qq: Gaussian[]) => neg(sum(elboUnder(params, cfg, x, qq, keyOf))))(
            q,
          );
          adamUpdate(q, grads, adam, { lr: o.lr });
        });
      }
      return sub(iwBound(params, cfg, x, q, o), before);
    } finally {
      dispose([q, adam.m, adam.v]);
    }
  });
}
