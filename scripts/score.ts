/**
 * `deno task score --run DIR --input PATH...`: screens a user's images (PNGs, IDX image files, raw or
 * gzipped, and directories of them) with a trained run, flagging those above a threshold calibrated
 * on the in-distribution test set for a target false-positive rate (eval/calibration.ts).
 *
 * Any number of images in bounded memory: they are read, scored and written a batch at a time
 * (data/image_inputs.ts, eval/user_images.ts), each image as if alone, so results do not depend on
 * the batching. Results go to stdout (a table, or JSON lines with --json) and to `--csv FILE` as they
 * come; progress and the summary go to stderr. `--fail-on-ood` / `--max-ood-fraction` make the exit
 * status a gate (0 passed, 1 failed, 2 an error); Ctrl-C or SIGTERM ends after the current batch with
 * whole rows, and `--resume` continues the file after its last whole row (eval/verdict_csv.ts).
 */

import { openImageInputs } from "../data/image_inputs.ts";
import { type LoadedRun, loadRun } from "../store/load_run.ts";
import { calibrationScores } from "../eval/calibration.ts";
import { REGRET_SCORE } from "../eval/score_set.ts";
import { thresholdAtFpr } from "../eval/metrics.ts";
import { progressReporter } from "../eval/progress.ts";
import { formatSeconds } from "../store/training_run.ts";
import { scoreInputs } from "../eval/user_images.ts";
import {
  checkResumedInputs,
  checkResumedThreshold,
  openVerdictFile,
  readVerdictCsv,
  verdictColumns,
  verdictRows,
  VERDICTS,
  writeText,
} from "../eval/verdict_csv.ts";
import { initGpu } from "../kernels/runtime/device.ts";
import { dispose } from "../kernels/tensor.ts";
import { scoreNames } from "../models/scores.ts";
import { imageChannels } from "../models/hvae.ts";
import { numberFlag, onStopSignals, parseFlags, pathFlag, runCommand, usageError } from "./cli.ts";
import { EVALUATION_FLAGS, EVALUATION_USAGE, evaluationOptions } from "./evaluation_flags.ts";
import { applyKernelsMode, KERNELS_FLAG, KERNELS_USAGE, kernelsMode } from "./kernels_flag.ts";

const USAGE = `usage: deno task score --run DIR --input PATH [--input PATH ...] [flags]
  --run DIR              a run directory written by 'deno task train' (required)
  --input PATH           a PNG at the model's size (28x28 grayscale: bright strokes on black, like MNIST;
                         32x32 RGB for a CIFAR-10 model), an IDX image file (raw or .gz; N x rows x cols,
                         or N x rows x cols x 3), or a directory of them (searched recursively, in name
                         order); repeat for more (required)
  --score NAME           elbo, llr>1, ..., llr_optk, llr_ada (default llr_ada), or regret (Likelihood
                         Regret, implies --regret: calibrate it on few images, e.g.
                         --calibration-limit 500); higher = more OOD
  --fpr X                target false-positive rate on the in-distribution test set (default 0.05)
  --calibration-limit N  calibrate on the first N in-distribution test images (default: all 10000)
  --json                 one JSON object per image on stdout (every score in "scores") instead of a table
  --csv FILE             one row per image into FILE (image, every score, score, value, threshold, verdict),
                         a batch at a time; no table on stdout then
  --overwrite            replace an existing --csv FILE (refused otherwise)
  --resume               continue an existing --csv FILE after its last whole row (same command otherwise)
  --fail-on-ood          exit status 1 when any image is flagged OOD (0 when none; errors exit 2)
  --max-ood-fraction X   exit status 1 when more than X (0..1) of the images are flagged
${EVALUATION_USAGE.split("\n").filter((l) => !l.includes("--ood")).join("\n")}
  --data-dir DIR         read the dataset files from here (and only here)
${KERNELS_USAGE}
  --help                 this text
Results go to stdout (and FILE) as each batch ends; progress and the summary to stderr. Ctrl-C or SIGTERM
ends after the current batch (exit status 130 or 143), every row written whole.`;

const flags = parseFlags("score", USAGE, {
  run: { type: "string" },
  input: { type: "string", multiple: true },
  score: { type: "string", default: "llr_ada" },
  fpr: { type: "string", default: "0.05" },
  "calibration-limit": { type: "string" },
  json: { type: "boolean", default: false },
  csv: { type: "string" },
  overwrite: { type: "boolean", default: false },
  resume: { type: "boolean", default: false },
  "fail-on-ood": { type: "boolean", default: false },
  "max-ood-fraction": { type: "string" },
  "data-dir": { type: "string" },
  ...EVALUATION_FLAGS,
  ...KERNELS_FLAG,
});
const usage = (message: string): never => usageError("score", USAGE, message);
const runDir = pathFlag("score", USAGE, "run", flags.run) ?? usage("--run DIR is required");
const inputs =
  (flags.input?.length ? flags.input : usage("--input PATH is required (PNG, IDX or a directory)")).map((f) =>
    pathFlag("score", USAGE, "input", f)!
  );
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
if (fpr > 1) usage(`--fpr must be at most 1, got '${flags.fpr}'`);
const maxFraction = flags["max-ood-fraction"] === undefined
  ? null
  : numberFlag("score", USAGE, "max-ood-fraction", flags["max-ood-fraction"], 0);
if (maxFraction !== null && maxFraction > 1) {
  usage(`--max-ood-fraction must be at most 1, got ${maxFraction}`);
}
const gate = flags["fail-on-ood"] || maxFraction !== null ? maxFraction ?? 0 : null;
const csvPath = pathFlag("score", USAGE, "csv", flags.csv);
if (flags.resume && !csvPath) usage("--resume continues a --csv FILE: name it");
if (flags.resume && flags.overwrite) usage("--resume and --overwrite contradict each other");
if (flags.overwrite && !csvPath) usage("--overwrite replaces a --csv FILE: name it");
const csvExists = csvPath !== undefined && await Deno.lstat(csvPath).then(() => true, () => false);
if (csvExists && !flags.resume && !flags.overwrite) {
  usage(`--csv ${csvPath} exists; --resume continues it, --overwrite replaces it`);
}
const kernels = kernelsMode("score", USAGE, flags.kernels);
const info = (line: string) => console.error(`score: ${line}`);

/** The exit status once results are written: 130/143 stopped by a signal, 1 a failed gate. */
let status = 0;
await runCommand("score", async () => {
  await initGpu();
  const run: LoadedRun = await loadRun(runDir);
  try {
    await applyKernelsMode("score", kernels, null, console.error, run.config.model.preset);
    const names = [...scoreNames(run.config.model.layers.length), ...(options.regret ? [REGRET_SCORE] : [])];
    if (!names.includes(flags.score!)) {
      usage(`--score must be one of ${names.join(", ")}, got '${flags.score}'`);
    }
    const chosen = flags.score!;
    const { height, width } = run.config.model.image;
    // Every input found, counted and checked before the calibration's minutes are spent.
    const images = await openImageInputs(inputs, height, width, imageChannels(run.config.model));
    const header = verdictColumns(names).join(",");
    const done = csvExists && flags.resume ? await readVerdictCsv(csvPath!, header) : null;
    if (done) await checkResumedInputs(csvPath!, done, images);
    const calibration = await calibrationScores(run, chosen, options, info);
    // --fpr 1 gives -Infinity (every image flagged); a NaN among the scores gives no threshold at all.
    const threshold = thresholdAtFpr(calibration.values, fpr);
    if (!calibration.values.every(Number.isFinite)) {
      throw new Error(
        `${run.dir}: the model gives non-finite ${chosen} scores and threshold: no verdict is possible`,
      );
    }
    if (done) checkResumedThreshold(csvPath!, done, threshold);
    info(
      `${chosen} (higher = more OOD); threshold ${threshold.toFixed(3)} flags ${
        (100 * fpr).toFixed(1)
      }% of in-distribution images (calibrated on ${calibration.source}); ${images.count} image(s) in ${images.files} file(s)`,
    );
    // The file: created (or replaced) with its header, or cut after its last whole row.
    if (done?.partial) {
      info(`${csvPath}: dropped a partial last row (the previous run was killed while writing)`);
    }
    if (done?.rows) info(`${csvPath}: resuming after ${done.rows} whole row(s), ${done.ood} flagged OOD`);
    const csv = csvPath ? await openVerdictFile(csvPath, header, done) : null;
    let stop: string | null = null;
    const removeListeners = onStopSignals((signal) => {
      if (stop) Deno.exit(signal === "SIGINT" ? 130 : 143); // a second signal: stop now
      stop = signal;
      info(`${signal}: stopping after the current batch`);
    });
    const skip = done?.rows ?? 0;
    let scored = skip, flagged = done?.ood ?? 0;
    const progress = progressReporter("score:", {
      stream: "stderr",
      from: skip,
      extra: () => `${flagged} OOD so far`,
    });
    const table = !flags.json && !csvPath;
    if (table) console.log(`  ${chosen.padStart(12)}  ${"verdict".padEnd(15)}  image`);
    const started = performance.now();
    try {
      for await (
        const { batch, scores } of scoreInputs(run, images, { ...options, limit: undefined, skip })
      ) {
        const values = scores.scores[chosen];
        // NaN compares false with any threshold: it would read "in-distribution". Never a verdict.
        const bad = batch.names.filter((_, i) => !Number.isFinite(values[i]));
        if (bad.length > 0) {
          throw new Error(
            `${run.dir}: the model gives non-finite ${chosen} scores (${bad.slice(0, 3).join(", ")}${
              bad.length > 3 ? ", ..." : ""
            }): no verdict is possible (is the run diverged? see its metrics.jsonl)`,
          );
        }
        if (csv) await writeText(csv, verdictRows(batch.names, scores.scores, names, chosen, threshold));
        progress.clear();
        let lines = "";
        batch.names.forEach((name, i) => {
          const ood = values[i] > threshold;
          flagged += ood ? 1 : 0;
          if (flags.json) {
            lines += JSON.stringify({
              image: name,
              score: chosen,
              value: values[i],
              threshold,
              fpr,
              ood,
              orientation: "higher = more OOD",
              scores: Object.fromEntries(names.map((n) => [n, scores.scores[n][i]])),
            }) + "\n";
          } else if (table) {
            lines += `  ${values[i].toFixed(3).padStart(12)}  ${
              (ood ? VERDICTS.ood : VERDICTS.in).padEnd(15)
            }  ${name}\n`;
          }
        });
        if (lines) await writeText(Deno.stdout, lines);
        scored += batch.names.length;
        progress(scored, images.count);
        if (stop) break;
      }
    } finally {
      removeListeners();
      csv?.close();
    }
    const seconds = (performance.now() - started) / 1000;
    const fraction = scored > 0 ? flagged / scored : 0;
    info(
      `${scored} of ${images.count} image(s) scored (${scored - skip} in ${formatSeconds(seconds)}, ${
        ((scored - skip) / Math.max(seconds, 1e-9)).toFixed(1)
      } img/s), ${flagged} flagged OOD (${(100 * fraction).toFixed(2)}%) by ${chosen} > ${
        threshold.toFixed(3)
      }${csvPath ? `; rows in ${csvPath}` : ""}`,
    );
    if (stop) {
      info(`stopped by ${stop}${csvPath ? `: the same command with --resume continues ${csvPath}` : ""}`);
      status = stop === "SIGINT" ? 130 : 143;
      return;
    }
    if (gate !== null) {
      const failed = fraction > gate || (flags["fail-on-ood"] && flagged > 0);
      info(
        `gate ${failed ? "FAILED" : "passed"}: ${flagged} of ${scored} image(s) flagged OOD (${
          (100 * fraction).toFixed(2)
        }%), ${flags["fail-on-ood"] ? "none" : `at most ${(100 * gate).toFixed(2)}%`} allowed`,
      );
      if (failed) status = 1;
    }
  } finally {
    dispose(run.params);
  }
}, gate === null ? 1 : 2);
if (status !== 0) Deno.exit(status);
