/**
 * Dense (fully connected) layer as a pure function over a parameter tree: y = x W + b.
 * Initialisation: W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's Linear default), b = 0.
 */

import { add, matmul } from "../autograd/ops.ts";
import { type Tensor, tensor } from "../kernels/tensor.ts";
import { type Rng } from "./rng.ts";

export interface DenseParams {
  /** [in, out] */
  weight: Tensor;
  /** [out] */
  bias: Tensor;
}

/** Fresh parameters for a dense layer from `inputs` to `outputs` features. */
export function initDense(inputs: number, outputs: number, rng: Rng): DenseParams {
  const bound = 1 / Math.sqrt(inputs);
  const w = new Float32Array(inputs * outputs);
  for (let i = 0; i < w.length; i++) w[i] = (2 * rng.uniform() - 1) * bound;
  return { weight: tensor(w, [inputs, outputs]), bias: tensor(new Float32Array(outputs), [outputs]) };
}

/** y = x W + b for x of shape [..., in]. */
export function dense(params: DenseParams, x: Tensor): Tensor {
  return add(matmul(x, params.weight), params.bias);
}
