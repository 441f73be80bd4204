/**
 * Elementwise unary and binary ops, comparisons and where: forward against the float64 reference
 * and gradients against finite differences, on random shapes with broadcasting and size-1 axes.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { BINARY as BINARY_KERNELS } from "../kernels/binary.ts";
import { UNARY as UNARY_KERNELS } from "../kernels/unary.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { checkOp, createRng, gpuTest, randomNd, type RandomOptions } from "./helpers.ts";
import * as ref from "./reference.ts";

/** Input domain per unary op: inside the function's domain and away from kinks. */
const DOMAIN: Record<string, RandomOptions> = {
  log: { low: 0.2, high: 3 },
  sqrt: { low: 0.2, high: 3 },
  reciprocal: { low: 0.3, high: 2, awayFromZero: 0.3 },
  log1p: { low: -0.5, high: 3 },
  abs: { awayFromZero: 0.05 },
  relu: { awayFromZero: 0.05 },
  sign: { awayFromZero: 0.05 },
  exp: { low: -3, high: 3 },
  expm1: { low: -2, high: 2 },
  sigmoid: { low: -6, high: 6 },
  silu: { low: -6, high: 6 },
  softplus: { low: -6, high: 6 },
  tanh: { low: -4, high: 4 },
};

const UNARY = [
  "neg",
  "abs",
  "exp",
  "log",
  "log1p",
  "expm1",
  "sqrt",
  "square",
  "reciprocal",
  "relu",
  "sigmoid",
  "silu",
  "softplus",
  "tanh",
] as const;

for (const op of UNARY) {
  gpuTest(`unary ${op}: forward and gradient`, async () => {
    const rng = createRng(11);
    for (const shape of [[7], [3, 5], [2, 1, 33]]) {
      await checkOp({
        name: `${op} ${JSON.stringify(shape)}`,
        inputs: [randomNd(rng, shape, DOMAIN[op])],
        gpu: (x) => ops[op](x),
        ref: (x) => ref.unary(op, x),
        // Transcendentals: float32 libm accuracy is a few ulp.
        tol: { rtol: 2e-6 * (op === "neg" || op === "abs" || op === "relu" ? 0 : 1) + 1e-6, atol: 1e-6 },
      });
    }
  });
}

gpuTest("unary sign: forward (no gradient)", async () => {
  await checkOp({
    name: "sign",
    inputs: [randomNd(createRng(3), [4, 9], DOMAIN.sign)],
    gpu: ops.sign,
    ref: (x) => ref.unary("sign", x),
    grad: false,
  });
});

gpuTest("unary pow: integer, fractional and negative exponents, negative bases for integer p", async () => {
  const rng = createRng(5);
  for (const p of [2, 3, -1, 0.5, -1.5, 0]) {
    const domain = Number.isInteger(p) ? { low: -2, high: 2, awayFromZero: 0.2 } : { low: 0.2, high: 2 };
    await checkOp({
      name: `pow p=${p}`,
      inputs: [randomNd(rng, [3, 6], domain)],
      gpu: (x) => ops.pow(x, p),
      ref: (x) => ref.unary("pow", x, p),
      tol: { rtol: 1e-5, atol: 1e-6 },
    });
  }
});

gpuTest("unary: numerically stable forms at extreme inputs", async () => {
  const inputs = ref.nd([8], [-100, -30, -1e-7, 0, 1e-7, 30, 88, 100]);
  for (const op of ["sigmoid", "silu", "softplus", "tanh", "log1p", "expm1"] as const) {
    const x = op === "log1p" ? ref.nd([8], [-0.9, -1e-7, 0, 1e-7, 1e-3, 1, 1e5, 1e30]) : inputs;
    await checkOp({
      name: `${op} extremes`,
      inputs: [x],
      gpu: (t) => ops[op](t),
      // Rounded to float32: expm1(100) is +Infinity there, as it must be.
      ref: (t) => {
        const y = ref.unary(op, t);
        return { shape: y.shape, data: y.data.map(Math.fround) };
      },
      tol: { rtol: 1e-5, atol: 1e-30 },
      grad: false,
    });
  }
});

const BINARY = ["add", "sub", "mul", "div", "maximum", "minimum"] as const;
/** Shape pairs: equal, trailing broadcast, size-1 axes on both sides, rank difference, scalar tensor. */
const PAIRS: [number[], number[]][] = [
  [[4, 5], [4, 5]],
  [[4, 5], [5]],
  [[3, 1, 5], [1, 4, 1]],
  [[2, 3, 4], [3, 1]],
  [[6], []],
  [[1], [2, 3]],
];

for (const op of BINARY) {
  gpuTest(
    `binary ${op}: broadcasting forward and gradients (summed back to each input's shape)`,
    async () => {
      const rng = createRng(17);
      for (const [sa, sb] of PAIRS) {
        const b = randomNd(rng, sb, op === "div" ? { low: 0.5, high: 2 } : {});
        await checkOp({
          name: `${op} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`,
          inputs: [randomNd(rng, sa), b],
          gpu: (x, y) => ops[op](x, y),
          ref: (x, y) => ref.binary(op, x, y),
        });
      }
    },
  );

  gpuTest(`binary ${op}: scalar operand on either side`, async () => {
    const rng = createRng(19);
    const x = randomNd(rng, [3, 7], op === "div" ? { low: 0.5, high: 2 } : {});
    await checkOp({
      name: `${op} tensor-scalar`,
      inputs: [x],
      gpu: (t) => ops[op](t, 0.25),
      ref: (t) => ref.binary(op, t, Math.fround(0.25)),
    });
    await checkOp({
      name: `${op} scalar-tensor`,
      inputs: [x],
      gpu: (t) => ops[op](-1.5, t),
      ref: (t) => ref.binary(op, -1.5, t),
    });
  });
}

gpuTest("maximum/minimum: ties split the gradient evenly", async () => {
  const a = ref.nd([4], [1, 2, 3, 4]);
  const b = ref.nd([4], [1, 0, 3, 5]);
  for (const op of ["maximum", "minimum"] as const) {
    // Finite differences see a kink at a tie; the convention (1/2 each) is checked directly.
    const { read } = await import("../kernels/tensor.ts");
    const { valueAndGrad } = await import("../autograd/tape.ts");
    const { toTensor, assertClose } = await import("./helpers.ts");
    const [ta, tb] = [toTensor(a), toTensor(b)];
    const { grads } = valueAndGrad((p: Tensor[]) => ops.sum(ops[op](p[0], p[1])))([ta, tb]);
    const winA = op === "maximum" ? [0.5, 1, 0.5, 0] : [0.5, 0, 0.5, 1];
    assertClose(await read(grads[0]), winA, { rtol: 0, atol: 0 }, `${op} d/da`);
    assertClose(await read(grads[1]), winA.map((v) => 1 - v), { rtol: 0, atol: 0 }, `${op} d/db`);
  }
});

const COMPARISONS = ["greater", "greaterEqual", "less", "lessEqual", "equal", "notEqual"] as const;
gpuTest("comparisons: f32 masks with broadcasting, ties included", async () => {
  const rng = createRng(23);
  for (const op of COMPARISONS) {
    for (const [sa, sb] of PAIRS) {
      await checkOp({
        name: `${op} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`,
        // Small integers: many exact ties.
        inputs: [
          randomNd(rng, sa, { low: -2, high: 2, integer: true }),
          randomNd(rng, sb, { low: -2, high: 2, integer: true }),
        ],
        gpu: (x, y) => ops[op](x, y),
        ref: (x, y) => ref.binary(op, x, y),
        tol: { rtol: 0, atol: 0 },
        grad: false,
      });
    }
  }
});

gpuTest("where: tensor and scalar branches, broadcasting, gradients to the chosen branch", async () => {
  const rng = createRng(29);
  const cond = (shape: number[]) => randomNd(rng, shape, { low: 0, high: 1, integer: true });
  await checkOp({
    name: "where tensors",
    inputs: [cond([3, 4]), randomNd(rng, [3, 4]), randomNd(rng, [4])],
    gpu: (c, a, b) => ops.where(c, a, b),
    ref: (c, a, b) => ref.where(c, a, b),
    grad: { wrt: [1, 2] },
  });
  await checkOp({
    name: "where scalar branch",
    inputs: [cond([2, 1, 3]), randomNd(rng, [5, 1])],
    gpu: (c, a) => ops.where(c, a, 2.5),
    ref: (c, a) => ref.where(c, a, 2.5),
    grad: { wrt: [1] },
  });
  await checkOp({
    name: "where scalar both",
    inputs: [cond([6])],
    gpu: (c) => ops.where(c, -1, 1),
    ref: (c) => ref.where(c, -1, 1),
    grad: false,
  });
});

Deno.test("elementwise: every op of the kernel tables is tested in this file", () => {
  // sign and pow have tests of their own above (integer inputs; exponents).
  const unaryTested = [...UNARY, "sign", "pow"].sort();
  assert.deepEqual(Object.keys(UNARY_KERNELS).sort(), unaryTested, "kernels/unary.ts UNARY vs this file");
  const binaryTested = [...BINARY, ...COMPARISONS].sort();
  assert.deepEqual(Object.keys(BINARY_KERNELS).sort(), binaryTested, "kernels/binary.ts BINARY vs this file");
});
