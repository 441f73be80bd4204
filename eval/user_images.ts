/**
 * Scoring a user's own images (`deno task score`, a directory given to `deno task ood --ood`, and the
 * library API in mod.ts): images at the model's size (no silent resizing), scored like the test sets
 * (eval/score_set.ts: the same binarisation and passes) but each image as if alone, so its scores
 * depend on it and the run only, never on the images around it or how they were batched. That makes
 * streaming exact: `scoreInputs` reads and scores any number of images a batch at a time (reading the
 * next batch while the device scores this one), and a resumed run continues bit for bit.
 * `thresholdAtFpr` (eval/metrics.ts) turns in-distribution scores into an OOD threshold for a target
 * false-positive rate.
 */

import { imageSetFromPixels } from "../data/loader.ts";
import type { LoadedRun } from "../store/load_run.ts";
import type { ImageBatch, ImageInputs } from "../data/image_inputs.ts";
import { dispose } from "../kernels/tensor.ts";
import { emptyScores, type ImageScores } from "../models/scores.ts";
import { imageChannels } from "../models/hvae.ts";
import { REGRET_SCORE, regretSet, type RegretSettings, scoreSet, type ScoreSetOptions } from "./score_set.ts";

/** How user images are scored: the passes, the batch size, and Likelihood Regret when given. */
export type UserScoreOptions = Omit<ScoreSetOptions, "seed" | "onBatch"> & { regret?: RegretSettings | null };

/**
 * Scores images given as bytes (`count` x height x width x the model's channels: gray levels, or RGB
 * triples) with every score, and with
 * Likelihood Regret (`regret`, models/regret.ts) when its settings are given.
 */
export async function scoreImages(
  run: LoadedRun,
  pixels: Uint8Array,
  o: UserScoreOptions,
): Promise<ImageScores> {
  const { height, width } = run.config.model.image;
  const channels = imageChannels(run.config.model);
  const set = imageSetFromPixels("scoreImages: user images", pixels, height, width, undefined, channels);
  try {
    const seed = run.config.training.seed;
    const scored = await scoreSet(run.params, run.config.model, set, { ...o, seed, eachImageAlone: true });
    if (o.regret) {
      scored.scores[REGRET_SCORE] = await regretSet(run.params, run.config.model, set, {
        ...o.regret,
        seed,
        batchSize: o.batchSize,
        eachImageAlone: true,
      });
    }
    return scored;
  } finally {
    dispose(set.bytes);
  }
}

/** One batch of `scoreInputs`: the images read and their scores. */
export interface ScoredBatch {
  /** The images, their names and where they start among all the inputs' images. */
  batch: ImageBatch;
  /** Their scores, image for image. */
  scores: ImageScores;
}

/**
 * Scores `inputs` (data/image_inputs.ts) `o.batchSize` images at a time, after the first `skip` and
 * up to `limit` in all; the next batch is read while this one is scored. Memory holds two batches.
 */
export async function* scoreInputs(
  run: LoadedRun,
  inputs: ImageInputs,
  o: UserScoreOptions & { skip?: number; limit?: number },
): AsyncGenerator<ScoredBatch> {
  const batches = inputs.batches(o.batchSize, { skip: o.skip, limit: o.limit });
  let next = batches.next();
  try {
    while (true) {
      const read = await next;
      if (read.done) return;
      next = batches.next();
      // A failed read surfaces when it is awaited above, not as an unhandled rejection meanwhile.
      next.catch(() => {});
      yield { batch: read.value, scores: await scoreImages(run, read.value.pixels, o) };
    }
  } finally {
    await next.catch(() => {});
    await batches.return(undefined);
  }
}

/** Copies every array of `from` into `into` at image `at` (the scores named in `from`, regret included). */
export function placeScores(into: ImageScores, at: number, from: ImageScores): void {
  const pairs = [
    ...into.partialElbo.map((a, k) => [a, from.partialElbo[k]]),
    ...into.ll.map((a, k) => [a, from.ll[k]]),
    ...into.kl.map((a, k) => [a, from.kl[k]]),
    ...Object.entries(from.scores).map(([n, v]) => [into.scores[n] ??= new Float64Array(into.count), v]),
  ] as [Float64Array, Float64Array][];
  for (const [to, values] of pairs) to.set(values, at);
  into.optk.set(from.optk, at);
}

/**
 * Every image of `inputs` (up to `limit`) scored by streaming, its scores gathered for the metrics
 * that need them all (AUROC): memory holds a few numbers per image and two batches of pixels.
 * `onBatch` gets (images done, images in all).
 */
export async function scoreAllInputs(
  run: LoadedRun,
  inputs: ImageInputs,
  o: UserScoreOptions & { limit?: number; onBatch?: (done: number, total: number) => void },
): Promise<ImageScores> {
  const total = Math.min(inputs.count, o.limit ?? Infinity);
  const out = emptyScores(run.config.model.layers.length, total);
  for await (const { batch, scores } of scoreInputs(run, inputs, o)) {
    placeScores(out, batch.first, scores);
    o.onBatch?.(batch.first + batch.names.length, total);
  }
  return out;
}
