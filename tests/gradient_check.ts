/**
 * A model's loss against finite differences: the directional derivative along a random direction in
 * parameter space, analytic (reverse mode) against central differences, for any preset.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { valueAndGrad } from "../autograd/tape.ts";
import { keep, readAll, readScalar, scope, tensor } from "../kernels/tensor.ts";
import { flattenParams, type HvaeConfig, hvaeObjective, type HvaeParams, initHvae } from "../models/hvae.ts";
import { createRng } from "../models/rng.ts";
import { syntheticBatch } from "./synthetic.ts";

const keyOf = (stream: number) => ({ seed: 5, stream, offset: 3 });

/** Directional finite differences of the loss along a random direction in parameter space. */
export async function directionalCheck(
  cfg: HvaeConfig,
  loss: "elbo" | "informative",
  freeBits: number,
  beta: number,
): Promise<void> {
  const params = keep(initHvae(cfg, createRng(13)));
  const x = keep(syntheticBatch(4));
  const f = (p: HvaeParams) => hvaeObjective(p, cfg, x, { loss, beta, freeBits, keyOf }).loss;
  const flat = flattenParams(params);
  const rng = createRng(17);
  const direction = flat.leaves.map((t) => Float32Array.from({ length: t.size }, () => rng.normal()));
  const { grads } = scope(() => valueAndGrad(f)(params));
  const g = await readAll(flattenParams(grads).leaves);
  let analytic = 0;
  g.forEach((gi, i) => gi.forEach((v, j) => analytic += v * direction[i][j]));
  const h = 1e-3;
  const at = async (s: number) => {
    const shifted = flat.rebuild(
      flat.leaves.map((t, i) => ops.add(t, ops.mul(tensor(direction[i], t.shape), s))),
    );
    return await readScalar(scope(() => f(shifted as unknown as HvaeParams)));
  };
  const numeric = (await at(h) - await at(-h)) / (2 * h);
  const rel = Math.abs(numeric - analytic) / Math.max(1, Math.abs(analytic));
  assert.ok(
    rel < 2e-2,
    `${cfg.preset} ${loss}: directional derivative ${analytic} vs finite differences ${numeric} (rel ${rel})`,
  );
}
