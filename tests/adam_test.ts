/** Adam: several in-place steps against a float64 reference, with and without global-norm clipping; a toy fit. */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { valueAndGrad } from "../autograd/tape.ts";
import { read, readAll, readScalar, scope, type Tensor } from "../kernels/tensor.ts";
import { adamInit, adamUpdate } from "../models/adam.ts";
import { assertClose, createRng, gpuTest, randomNd, toTensor } from "./helpers.ts";

/** Float64 Adam over flat arrays, the textbook update. */
function referenceAdam(
  params: Float64Array[],
  gradSteps: Float64Array[][],
  o: { lr: number; beta1: number; beta2: number; eps: number; clipNorm?: number },
): { params: Float64Array[]; m: Float64Array[]; v: Float64Array[] } {
  const p = params.map((x) => x.slice());
  const m = params.map((x) => new Float64Array(x.length));
  const v = params.map((x) => new Float64Array(x.length));
  gradSteps.forEach((grads, step) => {
    const t = step + 1;
    let scale = 1;
    if (o.clipNorm !== undefined) {
      const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));
      scale = Math.min(1, o.clipNorm / (norm + 1e-6));
    }
    grads.forEach((g, k) => {
      for (let i = 0; i < g.length; i++) {
        const gi = g[i] * scale;
        m[k][i] = o.beta1 * m[k][i] + (1 - o.beta1) * gi;
        v[k][i] = o.beta2 * v[k][i] + (1 - o.beta2) * gi * gi;
        const mh = m[k][i] / (1 - o.beta1 ** t), vh = v[k][i] / (1 - o.beta2 ** t);
        p[k][i] -= o.lr * mh / (Math.sqrt(vh) + o.eps);
      }
    });
  });
  return { params: p, m, v };
}

for (const clipNorm of [undefined, 0.5]) {
  gpuTest(`adam: 6 in-place steps match the float64 reference (clipNorm ${clipNorm ?? "off"})`, async () => {
    const rng = createRng(601);
    const shapes = [[3, 4], [5]];
    const init = shapes.map((s) => randomNd(rng, s));
    const steps = Array.from({ length: 6 }, () => shapes.map((s) => randomNd(rng, s, { low: -2, high: 2 })));
    const options = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, clipNorm };
    const params = { a: toTensor(init[0]), b: toTensor(init[1]) };
    const identity = [params.a, params.b];
    const state = adamInit(params);
    for (const grads of steps) {
      scope(() => {
        const g = { a: toTensor(grads[0]), b: toTensor(grads[1]) };
        adamUpdate(params, g, state, options);
      });
    }
    assert.equal(state.step, 6);
    assert.ok(params.a === identity[0] && params.b === identity[1], "parameters are updated in place");
    const expected = referenceAdam(init.map((x) => x.data), steps.map((s) => s.map((x) => x.data)), options);
    const [pa, pb, ma, vb] = await readAll([params.a, params.b, state.m.a, state.v.b]);
    const tol = { rtol: 1e-5, atol: 1e-6 };
    assertClose(pa, expected.params[0], tol, "param a");
    assertClose(pb, expected.params[1], tol, "param b");
    assertClose(ma, expected.m[0], tol, "first moment of a");
    assertClose(vb, expected.v[1], tol, "second moment of b");
  });
}

gpuTest("adam: fits a least-squares problem through valueAndGrad", async () => {
  const rng = createRng(607);
  const x = toTensor(randomNd(rng, [64, 4]));
  const wTrue = toTensor(randomNd(rng, [4, 1]));
  const y = ops.matmul(x, wTrue);
  const params = { w: toTensor(randomNd(rng, [4, 1])) };
  const state = adamInit(params);
  const vg = valueAndGrad((p: { w: Tensor }) => ops.mean(ops.square(ops.sub(ops.matmul(x, p.w), y))));
  const losses: number[] = [];
  for (let i = 0; i < 300; i++) {
    const loss = scope(() => {
      const { value, grads } = vg(params);
      adamUpdate(params, grads, state, { lr: 0.05 });
      return value;
    });
    if (i === 0 || i === 299) losses.push(await readScalar(loss));
    loss.dispose();
  }
  assert.ok(losses[1] < 1e-3 * losses[0], `loss ${losses[0]} -> ${losses[1]}`);
  assertClose(await read(params.w), await read(wTrue), { rtol: 0, atol: 0.02 }, "recovered weights");
});

gpuTest("adam: mismatched trees and shapes are refused with the shapes named", () => {
  const params = { a: toTensor(randomNd(createRng(1), [2, 2])) };
  const state = adamInit(params);
  assert.throws(
    () => adamUpdate(params, { a: toTensor(randomNd(createRng(2), [4])) }, state),
    /adam: parameter Tensor#\d+\(f32 \[2, 2\]\), gradient Tensor#\d+\(f32 \[4\]\)/,
  );
  const extra = { a: params.a, b: params.a } as unknown as typeof params;
  assert.throws(() => adamUpdate(params, extra, state), /1 parameters, 2 gradients/);
});
