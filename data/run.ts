/**
 * A run directory (docs/design.md section 7): `config.json` (the resolved model and training configuration)
 * and `model.safetensors` (the parameters), read back for evaluation and scoring.
 */

import { keep } from "../kernels/tensor.ts";
import { restoreTree } from "./checkpoint.ts";
import { type HvaeConfig, type HvaeParams, initHvae, validateConfig } from "../models/hvae.ts";
import { createRng } from "../models/rng.ts";
import type { TrainingSchedule } from "../models/training.ts";
import { DATASET_NAMES, type DatasetName } from "./datasets.ts";
import { readSafetensors } from "./safetensors.ts";

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

/** A run directory read back (`loadRun`). */
export interface LoadedRun {
  /** The run directory. */
  dir: string;
  /** Its config.json. */
  config: RunConfig;
  /** The trained parameters on the GPU (kept: dispose them when done). */
  params: HvaeParams;
}

/**
 * Reads and checks `dir/config.json`: JSON, a model section that `validateConfig` accepts and a
 * training section with sane counts, a positive learning rate and a known dataset. Errors name the file.
 */
export async function readRunConfig(dir: string): Promise<RunConfig> {
  const configPath = `${dir}/config.json`;
  let config: RunConfig;
  try {
    config = JSON.parse(await Deno.readTextFile(configPath));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`${configPath} not found: is ${dir} a run directory made by 'deno task train'?`);
    }
    throw new Error(`${configPath}: ${(error as Error).message}`);
  }
  if (typeof config !== "object" || config === null || !config.model || !config.training) {
    throw new Error(`${configPath}: not a run configuration (no model or training section)`);
  }
  try {
    validateConfig(config.model);
    const t = config.training;
    const counts = [t.epochs, t.batchSize, t.seed];
    if (
      !counts.every((v) => Number.isInteger(v) && v >= 0) || !(t.lr > 0) || !DATASET_NAMES.includes(t.dataset)
    ) {
      throw new Error(`the training section is not valid (${JSON.stringify(t)})`);
    }
  } catch (error) {
    throw new Error(`${configPath}: ${(error as Error).message}`);
  }
  return config;
}

/** Reads `dir/config.json` (`readRunConfig`) and `dir/model.safetensors`; errors name the file and what is wrong. */
export async function loadRun(dir: string): Promise<LoadedRun> {
  const config = await readRunConfig(dir);
  const modelPath = `${dir}/model.safetensors`;
  if (!(await Deno.stat(modelPath).then(() => true, () => false))) {
    throw new Error(
      `${modelPath} not found: the run has no checkpoint yet (its training stopped before the first ` +
        `checkpoint; 'deno task train --resume ${dir}' starts it over)`,
    );
  }
  const stored = await readSafetensors(modelPath);
  // The parameter tree's structure comes from the config; its values from the file.
  const params = restoreTree(
    initHvae(config.model, createRng(0)),
    stored.tensors,
    "",
    modelPath,
  ) as HvaeParams;
  return { dir, config, params: keep(params) };
}
