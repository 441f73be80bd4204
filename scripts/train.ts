/**
 * `deno task train`: the main job. Placeholder until the hierarchical VAE lands (issue "Hierarchical
 * VAE, informative loss, data pipeline and `deno task train`"): it says so, then checks the engine
 * end to end on this machine by fitting a small MLP to a synthetic regression target with the
 * functional autodiff API, printing the loss as it falls.
 */

import { mean, relu, square, sub } from "../autograd/ops.ts";
import { valueAndGrad } from "../autograd/tape.ts";
import { adapterInfo } from "../kernels/engine.ts";
import { dispose, keep, readScalar, scope, tensor } from "../kernels/tensor.ts";
import { dense, initDense } from "../models/dense.ts";
import { createRng } from "../models/rng.ts";
import { sgdStep } from "../models/sgd.ts";
import { initGpuOrExit, intFlag, parseFlags } from "./cli.ts";

const USAGE = "usage: deno task train [--steps N] [--seed N]";
const flags = parseFlags("train", USAGE, {
  steps: { type: "string", default: "300" },
  seed: { type: "string", default: "1" },
});
const steps = intFlag("train", USAGE, "steps", flags.steps, 1);
const seed = intFlag("train", USAGE, "seed", flags.seed);

console.log(
  "train: the hierarchical VAE and its training are not implemented yet (next issues: VAE kernels,\n" +
    "       then the model, data pipeline and training). Meanwhile this run checks the engine end to end.",
);
await initGpuOrExit("train");
console.log(`train: adapter ${adapterInfo().description}`);

// Target: y = sin(3 x0) + x1 x2 on 256 random points in [-1, 1]^3.
const rng = createRng(seed);
const n = 256;
const xs = new Float32Array(n * 3), ys = new Float32Array(n);
for (let i = 0; i < n; i++) {
  for (let j = 0; j < 3; j++) xs[i * 3 + j] = rng.uniform() * 2 - 1;
  ys[i] = Math.sin(3 * xs[i * 3]) + xs[i * 3 + 1] * xs[i * 3 + 2];
}
const x = tensor(xs, [n, 3]), y = tensor(ys, [n, 1]);
let params = keep({ l1: initDense(3, 64, rng), l2: initDense(64, 1, rng) });
const loss = (p: typeof params) => mean(square(sub(dense(p.l2, relu(dense(p.l1, x))), y)));
const vg = valueAndGrad(loss);
const t0 = performance.now();
for (let step = 0; step < steps; step++) {
  const next = scope(() => {
    const { value, grads } = vg(params);
    return { value, params: sgdStep(params, grads, 0.1) };
  });
  dispose(params);
  params = next.params;
  if (step % 50 === 0 || step === steps - 1) {
    console.log(`step ${String(step).padStart(4)}  mse ${(await readScalar(next.value)).toFixed(5)}`);
  }
  next.value.dispose();
}
const seconds = (performance.now() - t0) / 1000;
console.log(
  `train: ${steps} steps in ${seconds.toFixed(2)} s (${(steps / seconds).toFixed(1)} steps/s). Engine OK.`,
);
dispose([params, x, y]);
