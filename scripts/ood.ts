/**
 * `deno task ood --run DIR`: OOD detection with a trained run (eval/evaluate.ts): the in-distribution
 * test set (Fashion-MNIST, 10 000 images) against each OOD test set (MNIST, 10 000, by default);
 * prints the paper's Table 2 layout and the diagnostics of Tables 13-15, and writes ood.json,
 * scores.csv and the pictures into DIR.
 */

import { loadRun } from "../data/run.ts";
import { dispose } from "../kernels/tensor.ts";
import { evaluateRun } from "../eval/evaluate.ts";
import { initGpuOrExit, parseFlags, pathFlag, runCommand, usageError } from "./cli.ts";
import { RunLock } from "../data/run_dir.ts";
import { EVALUATION_FLAGS, EVALUATION_USAGE, evaluationOptions } from "./evaluation_flags.ts";
import { applyKernelsMode, KERNELS_FLAG, KERNELS_USAGE, kernelsMode } from "./kernel_tuning.ts";

const USAGE = `usage: deno task ood --run DIR [flags]
  --run DIR              a run directory written by 'deno task train' (required)
${EVALUATION_USAGE}
  --limit N              score only the first N images of each test set (default: all 10000)
  --data-dir DIR         read the dataset files from here (and only here)
${KERNELS_USAGE}
  --help                 this text
Scores: elbo (-L_x), llr>k (Havtorn et al.), llr_optk (Appendix L), llr_ada (Eq. 11); higher = more OOD.`;

const flags = parseFlags("ood", USAGE, {
  run: { type: "string" },
  limit: { type: "string" },
  "data-dir": { type: "string" },
  ...EVALUATION_FLAGS,
  ...KERNELS_FLAG,
});
const runDir = pathFlag("ood", USAGE, "run", flags.run) ?? usageError("ood", USAGE, "--run DIR is required");
const options = evaluationOptions("ood", USAGE, flags, flags.limit, "limit");
options.dataDir = pathFlag("ood", USAGE, "data-dir", flags["data-dir"]);
const kernels = kernelsMode("ood", USAGE, flags.kernels);

await runCommand("ood", async () => {
  await initGpuOrExit("ood");
  await applyKernelsMode("ood", kernels, null);
  const run = await loadRun(runDir);
  // The evaluation writes into the run: not while a training (or another evaluation) writes there.
  const lock = await RunLock.acquire(runDir, "deno task ood", (line) => console.error(`ood: ${line}`));
  try {
    await evaluateRun(run, options);
  } finally {
    dispose(run.params);
    lock.release();
  }
});
