/**
 * The functional autodiff API: a 2-layer MLP against gradients derived by hand in float64,
 * accumulation over fan-out, parameter trees, aux outputs, stop-gradient, and misuse errors.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { grad, noGrad, valueAndGrad, valueAndGradWithAux } from "../autograd/tape.ts";
import { read, readScalar, scope, type Tensor } from "../kernels/tensor.ts";
import { assertClose, createRng, gpuTest, randomNd, toTensor } from "./helpers.ts";
import type { Nd } from "./reference.ts";

/** Row-major helpers for the hand-derived MLP gradients. */
const at = (x: Nd, i: number, j: number) => x.data[i * x.shape[1] + j];

gpuTest("autograd: 2-layer MLP loss and gradients match hand-derived float64 backprop", async () => {
  const rng = createRng(101);
  const [B, I, H, O] = [6, 5, 7, 3];
  const x = randomNd(rng, [B, I]);
  const y = randomNd(rng, [B, O]);
  const W1 = randomNd(rng, [I, H]), b1 = randomNd(rng, [H]);
  const W2 = randomNd(rng, [H, O]), b2 = randomNd(rng, [O]);

  // Forward: h = relu(x W1 + b1); p = h W2 + b2; L = mean((p - y)^2).
  const pre = new Float64Array(B * H), h = new Float64Array(B * H), p = new Float64Array(B * O);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < H; j++) {
      let s = b1.data[j];
      for (let k = 0; k < I; k++) s += at(x, i, k) * at(W1, k, j);
      pre[i * H + j] = s;
      h[i * H + j] = Math.max(s, 0);
    }
    for (let j = 0; j < O; j++) {
      let s = b2.data[j];
      for (let k = 0; k < H; k++) s += h[i * H + k] * at(W2, k, j);
      p[i * O + j] = s;
    }
  }
  let L = 0;
  for (let i = 0; i < B * O; i++) L += (p[i] - y.data[i]) ** 2 / (B * O);
  // Backward by hand: dp = 2 (p - y) / (B O); dW2 = h^T dp; db2 = sum_rows dp;
  // dh = dp W2^T; dpre = dh * [pre > 0]; dW1 = x^T dpre; db1 = sum_rows dpre.
  const dp = p.map((v, i) => 2 * (v - y.data[i]) / (B * O));
  const dW2 = new Float64Array(H * O), db2 = new Float64Array(O);
  const dpre = new Float64Array(B * H), dW1 = new Float64Array(I * H), db1 = new Float64Array(H);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < O; j++) {
      db2[j] += dp[i * O + j];
      for (let k = 0; k < H; k++) dW2[k * O + j] += h[i * H + k] * dp[i * O + j];
    }
    for (let k = 0; k < H; k++) {
      let s = 0;
      for (let j = 0; j < O; j++) s += dp[i * O + j] * at(W2, k, j);
      dpre[i * H + k] = pre[i * H + k] > 0 ? s : 0;
      db1[k] += dpre[i * H + k];
      for (let m = 0; m < I; m++) dW1[m * H + k] += at(x, i, m) * dpre[i * H + k];
    }
  }

  const params = { l1: { w: toTensor(W1), b: toTensor(b1) }, l2: { w: toTensor(W2), b: toTensor(b2) } };
  const [tx, ty] = [toTensor(x), toTensor(y)];
  const loss = (ps: typeof params, xs: Tensor, ys: Tensor) => {
    const hid = ops.relu(ops.add(ops.matmul(xs, ps.l1.w), ps.l1.b));
    const out = ops.add(ops.matmul(hid, ps.l2.w), ps.l2.b);
    return ops.mean(ops.square(ops.sub(out, ys)));
  };
  const { value, grads } = valueAndGrad(loss)(params, tx, ty);
  const tol = { rtol: 1e-4, atol: 1e-6 };
  assertClose([await readScalar(value)], [L], tol, "MLP loss");
  assertClose(await read(grads.l1.w), dW1, tol, "dW1");
  assertClose(await read(grads.l1.b), db1, tol, "db1 (bias broadcast over the batch: summed back)");
  assertClose(await read(grads.l2.w), dW2, tol, "dW2");
  assertClose(await read(grads.l2.b), db2, tol, "db2");
});

gpuTest("autograd: cotangents accumulate over fan-out; unused parameters get zeros", async () => {
  const x = toTensor(randomNd(createRng(103), [4]));
  const unused = toTensor(randomNd(createRng(104), [2, 2]));
  const f = (p: { x: Tensor; unused: Tensor }) => ops.sum(ops.add(ops.mul(p.x, p.x), ops.mul(p.x, 3)));
  const { grads } = valueAndGrad(f)({ x, unused });
  const xs = await read(x);
  assertClose(await read(grads.x), xs.map((v) => 2 * v + 3), { rtol: 1e-6, atol: 1e-6 }, "d/dx (x^2 + 3x)");
  assertClose(await read(grads.unused), [0, 0, 0, 0], { rtol: 0, atol: 0 }, "unused parameter");
});

gpuTest("autograd: gradient trees mirror nested objects and arrays", async () => {
  const params = { a: [toTensor(randomNd(createRng(1), [2])), { b: toTensor(randomNd(createRng(2), [3])) }] };
  const g = grad((p: typeof params) => {
    const [a, rest] = p.a as [Tensor, { b: Tensor }];
    return ops.add(ops.sum(ops.mul(a, 2)), ops.sum(ops.mul(rest.b, -1)));
  })(params);
  const [ga, rest] = g.a as [Tensor, { b: Tensor }];
  assertClose(await read(ga), [2, 2], { rtol: 0, atol: 0 }, "grad a");
  assertClose(await read(rest.b), [-1, -1, -1], { rtol: 0, atol: 0 }, "grad b");
});

gpuTest("autograd: aux outputs pass through; stopGradient and noGrad cut the graph", async () => {
  const w = toTensor(randomNd(createRng(5), [3], { low: 0.5, high: 1 }));
  const { value, grads, aux } = valueAndGradWithAux((p: { w: Tensor }) => {
    const sq = ops.square(p.w);
    const frozen = ops.stopGradient(sq); // counts in the value, not in the gradient
    const paused = noGrad(() => ops.mul(p.w, 10));
    const loss = ops.sum(ops.add(ops.add(sq, frozen), paused));
    return [loss, { sq }] as [Tensor, { sq: Tensor }];
  })({ w });
  const ws = await read(w);
  const expectedValue = ws.reduce((s, v) => s + 2 * v * v + 10 * v, 0);
  assertClose([await readScalar(value)], [expectedValue], { rtol: 1e-5, atol: 0 }, "value");
  assertClose(await read(grads.w), ws.map((v) => 2 * v), { rtol: 1e-6, atol: 0 }, "only the live branch");
  assertClose(await read(aux.sq), ws.map((v) => v * v), { rtol: 1e-6, atol: 0 }, "aux");
});

gpuTest("autograd: misuse is a clear error", () => {
  const w = toTensor(randomNd(createRng(7), [3]));
  assert.throws(
    () => valueAndGrad((p: Tensor) => valueAndGrad((q: Tensor) => ops.sum(q))(p).value)(w),
    /nested differentiation is not supported/,
  );
  assert.throws(
    () => valueAndGrad((p: Tensor) => ops.mul(p, 2))(w),
    /one-element tensor, got Tensor#\d+\(f32 \[3\]\)/,
  );
  assert.throws(
    () => valueAndGrad(((p: Tensor) => Promise.resolve(ops.sum(p))) as unknown as (p: Tensor) => Tensor)(w),
    /f must be synchronous/,
  );
  // The tape is gone after an error: a fresh call works.
  scope(() => valueAndGrad((p: Tensor) => ops.sum(p))(w));
});
