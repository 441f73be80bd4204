/**
 * Batched matmul: exact results on small integers over shapes that are not tile multiples, all four
 * transpose combinations, batch broadcasting; gradients against finite differences.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { matmul as matmulKernel } from "../kernels/matmul.ts";
import { engineStats } from "../kernels/engine.ts";
import { full } from "../kernels/movement.ts";
import { gpu } from "../kernels/runtime/device.ts";
import { dispose, read } from "../kernels/tensor.ts";
import { assertClose, checkOp, createRng, gpuTest, randomNd, toTensor } from "./helpers.ts";
import * as ref from "./reference.ts";

const SHAPES: [number, number, number][] = [[1, 1, 1], [3, 5, 7], [64, 64, 64], [65, 17, 129], [
  128,
  300,
  64,
]];

gpuTest("matmul: exact on small integers, shapes off the 64x64 tile grid, all transposes", async () => {
  const rng = createRng(67);
  for (const [M, K, N] of SHAPES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = randomNd(rng, transA ? [K, M] : [M, K], { low: -3, high: 3, integer: true });
        const b = randomNd(rng, transB ? [N, K] : [K, N], { low: -3, high: 3, integer: true });
        await checkOp({
          name: `matmul ${M}x${K}x${N} tA=${transA} tB=${transB}`,
          inputs: [a, b],
          gpu: (x, y) => ops.matmul(x, y, { transA, transB }),
          ref: (x, y) => ref.matmul(x, y, transA, transB),
          tol: { rtol: 0, atol: 0 },
          grad: false,
        });
      }
    }
  }
});

gpuTest("matmul: batched with broadcast batch axes", async () => {
  const rng = createRng(71);
  const cases: [number[], number[]][] = [
    [[3, 4, 5], [3, 5, 2]],
    [[4, 5], [3, 5, 2]],
    [[2, 1, 4, 5], [3, 5, 6]],
    [[1, 4, 5], [2, 5, 6]],
  ];
  for (const [sa, sb] of cases) {
    await checkOp({
      name: `matmul ${JSON.stringify(sa)} @ ${JSON.stringify(sb)}`,
      inputs: [
        randomNd(rng, sa, { low: -3, high: 3, integer: true }),
        randomNd(rng, sb, { low: -3, high: 3, integer: true }),
      ],
      gpu: (x, y) => ops.matmul(x, y),
      ref: (x, y) => ref.matmul(x, y),
      tol: { rtol: 0, atol: 0 },
      grad: false,
    });
  }
});

gpuTest("matmul: gradients for every transpose combination and a broadcast batch", async () => {
  const rng = createRng(73);
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const [M, K, N] = [5, 7, 3];
      await checkOp({
        name: `matmul grad tA=${transA} tB=${transB}`,
        inputs: [randomNd(rng, transA ? [K, M] : [M, K]), randomNd(rng, transB ? [N, K] : [K, N])],
        gpu: (x, y) => ops.matmul(x, y, { transA, transB }),
        ref: (x, y) => ref.matmul(x, y, transA, transB),
        tol: { rtol: 1e-5, atol: 1e-5 },
      });
    }
  }
  await checkOp({
    name: "matmul grad batch-broadcast",
    inputs: [randomNd(rng, [2, 4, 3]), randomNd(rng, [3, 5])],
    gpu: (x, y) => ops.matmul(x, y),
    ref: (x, y) => ref.matmul(x, y),
    tol: { rtol: 1e-5, atol: 1e-5 },
  });
});

gpuTest(
  "matmul: both kernel families, exact on small integers, every transpose, batches and K split into slices",
  async () => {
    const rng = createRng(89);
    // [M, K, N, batch of A, batch of B]: off-tile shapes, a long K (the direct kernel splits it into
    // slices and sums them: [128 x 784] @ [784 x 16] is the dense layers' shape), a shared B, K = 1.
    const cases: [number, number, number, number[], number[]][] = [
      [3, 5, 7, [], []],
      [65, 17, 129, [], []],
      [128, 784, 16, [], []],
      [9, 300, 6, [3], [3]],
      [7, 130, 5, [2], []],
      [5, 1, 3, [], []],
    ];
    for (const [M, K, N, batchA, batchB] of cases) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const a = randomNd(rng, [...batchA, ...(transA ? [K, M] : [M, K])], {
            low: -3,
            high: 3,
            integer: true,
          });
          const b = randomNd(rng, [...batchB, ...(transB ? [N, K] : [K, N])], {
            low: -3,
            high: 3,
            integer: true,
          });
          const expected = ref.matmul(a, b, transA, transB);
          const [ta, tb] = [toTensor(a), toTensor(b)];
          for (const kernel of ["gemm", "direct"] as const) {
            const c = matmulKernel(ta, tb, { transA, transB, kernel });
            assert.deepEqual(c.shape, expected.shape);
            assertClose(
              await read(c),
              expected.data,
              { rtol: 0, atol: 0 },
              `${kernel} ${JSON.stringify(a.shape)}${transA ? "^T" : ""} @ ${JSON.stringify(b.shape)}${
                transB ? "^T" : ""
              }`,
            );
            c.dispose();
          }
          dispose([ta, tb]);
        }
      }
    }
  },
);

gpuTest("matmul: every tiling variant agrees with the reference", async () => {
  const rng = createRng(79);
  const a = randomNd(rng, [37, 45]);
  const b = randomNd(rng, [45, 29]);
  const expected = ref.matmul(a, b);
  const [ta, tb] = [toTensor(a), toTensor(b)];
  for (
    const tiling of [{ WM: 8, WN: 8, TM: 4, TN: 4, TK: 16 }, { WM: 4, WN: 8, TM: 8, TN: 8, TK: 8 }, {
      WM: 8,
      WN: 4,
      TM: 8,
      TN: 16,
      TK: 16,
    }]
  ) {
    const c = matmulKernel(ta, tb, { tiling });
    assertClose(await read(c), expected.data, { rtol: 1e-5, atol: 1e-5 }, `tiling ${JSON.stringify(tiling)}`);
  }
});

gpuTest("matmul: mismatched inner dimensions name both shapes", () => {
  const rng = createRng(83);
  const a = toTensor(randomNd(rng, [2, 3]));
  const b = toTensor(randomNd(rng, [4, 5]));
  assert.throws(() => ops.matmul(a, b), /matmul: inner dimensions differ: .*\[2, 3\].*\[4, 5\].*K = 3 vs 4/);
});

gpuTest("matmul: a grid past the device's limit is an error naming it, and allocates nothing", () => {
  const limit = gpu().maxWorkgroupsPerDimension;
  const a = full([limit + 1, 1, 1], 1);
  const b = full([1, 1], 2);
  const before = engineStats().bytesInUse;
  assert.throws(() => ops.matmul(a, b), new RegExp(`this device allows ${limit} per dimension`));
  assert.equal(engineStats().bytesInUse, before, "the failed matmul left buffers behind");
  dispose([a, b]);
});
