/**
 * Engine invariants: scopes release what they should, memory stays flat over a long training loop,
 * no readback happens inside valueAndGrad, batching never lets a later write leak into an earlier
 * dispatch, pipelines are cached per variant, and GPU errors name the op or kernel.
 */

import assert from "node:assert/strict";
import { memoSpec, variantKey } from "../kernels/runtime/program.ts";
import * as ops from "../autograd/ops.ts";
import { valueAndGrad } from "../autograd/tape.ts";
import { configure, engineStats, sync } from "../kernels/engine.ts";
import { launch } from "../kernels/launch.ts";
import { read, readAll, readScalar, scope, type Tensor, tensor } from "../kernels/tensor.ts";
import { dense, initDense } from "../models/layers.ts";
import { sgdStep } from "../models/sgd.ts";
import { dispose, keep } from "../kernels/tensor.ts";
import { assertClose, createRng, gpuTest, randomNd, toTensor } from "./helpers.ts";

gpuTest(
  "scope: temporaries released, results kept and moved to the parent, disposed tensors refuse use",
  async () => {
    const x = tensor([1, 2, 3]);
    const before = engineStats().buffersInUse;
    let inner: Tensor | null = null;
    const kept = scope(() => {
      const r = scope(() => {
        inner = ops.exp(x);
        return ops.add(inner, 1);
      });
      ops.mul(r, 3); // a temporary of the outer scope
      return { r };
    });
    if (!(inner as unknown as Tensor).disposed) {
      throw new Error(
        "temporary of the inner scope was not released",
      );
    }
    if (engineStats().buffersInUse !== before + 1) {
      throw new Error(
        "only the returned tensor should stay alive",
      );
    }
    assertClose(
      await read(kept.r),
      [1, 2, 3].map((v) => Math.exp(v) + 1),
      { rtol: 1e-6, atol: 0 },
      "kept value",
    );
    kept.r.dispose();
    if (engineStats().buffersInUse !== before) throw new Error("dispose did not release");
    let message = "";
    try {
      ops.exp(kept.r);
    } catch (e) {
      message = (e as Error).message;
    }
    if (!/Tensor#\d+\(f32 \[3\]\): used after it was disposed/.test(message)) {
      throw new Error(
        `got: ${message}`,
      );
    }
    // Views share storage: the buffer returns to the pool only when the last view goes.
    const v = scope(() => ops.reshape(x, [3, 1]));
    const inUse = engineStats().bytesInUse;
    v.dispose();
    if (engineStats().bytesInUse !== inUse) throw new Error("disposing a view released the shared storage");
    x.dispose();
  },
);

gpuTest(
  "memory is flat: bytes in use return to the same value after each of 200 training steps",
  async () => {
    const rng = createRng(211);
    let params = keep({ l1: initDense(8, 16, rng), l2: initDense(16, 1, rng) });
    const x = toTensor(randomNd(rng, [32, 8]));
    const y = toTensor(randomNd(rng, [32, 1]));
    const loss = (p: typeof params) =>
      ops.mean(ops.square(ops.sub(dense(p.l2, ops.tanh(dense(p.l1, x))), y)));
    const vg = valueAndGrad(loss);
    const step = () => {
      const next = scope(() => {
        const { value, grads } = vg(params);
        return { value, params: sgdStep(params, grads, 0.1) };
      });
      dispose(params);
      params = next.params;
      return next.value;
    };
    const losses: number[] = [];
    let baseline = -1, created = -1;
    for (let i = 0; i < 200; i++) {
      const value = step();
      if (i % 50 === 0 || i === 199) losses.push(await readScalar(value));
      value.dispose();
      const stats = engineStats();
      if (i === 1) {
        baseline = stats.bytesInUse;
        created = stats.buffersCreated;
      } else if (i > 1) {
        if (stats.bytesInUse !== baseline) {
          throw new Error(
            `step ${i}: ${stats.bytesInUse} B in use, baseline ${baseline}`,
          );
        }
        if (stats.buffersCreated !== created) {
          throw new Error(`step ${i}: ${stats.buffersCreated} buffers created, ${created} after warm-up`);
        }
      }
    }
    if (!(losses[losses.length - 1] < losses[0])) throw new Error(`loss did not decrease: ${losses}`);
    dispose([params, x, y]);
  },
);

gpuTest(
  "valueAndGrad reads nothing back, and submits at most ceil(dispatches / flushEvery) + 1 times",
  () => {
    const rng = createRng(223);
    const params = { l1: initDense(4, 4, rng) };
    const x = toTensor(randomNd(rng, [3, 4]));
    const vg = valueAndGrad((p: typeof params) => ops.sum(ops.sigmoid(dense(p.l1, x))));
    const previous = configure({ flushEvery: 8 });
    try {
      const before = engineStats();
      scope(() => vg(params));
      const after = engineStats();
      if (after.readbacks !== before.readbacks) throw new Error("valueAndGrad read data back from the GPU");
      const dispatches = after.dispatches - before.dispatches;
      const submits = after.submits - before.submits;
      if (dispatches < 8) throw new Error(`expected a real graph, got ${dispatches} dispatches`);
      if (submits > Math.ceil(dispatches / 8) + 1) {
        throw new Error(
          `${submits} submits for ${dispatches} dispatches`,
        );
      }
    } finally {
      configure(previous);
      dispose([params, x]);
    }
  },
);

// Also the regression test for surplus pool buffers destroyed while a recorded dispatch still used
// them (300 temporaries of one size class overflow the 64-buffer free list at scope end).
gpuTest("batching: each dispatch sees its own uniforms, even hundreds in one submit", async () => {
  const previous = configure({ flushEvery: 1000 });
  try {
    const x = tensor([1, -2, 0.5]);
    const y = scope(() => {
      let acc = x;
      // acc = x * (1 + 1/1) * (1 + 1/2) * ... * (1 + 1/300) = x * 301: if a later uniform write reached
      // an earlier dispatch, the product would differ.
      for (let i = 1; i <= 300; i++) acc = ops.mul(acc, 1 + 1 / i);
      return acc;
    });
    const before = engineStats().submits;
    assertClose(await read(y), [301, -602, 150.5], { rtol: 1e-4, atol: 0 }, "chained scalars");
    if (engineStats().submits - before !== 1) throw new Error("expected all 300 dispatches in one submit");
    dispose([x, y]);
  } finally {
    configure(previous);
  }
});

gpuTest("batching: an upload into a recycled buffer never reaches a pending dispatch", async () => {
  const a = tensor([1, 2, 3]);
  const b = ops.mul(a, 2); // recorded, not submitted
  a.dispose(); // a's buffer returns to the pool while b's dispatch still reads it
  const c = tensor([100, 200, 300]); // same size class: reuses a's buffer
  const [bv, cv] = await readAll([b, c]);
  assertClose(bv, [2, 4, 6], { rtol: 0, atol: 0 }, "b computed from the old contents");
  assertClose(cv, [100, 200, 300], { rtol: 0, atol: 0 }, "c");
  dispose([b, c]);
});

gpuTest("pipelines are compiled once per variant, not per shape", () => {
  scope(() => {
    ops.exp(tensor([1, 2]));
    const count = engineStats().pipelines;
    for (const n of [3, 100, 5000]) ops.exp(ops.full([n], 0.5));
    if (engineStats().pipelines !== count) throw new Error("a new shape compiled a new pipeline");
  });
});

gpuTest("errors: a bad kernel names itself; debug mode names the failing op", async () => {
  const out = tensor([0]);
  launch(
    { key: "test:broken", uniforms: [], inputs: [], outputs: [["Out", "f32"]], body: "this is not WGSL" },
    [],
    [out],
    {},
    [1],
  );
  await assert.rejects(() => sync(), /kernel test:broken failed to compile/);

  const ok = {
    key: "test:ok",
    uniforms: [],
    inputs: [],
    outputs: [["Out", "f32"]] as [string, "f32"][],
    body: `
@compute @workgroup_size(1) fn main() { Out[0] = 1.0; }`,
  };
  const previous = configure({ debug: true });
  try {
    launch(ok, [], [out], {}, [1 << 20], "oversized-grid"); // beyond maxComputeWorkgroupsPerDimension
    await assert.rejects(() => sync(), /op oversized-grid \(kernel test:ok\)/);
  } finally {
    configure(previous);
  }
  out.dispose();
});

Deno.test("kernel keys: made from the variant's parameters in one place; the builder gets those parameters", () => {
  const built: object[] = [];
  const build = (v: { op: string; vec4: boolean }) => {
    built.push(v);
    return { uniforms: [], inputs: [], outputs: [], body: `// ${v.op} ${v.vec4}` };
  };
  const a = memoSpec("test-family", { op: "exp", vec4: true }, build);
  assert.equal(a.key, "test-family:op=exp:vec4=1");
  assert.equal(a.key, variantKey("test-family", { op: "exp", vec4: true }));
  assert.equal(memoSpec("test-family", { op: "exp", vec4: true }, build), a, "built once, then cached");
  const b = memoSpec("test-family", { op: "exp", vec4: false }, build);
  assert.notEqual(b.key, a.key);
  assert.equal(b.body, "// exp false", "the body is built from the parameters the key names");
  assert.deepEqual(built, [{ op: "exp", vec4: true }, { op: "exp", vec4: false }]);
});
