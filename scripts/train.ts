/**
 * `deno task train`: trains a hierarchical VAE on Fashion-MNIST and writes a run directory:
 *   config.json            the resolved model and training configuration, seed, adapter, versions, data,
 *                          and the changes made on resuming (`resumes`: a new --epochs or --lr);
 *   metrics.jsonl          one line per epoch: loss, ELBO, KL per layer, ll_k per k, seconds, images/s,
 *                          the global step after it and the learning rate;
 *   model.safetensors      the parameters (names documented in models/hvae.ts);
 *   optimizer.safetensors  Adam's moments and the position in the run, for --resume.
 * Checkpoints are written after every epoch (and on Ctrl-C, SIGTERM or --time-limit), both files in
 * full before either is renamed into place; a non-finite loss or a failed write stops the run without
 * touching the last good checkpoint. The directory is locked while a command writes into it
 * (store/run_dir.ts), and everything that can be checked (flags, data, the batch against the device)
 * is checked before the first byte is written. README, "When things go wrong", lists the rules.
 */

import { adapterInfo, engineStats, startProfile, stopProfile, sync } from "../kernels/engine.ts";
import { dispose, keep } from "../kernels/tensor.ts";
import { formatProfile } from "../kernels/runtime/profiler.ts";
import { measureCeiling } from "../kernels/ceiling.ts";
import { guessBackend } from "../kernels/runtime/backend.ts";
import { loadSplit } from "../data/datasets.ts";
import { readRunConfig, type RunConfig } from "../store/run.ts";
import { evaluateRun, resolveOodSets } from "../eval/evaluate.ts";
import { type CurvePoint, curvePoints, type CurveSets, curvesSvg } from "../eval/curves.ts";
import { displayName, loadTestSet, testSetOnGpu } from "../eval/test_sets.ts";
import { imageSetOnGpu } from "../data/loader.ts";
import { loadCheckpoint, recoverCheckpoint, saveCheckpoint } from "../store/checkpoint.ts";
import { writeFileAtomic } from "../data/files.ts";
import { readSafetensors } from "../store/checkpoint.ts";
import { makeRunDir, prepareNewRunDir, runDirState, RunLock, truncateMetrics } from "../store/run_dir.ts";
import { adamInit, type AdamState } from "../models/adam.ts";
import { flattenParams, type HvaeConfig, type HvaeParams, initHvae } from "../models/hvae.ts";
import { presetConfig, PRESETS } from "../models/presets.ts";
import {
  DEFAULT_COMPONENTS,
  DEFAULT_LIKELIHOOD,
  LIKELIHOOD_NAMES,
  likelihoodOf,
  runTag,
  withLikelihood,
} from "../models/likelihood.ts";
import { createRng } from "../models/rng.ts";
import {
  checkStepFits,
  initialParams,
  NonFiniteLossError,
  type Progress,
  train,
  type TrainState,
} from "../models/training.ts";
import {
  durationFlag,
  initGpuOrExit,
  intFlag,
  numberFlag,
  onStopSignals,
  parseFlags,
  pathFlag,
  runCommand,
  usageError,
} from "./cli.ts";
import { EVALUATION_FLAGS, EVALUATION_USAGE, evaluationOptions } from "./evaluation_flags.ts";
import { LIKELIHOOD_FLAGS, likelihoodChoice } from "./likelihood_flags.ts";
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
  --likelihood NAME      p(x | z): ${LIKELIHOOD_NAMES.join(", ")} (default: ${DEFAULT_LIKELIHOOD}; the
                         -oversmooth presets are gaussian); models/likelihood.ts
  --components K         the logistic mixture's components (default ${DEFAULT_COMPONENTS})
  --epochs N             epochs to train (default 1)
  --batch-size N         images per step (default 128)
  --lr X                 Adam learning rate (default 3e-4)
  --warmup-epochs X      KL warm-up: beta rises from 0 to 1 over X epochs (default 0: off)
  --free-bits X          free bits: a floor of X nats per layer, spread over its elements (default 0: off)
  --free-bits-epochs X   free-bits period: the floor holds for X/2 epochs, then falls linearly to 0 at
                         epoch X (default 0: it holds throughout; the paper's baselines use --free-bits 2
                         --free-bits-epochs 400 --warmup-epochs 200)
  --seed N               seed of initialisation, shuffling, binarisation and sampling, 0..4294967295
                         (default 1)
  --train-limit N        train on the first N images only (default: all 60000; see below)
  --data-dir DIR         read the dataset files from here (and only here)
  --out DIR              run directory (default runs/<preset>-<loss>-seed<seed>)
  --resume DIR           continue the run in DIR from its last checkpoint (or start it over if it has
                         none); its settings stay: a conflicting flag is an error, except --epochs and
                         --lr, which change it from here on (recorded in config.json)
  --time-limit T         stop training after the step that reaches T (90s, 20m, 1.5h): save a resumable
                         checkpoint, then evaluate what was trained (default: none)
  --no-eval              skip the OOD evaluation at the end ('deno task ood --run DIR' runs it later)
${KERNELS_USAGE}; auto measures them on first use
  --profile              time every GPU dispatch of the second step (the first compiles the kernels):
                         a table by kernel on stderr and profile.json in the run directory
${EVALUATION_USAGE}
  --eval-limit N         evaluate on the first N images of each test set (default: all 10000)
  --eval-every N         every N epochs, measure OOD detection on a fixed subset of the test sets (the
                         --ood sets): curves.jsonl and curves.svg, AUROC per epoch (default 0: off)
  --curve-limit N        images per set of those measurements (default 2000)
  --help                 this text
With no flags on a CPU (software adapter) the run is sized by time: one epoch of all 60000 images or
${DEFAULT_TIME_LIMIT / 60} minutes of training, whichever ends first, then an evaluation sized to about ${
  DEFAULT_EVAL_SECONDS / 60
} minutes.`;

const flags = parseFlags("train", USAGE, {
  // No defaults here for what a run records: on --resume, a flag given must be told from one absent.
  preset: { type: "string" },
  loss: { type: "string" },
  ...LIKELIHOOD_FLAGS,
  epochs: { type: "string" },
  "batch-size": { type: "string" },
  lr: { type: "string" },
  "warmup-epochs": { type: "string" },
  "free-bits": { type: "string" },
  "free-bits-epochs": { type: "string" },
  seed: { type: "string" },
  "train-limit": { type: "string" },
  "data-dir": { type: "string" },
  out: { type: "string" },
  resume: { type: "string" },
  "time-limit": { type: "string" },
  "no-eval": { type: "boolean", default: false },
  profile: { type: "boolean", default: false },
  ...KERNELS_FLAG,
  "eval-limit": { type: "string" },
  "eval-every": { type: "string" },
  "curve-limit": { type: "string" },
  ...EVALUATION_FLAGS,
});
const evaluation = evaluationOptions("train", USAGE, flags, flags["eval-limit"], "eval-limit");
/** What --eval-every measures (saved in config.json as `curves`). */
interface CurveSettings {
  every: number;
  limit: number;
  ood: string[];
  samples: number;
  iw: number;
  generate: "mean" | "sample";
  batchSize: number;
}
const evalEvery = flags["eval-every"] === undefined
  ? 0
  : intFlag("train", USAGE, "eval-every", flags["eval-every"], 0);
const curveLimit = flags["curve-limit"] === undefined
  ? 2000
  : intFlag("train", USAGE, "curve-limit", flags["curve-limit"], 1);
const kernels = kernelsMode("train", USAGE, flags.kernels);
const out = pathFlag("train", USAGE, "out", flags.out);
const resume = pathFlag("train", USAGE, "resume", flags.resume);
const dataDir = pathFlag("train", USAGE, "data-dir", flags["data-dir"]);
evaluation.dataDir = dataDir;
if (flags.loss !== undefined && flags.loss !== "informative" && flags.loss !== "elbo") {
  usageError("train", USAGE, `--loss must be informative or elbo, got '${flags.loss}'`);
}
let timeLimit = flags["time-limit"] === undefined
  ? null
  : durationFlag("train", USAGE, "time-limit", flags["time-limit"]);
const noFlags = Deno.args.length === 0;

/** The schedule's flags, parsed (undefined where not given). */
const given = {
  epochs: flags.epochs === undefined ? undefined : intFlag("train", USAGE, "epochs", flags.epochs, 1),
  batchSize: flags["batch-size"] === undefined
    ? undefined
    : intFlag("train", USAGE, "batch-size", flags["batch-size"], 1),
  lr: flags.lr === undefined ? undefined : numberFlag("train", USAGE, "lr", flags.lr, Number.MIN_VALUE),
  warmupEpochs: flags["warmup-epochs"] === undefined
    ? undefined
    : numberFlag("train", USAGE, "warmup-epochs", flags["warmup-epochs"], 0),
  freeBits: flags["free-bits"] === undefined
    ? undefined
    : numberFlag("train", USAGE, "free-bits", flags["free-bits"], 0),
  freeBitsEpochs: flags["free-bits-epochs"] === undefined
    ? undefined
    : numberFlag("train", USAGE, "free-bits-epochs", flags["free-bits-epochs"], 0),
  // The generator's key words are 32 bits.
  seed: flags.seed === undefined ? undefined : intFlag("train", USAGE, "seed", flags.seed, 0, 0xffffffff),
  trainLimit: flags["train-limit"] === undefined
    ? undefined
    : intFlag("train", USAGE, "train-limit", flags["train-limit"], 1),
  loss: flags.loss as "elbo" | "informative" | undefined,
  ...likelihoodChoice("train", USAGE, flags),
};

/**
 * The model of a new run: the preset with the likelihood asked for (or the default). The -oversmooth
 * presets are the Gaussian likelihood; another --likelihood with them is an error.
 */
function modelOf(presetName: string): HvaeConfig {
  let model: HvaeConfig;
  try {
    model = presetConfig(presetName);
  } catch (error) {
    usageError("train", USAGE, `--preset: ${(error as Error).message}`);
  }
  if (model.likelihood !== undefined) {
    if (given.likelihood !== undefined && given.likelihood !== model.likelihood) {
      usageError(
        "train",
        USAGE,
        `--likelihood ${given.likelihood}: preset '${presetName}' is the ${model.likelihood} likelihood's`,
      );
    }
    return model;
  }
  return withLikelihood(model, given.likelihood ?? DEFAULT_LIKELIHOOD, given.components);
}
if (resume !== undefined && out !== undefined && out !== resume) {
  const same = await Deno.realPath(out).then(async (a) => a === await Deno.realPath(resume), () => false);
  if (!same) {
    usageError(
      "train",
      USAGE,
      `--out ${out} with --resume ${resume}: a resumed run stays in its directory (drop --out)`,
    );
  }
}

/**
 * On --resume: the saved run decides what it was trained with. A flag that agrees with it is fine;
 * one that disagrees is refused, except those a run may legitimately change: --epochs (its length)
 * and --lr (e.g. lower after a non-finite loss), which win and are recorded in config.json.
 */
function resumedConfig(saved: RunConfig, path: string): { run: RunConfig; changes: Record<string, unknown> } {
  const t = saved.training;
  const fixed: [string, unknown, unknown][] = [
    ["preset", flags.preset, saved.model.preset],
    ["likelihood", given.likelihood, saved.model.likelihood ?? "bernoulli"],
    ["components", given.components, saved.model.components],
    ["loss", given.loss, t.loss],
    ["batch-size", given.batchSize, t.batchSize],
    ["seed", given.seed, t.seed],
    ["warmup-epochs", given.warmupEpochs, t.warmupEpochs],
    ["free-bits", given.freeBits, t.freeBits],
    ["free-bits-epochs", given.freeBitsEpochs, t.freeBitsEpochs ?? 0],
    ["train-limit", given.trainLimit, t.trainLimit ?? undefined],
  ];
  for (const [name, value, was] of fixed) {
    if (value !== undefined && value !== was) {
      usageError(
        "train",
        USAGE,
        `--${name} ${value} conflicts with the run being resumed (${path} says ${
          was ?? "none"
        }); a resumed run keeps its settings: drop --${name}, or start a new run with --out`,
      );
    }
  }
  const changes: Record<string, unknown> = {};
  const run = structuredClone(saved);
  if (given.epochs !== undefined && given.epochs !== t.epochs) {
    changes.epochs = { from: t.epochs, to: given.epochs };
    run.training.epochs = given.epochs;
  }
  if (given.lr !== undefined && given.lr !== t.lr) {
    changes.lr = { from: t.lr, to: given.lr };
    run.training.lr = given.lr;
  }
  return { run, changes };
}

/** Reads and checks a run's config.json for --resume (errors name the file). */
async function readSavedConfig(dir: string): Promise<RunConfig> {
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

await runCommand("train", async () => {
  await initGpuOrExit("train");
  const adapter = adapterInfo();
  const software = adapter.isFallbackAdapter || /llvmpipe|swiftshader|software/i.test(adapter.description);
  const backend = await guessBackend(adapter);
  if (noFlags && software) timeLimit = DEFAULT_TIME_LIMIT;

  let run: RunConfig;
  let dir: string;
  let changes: Record<string, unknown> = {};
  if (resume !== undefined) {
    dir = resume;
    ({ run, changes } = resumedConfig(await readSavedConfig(dir), `${dir}/config.json`));
  } else {
    // The paper's backbone on a real GPU; the CPU preset on a software adapter.
    const presetName = flags.preset ?? (software ? "small" : "havtorn3");
    const model = modelOf(presetName);
    const seed = given.seed ?? 1;
    run = {
      model,
      training: {
        loss: given.loss ?? "informative",
        epochs: given.epochs ?? 1,
        batchSize: given.batchSize ?? 128,
        lr: given.lr ?? 3e-4,
        warmupEpochs: given.warmupEpochs ?? 0,
        freeBits: given.freeBits ?? 0,
        freeBitsEpochs: given.freeBitsEpochs ?? 0,
        seed,
        trainLimit: given.trainLimit ?? null,
        dataset: "fashion-mnist",
      },
      adapter,
      versions: { deno: Deno.version.deno, v8: Deno.version.v8, typescript: Deno.version.typescript },
      createdAt: new Date().toISOString(),
    };
    dir = out ?? `runs/${presetName}${runTag(model)}-${run.training.loss}-seed${seed}`;
    // Checked now, before the data is read, and again under the lock.
    const { state } = await runDirState(dir);
    if (state !== "absent" && state !== "empty") await prepareNewRunDir(dir);
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
          (software
            ? `       Curves over epochs and seeds on this machine: deno task reproduce table3 --epochs 3 --seeds 3 ` +
              `--eval-every 1 (hours on a CPU: README, Results); the paper's 1000 epochs need a GPU.`
            : `       The paper's schedule: deno task train --preset ${presetName} --epochs 1000 (README, Training).`),
      );
    }
  }
  const t = run.training;
  console.log(
    `train: adapter ${adapter.description}, ${backend.name}${
      software ? " (software: expect ~100x less speed than a GPU)" : ""
    }`,
  );
  if (backend.warning) console.error(`train: warning: ${backend.warning}`);
  // How each wiring of models/hvae.ts reads in the log.
  const INFERENCE_NAMES: Record<HvaeConfig["inference"], string> = {
    ladder: "bottom-up inference (ladder)",
    markov: "bottom-up inference through the samples",
    topdown: "LVAE top-down inference",
    bidirectional: "BIVA bidirectional inference (TD and BU latents under the top)",
  };
  const latents = run.model.layers.map((l) =>
    l.latent.kind === "conv" ? `${l.latent.channels}ch` : `${l.latent.size}`
  );
  console.log(
    `train: model '${run.model.preset}': ${run.model.layers.length} latent layers [${latents.join(", ")}], ` +
      `${run.model.channels} channels, ${run.model.activation}, ${INFERENCE_NAMES[run.model.inference]}, ${
        likelihoodOf(run.model).summary
      }${run.model.components ? ` (${run.model.components} components)` : ""}; training ${
        JSON.stringify(t)
      }; run directory ${dir}`,
  );

  // Data: Fashion-MNIST train split, checked against the model before anything is written.
  const split = await loadSplit(t.dataset, "train", { dataDir });
  const set = imageSetOnGpu(split, t.trainLimit ?? undefined, run.model.image);
  console.log(`train: ${set.count} ${t.dataset} training images from ${split.source}`);
  if (resume !== undefined && run.data && run.data.images !== set.count) {
    throw new Error(
      `the run trained on ${run.data.images} images (${run.data.train}), this data gives ${set.count}: ` +
        `its epochs and shuffles would differ; pass the same data (--data-dir)`,
    );
  }
  run.data = { train: split.source, images: set.count };
  checkStepFits(run.model, t, set, null);

  // From here on the directory is written: hold its lock (released at exit, whatever the exit).
  if (resume === undefined) await makeRunDir(dir);
  const lock = await RunLock.acquire(dir, "deno task train", (line) => console.error(`train: ${line}`));
  if (resume === undefined) {
    // Checked again under the lock: another command may have started a run here meanwhile.
    await prepareNewRunDir(dir);
    await writeFileAtomic(
      `${dir}/config.json`,
      new TextEncoder().encode(JSON.stringify(run, null, 2) + "\n"),
    );
  }
  await applyKernelsMode("train", kernels, { cfg: run.model, batch: t.batchSize, loss: t.loss });

  // Parameters and optimiser state: fresh from the seed, or from the checkpoint.
  let progress: Progress = { epoch: 0, stepInEpoch: 0, step: 0 };
  let params: HvaeParams, adam: AdamState<HvaeParams>;
  let fresh = resume === undefined;
  if (resume !== undefined) {
    for (const line of await recoverCheckpoint(dir)) console.log(`train: ${line}`);
    if ((await runDirState(dir)).state === "no-checkpoint") {
      console.log(
        `train: ${dir} has no checkpoint yet (it stopped before its first one): starting it over from its ` +
          `saved configuration`,
      );
      await Deno.remove(`${dir}/optimizer.safetensors`).catch(() => {});
      fresh = true;
    }
  }
  if (fresh) {
    params = keep(initialParams(run.model, t, set));
    adam = adamInit(params);
    if (run.model.weightNorm) {
      console.log(`train: weight norm initialised from the first batch (data-dependent, as the reference)`);
    }
  } else {
    // The trees' structure comes from the config, their values from the files.
    const shape = keep(initHvae(run.model, createRng(0)));
    ({ params, adam, progress } = await loadCheckpoint(dir, shape, adamInit(shape)));
    console.log(`train: resuming after epoch ${progress.epoch}, step ${progress.step}`);
  }
  for (const file of ["metrics.jsonl", "curves.jsonl"]) {
    const dropped = await truncateMetrics(dir, progress.step, file);
    if (dropped > 0) {
      console.log(
        `train: dropped ${dropped} line(s) of ${file} from after the checkpoint (step ${progress.step})`,
      );
    }
  }
  // --eval-every's settings stay with the run (config.json `curves`): a resumed run continues the
  // same curve on the same sets unless new ones are given.
  const saved = (run as RunConfig & { curves?: CurveSettings }).curves;
  const curves: CurveSettings | null = evalEvery > 0
    ? {
      every: evalEvery,
      limit: curveLimit,
      ood: evaluation.ood,
      samples: evaluation.samples,
      iw: evaluation.iw,
      generate: evaluation.generate,
      batchSize: evaluation.batchSize,
    }
    : flags["eval-every"] === undefined && saved?.every
    ? saved
    : null;
  if (JSON.stringify(curves) !== JSON.stringify(saved ?? null)) {
    Object.assign(run, { curves });
    await writeFileAtomic(
      `${dir}/config.json`,
      new TextEncoder().encode(JSON.stringify(run, null, 2) + "\n"),
    );
  }
  // The fixed subsets of the curves, on the GPU for the whole run.
  const curveSets = curves ? await loadCurveSets(run, curves, dataDir) : null;
  if (Object.keys(changes).length > 0) {
    // Recorded where a reader of the run looks: config.json's history of resumes, and every later
    // metrics.jsonl line carries the learning rate it was trained with.
    const history = (run as RunConfig & { resumes?: unknown[] }).resumes ?? [];
    Object.assign(run, {
      resumes: [...history, { at: new Date().toISOString(), step: progress.step, ...changes }],
    });
    await writeFileAtomic(
      `${dir}/config.json`,
      new TextEncoder().encode(JSON.stringify(run, null, 2) + "\n"),
    );
    for (const [name, c] of Object.entries(changes) as [string, { from: unknown; to: unknown }][]) {
      console.log(
        `train: --${name} ${c.to} replaces ${c.from} from step ${progress.step} on (recorded in config.json)`,
      );
    }
  }
  console.log(`train: ${flattenParams(params).leaves.reduce((n, p) => n + p.size, 0)} parameters`);
  if (progress.epoch >= t.epochs) {
    console.log(
      `train: the run has completed ${progress.epoch} of ${t.epochs} epochs: nothing to train (--epochs N extends it)`,
    );
  }

  const terminal = Deno.stdout.isTerminal();
  let interrupted = false;
  const stopListening = onStopSignals((signal) => {
    if (interrupted) {
      lock.release();
      Deno.exit(130);
    }
    interrupted = true;
    console.log(
      `\ntrain: ${signal === "SIGINT" ? "interrupted" : signal}: finishing this step, saving, then exiting ` +
        `(Ctrl-C again to abort)`,
    );
  });

  if (timeLimit !== null) {
    console.log(
      `train: time limit ${formatSeconds(timeLimit)}: training stops after the step that reaches it`,
    );
  }
  const metadata = {
    preset: run.model.preset,
    loss: t.loss,
    format: "hvae-ood model, names in models/hvae.ts",
  };
  /** Loads the in-distribution test subset and the --ood sets' subsets for the curves. */
  async function loadCurveSets(r: RunConfig, c: CurveSettings, from: string | undefined): Promise<CurveSets> {
    const { height, width } = r.model.image;
    const inSet = await loadTestSet(r.training.dataset, height, width, { dataDir: from });
    const { loaded } = await resolveOodSets(
      { ...evaluation, ood: c.ood },
      r.training.dataset,
      r.model.image,
      (l) => console.log(`train: curves: ${l.replace(/^ood: /, "")}`),
    );
    console.log(
      `train: every ${c.every} epoch(s): OOD detection on the first ${c.limit} images of ${inSet.display} and of ` +
        `${loaded.map((t) => t.display).join(", ")} into curves.jsonl and curves.svg`,
    );
    return {
      in: await testSetOnGpu(inSet, c.limit, r.model.image),
      ood: await Promise.all(
        loaded.map(async (t) => ({ name: t.name, set: await testSetOnGpu(t, c.limit, r.model.image) })),
      ),
    };
  }

  /** Measures a curve point, appends its lines (after the checkpoint, like metrics.jsonl), redraws curves.svg. */
  async function addCurvePoints(
    s: TrainState,
    c: CurveSettings,
    sets: CurveSets,
    at: { epoch: number; step: number },
  ) {
    const points = await curvePoints(s.params, run.model, sets, { ...c, seed: t.seed }, at);
    for (const p of points) await appendLine(`${dir}/curves.jsonl`, JSON.stringify(p));
    const all: CurvePoint[] = (await Deno.readTextFile(`${dir}/curves.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    const title = `OOD detection during training: ${run.model.preset}, ${t.loss}, seed ${t.seed}`;
    await writeFileAtomic(`${dir}/curves.svg`, new TextEncoder().encode(curvesSvg(all, title)));
    console.log(
      `epoch ${at.epoch}: AUROC ${
        points.map((p) =>
          `${displayName(p.ood)} elbo ${p.metrics.elbo.auroc.toFixed(3)} llr_ada ${
            p.metrics.llr_ada.auroc.toFixed(3)
          }`
        ).join("; ")
      } (first ${c.limit} images; curves.svg)`,
    );
  }

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
          // The adapter's ceiling (kernels/ceiling.ts), so each row says what fraction of it it reaches.
          const ceiling = await measureCeiling();
          console.error(`\n${formatProfile(report, 25, ceiling)}`);
          await writeFileAtomic(
            `${dir}/profile.json`,
            new TextEncoder().encode(
              JSON.stringify({ step: r.progress.step - 1, ...report, ceiling }, null, 2),
            ),
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
        // The checkpoint first, then its line: a crash in between loses a line, never adds one that
        // no checkpoint holds (and `truncateMetrics` drops any such line on resume).
        await saveCheckpoint(dir, s.params, s.adam, s.progress, metadata);
        await appendLine(
          `${dir}/metrics.jsonl`,
          JSON.stringify({
            ...record,
            step: s.progress.step,
            lr: t.lr,
            bytesInUse: engineStats().bytesInUse,
          }),
        );
        const f = (v: number) => v.toFixed(2);
        console.log(
          `epoch ${record.epoch}: loss ${f(record.loss)} elbo ${f(record.elbo)} kl [${
            record.kl.map(f).join(", ")
          }] ll [${record.ll.map(f).join(", ")}] ${record.seconds.toFixed(1)} s; saved ${dir}`,
        );
        if (curves && curveSets && record.complete && record.epoch % curves.every === 0) {
          await addCurvePoints(s, curves, curveSets, { epoch: record.epoch, step: s.progress.step });
        }
      },
    });
  } catch (error) {
    if (terminal) console.log();
    // What the user can do next depends on whether any checkpoint exists: --resume continues from
    // it, or, without one, starts the run over from its saved configuration.
    const saved = await readSafetensors(`${dir}/optimizer.safetensors`).then(
      (f) => f.metadata.step,
      () => null,
    );
    const next = saved === null
      ? `no checkpoint was written yet; start the run over with: deno task train --resume ${dir}`
      : `the last checkpoint (step ${saved}) is intact; continue with: deno task train --resume ${dir}`;
    if (error instanceof NonFiniteLossError) {
      throw new Error(
        `${error.message}. Stopping; ${next} --lr ${
          Number((t.lr / 10).toPrecision(3))
        } (a lower learning rate)` +
          (saved === null ? `, or start a new run with --warmup-epochs` : ""),
      );
    }
    throw new Error(`${(error as Error).message}. Stopping; ${next}`);
  }
  stopListening();
  ({ params, adam, progress } = state);
  dispose([adam.m, adam.v, set.bytes]);
  if (curveSets) dispose([curveSets.in.bytes, ...curveSets.ood.map((o) => o.set.bytes)]);
  if (result.stoppedBy === "interrupted" || interrupted) {
    dispose(params);
    console.log(`train: stopped after step ${progress.step}; continue with: deno task train --resume ${dir}`);
    await sync();
    Deno.exit(130);
  }
  const stepsPerEpoch = Math.ceil(set.count / t.batchSize);
  if (result.stoppedBy === "time limit" && progress.epoch < t.epochs) {
    console.log(
      `train: time limit ${formatSeconds(timeLimit!)} reached after ${progress.step} steps ` +
        `(epoch ${
          progress.epoch + 1
        }, ${progress.stepInEpoch} of ${stepsPerEpoch} steps); the checkpoint is ` +
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
      throw new Error(
        `evaluation failed: ${(error as Error).message}; the trained run in ${dir} is intact ` +
          `('deno task ood --run ${dir}' evaluates it again)`,
      );
    }
  }
  dispose(params);
  lock.release();
});

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h > 0
    ? `${h}h${String(m % 60).padStart(2, "0")}m`
    : `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
}

/** Appends one line to a file; a failure (a full disk) names the file. */
async function appendLine(path: string, line: string): Promise<void> {
  try {
    await Deno.writeTextFile(path, line + "\n", { append: true });
  } catch (error) {
    throw new Error(`cannot append to ${path} (${(error as Error).message})`);
  }
}
