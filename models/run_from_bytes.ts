/**
 * A trained run from its two files' contents, with no file system: the configuration checked field by
 * field and the parameters restored from safetensors bytes. Deno-free, so the browser page (web/) loads a
 * run through the same code as the command lines (store/load_run.ts reads the files, then calls this).
 */

import { isTensor, keep, type Tensor, tensor } from "../kernels/tensor.ts";
import { flatten, type Tree } from "../kernels/tree.ts";
import { decodeSafetensors, type NamedArray } from "../data/safetensors.ts";
import { type HvaeConfig, type HvaeParams, initHvae, validateConfig } from "./hvae.ts";
import { createRng } from "./rng.ts";
import type { TrainingSchedule } from "./training.ts";
import { DATASET_NAMES, type DatasetName } from "../data/dataset_names.ts";

/** The training section of config.json: the schedule (models/training.ts) and the data it ran on. */
export interface TrainingConfig extends TrainingSchedule {
  /** Trained on the first N images only (null: all). */
  trainLimit: number | null;
  /** The training dataset. */
  dataset: DatasetName;
}

/** A run's config.json (docs/design.md section 7). */
export interface RunConfig {
  /** The model's resolved configuration. */
  model: HvaeConfig;
  /** The training settings and data. */
  training: TrainingConfig;
  /** The adapter the run trained on. */
  adapter: unknown;
  /** Deno, V8 and TypeScript versions. */
  versions: Record<string, string>;
  /** Where the training split came from, and how many images. */
  data?: { train: string; images: number };
  /** When the run started (ISO 8601). */
  createdAt: string;
}

/** A run read back (`loadRun` from a directory, `runFromBytes` from its files' contents). */
export interface LoadedRun {
  /** The run directory (or where its files came from). */
  dir: string;
  /** Its config.json. */
  config: RunConfig;
  /** The trained parameters on the GPU (kept: dispose them when done). */
  params: HvaeParams;
}

/**
 * Checks a parsed config.json: a model section that `validateConfig` accepts and a training section
 * with sane counts, a positive learning rate and a known dataset. Errors name `where` (the file).
 */
export function checkRunConfig(config: unknown, where: string): RunConfig {
  const c = config as RunConfig;
  if (typeof c !== "object" || c === null || !c.model || !c.training) {
    throw new Error(`${where}: not a run configuration (no model or training section)`);
  }
  try {
    validateConfig(c.model);
    const t = c.training;
    const counts = [t.epochs, t.batchSize, t.seed];
    if (
      !counts.every((v) => Number.isInteger(v) && v >= 0) || !(t.lr > 0) || !DATASET_NAMES.includes(t.dataset)
    ) {
      throw new Error(`the training section is not valid (${JSON.stringify(t)})`);
    }
  } catch (error) {
    throw new Error(`${where}: ${(error as Error).message}`);
  }
  return c;
}

/** Overwrites the tensors of `tree` (in place, by path) with the stored values; shapes must match. */
export function restoreTree(
  tree: unknown,
  stored: Record<string, NamedArray>,
  prefix: string,
  file: string,
): unknown {
  const flat = flatten(tree as Tree<Tensor>, isTensor);
  const leaves = flat.leaves.map((t, i) => {
    const key = prefix + flat.paths[i];
    const entry = stored[key];
    if (!entry) throw new Error(`${file}: no tensor '${key}' (is this checkpoint from another preset?)`);
    if (entry.shape.length !== t.rank || entry.shape.some((d, j) => d !== t.shape[j])) {
      throw new Error(`${file}: '${key}' has shape [${entry.shape}], the model expects [${t.shape}]`);
    }
    // Non-finite weights make every score NaN, and NaN compares false with any threshold: a model
    // that would call every image in-distribution is refused here, by name.
    let bad = 0;
    for (const v of entry.data) if (!Number.isFinite(v)) bad++;
    if (bad > 0) {
      throw new Error(
        `${file}: '${key}' holds ${bad} non-finite values (NaN or infinite) of ${entry.data.length}: ` +
          `the checkpoint is unusable (train again, e.g. with a lower --lr)`,
      );
    }
    t.dispose();
    return tensor(entry.data as Float32Array, entry.shape);
  });
  return flat.rebuild(leaves);
}

/**
 * A run from its config.json (parsed) and model.safetensors (bytes): the parameter tree's structure
 * comes from the config, its values from the file; `where` names both in errors.
 */
export function runFromBytes(config: unknown, modelBytes: Uint8Array, where: string): LoadedRun {
  const checked = checkRunConfig(config, `${where}/config.json`);
  const modelPath = `${where}/model.safetensors`;
  const stored = decodeSafetensors(modelBytes, modelPath);
  const params = restoreTree(
    initHvae(checked.model, createRng(0)),
    stored.tensors,
    "",
    modelPath,
  ) as HvaeParams;
  return { dir: where, config: checked, params: keep(params) };
}
