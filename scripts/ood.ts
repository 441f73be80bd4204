/**
 * `deno task ood --run DIR`: OOD detection with a trained run (eval/evaluate.ts): the in-distribution
 * test set (Fashion-MNIST, 10 000 images) against each OOD test set (MNIST, 10 000, by default);
 * prints the paper's Table 2 layout and the diagnostics of Tables 13-15, and writes ood.json,
 * scores.csv and the pictures into DIR.
 */

import { loadRun } from "../data/run.ts";
import { dispose } from "../kernels/tensor.ts";
import { evaluateRun } from "../eval/evaluate.ts";
import { initGpuOrExit, parseFlags, usageError } from "./cli.ts";
import { EVALUATION_FLAGS, EVALUATION_USAGE, evaluationOptions } from "./evaluation_flags.ts";
import { applyKernelsMode, KERNELS_FLAG, KERNELS_USAGE, kernelsMode } from "./kernel_tuning.ts";

const USAGE = `usage: deno task ood --run DIR [flags]
  --run DIR              a run directory written by 'deno task train' (required)
${EVALUATION_USAGE}
  --limit N              score only the first N images of each test set (default: all 10000)
  --data-dir DIR         look for the dataset files here first
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
if (!flags.run) usageError("ood", USAGE, "--run DIR is required");
const options = evaluationOptions("ood", USAGE, flags, flags.limit, "limit");
const kernels = kernelsMode("ood", USAGE, flags.kernels);

await initGpuOrExit("ood");
await applyKernelsMode("ood", kernels, null);
let run;
try {
  run = await loadRun(flags.run);
} catch (error) {
  console.error(`ood: ${(error as Error).message}`);
  Deno.exit(1);
}
try {
  await evaluateRun(run, options);
} catch (error) {
  console.error(`ood: ${(error as Error).message}`);
  Deno.exit(1);
} finally {
  dispose(run.params);
}
