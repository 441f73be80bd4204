/**
 * A training run's life in its directory, as `deno task train` lives it (README, "When things go
 * wrong"): the configuration of a new run or of one resumed (what a resume may change), the state to
 * start from (fresh from the seed, or the last checkpoint after repairing what a crash left), the
 * changes recorded in config.json, each epoch's checkpoint and metrics line (in that order), the
 * advice when a run stops on an error, and the evaluation sized to a time budget.
 */

import { writeFileAtomic } from "../data/files.ts";
import { stopProfile } from "../kernels/engine.ts";
import { measureCeiling } from "../kernels/ceiling.ts";
import { formatProfile } from "../kernels/runtime/profiler.ts";
import { flattenParams, type HvaeConfig, imageChannels } from "../models/hvae.ts";
import { likelihoodOf, runTag } from "../models/likelihood.ts";
import { keep } from "../kernels/tensor.ts";
import { adamInit } from "../models/adam.ts";
import { initHvae } from "../models/hvae.ts";
import type { RunConfig, TrainingConfig } from "../models/run_from_bytes.ts";
import { createRng } from "../models/rng.ts";
import {
  type EpochRecord,
  initialParams,
  NonFiniteLossError,
  type Progress,
  type StepReport,
  type TrainState,
} from "../models/training.ts";
import { type DatasetName, loadSplit } from "../data/datasets.ts";
import { DATASET_IMAGES } from "../data/dataset_names.ts";
import { shapeName } from "../data/image_inputs.ts";
import { type ImageSet, imageSetOnGpu } from "../data/loader.ts";
import { loadCheckpoint, readSafetensors, recoverCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { readRunConfig } from "./load_run.ts";
import { runDirState, truncateMetrics } from "./run_lifecycle.ts";

/** The settings a run records that a resume may not change, and those it may (epochs, lr). */
export type GivenSettings = Partial<TrainingConfig> & {
  preset?: string;
  likelihood?: string;
  components?: number;
};

/** The dataset a model trains on when none is named: Fashion-MNIST for grayscale, CIFAR-10 for RGB. */
export function defaultDataset(model: HvaeConfig): DatasetName {
  return imageChannels(model) === 3 ? "cifar10" : "fashion-mnist";
}

/**
 * Why `dataset` cannot train `model` (its images are of another size or channel count), or null.
 * Said before any data is read.
 */
export function datasetMismatch(model: HvaeConfig, dataset: DatasetName): string | null {
  const want = DATASET_IMAGES[dataset], { height, width } = model.image, channels = imageChannels(model);
  if (want.height === height && want.width === width && want.channels === channels) return null;
  const other = Object.entries(DATASET_IMAGES).filter(([, d]) =>
    d.height === height && d.width === width && d.channels === channels
  ).map(([n]) => n);
  return `--dataset ${dataset} holds ${
    shapeName(want.height, want.width, want.channels)
  } images; preset '${model.preset}' takes ${shapeName(height, width, channels)}${
    other.length ? ` (its datasets: ${other.join(", ")})` : ""
  }`;
}

/** A new run's configuration: `model`, the settings given (defaults elsewhere), the adapter and versions. */
export function newRunConfig(model: HvaeConfig, given: GivenSettings, adapter: unknown): RunConfig {
  return {
    model,
    training: {
      loss: given.loss ?? "informative",
      epochs: given.epochs ?? 1,
      batchSize: given.batchSize ?? 128,
      lr: given.lr ?? 3e-4,
      warmupEpochs: given.warmupEpochs ?? 0,
      freeBits: given.freeBits ?? 0,
      freeBitsEpochs: given.freeBitsEpochs ?? 0,
      seed: given.seed ?? 1,
      trainLimit: given.trainLimit ?? null,
      dataset: given.dataset ?? defaultDataset(model),
    },
    adapter,
    versions: { deno: Deno.version.deno, v8: Deno.version.v8, typescript: Deno.version.typescript },
    createdAt: new Date().toISOString(),
  };
}

/** Where a new run goes by default: runs/<preset><likelihood tag>-<loss>-seed<seed>. */
export function defaultRunDir(run: RunConfig): string {
  return `runs/${run.model.preset}${runTag(run.model)}-${run.training.loss}-seed${run.training.seed}`;
}

/** How each wiring of models/hvae.ts reads in the log. */
const INFERENCE_NAMES: Record<HvaeConfig["inference"], string> = {
  ladder: "bottom-up inference (ladder)",
  markov: "bottom-up inference through the samples",
  topdown: "LVAE top-down inference",
  bidirectional: "BIVA bidirectional inference (TD and BU latents under the top)",
};

/** The model and training of a run in one line of the log. */
export function modelSummary(run: RunConfig): string {
  const m = run.model;
  const latents = m.layers.map((l) =>
    l.latent.kind === "conv" ? `${l.latent.channels}ch` : `${l.latent.size}`
  );
  return `model '${m.preset}': ${m.layers.length} latent layers [${
    latents.join(", ")
  }], ${m.channels} channels, ${m.activation}, ${INFERENCE_NAMES[m.inference]}, ${likelihoodOf(m).summary}${
    m.components ? ` (${m.components} components)` : ""
  }; training ${JSON.stringify(run.training)}`;
}

/**
 * Ends a profiled step (started with `startProfile`): the table by kernel on stderr, with each row's
 * fraction of the adapter's ceiling (kernels/ceiling.ts), and profile.json in the run directory.
 */
export async function writeStepProfile(dir: string, step: number): Promise<void> {
  const report = await stopProfile();
  const ceiling = await measureCeiling();
  console.error(`\n${formatProfile(report, 25, ceiling)}`);
  await writeFileAtomic(
    `${dir}/profile.json`,
    new TextEncoder().encode(JSON.stringify({ step, ...report, ceiling }, null, 2)),
  );
}

/** Seconds as "3m07s" or "2h05m": the one duration format of the logs (training, scoring, progress). */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h > 0
    ? `${h}h${String(m % 60).padStart(2, "0")}m`
    : `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
}

/** Appends one line to a file; a failure (a full disk) names the file. */
export async function appendLine(path: string, line: string): Promise<void> {
  try {
    await Deno.writeTextFile(path, line + "\n", { append: true });
  } catch (error) {
    throw new Error(`cannot append to ${path} (${(error as Error).message})`);
  }
}

/** Writes the run's config.json (atomically). */
export async function writeRunConfig(dir: string, run: RunConfig): Promise<void> {
  await writeFileAtomic(`${dir}/config.json`, new TextEncoder().encode(JSON.stringify(run, null, 2) + "\n"));
}

/** Reads and checks a run's config.json for --resume (errors name the file). */
export async function readSavedConfig(dir: string): Promise<RunConfig> {
  const { state } = await runDirState(dir);
  if (state === "absent" || state === "empty") {
    throw new Error(`cannot resume: ${dir} holds no run (no config.json); start one with --out ${dir}`);
  }
  if (state === "foreign") {
    throw new Error(`cannot resume: ${dir} holds files but no config.json: it is not a run directory`);
  }
  try {
    return await readRunConfig(dir);
  } catch (error) {
    throw new Error(`cannot resume: ${(error as Error).message}`);
  }
}

/**
 * On resume, the saved run decides what it was trained with: a setting given that disagrees with it
 * is returned as a message (naming `path`), except those a run may legitimately change, --epochs
 * (its length) and --lr (e.g. lower after a non-finite loss), which win and are listed in `changes`.
 */
export function resumedRun(
  saved: RunConfig,
  given: GivenSettings,
  path: string,
): { run: RunConfig; changes: Record<string, { from: unknown; to: unknown }>; conflict: string | null } {
  const t = saved.training;
  const fixed: [string, unknown, unknown][] = [
    ["preset", given.preset, saved.model.preset],
    ["likelihood", given.likelihood, saved.model.likelihood ?? "bernoulli"],
    ["components", given.components, saved.model.components],
    ["loss", given.loss, t.loss],
    ["batch-size", given.batchSize, t.batchSize],
    ["seed", given.seed, t.seed],
    ["warmup-epochs", given.warmupEpochs, t.warmupEpochs],
    ["free-bits", given.freeBits, t.freeBits],
    ["free-bits-epochs", given.freeBitsEpochs, t.freeBitsEpochs ?? 0],
    ["train-limit", given.trainLimit, t.trainLimit ?? undefined],
    ["dataset", given.dataset, t.dataset],
  ];
  const clash = fixed.find(([, value, was]) => value !== undefined && value !== was);
  const conflict = clash
    ? `--${clash[0]} ${clash[1]} conflicts with the run being resumed (${path} says ${
      clash[2] ?? "none"
    }); a resumed run keeps its settings: drop --${clash[0]}, or start a new run with --out`
    : null;
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  const run = structuredClone(saved);
  if (given.epochs !== undefined && given.epochs !== t.epochs) {
    changes.epochs = { from: t.epochs, to: given.epochs };
    run.training.epochs = given.epochs;
  }
  if (given.lr !== undefined && given.lr !== t.lr) {
    changes.lr = { from: t.lr, to: given.lr };
    run.training.lr = given.lr;
  }
  return { run, changes, conflict };
}

/**
 * The state a run starts from: on resume, the last checkpoint (after completing or refusing what a
 * crash left, and dropping metrics lines past it), or, for a new run or one stopped before its first
 * checkpoint, the initial parameters from the seed (with the data-dependent weight-norm pass on `set`).
 */
export async function startingState(
  dir: string,
  run: RunConfig,
  set: ImageSet,
  resume: boolean,
  log: (line: string) => void,
): Promise<TrainState> {
  let fresh = !resume;
  if (resume) {
    for (const line of await recoverCheckpoint(dir)) log(line);
    if ((await runDirState(dir)).state === "no-checkpoint") {
      log(
        `${dir} has no checkpoint yet (it stopped before its first one): starting it over from its saved configuration`,
      );
      await Deno.remove(`${dir}/optimizer.safetensors`).catch(() => {});
      fresh = true;
    }
  }
  let state: TrainState;
  if (fresh) {
    const params = keep(initialParams(run.model, run.training, set));
    state = { params, adam: adamInit(params), progress: { epoch: 0, stepInEpoch: 0, step: 0 } };
    if (run.model.weightNorm) {
      log(`weight norm initialised from the first batch (data-dependent, as the reference)`);
    }
  } else {
    // The trees' structure comes from the config, their values from the files.
    const shape = keep(initHvae(run.model, createRng(0)));
    state = await loadCheckpoint(dir, shape, adamInit(shape));
    log(`resuming after epoch ${state.progress.epoch}, step ${state.progress.step}`);
  }
  for (const file of ["metrics.jsonl", "curves.jsonl"]) {
    const dropped = await truncateMetrics(dir, state.progress.step, file);
    if (dropped > 0) {
      log(`dropped ${dropped} line(s) of ${file} from after the checkpoint (step ${state.progress.step})`);
    }
  }
  return state;
}

/**
 * Records a resume's changes where a reader of the run looks: config.json's history of resumes (and
 * every later metrics.jsonl line carries the learning rate it was trained with).
 */
export async function recordResumeChanges(
  dir: string,
  run: RunConfig,
  changes: Record<string, { from: unknown; to: unknown }>,
  step: number,
  log: (line: string) => void,
): Promise<void> {
  if (Object.keys(changes).length === 0) return;
  const history = (run as RunConfig & { resumes?: unknown[] }).resumes ?? [];
  Object.assign(run, { resumes: [...history, { at: new Date().toISOString(), step, ...changes }] });
  await writeRunConfig(dir, run);
  for (const [name, c] of Object.entries(changes)) {
    log(`--${name} ${c.to} replaces ${c.from} from step ${step} on (recorded in config.json)`);
  }
}

/**
 * The end of an epoch on disk: the checkpoint first, then its metrics line, so a crash in between
 * loses a line, never adds one that no checkpoint holds (`truncateMetrics` drops any such line on
 * resume).
 */
export async function saveEpoch(
  dir: string,
  run: RunConfig,
  record: EpochRecord,
  state: TrainState,
  extra: Record<string, unknown>,
): Promise<void> {
  const metadata = {
    preset: run.model.preset,
    loss: run.training.loss,
    format: "hvae-ood model, names in models/hvae.ts",
  };
  await saveCheckpoint(dir, state.params, state.adam, state.progress, metadata);
  await appendLine(
    `${dir}/metrics.jsonl`,
    JSON.stringify({ ...record, step: state.progress.step, lr: run.training.lr, ...extra }),
  );
}

/**
 * The error to stop with when training fails: what the user can do next depends on whether any
 * checkpoint exists (--resume continues from it, or starts the run over without one); a non-finite
 * loss also suggests a lower learning rate.
 */
export async function stoppedOnError(dir: string, error: unknown, lr: number): Promise<Error> {
  const saved = await readSafetensors(`${dir}/optimizer.safetensors`).then(
    (f) => f.metadata.step,
    () => null,
  );
  const next = saved === null
    ? `no checkpoint was written yet; start the run over with: deno task train --resume ${dir}`
    : `the last checkpoint (step ${saved}) is intact; continue with: deno task train --resume ${dir}`;
  if (error instanceof NonFiniteLossError) {
    return new Error(
      `${error.message}. Stopping; ${next} --lr ${Number((lr / 10).toPrecision(3))} (a lower learning rate)` +
        (saved === null ? `, or start a new run with --warmup-epochs` : ""),
    );
  }
  return new Error(`${(error as Error).message}. Stopping; ${next}`);
}

/** A step's progress line: epoch, step, loss, ELBO, images/s and the time left (within `timeLimit`). */
export function stepLine(r: StepReport, run: RunConfig, timeLimit: number | null): string {
  const t = run.training;
  const rate = r.epochImages / r.epochSeconds;
  let remaining = ((r.batches - r.batch - 1) * t.batchSize) / rate;
  if (timeLimit !== null) remaining = Math.min(remaining, Math.max(0, timeLimit - r.trainingSeconds));
  return `epoch ${r.epoch + 1}/${t.epochs} step ${r.batch + 1}/${r.batches} loss ${
    r.metrics.loss.toFixed(2)
  } elbo ${r.metrics.elbo.toFixed(2)} ${rate.toFixed(1)} img/s ETA ${formatSeconds(remaining)}`;
}

/** An epoch's summary line. */
export function epochLine(record: EpochRecord, dir: string): string {
  const f = (v: number) => v.toFixed(2);
  return `epoch ${record.epoch}: loss ${f(record.loss)} elbo ${f(record.elbo)} kl [${
    record.kl.map(f).join(", ")
  }] ll [${record.ll.map(f).join(", ")}] ${record.seconds.toFixed(1)} s; saved ${dir}`;
}

/**
 * The run's training images on the GPU (its dataset's train split, the first `trainLimit`), recorded
 * in `run.data`; a resumed run must get as many images as it trained on (its epochs and shuffles
 * depend on the count).
 */
export async function trainingSet(
  run: RunConfig,
  dataDir: string | undefined,
  resumed: boolean,
  log: (line: string) => void,
): Promise<ImageSet> {
  const t = run.training;
  const split = await loadSplit(t.dataset, "train", { dataDir });
  const set = imageSetOnGpu(split, t.trainLimit ?? undefined, run.model.image);
  log(`${set.count} ${t.dataset} training images from ${split.source}`);
  if (resumed && run.data && run.data.images !== set.count) {
    throw new Error(
      `the run trained on ${run.data.images} images (${run.data.train}), this data gives ${set.count}: ` +
        `its epochs and shuffles would differ; pass the same data (--data-dir)`,
    );
  }
  run.data = { train: split.source, images: set.count };
  return set;
}

/**
 * The training log's progress: on a terminal a bar rewritten after every step; in a log, a line
 * every 30 s, at each epoch's end and after the first step. `epochEnd` ends the bar's line.
 */
export function progressPrinter(run: RunConfig, timeLimit: () => number | null) {
  const terminal = Deno.stdout.isTerminal();
  let lastPrint = 0;
  return {
    async step(r: StepReport): Promise<void> {
      const line = stepLine(r, run, timeLimit());
      if (terminal) {
        const width = 24, filled = Math.round(((r.batch + 1) / r.batches) * width);
        const bar = "=".repeat(filled) + " ".repeat(width - filled);
        await Deno.stdout.write(new TextEncoder().encode(`\r[${bar}] ${line}`));
      } else if (
        r.epochSeconds - lastPrint >= 30 || r.batch + 1 === r.batches ||
        r.epochImages <= run.training.batchSize
      ) {
        console.log(line);
        lastPrint = r.epochSeconds;
      }
    },
    epochEnd(): void {
      if (terminal) console.log();
      lastPrint = 0;
    },
  };
}

/** What a run says before training: its size, and whether anything is left to train (lines of the log). */
export function startLines(run: RunConfig, state: TrainState): string[] {
  const parameters = flattenParams(state.params).leaves.reduce((n, p) => n + p.size, 0);
  const { epoch } = state.progress, epochs = run.training.epochs;
  return [
    `${parameters} parameters`,
    ...(epoch >= epochs
      ? [`the run has completed ${epoch} of ${epochs} epochs: nothing to train (--epochs N extends it)`]
      : []),
  ];
}

/** What a run stopped by its time limit says: where it stands and how to continue. */
export function timeLimitLine(limit: number, p: Progress, stepsPerEpoch: number, dir: string): string {
  return `time limit ${formatSeconds(limit)} reached after ${p.step} steps (epoch ${p.epoch + 1}, ` +
    `${p.stepInEpoch} of ${stepsPerEpoch} steps); the checkpoint is resumable: deno task train --resume ${dir}`;
}

/**
 * Images per test set that an evaluation of `sets` sets can score in `budgetSeconds`, estimated from
 * the training speed (`trained.images` in `trained.trainingSeconds`) times `scoringOverTraining`, in
 * steps of 250 (at least 250), and the line that says so; null when all 10000 fit.
 */
export function evaluationLimitFor(
  trained: { images: number; trainingSeconds: number },
  sets: number,
  budgetSeconds: number,
  scoringOverTraining: number,
): { limit: number; line: (dir: string) => string } | null {
  const scoringRate = (trained.images / trained.trainingSeconds) * scoringOverTraining;
  const fits = Math.floor((budgetSeconds * scoringRate) / sets / 250) * 250;
  if (fits >= 10000) return null;
  const limit = Math.max(250, fits);
  return {
    limit,
    line: (dir) =>
      `evaluating the first ${limit} images of each test set: all 10000 would take about ${
        formatSeconds((10000 * sets) / scoringRate)
      } here (the evaluation's budget is ${
        budgetSeconds / 60
      } minutes; 'deno task ood --run ${dir}' scores all)`,
  };
}
