/**
 * The layers' data-dependent weight-norm initialisation (models/layers.ts, Salimans & Kingma 2016 as
 * hvae-oodd does it): on the initialisation batch each layer's output comes out with zero mean and
 * unit variance per channel, layer after layer; the output returned during initialisation is what the
 * layer computes afterwards; a layer met twice is initialised once; nothing leaks.
 */

import assert from "node:assert/strict";
import { relu, reshape } from "../autograd/ops.ts";
import { engineStats } from "../kernels/engine.ts";
import { dispose, read, scope, type Tensor } from "../kernels/tensor.ts";
import {
  convLayer,
  convTransposeLayer,
  dense,
  initConv,
  initConvTranspose,
  initDense,
  initWeightNormFromData,
} from "../models/layers.ts";
import { assertClose, createRng, gpuTest, randomNd, toTensor } from "./helpers.ts";

/** Per-channel (last axis) mean and unbiased variance, in float64. */
function channelStats(data: Float32Array, channels: number): { mean: number[]; variance: number[] } {
  const n = data.length / channels;
  const mean = new Array(channels).fill(0), variance = new Array(channels).fill(0);
  data.forEach((v, i) => mean[i % channels] += v / n);
  data.forEach((v, i) => variance[i % channels] += (v - mean[i % channels]) ** 2 / (n - 1));
  return { mean, variance };
}

async function assertNormalised(t: Tensor, what: string): Promise<void> {
  const { mean, variance } = channelStats(await read(t), t.shape[t.rank - 1]);
  mean.forEach((m, c) => assert.ok(Math.abs(m) < 1e-4, `${what}: channel ${c} mean ${m}`));
  variance.forEach((v, c) => assert.ok(Math.abs(v - 1) < 1e-3, `${what}: channel ${c} variance ${v}`));
}

gpuTest("weight-norm data init: zero mean, unit variance per channel, layer after layer", async () => {
  const rng = createRng(71);
  const x = toTensor(randomNd(rng, [4, 8, 8, 3]));
  const conv = initConv(3, 3, 5, rng, true);
  const down = initConv(3, 5, 6, rng, true);
  const up = initConvTranspose(3, 6, 4, rng, true);
  const fc = initDense(8 * 8 * 4, 7, rng, true);
  const chain = () => {
    const a = convLayer(conv, x);
    const b = convLayer(down, relu(a), 2);
    const c = convTransposeLayer(up, relu(b), 2, "same");
    const d = dense(fc, reshape(relu(c), [4, -1]));
    return [a, b, c, d];
  };
  const before = engineStats().bytesInUse;
  const during = scope(() => initWeightNormFromData(chain));
  const duringValues = await Promise.all(during.map((t) => read(t)));
  dispose(during);
  // Gains and biases replaced by ones of the same size: the old ones were released.
  assert.equal(engineStats().bytesInUse, before);
  const after = chain();
  const names = ["conv", "strided conv", "transposed conv", "dense"];
  for (let i = 0; i < after.length; i++) {
    await assertNormalised(after[i], names[i]);
    // What initialisation returned is what the initialised layer computes.
    assertClose(duringValues[i], await read(after[i]), { rtol: 1e-4, atol: 1e-4 }, names[i]);
  }
  // A transposed conv's gain is per output channel.
  assert.deepEqual(up.gain!.shape, [4]);
});

gpuTest(
  "weight-norm data init: a layer met twice is initialised once; plain layers are untouched",
  async () => {
    const rng = createRng(72);
    const x1 = toTensor(randomNd(rng, [3, 5]));
    const x2 = toTensor(randomNd(rng, [6, 5], { low: 2, high: 5 }));
    const normed = initDense(5, 4, rng, true);
    const plain = initDense(5, 4, rng, false);
    const plainWeight = plain.weight, plainBias = plain.bias;
    const [first, second] = initWeightNormFromData(
      () => [dense(normed, x1), dense(normed, x2), dense(plain, x1)],
    );
    await assertNormalised(first, "first use");
    assertClose(await read(second), await read(dense(normed, x2)), { rtol: 1e-5, atol: 1e-5 }, "second use");
    assert.equal(plain.weight, plainWeight);
    assert.equal(plain.bias, plainBias);
    assert.equal(plain.gain, undefined);
    assert.throws(
      () => initWeightNormFromData(() => initWeightNormFromData(() => 0)),
      /initWeightNormFromData: already running/,
    );
  },
);
