/**
 * Checks any preset's training objective: the directional derivative along a random direction in
 * parameter space, analytic (reverse mode) against central differences; and the losses of a few
 * training steps on one batch (they must go down), with a hook after each step (e.g. a memory check).
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { valueAndGrad } from "../autograd/tape.ts";
import { keep, readAll, readScalar, scope, type Tensor, tensor } from "../kernels/tensor.ts";
import { flattenParams, type HvaeConfig, hvaeObjective, type HvaeParams, initHvae } from "../models/hvae.ts";
import { likelihoodOf } from "../models/likelihood.ts";
import { createRng } from "../models/rng.ts";
import type { AdamState } from "../models/adam.ts";
import { trainStep } from "../models/training.ts";
import { keysOf } from "./helpers.ts";
import { syntheticBatch } from "./synthetic.ts";

const keyOf = keysOf(5, 3);

/** Directional finite differences of the loss along a random direction in parameter space. */
export async function directionalCheck(
  cfg: HvaeConfig,
  loss: "elbo" | "informative",
  freeBits: number,
  beta: number,
): Promise<void> {
  const params = keep(initHvae(cfg, createRng(13)));
  const x = keep(syntheticBatch(4, likelihoodOf(cfg).input, cfg.image));
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

/** The loss of each of `steps` training steps on the batch x (parameters and Adam updated in place). */
export async function trainingLosses(
  cfg: HvaeConfig,
  params: HvaeParams,
  adam: AdamState<HvaeParams>,
  x: Tensor,
  o: { loss: "elbo" | "informative"; lr: number; steps: number; afterStep?: (step: number) => void },
): Promise<number[]> {
  const losses: number[] = [];
  for (let step = 0; step < o.steps; step++) {
    const m = trainStep(cfg, params, adam, x, {
      loss: o.loss,
      lr: o.lr,
      beta: 1,
      freeBits: 0,
      seed: 1,
      step,
    });
    losses.push((await readAll([m]))[0][0]);
    m.dispose();
    o.afterStep?.(step);
  }
  return losses;
}
