/**
 * The evaluation flags `deno task ood` and `deno task train` share (eval/evaluate.ts), parsed into
 * EvaluationOptions with usage errors that name the flag.
 */

import { DATASET_NAMES, type DatasetName } from "../data/datasets.ts";
import type { EvaluationOptions } from "../eval/evaluate.ts";
import { intFlag, usageError } from "./cli.ts";

export const EVALUATION_FLAGS = {
  ood: { type: "string", default: "mnist" },
  samples: { type: "string", default: "1" },
  iw: { type: "string", default: "1" },
  generate: { type: "string", default: "mean" },
  "eval-batch-size": { type: "string", default: "250" },
} as const;

export const EVALUATION_USAGE =
  `  --ood LIST             OOD test sets, comma-separated (default mnist; available: ${
    DATASET_NAMES.join(", ")
  })
  --samples N            draws per image, scores averaged (default 1, as the paper)
  --iw S                 passes per draw for importance-weighted L_x and L>k (default 1)
  --generate MODE        z_k..z_1 of the L>k passes: mean (prior means, default) or sample
  --eval-batch-size N    images per scoring batch (default 250)`;

export function evaluationOptions(
  tool: string,
  usage: string,
  flags: Record<string, unknown>,
  limit: unknown,
  limitFlag: string,
): EvaluationOptions {
  const ood = String(flags.ood).split(",").map((s) => s.trim()).filter(Boolean);
  for (const name of ood) {
    if (!DATASET_NAMES.includes(name as DatasetName)) {
      usageError(tool, usage, `--ood: unknown dataset '${name}' (available: ${DATASET_NAMES.join(", ")})`);
    }
  }
  if (ood.length === 0) usageError(tool, usage, "--ood needs at least one dataset");
  if (flags.generate !== "mean" && flags.generate !== "sample") {
    usageError(tool, usage, `--generate must be mean or sample, got '${flags.generate}'`);
  }
  return {
    ood: ood as DatasetName[],
    samples: intFlag(tool, usage, "samples", flags.samples, 1),
    iw: intFlag(tool, usage, "iw", flags.iw, 1),
    generate: flags.generate,
    batchSize: intFlag(tool, usage, "eval-batch-size", flags["eval-batch-size"], 1),
    limit: limit === undefined ? undefined : intFlag(tool, usage, limitFlag, limit, 1),
    dataDir: flags["data-dir"] as string | undefined,
  };
}
