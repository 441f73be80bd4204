/**
 * hvae-ood: a from-scratch deep-learning engine for Deno on WebGPU, and on it the informative
 * hierarchical VAE with the Adaptive Likelihood Ratio (Li et al., NeurIPS 2022) for unsupervised
 * out-of-distribution detection.
 *
 * This module is the public API and re-exports only:
 * - the GPU: `initGpu` (call once, first), `adapterInfo`, `configure`, `engineStats`, `flush`, `sync`;
 * - tensors and their lifetimes: `tensor`, `read`, `readAll`, `readScalar`, `scope`, `keep`, `dispose`;
 * - differentiable ops (elementwise, broadcasting binary, reductions, movement, matmul);
 * - autodiff: `valueAndGrad`, `valueAndGradWithAux`, `grad`, `noGrad`, `stopGradient`;
 * - layers and optimisers from `models/`.
 *
 * @example
 * ```ts
 * import { initGpu, mul, read, readScalar, square, sum, tensor, valueAndGrad } from "./mod.ts";
 * await initGpu();
 * const w = tensor([1, 2, 3]);
 * const f = (p: { w: typeof w }) => sum(square(mul(p.w, 2)));
 * const { value, grads } = valueAndGrad(f)({ w });
 * console.log(await readScalar(value), await read(grads.w)); // 56, [8, 16, 24]
 * ```
 * @module
 */

export { type AdapterDescription, GpuUnavailableError, initGpu } from "./kernels/runtime/device.ts";
export {
  adapterInfo,
  configure,
  type EngineOptions,
  type EngineStats,
  engineStats,
  flush,
  sync,
} from "./kernels/engine.ts";
export {
  dispose,
  type DType,
  keep,
  read,
  readAll,
  readScalar,
  scope,
  Tensor,
  tensor,
} from "./kernels/tensor.ts";
export type { Shape } from "./kernels/shape.ts";
export { flatten, type Tree } from "./kernels/tree.ts";
export {
  abs,
  add,
  broadcastTo,
  concat,
  div,
  equal,
  exp,
  expm1,
  full,
  greater,
  greaterEqual,
  less,
  lessEqual,
  log,
  log1p,
  logsumexp,
  matmul,
  max,
  maximum,
  mean,
  minimum,
  mul,
  neg,
  notEqual,
  ones,
  pad,
  permute,
  pow,
  reciprocal,
  relu,
  reshape,
  sigmoid,
  sign,
  slice,
  softplus,
  sqrt,
  square,
  stopGradient,
  sub,
  sum,
  tanh,
  transpose,
  where,
  zeros,
} from "./autograd/ops.ts";
export type { Operand } from "./autograd/tape.ts";
export {
  grad,
  noGrad,
  type ValueAndGrad,
  valueAndGrad,
  type ValueAndGradAux,
  valueAndGradWithAux,
} from "./autograd/tape.ts";
export { dense, type DenseParams, initDense } from "./models/dense.ts";
export { createRng, type Rng } from "./models/rng.ts";
export { sgdStep } from "./models/sgd.ts";
