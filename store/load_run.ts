/**
 * A run directory (docs/design.md section 7): `config.json` (the resolved model and training configuration)
 * and `model.safetensors` (the parameters), read back for evaluation and scoring: the files are read
 * here, and their contents made into a run by models/run_from_bytes.ts (which the browser page uses too).
 */

import { checkRunConfig, type LoadedRun, type RunConfig, runFromBytes } from "../models/run_from_bytes.ts";
import { readRegularFile } from "../data/files.ts";
import { MAX_FILE_BYTES } from "../data/safetensors.ts";

export type { LoadedRun, RunConfig, TrainingConfig } from "../models/run_from_bytes.ts";

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
  return checkRunConfig(config, configPath);
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
  return runFromBytes(config, await readRegularFile(modelPath, MAX_FILE_BYTES, "safetensors file"), dir);
}
