/**
 * The command line of `deno task train`: its usage text, its flags parsed and checked (a bad one is a
 * usage error, exit 2), and what they ask for (`TrainCommandLine`). scripts/train.ts runs it; the
 * run's logic lives in the library (store/training_run.ts, eval/curves.ts, models/training.ts).
 */

import type { HvaeConfig } from "../models/hvae.ts";
import { presetConfig, PRESETS } from "../models/presets.ts";
import {
  DEFAULT_COMPONENTS,
  DEFAULT_LIKELIHOOD,
  LIKELIHOOD_NAMES,
  withLikelihood,
} from "../models/likelihood.ts";
import { prepareNewRunDir, runDirState } from "../store/run_lifecycle.ts";
import {
  datasetMismatch,
  defaultRunDir,
  newRunConfig,
  readSavedConfig,
  resumedRun,
} from "../store/training_run.ts";
import { DATASET_NAMES, type DatasetName } from "../data/dataset_names.ts";
import { durationFlag, intFlag, numberFlag, parseFlags, pathFlag, usageError } from "./cli.ts";
import { EVALUATION_FLAGS, EVALUATION_USAGE, evaluationOptions } from "./evaluation_flags.ts";
import { LIKELIHOOD_FLAGS, likelihoodChoice } from "./likelihood_flags.ts";
import { KERNELS_FLAG, KERNELS_USAGE, kernelsMode } from "./kernels_flag.ts";

/** The no-flags run on a software adapter: a training budget (seconds) and an evaluation budget. */
export const DEFAULT_TIME_LIMIT = 20 * 60;
export const DEFAULT_EVAL_SECONDS = 7 * 60;
/**
 * Scoring speed over training speed (images per second; scoring runs the L partial passes forward
 * only). Measured by `deno task train` on an EPYC of ours (docs/design.md section 8.1), `small`
 * informative: training 86 img/s over its first 10 steps, scoring 250-300 img/s; 2 keeps the estimate on the safe side.
 */
export const SCORING_OVER_TRAINING_SPEED = 2;

export const USAGE = `usage: deno task train [flags]
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
  --train-limit N        train on the first N images only (default: all: 60000, 50000 for CIFAR-10; see below)
  --dataset NAME         the training data: ${DATASET_NAMES.join(", ")} (default fashion-mnist, or
                         cifar10 for the -cifar presets); its images must be the preset's size
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

/**
 * The run the command line asks for: the one in --resume DIR (its saved settings, with the changes a
 * resume may make; a conflicting flag is a usage error), or a new one from the flags in --out DIR (or
 * the default directory), which must be new or empty.
 */
export async function runToTrain(cli: TrainCommandLine, software: boolean, adapter: unknown) {
  if (cli.resume !== undefined) {
    const dir = cli.resume;
    const given = { ...cli.given, preset: cli.flags.preset };
    const { run, changes, conflict } = resumedRun(await readSavedConfig(dir), given, `${dir}/config.json`);
    if (conflict) cli.usage(conflict);
    return { run, dir, changes };
  }
  const run = newRunConfig(
    cli.modelOf(cli.flags.preset ?? (software ? "small" : "havtorn3")),
    cli.given,
    adapter,
  );
  const mismatch = datasetMismatch(run.model, run.training.dataset);
  if (mismatch) cli.usage(mismatch);
  const dir = cli.out ?? defaultRunDir(run);
  // Checked now, before the data is read, and again under the lock.
  const { state } = await runDirState(dir);
  if (state !== "absent" && state !== "empty") await prepareNewRunDir(dir);
  if (cli.noFlags) console.log(noFlagsMessage(run.model.preset, software));
  return { run, dir, changes: {} };
}

/** What a run without flags says it will do (sized by time on a CPU). */
export function noFlagsMessage(preset: string, software: boolean): string {
  return `train: no flags given: the paper's method (informative loss) with preset '${preset}' on ` +
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
      : `       The paper's schedule: deno task train --preset ${preset} --epochs 1000 (README, Training).`);
}

/** `--dataset`, checked against the names (undefined when absent). */
function datasetFlag(value: unknown): DatasetName | undefined {
  if (value === undefined) return undefined;
  if (!(DATASET_NAMES as readonly unknown[]).includes(value)) {
    usageError("train", USAGE, `--dataset must be one of ${DATASET_NAMES.join(", ")}, got '${value}'`);
  }
  return value as DatasetName;
}

/** Parses `Deno.args` as `deno task train`'s flags; exits with the usage on a bad one. */
export async function trainCommandLine() {
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
    dataset: { type: "string" },
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
  const timeLimit = flags["time-limit"] === undefined
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
    dataset: datasetFlag(flags.dataset),
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

  return {
    flags,
    evaluation,
    evalEvery,
    curveLimit,
    kernels,
    out,
    resume,
    dataDir,
    timeLimit,
    noFlags,
    given,
    modelOf,
    usage: (message: string): never => usageError("train", USAGE, message),
  };
}

/** What `trainCommandLine` returns. */
export type TrainCommandLine = Awaited<ReturnType<typeof trainCommandLine>>;
