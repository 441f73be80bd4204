/** Weight normalisation over dense and HWIO filter shapes: values and gradients in v and g. */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { checkOp, createRng, gpuTest, randomNd, toTensor } from "./helpers.ts";
import * as ref from "./reference.ts";

gpuTest("weightNorm: w = g v / ||v|| per output unit; gradients in v and g", async () => {
  const rng = createRng(503);
  for (const shape of [[5, 3], [3, 3, 2, 4], [1, 7], [2, 2, 1, 1]]) {
    await checkOp({
      name: `weightNorm ${JSON.stringify(shape)}`,
      inputs: [
        randomNd(rng, shape, { awayFromZero: 0.1 }),
        randomNd(rng, [shape[shape.length - 1]], { low: 0.5, high: 2 }),
      ],
      gpu: (v, g) => ops.weightNorm(v, g),
      ref: (v, g) => ref.weightNorm(v, g),
      tol: { rtol: 1e-5, atol: 1e-6 },
    });
  }
  // Transposed-conv filters [kh, kw, Co, Ci] normalise per output channel, axis 2 (hvae-oodd's dim=1 of
  // PyTorch's [Ci, Co, kh, kw]); axis 0 covers the case with no axes before the unit.
  for (const [shape, axis] of [[[3, 3, 4, 2], 2], [[4, 3], 0], [[2, 5, 3], -2]] as [number[], number][]) {
    const units = shape[axis < 0 ? shape.length + axis : axis];
    await checkOp({
      name: `weightNorm ${JSON.stringify(shape)} axis ${axis}`,
      inputs: [randomNd(rng, shape, { awayFromZero: 0.1 }), randomNd(rng, [units], { low: 0.5, high: 2 })],
      gpu: (v, g) => ops.weightNorm(v, g, axis),
      ref: (v, g) => ref.weightNorm(v, g, axis),
      tol: { rtol: 1e-5, atol: 1e-6 },
    });
  }
  assert.throws(
    () => ops.weightNorm(toTensor(randomNd(rng, [3, 4])), toTensor(randomNd(rng, [4])), 0),
    /weightNorm: gains \[4\] must be \[3\] for weights \[3, 4\] \(unit axis 0\)/,
  );
  assert.throws(
    () => ops.weightNorm(toTensor(randomNd(rng, [3, 4])), toTensor(randomNd(rng, [4])), 2),
    /weightNorm: unit axis 2 is not an axis of weights \[3, 4\]/,
  );
  assert.throws(
    () => ops.weightNorm(toTensor(randomNd(rng, [3, 4])), toTensor(randomNd(rng, [3]))),
    /weightNorm: gains \[3\] must be \[4\] for weights \[3, 4\] \(unit axis 1\)/,
  );
});
