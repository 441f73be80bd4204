/**
 * Reductions over any axes (contiguous blocks, scattered axes, all, none), with and without keepdims,
 * including the two-pass path for long rows; gradients against finite differences.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { valueAndGrad } from "../autograd/tape.ts";
import { read, type Tensor } from "../kernels/tensor.ts";
import { assertClose, checkOp, createRng, gpuTest, randomNd, toTensor } from "./helpers.ts";
import * as ref from "./reference.ts";

const CASES: [number[], number | number[] | undefined][] = [
  [[5], undefined],
  [[4, 6], 0],
  [[4, 6], 1],
  [[4, 6], -1],
  [[3, 4, 5], [0, 2]], // scattered axes: one pass per block of adjacent axes, innermost first
  [[2, 3, 4, 5, 2], [0, 2, 3]],
  [[2, 3, 2, 5, 2, 3], [1, 3, 5]], // three blocks, as the nearest upsampling's gradient has two
  [[3, 4, 5], [1, 2]],
  [[2, 3, 4, 5], [1, 2]],
  [[2, 1, 3], 1],
  [[3, 4], []],
  [[2, 3, 4], undefined],
  [[6, 8], 0], // rows of whole vec4s: four outputs per thread
  [[2, 7, 12], 1],
];

for (const op of ["sum", "mean", "max", "logsumexp"] as const) {
  gpuTest(`reduce ${op}: axes and keepdims, forward and gradient`, async () => {
    const rng = createRng(31);
    for (const [shape, axes] of CASES) {
      for (const keepdims of [false, true]) {
        await checkOp({
          name: `${op} ${JSON.stringify(shape)} axes=${JSON.stringify(axes)} keepdims=${keepdims}`,
          inputs: [randomNd(rng, shape, { low: -2, high: 2 })],
          gpu: (x) => ops[op](x, axes, keepdims),
          ref: (x) => ref[op](x, axes as number[] | undefined, keepdims),
          tol: { rtol: 1e-5, atol: 1e-5 },
        });
      }
    }
  });
}

gpuTest("reduce: long rows take the two-pass path and stay exact on integers", async () => {
  const rng = createRng(37);
  // [20000, 4] and [1000, 8] along axis 0: the workgroup variant with four outputs per thread.
  for (const shape of [[100_000], [3, 20_000], [9000, 2], [20_000, 4], [1000, 8]]) {
    const x = randomNd(rng, shape, { low: -3, high: 3, integer: true });
    for (const axis of [0, shape.length - 1]) {
      await checkOp({
        name: `sum ${JSON.stringify(shape)} axis ${axis}`,
        inputs: [x],
        gpu: (t) => ops.sum(t, axis),
        ref: (t) => ref.sum(t, axis),
        tol: { rtol: 0, atol: 0 },
        grad: false,
      });
      await checkOp({
        name: `max ${JSON.stringify(shape)} axis ${axis}`,
        inputs: [x],
        gpu: (t) => ops.max(t, axis),
        ref: (t) => ref.max(t, axis),
        tol: { rtol: 0, atol: 0 },
        grad: false,
      });
    }
  }
});

gpuTest("reduce max: tied maxima share the gradient evenly", async () => {
  const x = toTensor(ref.nd([2, 3], [1, 5, 5, 2, 2, 2]));
  const { grads } = valueAndGrad((p: Tensor[]) => ops.sum(ops.max(p[0], 1)))([x]);
  assertClose(await read(grads[0]), [0, 0.5, 0.5, 1 / 3, 1 / 3, 1 / 3], { rtol: 1e-6, atol: 0 }, "max ties");
});

gpuTest(
  "reduce max: its identity is -inf (made at run time: Chrome's Tint rejects a constant infinity)",
  async () => {
    // A row of -inf stays -inf; a row of the lowest finite float is not lifted to anything larger. (That
    // the kernel compiles in Chromium is tests/browser_test.ts's: the 8-bit model's page runs it.)
    const x = ops.reshape(ops.mul(ops.full([2, 3], 1), ops.full([2, 1], 0)), [2, 3]);
    const rows = ops.concat([ops.log(x), ops.full([1, 3], -3.4028234663852886e38)], 0);
    assert.deepEqual([...await read(ops.max(rows, 1))], [-Infinity, -Infinity, -3.4028234663852886e38]);
  },
);
