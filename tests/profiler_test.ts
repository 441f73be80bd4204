/**
 * The kernel profiler (kernels/runtime/profiler.ts): grouping and shares on hand-made timings, and
 * on the GPU with both methods: every dispatch of the profiled work is timed once, under its op and
 * kernel variant, the results are the same as without the profiler, and recording returns to one pass.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { adapterInfo, engineStats, startProfile, stopProfile } from "../kernels/engine.ts";
import { formatProfile, summarize } from "../kernels/runtime/profiler.ts";
import { read } from "../kernels/tensor.ts";
import { createRng, gpuTest, randomNd, toTensor } from "./helpers.ts";

Deno.test("profiler: summarize groups by op and variant, sums time and work, sorts by time", () => {
  const report = summarize(
    [
      { label: "conv2d", key: "k1", ms: 3, work: { flops: 6e6, bytes: 3e6 } },
      { label: "add", key: "k2", ms: 1, work: { bytes: 1e6 } },
      { label: "conv2d", key: "k1", ms: 5, work: { flops: 10e6, bytes: 5e6 } },
      { label: "conv2d", key: "k3", ms: 1, work: {} },
    ],
    "timestamp-query",
    12,
    2,
  );
  assert.equal(report.dispatches, 4);
  assert.equal(report.kernelMs, 10);
  assert.deepEqual(report.rows.map((r) => [r.label, r.key, r.calls, r.ms]), [
    ["conv2d", "k1", 2, 8],
    ["add", "k2", 1, 1],
    ["conv2d", "k3", 1, 1],
  ]);
  assert.equal(report.rows[0].share, 0.8);
  assert.equal(report.rows[0].gflops, 16e6 / 8 / 1e6);
  assert.equal(report.rows[0].gbps, 1);
  assert.equal(report.rows[2].gflops, undefined);
  const text = formatProfile(report, 2);
  assert.match(text, /profile \(timestamp-query\): 4 dispatches, 2 submits/);
  assert.match(text, /\(1 more\)/);
});

for (const method of ["timestamp-query", "submit-per-dispatch"] as const) {
  gpuTest(`profiler (${method}): every dispatch timed once under its op, results unchanged`, async () => {
    if (method === "timestamp-query" && !adapterInfo().features.includes("timestamp-query")) return;
    const rng = createRng(5);
    const x = toTensor(randomNd(rng, [2, 6, 6, 4]));
    const w = toTensor(randomNd(rng, [3, 3, 4, 8]));
    const plain = await read(ops.exp(ops.conv2d(x, w, null, { padding: 1 })));
    startProfile({ method });
    const before = engineStats().dispatches;
    const y = ops.exp(ops.conv2d(x, w, null, { padding: 1 }));
    const z = ops.add(y, 1);
    const profiled = await read(y);
    const dispatches = engineStats().dispatches - before;
    const report = await stopProfile();
    assert.equal(report.method, method);
    assert.deepEqual(profiled, plain);
    assert.equal(report.dispatches, dispatches);
    assert.deepEqual(report.rows.map((r) => r.label).sort(), ["add", "conv2d", "exp"]);
    for (const row of report.rows) {
      assert.ok(row.ms >= 0 && Number.isFinite(row.ms), `${row.label}: ${row.ms} ms`);
      assert.equal(row.calls, 1);
    }
    assert.ok(report.rows.find((r) => r.label === "conv2d")!.gflops! > 0);
    await assert.rejects(stopProfile(), /no profile is running/);
    // After the profile, dispatches share submits again.
    const submits = engineStats().submits;
    for (let i = 0; i < 5; i++) ops.add(z, i).dispose();
    assert.equal(engineStats().submits, submits);
    z.dispose();
  });
}
