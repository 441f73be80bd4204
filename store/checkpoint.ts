/**
 * Checkpoints of a training run, in safetensors (data/safetensors.ts):
 *   model.safetensors      every parameter under its dotted path (models/hvae.ts documents them), F32;
 *   optimizer.safetensors  Adam's moments as `m.<path>` and `v.<path>`, with metadata: the Adam step,
 *                          completed epochs, the step within the current epoch, the global step.
 * Both are written to temporary files and renamed, optimizer first and model last.
 */

import { isTensor, readAll, type Tensor } from "../kernels/tensor.ts";
import { flatten, type Tree } from "../kernels/tree.ts";
import type { AdamState } from "../models/adam.ts";
import type { Progress } from "../models/training.ts";
import { readRegularFile, writeFileAtomic, writeFilesAtomic } from "../data/files.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  MAX_FILE_BYTES,
  type NamedArray,
} from "../data/safetensors.ts";
import { restoreTree } from "../models/run_from_bytes.ts";

async function named(prefix: string, tree: unknown): Promise<Record<string, NamedArray>> {
  const flat = flatten(tree as Tree<Tensor>, isTensor);
  const data = await readAll(flat.leaves);
  const out: Record<string, NamedArray> = {};
  flat.paths.forEach((path, i) => {
    out[prefix + path] = { dtype: "F32", shape: [...flat.leaves[i].shape], data: data[i] as Float32Array };
  });
  return out;
}

/**
 * Writes model.safetensors and optimizer.safetensors into `dir` as one checkpoint: both files are
 * written in full to `.tmp` names first (a failure, such as a full disk, removes them and leaves the
 * previous checkpoint as it was), then renamed, optimizer first. Both record the global step, so a
 * pair from different steps is recognised (`recoverCheckpoint` completes an interrupted pair).
 */
export async function saveCheckpoint<P>(
  dir: string,
  params: P,
  adam: AdamState<P>,
  progress: Progress,
  metadata: Record<string, string> = {},
): Promise<void> {
  const moments = { ...(await named("m.", adam.m)), ...(await named("v.", adam.v)) };
  const steps = {
    epoch: String(progress.epoch),
    stepInEpoch: String(progress.stepInEpoch),
    step: String(progress.step),
  };
  const files: [string, Uint8Array][] = [
    [`${dir}/optimizer.safetensors`, encodeSafetensors(moments, { adamStep: String(adam.step), ...steps })],
    [`${dir}/model.safetensors`, encodeSafetensors(await named("", params), { ...metadata, ...steps })],
  ];
  try {
    await writeFilesAtomic(files);
  } catch (error) {
    throw new Error(`cannot write the checkpoint into ${dir} (${(error as Error).message})`);
  }
}

/** Writes the parameters alone (a `model.safetensors`), atomically. */
export async function saveModel<P>(
  path: string,
  params: P,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(await named("", params), metadata));
}

/** Reads and decodes a safetensors file (a regular file of sane size; errors name it). */
export async function readSafetensors(path: string): Promise<ReturnType<typeof decodeSafetensors>> {
  return decodeSafetensors(await readRegularFile(path, MAX_FILE_BYTES, "safetensors file"), path);
}

/**
 * Makes `dir`'s checkpoint whole after a crash: when the model file is older than the optimizer file
 * (a crash between the two renames of `saveCheckpoint`) and the model's complete `.tmp` holds the
 * optimizer's step, it is renamed into place; then leftover `.tmp` files go. Returns what it did.
 */
export async function recoverCheckpoint(dir: string): Promise<string[]> {
  const done: string[] = [];
  const stepIn = async (path: string): Promise<string | null> => {
    try {
      return decodeSafetensors(await Deno.readFile(path), path).metadata.step ?? null;
    } catch {
      return null;
    }
  };
  const model = `${dir}/model.safetensors`, optimizer = `${dir}/optimizer.safetensors`;
  const [modelStep, optimizerStep, pendingStep] = await Promise.all([
    stepIn(model),
    stepIn(optimizer),
    stepIn(`${model}.tmp`),
  ]);
  if (optimizerStep !== null && modelStep !== optimizerStep && pendingStep === optimizerStep) {
    await Deno.rename(`${model}.tmp`, model);
    done.push(
      `completed the checkpoint of step ${optimizerStep} that a crash interrupted (model.safetensors.tmp)`,
    );
  }
  for (const name of ["model.safetensors.tmp", "optimizer.safetensors.tmp"]) {
    if (await Deno.remove(`${dir}/${name}`).then(() => true, () => false)) {
      done.push(`removed ${name}, left by an interrupted write`);
    }
  }
  return done;
}

/** Loads a checkpoint into fresh trees shaped like `params` and `adam`; refuses a pair from different steps. */
export async function loadCheckpoint<P>(
  dir: string,
  params: P,
  adam: AdamState<P>,
): Promise<{ params: P; adam: AdamState<P>; progress: Progress }> {
  const model = await readSafetensors(`${dir}/model.safetensors`);
  const optimizer = await readSafetensors(`${dir}/optimizer.safetensors`);
  const meta = optimizer.metadata;
  const number = (key: string) => {
    const v = Number(meta[key]);
    if (!Number.isInteger(v) || v < 0) {
      throw new Error(`${dir}/optimizer.safetensors: metadata '${key}' is ${meta[key]}`);
    }
    return v;
  };
  // Checkpoints from before the model file recorded its step cannot be compared.
  if (model.metadata.step !== undefined && model.metadata.step !== meta.step) {
    throw new Error(
      `${dir}: model.safetensors is from step ${model.metadata.step} but optimizer.safetensors from step ` +
        `${meta.step}: they are not one checkpoint, and training cannot continue from them ` +
        `('deno task ood --run ${dir}' still evaluates the model)`,
    );
  }
  return {
    params: restoreTree(params, model.tensors, "", `${dir}/model.safetensors`) as P,
    adam: {
      step: number("adamStep"),
      m: restoreTree(adam.m, optimizer.tensors, "m.", `${dir}/optimizer.safetensors`) as P,
      v: restoreTree(adam.v, optimizer.tensors, "v.", `${dir}/optimizer.safetensors`) as P,
    },
    progress: { epoch: number("epoch"), stepInEpoch: number("stepInEpoch"), step: number("step") },
  };
}
