/**
 * The ceiling kernels (kernels/ceiling.ts) do the work their figures count: the FMA kernel's output is
 * the float64 recurrence of its chains, and the stream kernel's is the sum of the vec4s it is said to
 * read; `measureCeiling` returns finite, positive figures.
 */

import assert from "node:assert/strict";
import {
  FMA_CHAINS,
  fmaChains,
  measureCeiling,
  STREAM_VEC4_PER_THREAD,
  streamSum,
} from "../kernels/ceiling.ts";
import { emptyTensor, read, tensor } from "../kernels/tensor.ts";
import { assertClose, gpuTest } from "./helpers.ts";

gpuTest("ceiling: the FMA kernel computes its chains' recurrence (float64 reference)", async () => {
  const threads = 300, iters = 37, scale = 0.97, shift = 0.013;
  const out = emptyTensor([threads * 4], "f32", "test");
  fmaChains(out, threads, iters, scale, shift);
  const got = await read(out);
  const want = new Float64Array(threads * 4);
  for (let i = 0; i < threads; i++) {
    let sum = 0;
    for (let j = 0; j < FMA_CHAINS; j++) {
      let a = Math.fround((i + j) * 1e-6);
      for (let k = 0; k < iters; k++) a = a * scale + shift;
      sum += a;
    }
    want.fill(sum, 4 * i, 4 * i + 4);
  }
  assertClose(got, want, { rtol: 1e-5, atol: 1e-5 }, "fma chains");
  out.dispose();
});

gpuTest("ceiling: the stream kernel sums the strided vec4s it counts", async () => {
  const threads = 257;
  const data = Float32Array.from({ length: threads * STREAM_VEC4_PER_THREAD * 4 }, (_, i) => (i % 97) - 48);
  const src = tensor(data, [data.length]);
  const out = emptyTensor([threads * 4], "f32", "test");
  streamSum(src, out, threads);
  const got = await read(out);
  const want = new Float64Array(threads * 4);
  for (let i = 0; i < threads; i++) {
    for (let k = 0; k < STREAM_VEC4_PER_THREAD; k++) {
      for (let c = 0; c < 4; c++) want[4 * i + c] += data[4 * (i + k * threads) + c];
    }
  }
  assertClose(got, want, { rtol: 0, atol: 0 }, "stream sums");
  src.dispose();
  out.dispose();
});

gpuTest("ceiling: measureCeiling gives finite, positive figures", async () => {
  const c = await measureCeiling({ minMs: 5, runs: 1 });
  assert.ok(Number.isFinite(c.gflops) && c.gflops > 0, `gflops ${c.gflops}`);
  assert.ok(Number.isFinite(c.gbps) && c.gbps > 0, `gbps ${c.gbps}`);
});
