/**
 * Training the HVAE: one step (loss, gradients, Adam), the KL warm-up and free-bits schedules, the
 * layout of the per-step metrics, the initial parameters, and `train`, the epoch loop with
 * bit-exact resume. Files, flags and printing live in scripts/train.ts, which calls `train` with
 * hooks for progress, checkpoints and stopping.
 *
 * Randomness comes from keys, not state (models/streams.ts): the posterior and prior samples of
 * step t use offset t, the binarisation of epoch e offset e, the order of epoch e is a permutation
 * seeded by (seed, e) (`shuffledOrder`). So a run resumed from a checkpoint after any step draws
 * exactly the numbers an uninterrupted run would, and ends with the same bits.
 */

import { valueAndGradWithAux } from "../autograd/tape.ts";
import { dryRun, readAll, scope, type Tensor } from "../kernels/tensor.ts";
import { type ImageSet, inputBatch } from "../data/loader.ts";
import { adamInit, type AdamState, adamUpdate } from "./adam.ts";
import { type HvaeConfig, hvaeObjective, type HvaeParams, initHvae, initHvaeFromData } from "./hvae.ts";
import { createRng } from "./rng.ts";
import { likelihoodOf } from "./likelihood.ts";
import { trainingBinarization, trainingKeys, weightNormInitKeys } from "./streams.ts";

/** Settings of one `trainStep`. */
export interface StepOptions {
  /** The ELBO, or the informative loss of Eq. 10. */
  loss: "elbo" | "informative";
  /** Adam's learning rate. */
  lr: number;
  /** The KL weight (warm-up). */
  beta: number;
  /** The free-bits floor, in nats per layer. */
  freeBits: number;
  /** The run's seed (the keys of the step's samples). */
  seed: number;
  /** Global step (the random offset of this step's samples). */
  step: number;
}

/**
 * Loss, gradients and an Adam update for one batch x [B, H, W, 1]; parameters and moments change in
 * place. Returns the metrics vector [loss, elbo, KL_1..KL_L, ll_0..] to read back (one readback).
 */
export function trainStep(
  cfg: HvaeConfig,
  params: HvaeParams,
  adam: AdamState<HvaeParams>,
  x: Tensor,
  o: StepOptions,
): Tensor {
  return scope(() => {
    const { grads, aux } = valueAndGradWithAux((p: HvaeParams, batch: Tensor) => {
      const objective = hvaeObjective(p, cfg, batch, {
        loss: o.loss,
        beta: o.beta,
        freeBits: o.freeBits,
        keyOf: trainingKeys(o.seed, o.step),
      });
      return [objective.loss, objective.metrics];
    })(params, x);
    adamUpdate(params, grads, adam, { lr: o.lr });
    return aux;
  });
}

/** KL warm-up: beta rises linearly from 0 to 1 over the first `warmupEpochs` epochs (1 without warm-up). */
export function warmupBeta(step: number, stepsPerEpoch: number, warmupEpochs: number): number {
  if (warmupEpochs <= 0) return 1;
  return Math.min(1, (step + 1) / (warmupEpochs * stepsPerEpoch));
}

/**
 * The free-bits floor at a step: `freeBits` throughout when `periodEpochs` is 0; otherwise held for the
 * first half of the period, then falling linearly to 0 at its end (the baselines' schedule in the
 * paper's Appendix F and Havtorn et al.'s code: 2 nats for 200 epochs, down to 0 by epoch 400).
 */
export function freeBitsAt(
  step: number,
  stepsPerEpoch: number,
  freeBits: number,
  periodEpochs: number,
): number {
  if (periodEpochs <= 0) return freeBits;
  const epoch = step / stepsPerEpoch, hold = periodEpochs / 2;
  if (epoch < hold) return freeBits;
  return freeBits * Math.max(0, 1 - (epoch - hold) / (periodEpochs - hold));
}

/** Names of the entries of the metrics vector for a model with L layers. */
export function metricNames(L: number, loss: "elbo" | "informative"): string[] {
  const names = ["loss", "elbo"];
  for (let l = 1; l <= L; l++) names.push(`kl${l}`);
  const lls = loss === "informative" ? L : 1;
  for (let k = 0; k < lls; k++) names.push(`ll${k}`);
  return names;
}

/** The metrics of a step (or their means over an epoch), by name. */
export interface TrainingMetrics {
  /** The minimised loss: -(objective), batch mean. */
  loss: number;
  /** L_x, the ELBO (Eq. 2/3), batch mean. */
  elbo: number;
  /** KL_l for l = 1..L. */
  kl: number[];
  /** ll_k = log p(x | z^(k)) for k = 0 (ELBO) or k = 0..L-1 (informative loss, Eq. 10). */
  ll: number[];
}

/** Reads a metrics vector laid out as `metricNames` says ([loss, elbo, KL_1..KL_L, ll_0..]). */
export function namedMetrics(values: ArrayLike<number>, L: number): TrainingMetrics {
  const v = Array.from(values);
  return { loss: v[0], elbo: v[1], kl: v.slice(2, 2 + L), ll: v.slice(2 + L) };
}

// ---------------------------------------------------------------- the epoch loop

/** The training hyper-parameters of a run (saved in config.json; store/load_run.ts). */
export interface TrainingSchedule {
  /** The ELBO, or the informative loss of Eq. 10. */
  loss: "elbo" | "informative";
  /** Epochs to train. */
  epochs: number;
  /** Images per step. */
  batchSize: number;
  /** Adam's learning rate. */
  lr: number;
  /** KL warm-up over this many epochs (0: off); `warmupBeta`. */
  warmupEpochs: number;
  /** Free-bits floor in nats per layer (0: off); `freeBitsAt`. */
  freeBits: number;
  /** Free-bits period (0 or absent: the floor holds throughout); `freeBitsAt`. */
  freeBitsEpochs?: number;
  /** Seed of initialisation, order, binarisation and samples. */
  seed: number;
}

/** Where a run stands: what a checkpoint stores besides the tensors (store/checkpoint.ts). */
export interface Progress {
  /** Epochs completed. */
  epoch: number;
  /** Batches done in the current (incomplete) epoch; 0 at an epoch boundary. */
  stepInEpoch: number;
  /** Training steps done in total. */
  step: number;
}

/** The parameters, Adam's state and the progress: what `train` advances (the tensors in place). */
export interface TrainState {
  /** The parameters (updated in place). */
  params: HvaeParams;
  /** Adam's state (updated in place). */
  adam: AdamState<HvaeParams>;
  /** Where the run stands. */
  progress: Progress;
}

/** What `train` reports after every step. */
export interface StepReport {
  /** The step's metrics (batch means). */
  metrics: TrainingMetrics;
  /** 0-based epoch and batch within it, and the epoch's batch count. */
  epoch: number;
  /** The batch within the epoch (0-based). */
  batch: number;
  /** Batches in the epoch. */
  batches: number;
  /** Steps run by this call of `train` so far (this one included). */
  stepsHere: number;
  /** Images of the epoch done in this call, and the seconds since its first step here. */
  epochImages: number;
  /** Seconds since the epoch's first step in this call. */
  epochSeconds: number;
  /** Seconds of training in this call so far (steps and readbacks; not the epoch hooks). */
  trainingSeconds: number;
  /** Where the run stands after the step. */
  progress: Progress;
}

/** One line of metrics.jsonl: an epoch's means, complete or cut short by a stop. */
export interface EpochRecord {
  /** 1-based epoch. */
  epoch: number;
  /** Whether the epoch was trained to its end. */
  complete: boolean;
  /** Why the epoch was cut short (a hook's reason). */
  stoppedBy?: string;
  /** Mean loss over the epoch's images (an epoch record follows at least one step). */
  loss: number;
  /** Mean ELBO. */
  elbo: number;
  /** Mean KL per layer. */
  kl: number[];
  /** Mean log p(x | z^(k)) per k. */
  ll: number[];
  /** Images trained on. */
  images: number;
  /** Seconds the epoch took (steps and readbacks). */
  seconds: number;
  /** Training speed. */
  imagesPerSecond: number;
}

/** What `train` calls along the way. */
export interface TrainHooks {
  /** Before each step; `stepsHere` counts the steps of this call before it (e.g. to profile one). */
  beforeStep?: (stepsHere: number, batch: number, batches: number) => void;
  /** After each step's readback, with its metrics. */
  afterStep?: (report: StepReport) => void | Promise<void>;
  /** After each step: a reason to stop now (an interrupt, a time limit), or null to go on. */
  shouldStop?: (report: StepReport) => string | null;
  /** After each epoch, complete or cut short: write its record and a checkpoint here. */
  afterEpoch?: (record: EpochRecord, state: TrainState) => void | Promise<void>;
}

/** A step whose loss or metrics are not finite; the state is that of the step before. */
export class NonFiniteLossError extends Error {
  /** A non-finite metric at `batch` of `epoch` (0-based), with the metrics' names and values. */
  constructor(
    readonly epoch: number,
    readonly batch: number,
    readonly names: string[],
    readonly values: ArrayLike<number>,
  ) {
    super(
      `non-finite loss at epoch ${epoch + 1}, step ${batch + 1} (${
        names.map((n, i) => `${n} ${values[i]}`).join(", ")
      })`,
    );
  }
}

/** A seeded permutation of 0..count-1 for `epoch` (Fisher-Yates on the CPU generator). */
export function shuffledOrder(count: number, seed: number, epoch: number): Uint32Array {
  const rng = createRng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca77)) >>> 0);
  const order = Uint32Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** The index lists of consecutive batches of `order` (the last one may be smaller). */
export function batchesOf(order: Uint32Array, batchSize: number): Uint32Array[] {
  const out: Uint32Array[] = [];
  for (let at = 0; at < order.length; at += batchSize) out.push(order.subarray(at, at + batchSize));
  return out;
}

/**
 * The parameters a run starts from: `initHvae` from the seed and, for weight-normalised presets given
 * the training `set`, the reference's data-dependent initialisation on the first training batch (the
 * bits step 1 will see). Without a set (a run about to be restored from its checkpoint), no data pass.
 */
export function initialParams(cfg: HvaeConfig, schedule: TrainingSchedule, set: ImageSet | null): HvaeParams {
  const params = initHvae(cfg, createRng(schedule.seed));
  if (cfg.weightNorm && set) {
    const first = batchesOf(shuffledOrder(set.count, schedule.seed, 0), schedule.batchSize)[0];
    scope(() => {
      initHvaeFromData(
        params,
        cfg,
        inputBatch(set, first, trainingBinarization(schedule.seed, 0), likelihoodOf(cfg).input),
        weightNormInitKeys(schedule.seed),
      );
    });
  }
  return params;
}

/**
 * A fresh training state: `initialParams`, Adam's zero moments, and no progress; what `train` takes
 * for a new run (a resumed run's comes from its checkpoint, store/checkpoint.ts).
 */
export function initialState(cfg: HvaeConfig, schedule: TrainingSchedule, set: ImageSet | null): TrainState {
  const params = initialParams(cfg, schedule, set);
  return { params, adam: adamInit(params), progress: { epoch: 0, stepInEpoch: 0, step: 0 } };
}

/**
 * Tries one training step at the schedule's batch size without running it (`dryRun`): a batch the
 * device cannot hold fails here, with the engine's message and the batch size, before any GPU work.
 * Without a state, the run's initialisation (with its data-dependent pass) is tried as well.
 */
export function checkStepFits(
  cfg: HvaeConfig,
  schedule: TrainingSchedule,
  set: ImageSet,
  state: TrainState | null,
): void {
  const batch = Uint32Array.from({ length: Math.min(schedule.batchSize, set.count) }, (_, i) => i);
  try {
    dryRun(() => {
      const params = state?.params ?? initialParams(cfg, schedule, set);
      // A copy of Adam's state: its step counter lives on the CPU and would advance even here.
      const adam = state ? { ...state.adam } : adamInit(params);
      trainStep(
        cfg,
        params,
        adam,
        inputBatch(set, batch, trainingBinarization(0, 0), likelihoodOf(cfg).input),
        {
          loss: schedule.loss,
          lr: schedule.lr,
          beta: 1,
          freeBits: schedule.freeBits,
          seed: schedule.seed,
          step: 0,
        },
      );
    });
  } catch (error) {
    throw new Error(
      `a training step of ${batch.length} images does not fit this device (use a smaller --batch-size): ${
        (error as Error).message
      }`,
    );
  }
}

/**
 * Trains from `state.progress` until `schedule.epochs` are complete or a hook asks to stop. Epoch e
 * visits the set in `shuffledOrder(count, seed, e)`, in batches of `batchSize`, each binarised with
 * `trainingBinarization(seed, e)`; step t uses `trainingKeys(seed, t)`, the schedules at t, and one
 * readback. Parameters and moments change in place; `state.progress` advances. A non-finite metric
 * throws `NonFiniteLossError` before the epoch hook runs, so the last checkpoint stays the last good one.
 */
export async function train(
  cfg: HvaeConfig,
  schedule: TrainingSchedule,
  set: ImageSet,
  state: TrainState,
  hooks: TrainHooks = {},
): Promise<{ stoppedBy: string | null; stepsHere: number; trainingSeconds: number; images: number }> {
  const L = cfg.layers.length;
  const names = metricNames(L, schedule.loss);
  if (set.count < 1) throw new Error(`${set.name}: no images to train on`);
  checkStepFits(cfg, schedule, set, state);
  const stepsPerEpoch = Math.ceil(set.count / schedule.batchSize);
  let stoppedBy: string | null = null, stepsHere = 0, trainingSeconds = 0, imagesHere = 0;
  while (state.progress.epoch < schedule.epochs && stoppedBy === null) {
    const epoch = state.progress.epoch;
    const batches = batchesOf(shuffledOrder(set.count, schedule.seed, epoch), schedule.batchSize);
    const sums = new Float64Array(names.length);
    let images = 0;
    const started = performance.now();
    for (let b = state.progress.stepInEpoch; b < batches.length && stoppedBy === null; b++) {
      const indices = batches[b];
      const step = state.progress.step;
      hooks.beforeStep?.(stepsHere, b, batches.length);
      stepsHere++;
      // Everything the step creates (the batch, its index upload, activations, gradients) is released
      // at the end of this scope; only the metrics vector survives, for the one readback.
      const metrics = scope(() =>
        trainStep(
          cfg,
          state.params,
          state.adam,
          inputBatch(set, indices, trainingBinarization(schedule.seed, epoch), likelihoodOf(cfg).input),
          {
            loss: schedule.loss,
            lr: schedule.lr,
            beta: warmupBeta(step, stepsPerEpoch, schedule.warmupEpochs),
            freeBits: freeBitsAt(step, stepsPerEpoch, schedule.freeBits, schedule.freeBitsEpochs ?? 0),
            seed: schedule.seed,
            step,
          },
        )
      );
      const [values] = await readAll([metrics]);
      metrics.dispose();
      if (!values.every(Number.isFinite)) throw new NonFiniteLossError(epoch, b, names, values);
      values.forEach((v, i) => sums[i] += v * indices.length);
      images += indices.length;
      state.progress = { epoch, stepInEpoch: b + 1, step: step + 1 };
      const epochSeconds = (performance.now() - started) / 1000;
      const report: StepReport = {
        metrics: namedMetrics(values, L),
        epoch,
        batch: b,
        batches: batches.length,
        stepsHere,
        epochImages: images,
        epochSeconds,
        trainingSeconds: trainingSeconds + epochSeconds,
        progress: state.progress,
      };
      await hooks.afterStep?.(report);
      stoppedBy = hooks.shouldStop?.(report) ?? null;
    }
    const seconds = (performance.now() - started) / 1000;
    trainingSeconds += seconds;
    imagesHere += images;
    const complete = state.progress.stepInEpoch >= batches.length;
    if (complete) state.progress = { epoch: epoch + 1, stepInEpoch: 0, step: state.progress.step };
    const means = namedMetrics(Array.from(sums, (v) => v / images), L);
    const record: EpochRecord = {
      epoch: epoch + 1,
      complete,
      ...(stoppedBy !== null && !complete ? { stoppedBy } : {}),
      loss: means.loss,
      elbo: means.elbo,
      kl: means.kl,
      ll: means.ll,
      images,
      seconds: +seconds.toFixed(2),
      imagesPerSecond: +(images / seconds).toFixed(2),
    };
    await hooks.afterEpoch?.(record, state);
  }
  return { stoppedBy, stepsHere, trainingSeconds, images: imagesHere };
}
