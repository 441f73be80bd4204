/**
 * Checkpoints of a training run, in safetensors (data/safetensors.ts):
 *   model.safetensors      every parameter under its dotted path (models/hvae.ts documents them), F32;
 *   optimizer.safetensors  Adam's moments as `m.<path>` and `v.<path>`, with metadata: the Adam step,
 *                          completed epochs, the step within the current epoch, the global step.
 * Both are written to temporary files and renamed, optimizer first and model last.
 */

import { isTensor, readAll, type Tensor, tensor } from "../kernels/tensor.ts";
import { flatten, type Tree } from "../kernels/tree.ts";
import type { AdamState } from "../models/adam.ts";
import type { Progress } from "../models/training.ts";
import { encodeSafetensors, type NamedArray, readSafetensors, writeFileAtomic } from "./safetensors.ts";

async function named(prefix: string, tree: unknown): Promise<Record<string, NamedArray>> {
  const flat = flatten(tree as Tree<Tensor>, isTensor);
  const data = await readAll(flat.leaves);
  const out: Record<string, NamedArray> = {};
  flat.paths.forEach((path, i) => {
    out[prefix + path] = { dtype: "F32", shape: [...flat.leaves[i].shape], data: data[i] as Float32Array };
  });
  return out;
}

/** Writes model.safetensors and optimizer.safetensors into `dir` (atomically each). */
export async function saveCheckpoint<P>(
  dir: string,
  params: P,
  adam: AdamState<P>,
  progress: Progress,
  metadata: Record<string, string> = {},
): Promise<void> {
  const moments = { ...(await named("m.", adam.m)), ...(await named("v.", adam.v)) };
  await writeFileAtomic(
    `${dir}/optimizer.safetensors`,
    encodeSafetensors(moments, {
      adamStep: String(adam.step),
      epoch: String(progress.epoch),
      stepInEpoch: String(progress.stepInEpoch),
      step: String(progress.step),
    }),
  );
  await saveModel(`${dir}/model.safetensors`, params, metadata);
}

/** Writes the parameters alone (a `model.safetensors`), atomically. */
export async function saveModel<P>(
  path: string,
  params: P,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(await named("", params), metadata));
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
    t.dispose();
    return tensor(entry.data as Float32Array, entry.shape);
  });
  return flat.rebuild(leaves);
}

/** Loads a checkpoint into fresh trees shaped like `params` and `adam`. */
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
