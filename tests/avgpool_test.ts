/** Average pooling: both divisor rules, TF-same and explicit padding, strides; gradient by finite differences. */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { samePadding } from "../kernels/conv_geometry.ts";
import { checkOp, createRng, gpuTest, randomNd, toTensor } from "./helpers.ts";
import * as ref from "./reference.ts";

gpuTest(
  "avgPool2d: k3 s2 TF-same (the residual shortcut), 2x2, valid divisor; values and gradients",
  async () => {
    const rng = createRng(501);
    const cases: [number[], number, number, "same" | number | "valid", "window" | "valid"][] = [
      [[2, 28, 28, 3], 3, 2, "same", "window"], // reference backbone: 28 -> 14, padding 0/1, divisor 9
      [[1, 14, 14, 4], 3, 2, "same", "window"], // 14 -> 7
      [[2, 14, 14, 2], 2, 2, "valid", "window"], // the small preset's 2x2 pooling
      [[1, 7, 5, 3], 3, 1, 1, "valid"],
      [[1, 6, 6, 1], 3, 2, "same", "valid"],
    ];
    for (const [shape, k, s, padding, divisor] of cases) {
      const [, H, W] = shape;
      const pads: [[number, number], [number, number]] = padding === "same"
        ? [samePadding(H, k, s), samePadding(W, k, s)]
        : padding === "valid"
        ? [[0, 0], [0, 0]]
        : [[padding, padding], [padding, padding]];
      const small = shape[1] * shape[2] * shape[3] * shape[0] <= 300;
      await checkOp({
        name: `avgPool2d ${JSON.stringify(shape)} k${k} s${s} ${padding} ${divisor}`,
        inputs: [randomNd(rng, shape)],
        gpu: (x) => ops.avgPool2d(x, { kernel: k, stride: s, padding, divisor }),
        ref: (x) => ref.avgPool2d(x, k, k, { stride: [s, s], pads }, divisor),
        tol: { rtol: 1e-5, atol: 1e-6 },
        // Finite differences cost one reference pass per input element: only on the small cases.
        grad: small ? {} : false,
      });
    }
    assert.throws(
      () => ops.avgPool2d(toTensor(randomNd(rng, [1, 2, 2, 1])), { kernel: 3 }),
      /avgPool2d: filter \[3, 3, 1, 1\] \(3x3\) is larger than the padded input 2x2/,
    );
  },
);
