/**
 * Scoring many images with a trained model: batches of an image set through `partialElbos`
 * (models/scores.ts), one readback per batch, memory flat across batches; and the pictures' raw
 * material, reconstructions from p(x | z_{>k}) and samples from the prior.
 *
 * Randomness (models/streams.ts): a Bernoulli model's images are binarised once, by a fixed key shared
 * by every run (`TEST_BINARIZATION`), so all runs score identical binary images (an 8-bit model's are
 * the levels themselves, no draw); the samples of the passes are
 * keyed by the run's seed, the batch and the pass (`scoringKeys`).
 */

import { reparameterize } from "../autograd/ops.ts";
import { noGrad } from "../autograd/tape.ts";
import { dispose, dryRun, read, readAll, scope, type Tensor } from "../kernels/tensor.ts";
import { likelihoodRegret } from "../models/regret.ts";
import { type ImageSet, inputBatch } from "../data/loader.ts";
import { generate, type HvaeConfig, type HvaeParams, imageChannels } from "../models/hvae.ts";
import { likelihoodOf, meanImage } from "../models/likelihood.ts";
import {
  combinePasses,
  emptyScores,
  type GenerateMode,
  type ImageScores,
  packPasses,
  partialElbos,
} from "../models/scores.ts";
import { priorSampleKey, rowInvariantKeys, scoringKeys, TEST_BINARIZATION } from "../models/streams.ts";

/** The evaluation binarisation, row-invariant when every image counts as if alone. */
const testBinarization = (alone: boolean) =>
  alone ? { ...TEST_BINARIZATION, rowInvariant: true } : TEST_BINARIZATION;

/** Settings of `scoreSet`. */
export interface ScoreSetOptions {
  /** The run's seed. */
  seed: number;
  /** Independent draws per image whose scores are averaged (default 1). */
  samples: number;
  /** Passes per draw for importance-weighted L^{>k} estimates (default 1). */
  iw: number;
  /** z_k .. z_1 of the partial passes as prior means or samples. */
  generate: GenerateMode;
  /** Images per batch. */
  batchSize: number;
  /** Called after each batch with the images done. */
  onBatch?: (done: number, total: number) => void;
  /**
   * Score every image as if it were alone: its binarisation and the passes' noise keyed by the pixel
   * or element within the image, not by its position in the set or batch (`rowInvariant` keys,
   * kernels/philox.ts). A user's image then scores the same whatever other images come with it.
   */
  eachImageAlone?: boolean;
}

/** Scores images `indices` (all of the set by default) of `set` with every pass. */
export async function scoreSet(
  params: HvaeParams,
  cfg: HvaeConfig,
  set: ImageSet,
  o: ScoreSetOptions,
  indices: Uint32Array = Uint32Array.from({ length: set.count }, (_, i) => i),
): Promise<ImageScores> {
  const L = cfg.layers.length;
  const passes = o.samples * o.iw;
  const out = emptyScores(L, indices.length);
  const passesOf = (ids: Uint32Array, batch: number) =>
    noGrad(() =>
      scope(() => {
        const alone = o.eachImageAlone === true;
        const x = inputBatch(set, ids, testBinarization(alone), likelihoodOf(cfg).input);
        const rows: Tensor[] = [];
        for (let p = 0; p < passes; p++) {
          rows.push(scope(() =>
            packPasses(
              partialElbos(params, cfg, x, {
                keyOf: alone
                  ? rowInvariantKeys(scoringKeys(o.seed, 0, passes, p))
                  : scoringKeys(o.seed, batch, passes, p),
                generate: o.generate,
              }),
            )
          ));
        }
        return rows;
      })
    );
  // A batch the device cannot hold fails here, before any GPU work (kernels/tensor.ts, `dryRun`).
  try {
    dryRun(() => passesOf(indices.subarray(0, o.batchSize), 0));
  } catch (error) {
    throw new Error(
      `${set.name}: scoring batches of ${
        Math.min(o.batchSize, indices.length)
      } images do not fit this device (use a smaller --eval-batch-size): ${(error as Error).message}`,
    );
  }
  for (let at = 0, batch = 0; at < indices.length; at += o.batchSize, batch++) {
    const packed = passesOf(indices.subarray(at, at + o.batchSize), batch);
    const values = await readAll(packed);
    dispose(packed);
    combinePasses(out, at, values as Float32Array[], L, o.samples, o.iw);
    o.onBatch?.(Math.min(at + o.batchSize, indices.length), indices.length);
  }
  return out;
}

/**
 * Gray images in [0, 1] for a reconstruction grid: per image, the model's input (binarised, or the
 * 8-bit levels), then the means of p(x | z_{>k}) for k = 0..L-1 (`meanImage`, models/likelihood.ts;
 * one pass, prior means below k).
 * Returns rows[image][0..L] of H*W arrays.
 */
export async function reconstructions(
  params: HvaeParams,
  cfg: HvaeConfig,
  set: ImageSet,
  indices: Uint32Array,
  seed: number,
  generate: GenerateMode = "mean",
): Promise<Float32Array[][]> {
  const tensors = noGrad(() =>
    scope(() => {
      const x = inputBatch(set, indices, TEST_BINARIZATION, likelihoodOf(cfg).input);
      const p = partialElbos(params, cfg, x, { keyOf: scoringKeys(seed, 0, 1, 0), generate });
      return [likelihoodOf(cfg).shownInput(x), ...p.logits.map((l) => meanImage(cfg, l))];
    })
  );
  const values = await readAll(tensors);
  dispose(tensors);
  const hw = set.height * set.width * set.channels;
  return Array.from(
    indices,
    (_, i) => values.map((v) => Float32Array.from(v.subarray(i * hw, (i + 1) * hw))),
  );
}

/**
 * `count` samples from the generative model (Fig. 9): z_L ~ N(0, I), then z_l ~ p(z_l | z_{l+1}) down
 * to z_1, then the means of p(x | z_1) (`meanImage`). Returns `count` H*W arrays in [0, 1].
 */
export async function priorSamples(
  params: HvaeParams,
  cfg: HvaeConfig,
  count: number,
  seed: number,
): Promise<Float32Array[]> {
  const probs = noGrad(() =>
    scope(() =>
      meanImage(
        cfg,
        generate(params, cfg, count, (g, l) => reparameterize(g.mu, g.u, priorSampleKey(seed, l), cfg.sigma)),
      )
    )
  );
  const [values] = await readAll([probs]);
  probs.dispose();
  const hw = cfg.image.height * cfg.image.width * imageChannels(cfg);
  return Array.from({ length: count }, (_, i) => Float32Array.from(values.subarray(i * hw, (i + 1) * hw)));
}

/** Likelihood Regret's settings (models/regret.ts). */
export interface RegretSettings {
  /** Adam steps on each image's posterior. */
  steps: number;
  /** Adam's learning rate. */
  lr: number;
  /** Draws of the importance-weighted bounds before and after. */
  iw: number;
}

/** The name of Likelihood Regret's score in the results. */
export const REGRET_SCORE = "regret";

/** Settings of `regretSet`: Likelihood Regret's (models/regret.ts) and the batching. */
export interface RegretSetOptions extends RegretSettings {
  /** The run's seed. */
  seed: number;
  /** Images per batch (optimised together; each image's parameters are its own). */
  batchSize: number;
  /** Called after each batch with the images done. */
  onBatch?: (done: number, total: number) => void;
  /** Every image as if alone: binarised and regretted with row-invariant keys (as `scoreSet`'s). */
  eachImageAlone?: boolean;
}

/** Likelihood Regret of every image of `set` (higher = more OOD), one readback per batch. */
export async function regretSet(
  params: HvaeParams,
  cfg: HvaeConfig,
  set: ImageSet,
  o: RegretSetOptions,
): Promise<Float64Array> {
  const out = new Float64Array(set.count);
  const regretOf = (at: number, batch: number) =>
    scope(() => {
      const ids = Uint32Array.from({ length: Math.min(o.batchSize, set.count - at) }, (_, i) => at + i);
      const alone = o.eachImageAlone === true;
      const x = inputBatch(set, ids, testBinarization(alone), likelihoodOf(cfg).input);
      return likelihoodRegret(params, cfg, x, {
        steps: o.steps,
        lr: o.lr,
        iw: o.iw,
        seed: o.seed,
        batch,
        eachImageAlone: alone,
      });
    });
  for (let at = 0, batch = 0; at < set.count; at += o.batchSize, batch++) {
    const regret = regretOf(at, batch);
    out.set(await read(regret), at);
    regret.dispose();
    o.onBatch?.(Math.min(at + o.batchSize, set.count), set.count);
  }
  return out;
}
