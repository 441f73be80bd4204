/**
 * `deno task ood --run DIR`: OOD detection with a trained run (eval/evaluate.ts): the in-distribution
 * test set (Fashion-MNIST, 10 000 images) against each OOD test set (MNIST, 10 000, by default);
 * prints the paper's Table 2 layout and the diagnostics of Tables 13-15, and writes ood.json,
 * scores.csv and the pictures into DIR. With several `--run`s, each run is evaluated (or its
 * evaluation reused when ood.json already holds this one) and the runs are scored as an ensemble by
 * WAIC (eval/ensemble.ts) into `--out`.
 */

import { loadRun, readRunConfig } from "../store/load_run.ts";
import { dispose } from "../kernels/tensor.ts";
import { evaluateRun, holdsEvaluation } from "../eval/evaluate.ts";
import { readEvaluation, waicEvaluation, waicTable } from "../eval/ensemble.ts";
import { writeFilesAtomic } from "../data/files.ts";
import { initGpuOrExit, parseFlags, pathFlag, runCommand, usageError } from "./cli.ts";
import { completedEpochs, RunLock } from "../store/run_lifecycle.ts";
import { EVALUATION_FLAGS, EVALUATION_USAGE, evaluationOptions } from "./evaluation_flags.ts";
import { applyKernelsMode, KERNELS_FLAG, KERNELS_USAGE, kernelsMode } from "./kernels_flag.ts";

const USAGE = `usage: deno task ood --run DIR [flags]
       deno task ood --run A --run B [--run C ...] --out DIR [flags]
  --run DIR              a run directory written by 'deno task train' (required); several: an ensemble
  --out DIR              with several --run: where the ensemble's WAIC results go (waic.json, waic.md)
${EVALUATION_USAGE}
  --limit N              score only the first N images of each test set (default: all 10000)
  --data-dir DIR         read the dataset files from here (and only here)
${KERNELS_USAGE}
  --help                 this text
Scores: elbo (-L_x), llr>k (Havtorn et al.), llr_optk (Appendix L), llr_ada (Eq. 11); higher = more OOD.
Ensembles: waic = -(mean - variance) of L_x over the runs (Choi et al. 2018), elbo_mean = mean -L_x.`;

const flags = parseFlags("ood", USAGE, {
  run: { type: "string", multiple: true },
  out: { type: "string" },
  limit: { type: "string" },
  "data-dir": { type: "string" },
  ...EVALUATION_FLAGS,
  ...KERNELS_FLAG,
});
const runDirs = (flags.run ?? []).map((r) => pathFlag("ood", USAGE, "run", r)!);
if (runDirs.length === 0) usageError("ood", USAGE, "--run DIR is required");
const outDir = pathFlag("ood", USAGE, "out", flags.out);
if (runDirs.length > 1 && !outDir) usageError("ood", USAGE, "several --run: name the ensemble's --out DIR");
if (runDirs.length === 1 && outDir) usageError("ood", USAGE, "--out is for an ensemble (several --run)");
if (new Set(runDirs).size !== runDirs.length) usageError("ood", USAGE, "a --run is given twice");
const options = evaluationOptions("ood", USAGE, flags, flags.limit, "limit");
options.dataDir = pathFlag("ood", USAGE, "data-dir", flags["data-dir"]);
const kernels = kernelsMode("ood", USAGE, flags.kernels);

/** Evaluates one run into its directory (under its lock); with `reuse`, keeps an evaluation it holds. */
async function evaluateOne(runDir: string, reuse: boolean): Promise<void> {
  // Not a run: the message names its config.json, before any lock.
  const config = await readRunConfig(runDir);
  await applyKernelsMode("ood", kernels, null, console.log, config.model.preset);
  // The evaluation writes into the run: not while a training (or another evaluation) writes there.
  const lock = await RunLock.acquire(runDir, "deno task ood", (line) => console.error(`ood: ${line}`));
  try {
    // A reused evaluation needs no model on the GPU: decided before loading it.
    const previous = reuse ? await readEvaluation(runDir).then((e) => e.report, () => null) : null;
    if (previous && holdsEvaluation(previous, options, await completedEpochs(runDir))) {
      console.log(`ood: ${runDir}: its ood.json holds this evaluation; reused`);
      return;
    }
    const run = await loadRun(runDir);
    try {
      await evaluateRun(run, options);
    } finally {
      dispose(run.params);
    }
  } finally {
    lock.release();
  }
}

await runCommand("ood", async () => {
  await initGpuOrExit("ood");
  if (runDirs.length === 1) return await evaluateOne(runDirs[0], false);
  // An ensemble: every run checked before any is scored, then each evaluated, then WAIC.
  for (const dir of runDirs) await readRunConfig(dir);
  await Deno.stat(`${outDir}/config.json`).then(
    () =>
      usageError(
        "ood",
        USAGE,
        `--out ${outDir} holds a run; the ensemble's results need their own directory`,
      ),
    () => {},
  );
  for (const dir of runDirs) await evaluateOne(dir, true);
  const report = waicEvaluation(await Promise.all(runDirs.map(readEvaluation)));
  const table = waicTable(report);
  await Deno.mkdir(outDir!, { recursive: true });
  await writeFilesAtomic([
    [`${outDir}/waic.json`, new TextEncoder().encode(JSON.stringify(report, null, 2) + "\n")],
    [`${outDir}/waic.md`, new TextEncoder().encode(table + "\n")],
  ]);
  console.log(`\n${table}\nood: wrote ${outDir}/waic.json and ${outDir}/waic.md`);
});
