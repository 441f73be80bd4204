/**
 * The Adam update (Kingma & Ba, 2015) as one fused kernel per parameter buffer, in place:
 *   g' = g * scale                      (scale: 1, or the global-norm clipping factor, on the GPU)
 *   m  = beta1 m + (1 - beta1) g'
 *   v  = beta2 v + (1 - beta2) g'^2
 *   p  = p - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 * Parameter, first and second moment are each bound once, read_write: WebGPU forbids binding one
 * buffer as both read and read_write in a dispatch. This is the engine's only kernel that writes
 * into existing tensors; the optimiser (models/adam.ts) owns those tensors. Four elements per thread
 * (kernels/launch.ts says why).
 */

import { elementType, elementwiseGrid, elementwiseMain, launch } from "./launch.ts";
import type { KernelSpec } from "./runtime/program.ts";
import { sameShape } from "./shape.ts";
import type { Tensor } from "./tensor.ts";

const ADAM: KernelSpec = {
  key: "adam",
  uniforms: [
    ["n", "u32"],
    ["lr", "f32"],
    ["beta1", "f32"],
    ["beta2", "f32"],
    ["eps", "f32"],
    ["bc1", "f32"],
    [
      "bc2",
      "f32",
    ],
  ],
  inputs: [["G", elementType(4)], ["Scale", "f32"]],
  outputs: [["Param", elementType(4)], ["M", elementType(4)], ["V", elementType(4)]],
  body: `
${elementwiseMain(4)}
  let g = G[i] * Scale[0];
  let m = P.beta1 * M[i] + (1.0 - P.beta1) * g;
  let v = P.beta2 * V[i] + (1.0 - P.beta2) * g * g;
  M[i] = m;
  V[i] = v;
  Param[i] = Param[i] - P.lr * (m / P.bc1) / (sqrt(v / P.bc2) + P.eps);
}
`,
};

export interface AdamHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
}

/** Applies step `t` (1-based) of Adam to one parameter buffer, in place. `scale` is a [1] tensor. */
export function adamStep(
  param: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  scale: Tensor,
  hyper: AdamHyper,
  t: number,
): void {
  if (
    !sameShape(param.shape, grad.shape) || !sameShape(param.shape, m.shape) ||
    !sameShape(param.shape, v.shape)
  ) {
    throw new Error(`adam: parameter ${param}, gradient ${grad} and moments ${m}, ${v} must have one shape`);
  }
  const { lr, beta1, beta2, eps } = hyper;
  launch(
    ADAM,
    [grad, scale],
    [param, m, v],
    {
      n: param.size,
      lr,
      beta1,
      beta2,
      eps,
      bc1: 1 - beta1 ** t,
      bc2: 1 - beta2 ** t,
    },
    elementwiseGrid(param.size, 4),
    "adam",
  );
}
