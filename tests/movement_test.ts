/** Movement ops: reshape, permute, transpose, broadcastTo, slice, pad, concat; values and gradients. */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { checkOp, createRng, gpuTest, randomNd, toTensor } from "./helpers.ts";
import * as ref from "./reference.ts";

gpuTest("reshape: views with -1, gradient reshaped back", async () => {
  const rng = createRng(41);
  await checkOp({
    name: "reshape",
    inputs: [randomNd(rng, [2, 3, 4])],
    gpu: (x) => ops.reshape(x, [4, -1]),
    ref: (x) => ref.reshape(x, [4, 6]),
    tol: { rtol: 0, atol: 0 },
  });
  const x = toTensor(randomNd(rng, [2, 3]));
  assert.throws(() => ops.reshape(x, [4, 2]), /reshape: .*\[2, 3\].*6 elements.*needs 8/);
  assert.throws(() => ops.reshape(x, [-1, -1]), /more than one -1/);
});

gpuTest("permute and transpose: all permutations of rank 3, rank 5", async () => {
  const rng = createRng(43);
  const perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
  for (const perm of perms) {
    await checkOp({
      name: `permute ${perm}`,
      inputs: [randomNd(rng, [2, 3, 4])],
      gpu: (x) => ops.permute(x, perm),
      ref: (x) => ref.permute(x, perm),
      tol: { rtol: 0, atol: 0 },
    });
  }
  await checkOp({
    name: "permute rank 5",
    inputs: [randomNd(rng, [2, 1, 3, 2, 2])],
    gpu: (x) => ops.permute(x, [4, 2, 0, 3, 1]),
    ref: (x) => ref.permute(x, [4, 2, 0, 3, 1]),
    tol: { rtol: 0, atol: 0 },
  });
  await checkOp({
    name: "transpose",
    inputs: [randomNd(rng, [3, 2, 5])],
    gpu: (x) => ops.transpose(x),
    ref: (x) => ref.permute(x, [0, 2, 1]),
    tol: { rtol: 0, atol: 0 },
  });
  assert.throws(
    () => ops.permute(toTensor(randomNd(rng, [2, 3])), [0, 0]),
    /permute: \[0,0\] is not a permutation/,
  );
});

gpuTest("broadcastTo: size-1 axes and new leading axes; gradient sums back", async () => {
  const rng = createRng(47);
  for (const [from, to] of [[[3], [2, 3]], [[2, 1, 4], [3, 2, 5, 4]], [[1], [6]], [[], [2, 2]]]) {
    await checkOp({
      name: `broadcastTo ${JSON.stringify(from)} -> ${JSON.stringify(to)}`,
      inputs: [randomNd(rng, from)],
      gpu: (x) => ops.broadcastTo(x, to),
      ref: (x) => ref.broadcastTo(x, to),
      tol: { rtol: 0, atol: 0 },
    });
  }
  assert.throws(() => ops.broadcastTo(toTensor(randomNd(rng, [3])), [2, 4]), /cannot be broadcast/);
});

gpuTest("strided copies in runs: inner axes longer than a run, ragged, broadcast, merged axes", async () => {
  // The copy kernel moves runs of 16 along the innermost axis that remains after merging axes.
  const rng = createRng(53);
  const cases: [string, number[], (x: Tensor) => Tensor, (x: ref.Nd) => ref.Nd][] = [
    [
      "broadcast [1, 37] -> [3, 2, 37]",
      [1, 37],
      (x) => ops.broadcastTo(x, [3, 2, 37]),
      (x) => ref.broadcastTo(x, [3, 2, 37]),
    ],
    [
      "broadcast [5, 1] -> [5, 40] (stride-0 runs)",
      [5, 1],
      (x) => ops.broadcastTo(x, [5, 40]),
      (x) => ref.broadcastTo(x, [5, 40]),
    ],
    [
      "nearest 2x as a broadcast",
      [2, 3, 1, 2, 1, 20],
      (x) => ops.broadcastTo(x, [2, 3, 2, 2, 2, 20]),
      (x) => ref.broadcastTo(x, [2, 3, 2, 2, 2, 20]),
    ],
    [
      "permute [2, 3, 40] -> [3, 2, 40]",
      [2, 3, 40],
      (x) => ops.permute(x, [1, 0, 2]),
      (x) => ref.permute(x, [1, 0, 2]),
    ],
    [
      "permute with a strided inner axis",
      [33, 2, 3],
      (x) => ops.permute(x, [1, 2, 0]),
      (x) => ref.permute(x, [1, 2, 0]),
    ],
  ];
  for (const [name, shape, gpu, reference] of cases) {
    await checkOp({
      name,
      inputs: [randomNd(rng, shape)],
      gpu,
      ref: reference,
      tol: { rtol: 0, atol: 1e-6 },
    });
  }
});

gpuTest("slice: offsets, negative indices, empty ranges; gradient pads with zeros", async () => {
  const rng = createRng(53);
  await checkOp({
    name: "slice 2d",
    inputs: [randomNd(rng, [5, 6])],
    gpu: (x) => ops.slice(x, [1, 2], [4, -1]),
    ref: (x) => ref.slice(x, [1, 2], [4, 5]),
    tol: { rtol: 0, atol: 0 },
  });
  await checkOp({
    name: "slice 3d begin only",
    inputs: [randomNd(rng, [3, 4, 5])],
    gpu: (x) => ops.slice(x, [0, 1, 3]),
    ref: (x) => ref.slice(x, [0, 1, 3], [3, 4, 5]),
    tol: { rtol: 0, atol: 0 },
  });
  assert.throws(
    () => ops.slice(toTensor(randomNd(rng, [3])), [2], [5]),
    /slice: axis 0 range \[2, 5\) is invalid/,
  );
});

gpuTest("pad: asymmetric per-axis padding with a value; gradient slices the interior", async () => {
  const rng = createRng(59);
  const pads: [number, number][] = [[0, 1], [2, 1], [1, 0]];
  await checkOp({
    name: "pad",
    inputs: [randomNd(rng, [2, 3, 4])],
    gpu: (x) => ops.pad(x, pads, 0.5),
    ref: (x) => ref.pad(x, pads, 0.5),
    tol: { rtol: 0, atol: 0 },
  });
  assert.throws(() => ops.pad(toTensor(randomNd(rng, [3])), [[1, 1], [0, 0]]), /pad: .* each axis/);
});

gpuTest("concat: along each axis, uneven parts; gradient splits", async () => {
  const rng = createRng(61);
  for (const axis of [0, 1, 2]) {
    const shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]].map((s, i) => s.map((d, j) => j === axis ? d + i : d));
    await checkOp({
      name: `concat axis ${axis}`,
      inputs: shapes.map((s) => randomNd(rng, s)),
      gpu: (...xs) => ops.concat(xs, axis),
      ref: (...xs) => ref.concat(xs, axis),
      tol: { rtol: 0, atol: 0 },
    });
  }
  assert.throws(
    () => ops.concat([toTensor(randomNd(rng, [2, 3])), toTensor(randomNd(rng, [3, 3]))], 1),
    /concat: .* do not match outside axis 1/,
  );
});
