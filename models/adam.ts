/**
 * Adam over a parameter tree, with optional global-norm gradient clipping. Paper defaults: lr 3e-4,
 * betas (0.9, 0.999), eps 1e-8 (hvae-oodd's settings; docs/design.md section 2).
 *
 * `adamInit` makes the moment tensors (long-lived, like the parameters); `adamUpdate` updates
 * parameters and moments in place with one fused kernel per parameter (kernels/adam_step.ts) and
 * advances the step. With `clipNorm`, the factor min(1, clipNorm / ||g||) is computed on the GPU
 * from all gradients and read by every update kernel: no readback. Call it inside a `scope` so the
 * few temporaries it makes are released.
 */

import { binary } from "../kernels/binary.ts";
import { adamStep } from "../kernels/adam_step.ts";
import { full } from "../kernels/movement.ts";
import { reduce } from "../kernels/reduce.ts";
import { isTensor, keep, type Tensor } from "../kernels/tensor.ts";
import { flatten, type Tree } from "../kernels/tree.ts";
import { unary } from "../kernels/unary.ts";

/** Adam's hyper-parameters (defaults: the reference's). */
export interface AdamOptions {
  /** Learning rate (3e-4). */
  lr?: number;
  /** First-moment decay (0.9). */
  beta1?: number;
  /** Second-moment decay (0.999). */
  beta2?: number;
  /** Added to the denominator (1e-8). */
  eps?: number;
  /** Rescale all gradients together when their global L2 norm exceeds this. */
  clipNorm?: number;
}

/** Adam's state for a parameter tree of type P. */
export interface AdamState<P> {
  /** Updates done so far. */
  step: number;
  /** First moments, shaped like the parameters. */
  m: P;
  /** Second moments, shaped like the parameters. */
  v: P;
}

/** Zero moments shaped like `params` (long-lived tensors). */
export function adamInit<P>(params: P): AdamState<P> {
  const flat = flatten(params as Tree<Tensor>, isTensor);
  const zeros = () => flat.rebuild(flat.leaves.map((p) => keep(full(p.shape, 0)))) as P;
  return { step: 0, m: zeros(), v: zeros() };
}

/** The global L2 norm of a gradient tree, as a [1] tensor (no readback). */
export function globalNorm<P>(grads: P): Tensor {
  const leaves = flatten(grads as Tree<Tensor>, isTensor).leaves;
  let total: Tensor = full([], 0);
  for (const g of leaves) total = binary("add", total, reduce("sum", unary("square", g)));
  return unary("sqrt", total);
}

/**
 * One Adam step over the tree, in place. Returns the gradients' global norm (before clipping) when
 * `clipNorm` is set, else null.
 */
export function adamUpdate<P>(
  params: P,
  grads: P,
  state: AdamState<P>,
  options: AdamOptions = {},
): Tensor | null {
  const { lr = 3e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, clipNorm } = options;
  const p = flatten(params as Tree<Tensor>, isTensor).leaves;
  const g = flatten(grads as Tree<Tensor>, isTensor).leaves;
  const m = flatten(state.m as Tree<Tensor>, isTensor).leaves;
  const v = flatten(state.v as Tree<Tensor>, isTensor).leaves;
  if (g.length !== p.length || m.length !== p.length || v.length !== p.length) {
    throw new Error(
      `adamUpdate: ${p.length} parameters, ${g.length} gradients, ${m.length}/${v.length} moments`,
    );
  }
  let norm: Tensor | null = null;
  let scale: Tensor;
  if (clipNorm !== undefined) {
    if (!(clipNorm > 0)) throw new Error(`adamUpdate: clipNorm must be > 0, got ${clipNorm}`);
    norm = globalNorm(grads);
    scale = binary("minimum", binary("div", clipNorm, binary("add", norm, 1e-6)), 1);
  } else {
    scale = full([1], 1);
  }
  state.step++;
  for (let i = 0; i < p.length; i++) {
    adamStep(p[i], g[i], m[i], v[i], scale, { lr, beta1, beta2, eps }, state.step);
  }
  return norm;
}
