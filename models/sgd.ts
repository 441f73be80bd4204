/**
 * Plain stochastic gradient descent over a parameter tree, functional: returns new parameters
 * p - lr * g and leaves the old ones to the caller. The models train with Adam (models/adam.ts, one
 * fused kernel per parameter buffer); SGD serves small examples and benchmarks.
 */

import { mul, sub } from "../autograd/ops.ts";
import { isTensor, type Tensor } from "../kernels/tensor.ts";
import { flatten, type Tree } from "../kernels/tree.ts";

/** One SGD step: new parameters p - lr g (the old ones are the caller's to dispose). */
export function sgdStep<P>(params: P, grads: P, lr: number): P {
  const p = flatten(params as Tree<Tensor>, isTensor);
  const g = flatten(grads as Tree<Tensor>, isTensor);
  if (p.leaves.length !== g.leaves.length) {
    throw new Error(`sgdStep: ${p.leaves.length} parameters but ${g.leaves.length} gradients`);
  }
  return p.rebuild(p.leaves.map((x, i) => sub(x, mul(g.leaves[i], lr)))) as P;
}
