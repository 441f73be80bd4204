/**
 * The library training loop (models/training.ts), without a subprocess: stopped mid-epoch and at an
 * epoch boundary, checkpointed, restored into fresh trees and continued, a run ends with the bits of
 * the uninterrupted run; the schedules by step; the metrics layout by name; a non-finite loss stops
 * before the epoch hook. The command around it (`deno task train`) has its own test in hvae_test.ts.
 */

import assert from "node:assert/strict";
import { loadCheckpoint, saveCheckpoint } from "../store/checkpoint.ts";
import { dispose, keep, readAll, type Tensor } from "../kernels/tensor.ts";
import { full } from "../kernels/movement.ts";
import { adamInit } from "../models/adam.ts";
import { flattenParams } from "../models/hvae.ts";
import { presetConfig } from "../models/presets.ts";
import * as training from "../models/training.ts";
import { gpuTest } from "./helpers.ts";
import { syntheticSet } from "./synthetic.ts";

const cfg = presetConfig("tiny");
// 40 images in batches of 16: 3 steps per epoch, the last one short.
const schedule: training.TrainingSchedule = {
  loss: "informative",
  epochs: 2,
  batchSize: 16,
  lr: 1e-3,
  warmupEpochs: 1,
  freeBits: 0.5,
  freeBitsEpochs: 2,
  seed: 4,
};

function freshState(): training.TrainState {
  const params = keep(training.initialParams(cfg, schedule, null));
  return { params, adam: adamInit(params), progress: { epoch: 0, stepInEpoch: 0, step: 0 } };
}

async function bitsOf(state: training.TrainState): Promise<Uint32Array[]> {
  const leaves = [state.params, state.adam.m, state.adam.v].flatMap((t) => flattenParams(t).leaves);
  return (await readAll(leaves)).map((a) => new Uint32Array((a as Float32Array).buffer.slice(0)));
}

gpuTest(
  "train: stopped mid-epoch and at an epoch boundary, checkpointed and resumed, it ends bit-identical",
  async () => {
    const set = syntheticSet(40);
    const dir = await Deno.makeTempDir();
    try {
      const whole = freshState();
      const records: training.EpochRecord[] = [];
      const done = await training.train(cfg, schedule, set, whole, {
        afterEpoch: (r) => void records.push(r),
      });
      assert.equal(done.stoppedBy, null);
      assert.equal(done.stepsHere, 6);
      assert.deepEqual(whole.progress, { epoch: 2, stepInEpoch: 0, step: 6 });
      assert.deepEqual(records.map((r) => [r.epoch, r.complete, r.images]), [[1, true, 40], [2, true, 40]]);
      assert.equal(records[0].kl.length, 3);
      assert.equal(records[0].ll.length, 3);

      // Stop after global steps 2 (mid-epoch) and 3 (an epoch boundary); each time save, restore into
      // fresh trees, continue.
      let state = freshState();
      const pieces: training.EpochRecord[] = [];
      for (const stopAfter of [2, 3, Infinity]) {
        const r = await training.train(cfg, schedule, set, state, {
          shouldStop: (s) => s.progress.step >= stopAfter ? "test stop" : null,
          afterEpoch: async (record, s) => {
            pieces.push(record);
            await saveCheckpoint(dir, s.params, s.adam, s.progress);
          },
        });
        assert.equal(r.stoppedBy, stopAfter === Infinity ? null : "test stop");
        dispose([state.params, state.adam.m, state.adam.v]);
        const fresh = freshState();
        const loaded = await loadCheckpoint(dir, fresh.params, fresh.adam);
        state = { params: keep(loaded.params), adam: loaded.adam, progress: loaded.progress };
      }
      assert.deepEqual(
        pieces.map((r) => [r.epoch, r.complete, r.images, r.stoppedBy]),
        [[1, false, 32, "test stop"], [1, true, 8, undefined], [2, true, 40, undefined]],
      );
      assert.deepEqual(state.progress, whole.progress);
      assert.equal(state.adam.step, whole.adam.step);
      const [a, b] = [await bitsOf(whole), await bitsOf(state)];
      assert.equal(a.length, b.length);
      a.forEach((leaf, i) => assert.deepEqual(b[i], leaf, `tensor ${i} differs after resuming`));
      dispose([whole.params, whole.adam.m, whole.adam.v, state.params, state.adam.m, state.adam.v]);
    } finally {
      dispose(set.bytes);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

gpuTest(
  "train: a non-finite loss throws before the epoch hook, naming the step and the metrics",
  async () => {
    const set = syntheticSet(20);
    const state = freshState();
    const bias = state.params.out.bias as Tensor;
    state.params.out.bias = keep(full(bias.shape, NaN));
    bias.dispose();
    let epochs = 0;
    await assert.rejects(
      () => training.train(cfg, schedule, set, state, { afterEpoch: () => void epochs++ }),
      (error: unknown) =>
        error instanceof training.NonFiniteLossError && error.epoch === 0 && error.batch === 0 &&
        /non-finite loss at epoch 1, step 1 \(loss NaN/.test(error.message),
    );
    assert.equal(epochs, 0);
    assert.deepEqual(state.progress, { epoch: 0, stepInEpoch: 0, step: 0 });
    dispose([state.params, state.adam.m, state.adam.v, set.bytes]);
  },
);

Deno.test("training metrics: the vector's layout, by name", () => {
  assert.deepEqual(training.metricNames(3, "informative"), [
    "loss",
    "elbo",
    "kl1",
    "kl2",
    "kl3",
    "ll0",
    "ll1",
    "ll2",
  ]);
  assert.deepEqual(training.metricNames(2, "elbo"), ["loss", "elbo", "kl1", "kl2", "ll0"]);
  assert.deepEqual(training.namedMetrics([5, -4, 1, 2, 3, -6, -7, -8], 3), {
    loss: 5,
    elbo: -4,
    kl: [1, 2, 3],
    ll: [-6, -7, -8],
  });
});

Deno.test("training schedules: KL warm-up and the free-bits period, by step", () => {
  // 10 steps per epoch. Warm-up over 2 epochs: beta = (step + 1) / 20, then 1.
  assert.equal(training.warmupBeta(0, 10, 2), 0.05);
  assert.equal(training.warmupBeta(9, 10, 2), 0.5);
  assert.equal(training.warmupBeta(25, 10, 2), 1);
  assert.equal(training.warmupBeta(5, 10, 0), 1);
  // Free bits 2 over a 4-epoch period: 2 for epochs 0-1, then linearly to 0 at epoch 4.
  assert.equal(training.freeBitsAt(0, 10, 2, 4), 2);
  assert.equal(training.freeBitsAt(19, 10, 2, 4), 2);
  assert.equal(training.freeBitsAt(20, 10, 2, 4), 2);
  assert.equal(training.freeBitsAt(30, 10, 2, 4), 1);
  assert.equal(training.freeBitsAt(35, 10, 2, 4), 0.5);
  assert.equal(training.freeBitsAt(40, 10, 2, 4), 0);
  assert.equal(training.freeBitsAt(90, 10, 2, 4), 0);
  // No period: the floor holds.
  assert.equal(training.freeBitsAt(1000, 10, 2, 0), 2);
});
