/**
 * One training step of the HVAE, and the schedules around it. Pure functions of tensors and
 * numbers: files, progress and flags live in scripts/train.ts.
 *
 * Randomness per step comes from keys, not state: the posterior and prior samples of step t use
 * offset t, the binarisation of epoch e offset e (data/loader.ts), so a run resumed from a
 * checkpoint draws exactly the numbers an uninterrupted run would.
 */

import { valueAndGradWithAux } from "../autograd/tape.ts";
import { scope, type Tensor } from "../kernels/tensor.ts";
import { type AdamState, adamUpdate } from "./adam.ts";
import { type HvaeConfig, hvaeObjective, type HvaeParams } from "./hvae.ts";
import { trainingKeys } from "./streams.ts";

export interface StepOptions {
  loss: "elbo" | "informative";
  lr: number;
  beta: number;
  freeBits: number;
  seed: number;
  /** Global step (the random offset of this step's samples). */
  step: number;
}

/**
 * Loss, gradients and an Adam update for one batch x [B, H, W, 1]; parameters and moments change in
 * place. Returns the metrics vector [loss, elbo, KL_1..KL_L, ll_0..] to read back (one readback).
 */
export function trainStep(
  cfg: HvaeConfig,
  params: HvaeParams,
  adam: AdamState<HvaeParams>,
  x: Tensor,
  o: StepOptions,
): Tensor {
  return scope(() => {
    const { grads, aux } = valueAndGradWithAux((p: HvaeParams, batch: Tensor) => {
      const objective = hvaeObjective(p, cfg, batch, {
        loss: o.loss,
        beta: o.beta,
        freeBits: o.freeBits,
        keyOf: trainingKeys(o.seed, o.step),
      });
      return [objective.loss, objective.metrics];
    })(params, x);
    adamUpdate(params, grads, adam, { lr: o.lr });
    return aux;
  });
}

/** KL warm-up: beta rises linearly from 0 to 1 over the first `warmupEpochs` epochs (1 without warm-up). */
export function warmupBeta(step: number, stepsPerEpoch: number, warmupEpochs: number): number {
  if (warmupEpochs <= 0) return 1;
  return Math.min(1, (step + 1) / (warmupEpochs * stepsPerEpoch));
}

/**
 * The free-bits floor at a step: `freeBits` throughout when `periodEpochs` is 0; otherwise held for the
 * first half of the period, then falling linearly to 0 at its end (the baselines' schedule in the
 * paper's Appendix F and Havtorn et al.'s code: 2 nats for 200 epochs, down to 0 by epoch 400).
 */
export function freeBitsAt(
  step: number,
  stepsPerEpoch: number,
  freeBits: number,
  periodEpochs: number,
): number {
  if (periodEpochs <= 0) return freeBits;
  const epoch = step / stepsPerEpoch, hold = periodEpochs / 2;
  if (epoch < hold) return freeBits;
  return freeBits * Math.max(0, 1 - (epoch - hold) / (periodEpochs - hold));
}

/** Names of the entries of the metrics vector for a model with L layers. */
export function metricNames(L: number, loss: "elbo" | "informative"): string[] {
  const names = ["loss", "elbo"];
  for (let l = 1; l <= L; l++) names.push(`kl${l}`);
  const lls = loss === "informative" ? L : 1;
  for (let k = 0; k < lls; k++) names.push(`ll${k}`);
  return names;
}
