/**
 * The evaluation flags `deno task ood` and `deno task train` share (eval/evaluate.ts), parsed into
 * EvaluationOptions with usage errors that name the flag.
 */

import type { EvaluationOptions } from "../eval/evaluate.ts";
import { BUILT_IN_SETS, COLOUR_BUILT_IN_SETS, isBuiltInSet } from "../eval/evaluation_sets.ts";
import { intFlag, numberFlag, usageError } from "./cli.ts";

export const EVALUATION_FLAGS = {
  ood: { type: "string" },
  samples: { type: "string", default: "1" },
  iw: { type: "string", default: "1" },
  generate: { type: "string", default: "mean" },
  "eval-batch-size": { type: "string", default: "250" },
  regret: { type: "boolean" },
  "regret-steps": { type: "string", default: "100" },
  "regret-lr": { type: "string", default: "1e-2" },
  "regret-iw": { type: "string", default: "16" },
} as const;

export const EVALUATION_USAGE =
  `  --ood LIST             OOD test sets, comma-separated (default: the paper's pair, mnist for a
                         grayscale model, svhn for a CIFAR-10 one). Grayscale: ${BUILT_IN_SETS.join(", ")};
                         colour: ${COLOUR_BUILT_IN_SETS.join(", ")}; a directory of PNG or IDX files at
                         the model's size, or all (every built-in set of the model's kind available
                         here; the others are skipped with their reasons)
  --samples N            draws per image, scores averaged (default 1, as the paper)
  --iw S                 passes per draw for importance-weighted L_x and L>k (default 1)
  --generate MODE        z_k..z_1 of the L>k passes: mean (prior means, default) or sample
  --eval-batch-size N    images per scoring batch (default 250)
  --regret               also score Likelihood Regret (Xiao et al. 2020): each image's posterior
                         optimised alone; costly (a training step's work per step and batch)
  --regret-steps N       its Adam steps per image (default 100, as Xiao et al.)
  --regret-lr X          its Adam learning rate on the posterior's parameters (default 1e-2)
  --regret-iw K          draws of its importance-weighted bounds before and after (default 16)`;

export function evaluationOptions(
  tool: string,
  usage: string,
  flags: Record<string, unknown>,
  limit: unknown,
  limitFlag: string,
): EvaluationOptions {
  // Names not built in are directories, checked when they are read (data/evaluation_sets.ts).
  const ood = flags.ood === undefined
    ? []
    : String(flags.ood).split(",").map((s) => s.trim()).filter(Boolean);
  if (flags.ood !== undefined && ood.length === 0) usageError(tool, usage, "--ood needs at least one set");
  for (const name of ood) {
    if (name === "all" || isBuiltInSet(name)) continue;
    let directory = false;
    try {
      directory = Deno.statSync(name).isDirectory;
    } catch {
      // Neither a set nor a path: the usage error below.
    }
    if (!directory) {
      usageError(
        tool,
        usage,
        `--ood: '${name}' is neither a set (${
          [...BUILT_IN_SETS, ...COLOUR_BUILT_IN_SETS].join(", ")
        }, all) nor a directory`,
      );
    }
  }
  if (flags.generate !== "mean" && flags.generate !== "sample") {
    usageError(tool, usage, `--generate must be mean or sample, got '${flags.generate}'`);
  }
  return {
    ood,
    samples: intFlag(tool, usage, "samples", flags.samples, 1),
    iw: intFlag(tool, usage, "iw", flags.iw, 1),
    generate: flags.generate,
    batchSize: intFlag(tool, usage, "eval-batch-size", flags["eval-batch-size"], 1),
    limit: limit === undefined ? undefined : intFlag(tool, usage, limitFlag, limit, 1),
    regret: flags.regret === true
      ? {
        steps: intFlag(tool, usage, "regret-steps", flags["regret-steps"], 1),
        lr: numberFlag(tool, usage, "regret-lr", flags["regret-lr"], Number.MIN_VALUE),
        iw: intFlag(tool, usage, "regret-iw", flags["regret-iw"], 1),
      }
      : null,
    dataDir: flags["data-dir"] as string | undefined,
  };
}
