/**
 * `deno task score --run DIR --input FILE...`: scores a user's own images (28x28 grayscale PNGs, IDX
 * image files) with a trained run and flags those above a threshold calibrated on the
 * in-distribution test set for a target false-positive rate. Prints a table, or JSON lines (--json).
 * The calibration reuses DIR/scores.csv when 'deno task ood' wrote it with the same settings;
 * otherwise it scores the in-distribution test set first. With --regret (or --score regret) every
 * image also gets its Likelihood Regret (models/regret.ts), each image optimised as if alone.
 */

import { loadSplit } from "../data/datasets.ts";
import { imageSetOnGpu } from "../data/loader.ts";
import { type LoadedRun, loadRun } from "../data/run.ts";
import { type OodReport, REGRET_SCORE, scoresCsvColumn } from "../eval/evaluate.ts";
import { displayName } from "../eval/test_sets.ts";
import { regretSet, scoreSet } from "../eval/score_set.ts";
import { readUserImages, scoreImages } from "../eval/user_images.ts";
import { thresholdAtFpr } from "../eval/metrics.ts";
import { dispose } from "../kernels/tensor.ts";
import { scoreNames } from "../models/scores.ts";
import { initGpuOrExit, numberFlag, parseFlags, pathFlag, runCommand, usageError } from "./cli.ts";
import { EVALUATION_FLAGS, EVALUATION_USAGE, evaluationOptions } from "./evaluation_flags.ts";
import { applyKernelsMode, KERNELS_FLAG, KERNELS_USAGE, kernelsMode } from "./kernel_tuning.ts";

const USAGE = `usage: deno task score --run DIR --input FILE [--input FILE ...] [flags]
  --run DIR              a run directory written by 'deno task train' (required)
  --input FILE           a 28x28 grayscale PNG (bright strokes on black, like MNIST) or an IDX image file;
                         repeat for more files (required)
  --score NAME           elbo, llr>1, ..., llr_optk, llr_ada (default llr_ada), or regret (Likelihood
                         Regret, implies --regret: calibrate it on few images, e.g.
                         --calibration-limit 500); higher = more OOD
  --fpr X                target false-positive rate on the in-distribution test set (default 0.05)
  --calibration-limit N  calibrate on the first N in-distribution test images (default: all 10000)
  --json                 one JSON object per image instead of a table (with every score in "scores")
${EVALUATION_USAGE.split("\n").filter((l) => !l.includes("--ood")).join("\n")}
  --data-dir DIR         read the dataset files from here (and only here)
${KERNELS_USAGE}
  --help                 this text`;

const flags = parseFlags("score", USAGE, {
  run: { type: "string" },
  input: { type: "string", multiple: true },
  score: { type: "string", default: "llr_ada" },
  fpr: { type: "string", default: "0.05" },
  "calibration-limit": { type: "string" },
  json: { type: "boolean", default: false },
  "data-dir": { type: "string" },
  ...EVALUATION_FLAGS,
  ...KERNELS_FLAG,
});
const runDir = pathFlag("score", USAGE, "run", flags.run) ??
  usageError("score", USAGE, "--run DIR is required");
if (!flags.input?.length) usageError("score", USAGE, "--input FILE is required (PNG or IDX)");
const inputs = flags.input.map((f) => pathFlag("score", USAGE, "input", f)!);
// --score regret asks for the regret: its settings come from the --regret-* flags.
const options = evaluationOptions(
  "score",
  USAGE,
  { ...flags, regret: flags.regret === true || flags.score === REGRET_SCORE },
  flags["calibration-limit"],
  "calibration-limit",
);
options.dataDir = pathFlag("score", USAGE, "data-dir", flags["data-dir"]);
const fpr = numberFlag("score", USAGE, "fpr", flags.fpr, 0);
if (fpr > 1) usageError("score", USAGE, `--fpr must be at most 1, got '${flags.fpr}'`);
const log = (line: string) => flags.json ? console.error(line) : console.log(line);
const kernels = kernelsMode("score", USAGE, flags.kernels);

await initGpuOrExit("score");
let run: LoadedRun;
try {
  run = await loadRun(runDir);
} catch (error) {
  console.error(`score: ${(error as Error).message}`);
  Deno.exit(1);
}
await applyKernelsMode("score", kernels, null, log, run.config.model.preset);
const L = run.config.model.layers.length;
const names = [...scoreNames(L), REGRET_SCORE];
if (!names.includes(flags.score)) {
  usageError("score", USAGE, `--score must be one of ${names.join(", ")}, got '${flags.score}'`);
}
const { height, width } = run.config.model.image;

/** The in-distribution test scores: from DIR/scores.csv when its settings match, else computed now. */
async function calibrationScores(): Promise<{ values: Float64Array; source: string }> {
  const inName = run.config.training.dataset;
  try {
    const report: OodReport = JSON.parse(await Deno.readTextFile(`${run.dir}/ood.json`));
    const same = report.samples === options.samples && report.iw === options.iw &&
      report.generate === options.generate && report.batchSize === options.batchSize &&
      options.limit === undefined &&
      report.diagnostics[inName]?.images >= 10000 &&
      (flags.score !== REGRET_SCORE || JSON.stringify(report.regret) === JSON.stringify(options.regret));
    if (same) {
      const values = scoresCsvColumn(await Deno.readTextFile(`${run.dir}/scores.csv`), inName, flags.score!);
      if (values.length > 0 && values.every(Number.isFinite)) {
        return { values, source: `${run.dir}/scores.csv` };
      }
    }
  } catch {
    // No usable evaluation on disk: score the test set below.
  }
  const split = await loadSplit(inName, "test", { dataDir: options.dataDir });
  const set = imageSetOnGpu(split, options.limit, run.config.model.image);
  try {
    log(
      `score: calibrating on ${set.count} ${
        displayName(inName)
      } test images (run 'deno task ood' once to reuse its scores)`,
    );
    const seed = run.config.training.seed;
    const values = flags.score === REGRET_SCORE
      ? await regretSet(run.params, run.config.model, set, {
        ...options.regret!,
        seed,
        batchSize: options.batchSize,
      })
      : (await scoreSet(run.params, run.config.model, set, { ...options, seed })).scores[flags.score!];
    return {
      values,
      source: `${displayName(inName)} test, ${set.count} images from ${split.source}`,
    };
  } finally {
    dispose(set.bytes);
  }
}

await runCommand("score", async () => {
  try {
    const images = await readUserImages(inputs, height, width);
    const calibration = await calibrationScores();
    const threshold = thresholdAtFpr(calibration.values, fpr);
    const scored = await scoreImages(run, images.pixels, options);
    const values = scored.scores[flags.score!];
    // NaN compares false with any threshold: it would read "in-distribution". Never a verdict.
    const bad = images.names.filter((_, i) => !Number.isFinite(values[i]));
    if (!Number.isFinite(threshold) || bad.length > 0) {
      throw new Error(
        `${run.dir}: the model gives non-finite ${flags.score} ${
          Number.isFinite(threshold)
            ? `scores (${bad.slice(0, 3).join(", ")}${bad.length > 3 ? ", ..." : ""})`
            : "scores and threshold"
        }: no verdict is possible (is the run diverged? see its metrics.jsonl)`,
      );
    }
    report(images.names, values, threshold, calibration.source, scored.scores);
  } finally {
    dispose(run.params);
  }
});

function report(
  names: string[],
  values: Float64Array,
  threshold: number,
  source: string,
  all: Record<string, Float64Array>,
) {
  if (flags.json) {
    names.forEach((name, i) =>
      console.log(JSON.stringify({
        image: name,
        score: flags.score,
        value: values[i],
        threshold,
        fpr,
        ood: values[i] > threshold,
        orientation: "higher = more OOD",
        scores: Object.fromEntries(Object.entries(all).map(([n, v]) => [n, v[i]])),
      }))
    );
    return;
  }
  log(
    `score: ${flags.score} (higher = more OOD); threshold ${threshold.toFixed(3)} flags ${
      (100 * fpr).toFixed(1)
    }% of in-distribution images (calibrated on ${source})`,
  );
  const width = Math.max(5, ...names.map((n) => n.length));
  log(`  ${"image".padEnd(width)}  ${flags.score!.padStart(12)}  verdict`);
  names.forEach((name, i) =>
    log(
      `  ${name.padEnd(width)}  ${values[i].toFixed(3).padStart(12)}  ${
        values[i] > threshold ? "OOD" : "in-distribution"
      }`,
    )
  );
}
