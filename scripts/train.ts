/**
 * `deno task train`: trains a hierarchical VAE on Fashion-MNIST and writes a run directory:
 *   config.json            the resolved model and training configuration, seed, adapter, versions, data;
 *   metrics.jsonl          one line per epoch: loss, ELBO, KL per layer, ll_k per k, seconds, images/s;
 *   model.safetensors      the parameters (names documented in models/hvae.ts);
 *   optimizer.safetensors  Adam's moments and the position in the run, for --resume.
 * Checkpoints are written after every epoch (and on Ctrl-C or --time-limit), to temporary files renamed into place;
 * a non-finite loss stops the run without touching the last good checkpoint.
 */

import { adapterInfo, engineStats, startProfile, stopProfile } from "../kernels/engine.ts";
import { dispose, keep } from "../kernels/tensor.ts";
import { formatProfile } from "../kernels/runtime/profiler.ts";
import { loadSplit } from "../data/datasets.ts";
import type { RunConfig } from "../data/run.ts";
import { evaluateRun } from "../eval/evaluate.ts";
import { imageSetOnGpu } from "../data/loader.ts";
import { loadCheckpoint, saveCheckpoint } from "../data/checkpoint.ts";
import { adamInit } from "../models/adam.ts";
import { flattenParams, type HvaeConfig } from "../models/hvae.ts";
import { presetConfig, PRESETS } from "../models/presets.ts";
import {
  initialParams,
  NonFiniteLossError,
  type Progress,
  train,
  type TrainState,
} from "../models/training.ts";
import { durationFlag, initGpuOrExit, intFlag, numberFlag, parseFlags, usageError } from "./cli.ts";
import { EVALUATION_FLAGS, EVALUATION_USAGE, evaluationOptions } from "./evaluation_flags.ts";
import { applyKernelsMode, KERNELS_FLAG, KERNELS_USAGE, kernelsMode } from "./kernel_tuning.ts";

/** The no-flags run on a software adapter: a training budget (seconds) and an evaluation budget. */
const DEFAULT_TIME_LIMIT = 20 * 60;
const DEFAULT_EVAL_SECONDS = 7 * 60;
/**
 * Scoring speed over training speed (images per second; scoring runs the L partial passes forward
 * only). Measured on llvmpipe (AMD EPYC, 2 cores), `small` informative: training 86 img/s over its
 * first 10 steps, scoring 250-300 img/s; 2 keeps the estimate on the safe side.
 */
const SCORING_OVER_TRAINING_SPEED = 2;

const USAGE = `usage: deno task train [flags]
  --preset NAME          model preset: ${
  Object.keys(PRESETS).join(", ")
} (default: small on a software adapter)
  --loss KIND            informative (Eq. 10, default) or elbo
  --epochs N             epochs to train (default 1)
  --batch-size N         images per step (default 128)
  --lr X                 Adam learning rate (default 3e-4)
  --warmup-epochs X      KL warm-up: beta rises from 0 to 1 over X epochs (default 0: off)
  --free-bits X          free bits: a floor of X nats per layer, spread over its elements (default 0: off)
  --free-bits-epochs X   free-bits period: the floor holds for X/2 epochs, then falls linearly to 0 at
                         epoch X (default 0: it holds throughout; the paper's baselines use --free-bits 2
                         --free-bits-epochs 400 --warmup-epochs 200)
  --seed N               seed of initialisation, shuffling, binarisation and sampling (default 1)
  --train-limit N        train on the first N images only (default: all 60000; see below)
  --data-dir DIR         look for the dataset files here first
  --out DIR              run directory (default runs/<preset>-<loss>-seed<seed>)
  --resume DIR           continue the run in DIR from its last checkpoint (its config wins)
  --time-limit T         stop training after the step that reaches T (90s, 20m, 1.5h): save a resumable
                         checkpoint, then evaluate what was trained (default: none)
  --no-eval              skip the OOD evaluation at the end ('deno task ood --run DIR' runs it later)
${KERNELS_USAGE}; auto measures them on first use
  --profile              time every GPU dispatch of the second step (the first compiles the kernels):
                         a table by kernel on stderr and profile.json in the run directory
${EVALUATION_USAGE}
  --eval-limit N         evaluate on the first N images of each test set (default: all 10000)
  --help                 this text
With no flags on a CPU (software adapter) the run is sized by time: one epoch of all 60000 images or
${DEFAULT_TIME_LIMIT / 60} minutes of training, whichever ends first, then an evaluation sized to about ${
  DEFAULT_EVAL_SECONDS / 60
} minutes.`;

const flags = parseFlags("train", USAGE, {
  preset: { type: "string" },
  loss: { type: "string", default: "informative" },
  epochs: { type: "string", default: "1" },
  "batch-size": { type: "string", default: "128" },
  lr: { type: "string", default: "3e-4" },
  "warmup-epochs": { type: "string", default: "0" },
  "free-bits": { type: "string", default: "0" },
  "free-bits-epochs": { type: "string", default: "0" },
  seed: { type: "string", default: "1" },
  "train-limit": { type: "string" },
  "data-dir": { type: "string" },
  out: { type: "string" },
  resume: { type: "string" },
  "time-limit": { type: "string" },
  "no-eval": { type: "boolean", default: false },
  profile: { type: "boolean", default: false },
  ...KERNELS_FLAG,
  "eval-limit": { type: "string" },
  ...EVALUATION_FLAGS,
});
const evaluation = evaluationOptions("train", USAGE, flags, flags["eval-limit"], "eval-limit");
const kernels = kernelsMode("train", USAGE, flags.kernels);

await initGpuOrExit("train");
const adapter = adapterInfo();
const software = adapter.isFallbackAdapter || /llvmpipe|swiftshader|software/i.test(adapter.description);

if (flags.loss !== "informative" && flags.loss !== "elbo") {
  usageError("train", USAGE, `--loss must be informative or elbo, got '${flags.loss}'`);
}
let run: RunConfig;
let dir: string;
const noFlags = Deno.args.length === 0;
let timeLimit = flags["time-limit"] === undefined
  ? null
  : durationFlag("train", USAGE, "time-limit", flags["time-limit"]);
if (noFlags && software) timeLimit = DEFAULT_TIME_LIMIT;

if (flags.resume) {
  dir = flags.resume;
  try {
    run = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  } catch (error) {
    console.error(`train: cannot resume from ${dir}: ${(error as Error).message}`);
    Deno.exit(1);
  }
  // The saved run decides everything but its length.
  if (Deno.args.includes("--epochs")) {
    run.training.epochs = intFlag("train", USAGE, "epochs", flags.epochs, 1);
  }
} else {
  // The paper's backbone on a real GPU; the CPU preset on a software adapter.
  const presetName = flags.preset ?? (software ? "small" : "havtorn3");
  let model: HvaeConfig;
  try {
    model = presetConfig(presetName);
  } catch (error) {
    usageError("train", USAGE, `--preset: ${(error as Error).message}`);
  }
  const trainLimit = flags["train-limit"] === undefined
    ? null
    : intFlag("train", USAGE, "train-limit", flags["train-limit"], 1);
  const seed = intFlag("train", USAGE, "seed", flags.seed, 0);
  run = {
    model,
    training: {
      loss: flags.loss as "elbo" | "informative",
      epochs: intFlag("train", USAGE, "epochs", flags.epochs, 1),
      batchSize: intFlag("train", USAGE, "batch-size", flags["batch-size"], 1),
      lr: numberFlag("train", USAGE, "lr", flags.lr, Number.MIN_VALUE),
      warmupEpochs: numberFlag("train", USAGE, "warmup-epochs", flags["warmup-epochs"], 0),
      freeBits: numberFlag("train", USAGE, "free-bits", flags["free-bits"], 0),
      freeBitsEpochs: numberFlag("train", USAGE, "free-bits-epochs", flags["free-bits-epochs"], 0),
      seed,
      trainLimit,
      dataset: "fashion-mnist",
    },
    adapter,
    versions: { deno: Deno.version.deno, v8: Deno.version.v8, typescript: Deno.version.typescript },
    createdAt: new Date().toISOString(),
  };
  dir = flags.out ?? `runs/${presetName}-${run.training.loss}-seed${seed}`;
  if (await Deno.stat(`${dir}/config.json`).then(() => true, () => false)) {
    console.error(
      `train: ${dir} already holds a run; continue it with --resume ${dir}, or choose another --out`,
    );
    Deno.exit(1);
  }
  await Deno.mkdir(dir, { recursive: true });
  if (noFlags) {
    console.log(
      `train: no flags given: the paper's method (informative loss) with preset '${presetName}' on ` +
        `${
          software
            ? `this software adapter: 1 epoch of all 60000 images or ${
              DEFAULT_TIME_LIMIT / 60
            } minutes of training, whichever ends first, then the OOD evaluation sized to about ${
              DEFAULT_EVAL_SECONDS / 60
            } minutes`
            : "1 epoch"
        }.\n` +
        `       The full experiment: deno task train --preset ${presetName} --epochs 1000 (see README).`,
    );
  }
}
const t = run.training;
console.log(
  `train: adapter ${adapter.description}${software ? " (software: expect ~100x less speed than a GPU)" : ""}`,
);
const latents = run.model.layers.map((l) =>
  l.latent.kind === "conv" ? `${l.latent.channels}ch` : `${l.latent.size}`
);
console.log(
  `train: model '${run.model.preset}': ${run.model.layers.length} latent layers [${latents.join(", ")}], ` +
    `${run.model.channels} channels, ${run.model.activation}; training ${
      JSON.stringify(t)
    }; run directory ${dir}`,
);

await applyKernelsMode("train", kernels, { cfg: run.model, batch: t.batchSize, loss: t.loss });

// Data: Fashion-MNIST train split, bytes on the GPU.
let set;
try {
  const split = await loadSplit(t.dataset, "train", { dataDir: flags["data-dir"] });
  set = imageSetOnGpu(split, t.trainLimit ?? undefined);
  run.data = { train: split.source, images: set.count };
} catch (error) {
  console.error(`train: ${(error as Error).message}`);
  Deno.exit(1);
}
if (!flags.resume) await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(run, null, 2) + "\n");

// Parameters and optimiser state: fresh from the seed, or from the checkpoint.
let params = keep(initialParams(run.model, t, flags.resume ? null : set));
if (!flags.resume && run.model.weightNorm) {
  console.log(`train: weight norm initialised from the first batch (data-dependent, as the reference)`);
}
console.log(
  `train: ${flattenParams(params).leaves.reduce((n, p) => n + p.size, 0)} parameters`,
);
let adam = adamInit(params);
let progress: Progress = { epoch: 0, stepInEpoch: 0, step: 0 };
if (flags.resume) {
  try {
    ({ params, adam, progress } = await loadCheckpoint(dir, params, adam));
  } catch (error) {
    console.error(`train: cannot resume: ${(error as Error).message}`);
    Deno.exit(1);
  }
  console.log(`train: resuming after epoch ${progress.epoch}, step ${progress.step}`);
}

const terminal = Deno.stdout.isTerminal();
let interrupted = false;
const onInterrupt = () => {
  if (interrupted) Deno.exit(130);
  interrupted = true;
  console.log("\ntrain: interrupted: finishing this step, saving, then exiting (Ctrl-C again to abort)");
};
Deno.addSignalListener("SIGINT", onInterrupt);

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h > 0
    ? `${h}h${String(m % 60).padStart(2, "0")}m`
    : `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
}

if (timeLimit !== null) {
  console.log(`train: time limit ${formatSeconds(timeLimit)}: training stops after the step that reaches it`);
}
const metadata = {
  preset: run.model.preset,
  loss: t.loss,
  format: "hvae-ood model, names in models/hvae.ts",
};
const state: TrainState = { params, adam, progress };
let profiling = false, lastPrint = 0;
let result;
try {
  result = await train(run.model, t, set, state, {
    beforeStep: (stepsHere, b, batches) => {
      // With --profile: the second step of this process (the first compiles the kernels), or an only one.
      profiling = flags.profile && (stepsHere === 1 || (stepsHere === 0 && batches - b === 1));
      if (profiling) startProfile();
    },
    afterStep: async (r) => {
      if (profiling) {
        const report = await stopProfile();
        console.error(`\n${formatProfile(report)}`);
        await Deno.writeTextFile(
          `${dir}/profile.json`,
          JSON.stringify({ step: r.progress.step - 1, ...report }, null, 2),
        );
      }
      const rate = r.epochImages / r.epochSeconds;
      let remaining = ((r.batches - r.batch - 1) * t.batchSize) / rate;
      if (timeLimit !== null) remaining = Math.min(remaining, Math.max(0, timeLimit - r.trainingSeconds));
      const line = `epoch ${r.epoch + 1}/${t.epochs} step ${r.batch + 1}/${r.batches} loss ${
        r.metrics.loss.toFixed(2)
      } elbo ${r.metrics.elbo.toFixed(2)} ${rate.toFixed(1)} img/s ETA ${formatSeconds(remaining)}`;
      if (terminal) {
        const width = 24, filled = Math.round(((r.batch + 1) / r.batches) * width);
        const bar = "=".repeat(filled) + " ".repeat(width - filled);
        await Deno.stdout.write(new TextEncoder().encode(`\r[${bar}] ${line}`));
      } else if (
        r.epochSeconds - lastPrint >= 30 || r.batch + 1 === r.batches || r.epochImages <= t.batchSize
      ) {
        console.log(line);
        lastPrint = r.epochSeconds;
      }
    },
    shouldStop: (r) =>
      interrupted
        ? "interrupted"
        : timeLimit !== null && r.trainingSeconds >= timeLimit
        ? "time limit"
        : null,
    afterEpoch: async (record, s) => {
      if (terminal) console.log();
      lastPrint = 0;
      await Deno.writeTextFile(
        `${dir}/metrics.jsonl`,
        JSON.stringify({ ...record, bytesInUse: engineStats().bytesInUse }) + "\n",
        { append: true },
      );
      await saveCheckpoint(dir, s.params, s.adam, s.progress, metadata);
      const f = (v: number) => v.toFixed(2);
      console.log(
        `epoch ${record.epoch}: loss ${f(record.loss)} elbo ${f(record.elbo)} kl [${
          record.kl.map(f).join(", ")
        }] ll [${record.ll.map(f).join(", ")}] ${record.seconds.toFixed(1)} s; saved ${dir}`,
      );
    },
  });
} catch (error) {
  if (!(error instanceof NonFiniteLossError)) throw error;
  console.error(
    `\ntrain: ${error.message}. Stopping; the last good checkpoint in ${dir} is untouched. ` +
      `Try a lower --lr or --warmup-epochs.`,
  );
  Deno.exit(1);
}
Deno.removeSignalListener("SIGINT", onInterrupt);
({ params, adam, progress } = state);
dispose([adam.m, adam.v, set.bytes]);
if (result.stoppedBy === "interrupted" || interrupted) {
  dispose(params);
  console.log(`train: stopped after step ${progress.step}; continue with: deno task train --resume ${dir}`);
  Deno.exit(130);
}
const stepsPerEpoch = Math.ceil(set.count / t.batchSize);
if (result.stoppedBy === "time limit" && progress.epoch < t.epochs) {
  console.log(
    `train: time limit ${formatSeconds(timeLimit!)} reached after ${progress.step} steps ` +
      `(epoch ${progress.epoch + 1}, ${progress.stepInEpoch} of ${stepsPerEpoch} steps); the checkpoint is ` +
      `resumable: deno task train --resume ${dir}`,
  );
}
console.log(`train: done: ${dir}/{config.json, metrics.jsonl, model.safetensors, optimizer.safetensors}`);
const imagesHere = result.images, trainingSeconds = result.trainingSeconds;
if (noFlags && software && evaluation.limit === undefined && imagesHere > 0) {
  // Size the default evaluation by time as well: images per set that fit the budget at this
  // machine's scoring speed, estimated from its training speed.
  const scoringRate = (imagesHere / trainingSeconds) * SCORING_OVER_TRAINING_SPEED;
  const sets = 1 + evaluation.ood.length;
  const fits = Math.floor((DEFAULT_EVAL_SECONDS * scoringRate) / sets / 250) * 250;
  if (fits < 10000) {
    evaluation.limit = Math.max(250, fits);
    console.log(
      `train: evaluating the first ${evaluation.limit} images of each test set: all 10000 would take about ${
        formatSeconds((10000 * sets) / scoringRate)
      } here (the evaluation's budget is ${
        DEFAULT_EVAL_SECONDS / 60
      } minutes; 'deno task ood --run ${dir}' scores all)`,
    );
  }
}
if (!flags["no-eval"]) {
  // The paper's evaluation (docs/design.md sections 3-4): the same code as 'deno task ood --run DIR'.
  console.log(
    `train: evaluating OOD detection (${
      evaluation.limit ?? "all"
    } test images per set; --no-eval skips this)`,
  );
  try {
    await evaluateRun({ dir, config: run, params }, evaluation);
  } catch (error) {
    console.error(
      `train: evaluation failed: ${(error as Error).message}; the trained run in ${dir} is intact`,
    );
    Deno.exit(1);
  }
}
dispose(params);
