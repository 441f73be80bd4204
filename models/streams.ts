/**
 * Every random stream of the project, named in one place.
 *
 * A random key is (seed, stream, offset) (kernels/philox.ts): the seed is the run's, the stream says
 * what the noise is for, and the offset counts its uses (the training step, the epoch, the scoring
 * batch and pass). Two purposes never share a stream number, so they never draw the same numbers
 * (tests/streams_test.ts checks every pair). docs/design.md lists the keys with their offsets.
 *
 * A pass of the model (hvaeObjective, partialElbos in models/) numbers its own draws relative to a
 * base: the posterior sample of layer l is `posteriorStream(l)`, the prior resample of layer l in
 * partial pass k is `priorStream(k, l)` (BIVA's top-down half of layer l: `topDownPosteriorStream(l)`), all inside [PASS_FIRST, PASS_END). Each purpose that runs
 * passes adds its base (`PASS_BASE`), a multiple of 1000.
 */

import type { RandomKey } from "../kernels/philox.ts";

/** The most latent layers (and partial passes) the stream numbering has room for. */
export const MAX_LAYERS = 10;

/** A pass's own stream numbers lie in [PASS_FIRST, PASS_END). */
export const PASS_FIRST = 100;
export const PASS_END = 300;

/** The posterior sample z_l ~ q(z_l | ...) of layer l (0-based) within a pass. */
export function posteriorStream(layer: number): number {
  return 100 + checkedLayer(layer);
}

/**
 * BIVA's top-down posterior sample z_l^TD ~ q(z_l^TD | x, z_{>l}) of layer l (0-based) within a pass;
 * its bottom-up half is `posteriorStream(l)`'s (models/hvae.ts, "bidirectional" inference).
 */
export function topDownPosteriorStream(layer: number): number {
  return 100 + MAX_LAYERS + checkedLayer(layer);
}

/** The prior resample z_l ~ p(z_l | z_{l+1}) of layer l in partial pass k (0-based). */
export function priorStream(pass: number, layer: number): number {
  return 200 + MAX_LAYERS * checkedLayer(pass) + checkedLayer(layer);
}

function checkedLayer(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n >= MAX_LAYERS) {
    throw new Error(`random streams: layer or pass ${n} outside 0..${MAX_LAYERS - 1}`);
  }
  return n;
}

/** The base each purpose adds to a pass's stream numbers. */
export const PASS_BASE = {
  /** The training steps' samples; offset: the global step. */
  training: 0,
  /** Scoring (evaluation, user images, reconstructions); offset: batch x passes + pass. */
  scoring: 1000,
  /** The data-dependent weight-norm initialisation pass on the first batch; offset 0. */
  weightNormInit: 2000,
  /** Likelihood Regret's optimisation steps (models/regret.ts); offset: batch x steps + step. */
  regretFit: 3000,
  /** Likelihood Regret's ELBO estimates before and after (the same draws); offset: batch x samples + draw. */
  regretEstimate: 4000,
} as const;

/** Streams used directly, outside any pass. */
export const STREAM = {
  /** Binarisation of the training images; offset: the epoch (fresh bits every epoch). */
  trainingBinarization: 1,
  /** Binarisation of every evaluation set (and of user images), with the fixed `TEST_BINARIZATION` key. */
  testBinarization: 3,
  /** Samples from the generative model (the samples figure): stream + layer, offset 0. */
  priorSamples: 1500,
} as const;

/** A pass's key maker: the key of its (relative) stream s. */
export type KeyOf = (stream: number) => RandomKey;

/**
 * `keyOf`'s keys made row-invariant (kernels/philox.ts): every image of a batch draws what the first
 * would, so an image scored "as if alone" draws the same whatever images come with it.
 */
export function rowInvariantKeys(keyOf: KeyOf): KeyOf {
  return (stream) => ({ ...keyOf(stream), rowInvariant: true });
}

/** The keys of training step `step` of a run with `seed`. */
export function trainingKeys(seed: number, step: number): KeyOf {
  return (stream) => ({ seed, stream: PASS_BASE.training + stream, offset: step });
}

/** The binarisation key of the training images in `epoch`. */
export function trainingBinarization(seed: number, epoch: number): RandomKey {
  return { seed, stream: STREAM.trainingBinarization, offset: epoch };
}

/** The binarisation of every evaluation set: one fixed key, whatever the run, so all runs score the same bits. */
export const TEST_BINARIZATION: RandomKey = { seed: 2022, stream: STREAM.testBinarization, offset: 0 };

/** The keys of scoring pass `pass` (of `passes` per image) over batch `batch`. */
export function scoringKeys(seed: number, batch: number, passes: number, pass: number): KeyOf {
  return (stream) => ({ seed, stream: PASS_BASE.scoring + stream, offset: batch * passes + pass });
}

/** The keys of the weight-norm initialisation pass. */
export function weightNormInitKeys(seed: number): KeyOf {
  return (stream) => ({ seed, stream: PASS_BASE.weightNormInit + stream, offset: 0 });
}

/** The key of layer l's draw when sampling from the generative model. */
export function priorSampleKey(seed: number, layer: number): RandomKey {
  return { seed, stream: STREAM.priorSamples + checkedLayer(layer), offset: 0 };
}

/** The keys of Likelihood Regret's optimisation step `step` (of `steps`) on batch `batch`. */
export function regretFitKeys(seed: number, batch: number, steps: number, step: number): KeyOf {
  return (stream) => ({ seed, stream: PASS_BASE.regretFit + stream, offset: batch * steps + step });
}

/** The keys of Likelihood Regret's ELBO estimate `draw` (of `samples`) on batch `batch`. */
export function regretEstimateKeys(seed: number, batch: number, samples: number, draw: number): KeyOf {
  return (stream) => ({ seed, stream: PASS_BASE.regretEstimate + stream, offset: batch * samples + draw });
}
