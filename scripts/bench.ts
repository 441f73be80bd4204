/**
 * `deno task bench`: kernel and training-step benchmarks, one JSON object per line.
 *
 * Method (docs/design.md section 8): inputs are random data uploaded once (never
 * lazy constants); each measurement records `reps` repetitions of the work and ends with one readback,
 * so the ~11 ms Deno sync floor is paid once per run, not per op, and is reported on its own line;
 * the figure is the median of `runs` runs after one warm-up run. Every line carries the adapter.
 *
 * Flags: --filter SUBSTRING (run only matching benchmarks), --runs N (default 5), --profile (after
 * each training-step line, one more step under the kernel profiler: its table on stderr, its JSON as a
 * `-profile` line), --kernels auto|default (this adapter's cached tuning, the default, or the built-in
 * choices; every line says which).
 */

import * as ops from "../autograd/ops.ts";
import { valueAndGrad } from "../autograd/tape.ts";
import { adapterInfo, configure, engineStats, startProfile, stopProfile, sync } from "../kernels/engine.ts";
import { formatProfile } from "../kernels/runtime/profiler.ts";
import { measureCeiling, nominalCpuPeak } from "../kernels/ceiling.ts";
import { lscpu } from "../store/tuning_cache.ts";
import { matmul as matmulKernel } from "../kernels/matmul.ts";
import {
  convBackwardFilter,
  convBackwardInput,
  convForward,
  setConvImplementation,
} from "../kernels/conv.ts";
import { conv2dGeometry, type Conv2dOptions, conv2dTransposeGeometry } from "../kernels/conv_geometry.ts";
import { dispose, keep, readAll, scope, type Tensor, tensor } from "../kernels/tensor.ts";
import { dense, initDense } from "../models/layers.ts";
import { createRng } from "../models/rng.ts";
import { sgdStep } from "../models/sgd.ts";
import { adamInit } from "../models/adam.ts";
import { initHvae } from "../models/hvae.ts";
import { presetConfig } from "../models/presets.ts";
import { type LikelihoodName, runTag, withLikelihood } from "../models/likelihood.ts";
import { trainStep } from "../models/training.ts";
import { initGpuOrExit, intFlag, parseFlags } from "./cli.ts";
import { applyKernelsMode, KERNELS_FLAG, KERNELS_USAGE, kernelsMode } from "./kernels_flag.ts";

const USAGE = `usage: deno task bench [--filter SUBSTRING] [--runs N] [--profile] [--kernels MODE]
${KERNELS_USAGE}`;
const args = parseFlags("bench", USAGE, {
  filter: { type: "string", default: "" },
  runs: { type: "string", default: "5" },
  profile: { type: "boolean", default: false },
  ...KERNELS_FLAG,
});
const runs = intFlag("bench", USAGE, "runs", args.runs, 1);
const mode = kernelsMode("bench", USAGE, args.kernels);
await initGpuOrExit("bench");
const adapter = adapterInfo().description;
// Every line says whether the kernels were this adapter's tuned choices or the built-in ones.
let kernels = await applyKernelsMode("bench", mode, null, console.error);
const rng = createRng(12345);

function random(shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = rng.uniform() * 2 - 1;
  return tensor(data, shape);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Times `reps` calls of `work` (each returns a tensor) ending in one readback; ms per call. With
 * reps = "auto", the warm-up run decides: enough calls for >= 200 ms per run (at most 50), so that
 * the readback floor is a small part of the figure.
 */
async function measure(work: () => Tensor, reps: number | "auto", timedRuns = runs): Promise<number> {
  const once = async (count: number) => {
    const t0 = performance.now();
    let last: Tensor | null = null;
    for (let r = 0; r < count; r++) {
      last?.dispose();
      last = scope(work);
    }
    await readAll([last!]);
    last!.dispose();
    return (performance.now() - t0) / count;
  };
  const first = await once(reps === "auto" ? 1 : reps);
  const count = reps === "auto" ? Math.max(1, Math.min(50, Math.ceil(200 / first))) : reps;
  const times: number[] = [];
  for (let i = 0; i < timedRuns; i++) times.push(await once(count));
  return median(times);
}

const wanted = (name: string) => name.includes(args.filter);

// The adapter's ceiling (kernels/ceiling.ts), measured first when a kernel line or a profile will
// need it (a few seconds; `bench:compare` asks only for training steps): every line with a GFLOP/s
// or GB/s figure also says what fraction of it that is (`ofFmaPeak`, `ofStream`), and so do profiles.
const KERNEL_BENCHMARKS = ["ceiling", "matmul", "conv", "elementwise", "reduce"];
const ceiling =
  args.profile || KERNEL_BENCHMARKS.some((n) => n.includes(args.filter) || args.filter.includes(n))
    ? await measureCeiling()
    : null;

function emit(record: Record<string, unknown>): void {
  const fractions = !ceiling || String(record.name).startsWith("ceiling") ? {} : {
    ...(typeof record.gflops === "number" ? { ofFmaPeak: +(record.gflops / ceiling.gflops).toFixed(3) } : {}),
    ...(typeof record.gbps === "number" ? { ofStream: +(record.gbps / ceiling.gbps).toFixed(3) } : {}),
  };
  console.log(JSON.stringify({ ...record, ...fractions, adapter, kernels }));
}

/**
 * The CPU behind a software adapter, from lscpu: cores and clock (null where lscpu does not report
 * one, as in some VMs).
 */
async function cpuClock(): Promise<{ cores: number; ghz: number | null; name: string }> {
  const field = await lscpu();
  if (!field) return { cores: 0, ghz: null, name: "unknown (lscpu not allowed or missing)" };
  const mhz = Number(field("CPU max MHz") ?? field("CPU MHz") ?? NaN);
  return {
    cores: Number(field("CPU\\(s\\)") ?? 0),
    ghz: Number.isFinite(mhz) && mhz > 0 ? mhz / 1000 : null,
    name: `${field("Model name") ?? "?"} family ${field("CPU family") ?? "?"} model ${field("Model") ?? "?"}`,
  };
}

if (ceiling && wanted("ceiling")) {
  emit({ name: "ceiling-fma", note: "register-only vec4 FMA chains", gflops: +ceiling.gflops.toFixed(2) });
  emit({
    name: "ceiling-stream",
    note: "4 vec4 loads per thread, best of 64 MiB and 8 MiB",
    gbps: +ceiling.gbps.toFixed(2),
  });
  if (adapterInfo().isFallbackAdapter) {
    const cpu = await cpuClock();
    const bits = Number(adapter.match(/(\d+) bits/)?.[1] ?? NaN);
    const nominal = nominalCpuPeak(cpu.cores, cpu.ghz, Number.isFinite(bits) ? bits : null);
    emit({
      name: "ceiling-cpu-nominal",
      cpu: cpu.name,
      cores: cpu.cores,
      ghz: cpu.ghz,
      simdBits: Number.isFinite(bits) ? bits : null,
      nominalGflops: nominal === null ? null : +nominal.toFixed(1),
      note: nominal === null
        ? "lscpu reports no clock here: nominal = cores x 2 FMA pipes x (bits / 32) lanes x 2 x GHz"
        : "cores x 2 FMA pipes x (bits / 32) lanes x 2 x GHz",
    });
  }
}

// The Deno sync floor: one tiny readback.
if (wanted("sync")) {
  const x = random([1]);
  const ms = await measure(() => ops.add(x, 1), 1);
  emit({ name: "sync-floor", shape: [1], ms: +ms.toFixed(3), note: "one dispatch plus one readback" });
  x.dispose();
}

// Matmul: the 512^3 headline and the shapes of a dense layer on a 64x7x7 feature map at batch 128,
// forward (x W), input gradient (g W^T) and weight gradient (x^T g).
const MATMULS: {
  name: string;
  a: number[];
  b: number[];
  transA?: boolean;
  transB?: boolean;
  reps: number;
}[] = [
  { name: "matmul", a: [512, 512], b: [512, 512], reps: 3 },
  { name: "matmul-dense-fwd", a: [128, 3136], b: [3136, 64], reps: 5 },
  { name: "matmul-dense-dx", a: [128, 64], b: [3136, 64], transB: true, reps: 5 },
  { name: "matmul-dense-dw", a: [128, 3136], b: [128, 64], transA: true, reps: 5 },
  { name: "matmul-batched", a: [16, 128, 64], b: [16, 64, 128], reps: 5 },
];
for (const m of MATMULS) {
  if (!wanted(m.name)) continue;
  const a = random(m.a), b = random(m.b);
  const M = m.transA ? m.a[m.a.length - 1] : m.a[m.a.length - 2];
  const K = m.transA ? m.a[m.a.length - 2] : m.a[m.a.length - 1];
  const N = m.transB ? m.b[m.b.length - 2] : m.b[m.b.length - 1];
  const batch = m.a.length > 2 ? m.a[0] : 1;
  const ms = await measure(() => matmulKernel(a, b, { transA: m.transA, transB: m.transB }), m.reps);
  const flops = 2 * batch * M * N * K;
  emit({
    name: m.name,
    shape: { batch, M, N, K },
    ms: +ms.toFixed(3),
    gflops: +(flops / ms / 1e6).toFixed(3),
  });
  dispose([a, b]);
}

// Convolutions at batch 128: the reference backbone "havtorn3" (64 channels; docs/design.md section 1) and the
// CPU preset "small" (16 channels). Each line times one direction; a transposed convolution's
// forward is the input-gradient kernel and its input gradient the forward kernel.
interface ConvBench {
  preset: string;
  what: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  options: Conv2dOptions;
  transposed?: boolean;
}
const B = 128;
/** One benchmark convolution at batch B: input [H, W, Ci], filter [kh, kw, Ci, Co]. */
const conv = (
  preset: string,
  what: string,
  [H, W, Ci]: [number, number, number],
  w: ConvBench["w"],
  options: Conv2dOptions,
  transposed = false,
): ConvBench => ({ preset, what, x: [B, H, W, Ci], w, options, ...(transposed ? { transposed } : {}) });
const same: Conv2dOptions = { padding: "same" }, same2: Conv2dOptions = { stride: 2, padding: "same" };
const CONVS: ConvBench[] = [
  conv("havtorn3", "input 1->64 k5", [28, 28, 1], [5, 5, 1, 64], same),
  conv("havtorn3", "64ch 28x28 k5", [28, 28, 64], [5, 5, 64, 64], same),
  conv("havtorn3", "64ch 28->14 k5 s2", [28, 28, 64], [5, 5, 64, 64], same2),
  conv("havtorn3", "64ch 14x14 k3", [14, 14, 64], [3, 3, 64, 64], same),
  conv("havtorn3", "64ch 14->7 k3 s2", [14, 14, 64], [3, 3, 64, 64], same2),
  conv("havtorn3", "64ch 7x7 k3", [7, 7, 64], [3, 3, 64, 64], same),
  conv("havtorn3", "transposed 64ch 7->14 k3 s2", [7, 7, 64], [3, 3, 64, 64], same2, true),
  conv("havtorn3", "transposed 64ch 14->28 k5 s2", [14, 14, 64], [5, 5, 64, 64], same2, true),
  conv("havtorn3", "output 64->1 k3", [28, 28, 64], [3, 3, 64, 1], same),
  conv("small", "input 1->16 k5 s2", [28, 28, 1], [5, 5, 1, 16], { stride: 2, padding: 2 }),
  conv("small", "16ch 14x14 k3", [14, 14, 16], [3, 3, 16, 16], { padding: 1 }),
  conv("small", "16ch 14->7 k3 s2", [14, 14, 16], [3, 3, 16, 16], { stride: 2, padding: 1 }),
  conv("small", "16ch 7x7 k3", [7, 7, 16], [3, 3, 16, 16], { padding: 1 }),
  conv("small", "transposed 16ch 7->14 k3 s2", [7, 7, 16], [3, 3, 16, 16], {
    stride: 2,
    padding: [[1, 0], [1, 0]],
  }, true),
  conv("small", "output 16->1 k3", [28, 28, 16], [3, 3, 16, 1], { padding: 1 }),
  // The 8-bit likelihood's head: 3 x 10 mixture channels, 1x1 (models/likelihood.ts).
  conv("small", "output 16->30 k1", [28, 28, 16], [1, 1, 16, 30], { padding: 0 }),
];
for (const c of CONVS) {
  const name = `conv ${c.preset} ${c.what}`;
  if (!wanted(name) && !wanted("conv-" + c.preset)) continue;
  const g = c.transposed
    ? conv2dTransposeGeometry(c.x, c.w, null, c.options)
    : conv2dGeometry(c.x, c.w, null, c.options);
  // In the geometry's own terms: "input" [B, H, W, Ci] -> "output" [B, oH, oW, Co].
  const input = random([g.B, g.H, g.W, g.Ci]);
  const output = random([g.B, g.oH, g.oW, g.Co]);
  const w = random(c.w);
  const flops = 2 * g.B * g.oH * g.oW * g.Co * g.kh * g.kw * g.Ci;
  const directions: [string, () => Tensor][] = c.transposed
    ? [
      ["fwd", () => convBackwardInput(output, w, null, g)],
      ["dx", () => convForward(input, w, null, g)],
      ["dw", () => convBackwardFilter(input, output, g)],
    ]
    : [
      ["fwd", () => convForward(input, w, null, g)],
      ["dx", () => convBackwardInput(output, w, null, g)],
      ["dw", () => convBackwardFilter(input, output, g)],
    ];
  for (const [direction, work] of directions) {
    const ms = await measure(work, "auto");
    emit({
      name: `conv-${direction}`,
      preset: c.preset,
      shape: { what: c.what, x: c.x, w: c.w, ...c.options },
      ms: +ms.toFixed(2),
      gflops: +(flops / ms / 1e6).toFixed(3),
    });
  }
  dispose([input, output, w]);
}

// The naive direct kernels (the on-GPU oracle) at one shape, for scale.
if (wanted("conv-naive")) {
  const g = conv2dGeometry([B, 14, 14, 16], [3, 3, 16, 16], null, { padding: 1 });
  const input = random([g.B, g.H, g.W, g.Ci]),
    output = random([g.B, g.oH, g.oW, g.Co]),
    w = random([3, 3, 16, 16]);
  const flops = 2 * g.B * g.oH * g.oW * g.Co * g.kh * g.kw * g.Ci;
  const previous = setConvImplementation("naive");
  for (
    const [direction, work] of [
      ["fwd", () => convForward(input, w, null, g)],
      ["dx", () => convBackwardInput(output, w, null, g)],
      ["dw", () => convBackwardFilter(input, output, g)],
    ] as [string, () => Tensor][]
  ) {
    const ms = await measure(work, "auto");
    emit({
      name: `conv-naive-${direction}`,
      preset: "small",
      shape: { what: "16ch 14x14 k3" },
      ms: +ms.toFixed(2),
      gflops: +(flops / ms / 1e6).toFixed(3),
    });
  }
  setConvImplementation(previous);
  dispose([input, output, w]);
}

// Memory-bound elementwise work on 4M elements: bytes moved per second.
const N4M = 4 * 1024 * 1024;
if (wanted("elementwise")) {
  const x = random([N4M]);
  const ms = await measure(() => ops.exp(x), 5);
  emit({ name: "elementwise-exp", shape: [N4M], ms: +ms.toFixed(3), gbps: +(8 * N4M / ms / 1e6).toFixed(3) });
  const y = random([N4M]);
  const ms2 = await measure(() => ops.add(x, y), 5);
  emit({
    name: "elementwise-add",
    shape: [N4M],
    ms: +ms2.toFixed(3),
    gbps: +(12 * N4M / ms2 / 1e6).toFixed(3),
  });
  const row = random([1024]);
  const xm = ops.reshape(x, [4096, 1024]);
  const ms3 = await measure(() => ops.add(xm, row), 5);
  emit({
    name: "elementwise-add-broadcast",
    shape: [[4096, 1024], [1024]],
    ms: +ms3.toFixed(3),
    gbps: +(8 * N4M / ms3 / 1e6).toFixed(3),
  });
  const ms4 = await measure(() => ops.sum(x), 5);
  emit({
    name: "reduce-sum-all",
    shape: [N4M],
    ms: +ms4.toFixed(3),
    gbps: +(4 * N4M / ms4 / 1e6).toFixed(3),
  });
  const ms5 = await measure(() => ops.sum(xm, 0), 5);
  emit({
    name: "reduce-sum-axis0",
    shape: [4096, 1024],
    ms: +ms5.toFixed(3),
    gbps: +(4 * N4M / ms5 / 1e6).toFixed(3),
  });
  dispose([x, y, row, xm]);
}

// Per-dispatch cost: 512 tiny dependent ops, submitted every `flushEvery` dispatches.
if (wanted("dispatch")) {
  const x = random([64]);
  for (const flushEvery of [1, 16, 64, 512]) {
    const previous = configure({ flushEvery });
    const ms = await measure(() => {
      let acc = x;
      for (let i = 0; i < 512; i++) acc = ops.mul(acc, 1.0001);
      return acc;
    }, 1);
    configure(previous);
    emit({
      name: "dispatch-cost",
      shape: { ops: 512, flushEvery },
      ms: +ms.toFixed(3),
      usPerOp: +(ms * 1000 / 512).toFixed(1),
    });
  }
  x.dispose();
}

// A training step of an MLP on MNIST-sized inputs: forward, backward, SGD update, one readback.
if (wanted("train-step-mlp")) {
  const batch = 128;
  let params = keep({ l1: initDense(784, 256, rng), l2: initDense(256, 10, rng) });
  const x = random([batch, 784]);
  const y = random([batch, 10]);
  const vg = valueAndGrad((p: typeof params) =>
    ops.mean(ops.square(ops.sub(dense(p.l2, ops.relu(dense(p.l1, x))), y)))
  );
  const before = engineStats();
  const ms = await measure(() => {
    const next = scope(() => {
      const { value, grads } = vg(params);
      return { value, params: sgdStep(params, grads, 0.01) };
    });
    dispose(params);
    params = keep(next.params); // outlives measure()'s scope, which releases all but the value
    return next.value;
  }, 5);
  const after = engineStats();
  const steps = 5 * (runs + 1);
  emit({
    name: "train-step-mlp",
    shape: { batch, layers: [784, 256, 10] },
    ms: +ms.toFixed(3),
    imagesPerSecond: +(batch * 1000 / ms).toFixed(1),
    dispatchesPerStep: +((after.dispatches - before.dispatches) / steps).toFixed(1),
    submitsPerStep: +((after.submits - before.submits) / steps).toFixed(2),
  });
  dispose([params, x, y]);
}

// A training step of the hierarchical VAE at batch 128 (forward, backward, Adam, one readback),
// per preset, likelihood and loss: random binary images for the Bernoulli, random levels in [-1, 1]
// for the 8-bit logistic mixture (train-step-small-8bit-*, models/likelihood.ts).
const STEP_MODELS: [string, LikelihoodName][] = [
  ["small", "bernoulli"],
  ["small", "logistic-mixture"],
  ["havtorn3", "bernoulli"],
];
for (const [preset, likelihood] of STEP_MODELS) {
  for (const loss of ["elbo", "informative"] as const) {
    const cfg = withLikelihood(presetConfig(preset), likelihood);
    const name = `train-step-${preset}${runTag(cfg)}-${loss}`;
    if (!wanted(name)) continue;
    // The kernels tuned on this preset's own shapes (measured now if none are cached, as
    // `deno task train` does on first use): the blocks that suit 16 channels do not suit 64.
    if (mode !== "default") {
      kernels = await applyKernelsMode("bench", mode, { cfg, batch: 128, loss }, console.error);
    }
    const hvae = keep(initHvae(cfg, createRng(1)));
    const state = adamInit(hvae);
    const x = keep(
      likelihood === "bernoulli"
        ? ops.greater(random([128, 28, 28, 1]), 0.4)
        : tensor(Float32Array.from({ length: 128 * 784 }, (_, i) => 2 * ((i * 7919) % 256) / 255 - 1), [
          128,
          28,
          28,
          1,
        ]),
    );
    let step = 0;
    const before = engineStats();
    // havtorn3 takes about a minute per step on a CPU: one timed run after the warm-up there.
    const ms = await measure(
      () => trainStep(cfg, hvae, state, x, { loss, lr: 3e-4, beta: 1, freeBits: 0, seed: 1, step: step++ }),
      1,
      preset === "havtorn3" && adapterInfo().isFallbackAdapter ? 1 : runs,
    );
    const after = engineStats();
    emit({
      name,
      preset,
      likelihood,
      shape: { batch: 128 },
      ms: +ms.toFixed(1),
      imagesPerSecond: +(128 * 1000 / ms).toFixed(1),
      dispatchesPerStep: Math.round((after.dispatches - before.dispatches) / step),
      submitsPerStep: +((after.submits - before.submits) / step).toFixed(1),
    });
    if (args.profile && ceiling) {
      startProfile();
      const value = scope(() =>
        trainStep(cfg, hvae, state, x, { loss, lr: 3e-4, beta: 1, freeBits: 0, seed: 1, step: step++ })
      );
      await readAll([value]);
      value.dispose();
      const report = await stopProfile();
      console.error(`${name}\n${formatProfile(report, 25, ceiling)}\n`);
      const rows = report.rows.map((r) => ({
        ...r,
        ...(r.gflops === undefined ? {} : { ofFmaPeak: +(r.gflops / ceiling.gflops).toFixed(3) }),
        ...(r.gbps === undefined ? {} : { ofStream: +(r.gbps / ceiling.gbps).toFixed(3) }),
      }));
      emit({ name: `${name}-profile`, preset, shape: { batch: 128 }, ...report, rows, ceiling });
    }
    dispose([hvae, state.m, state.v, x]);
  }
}

await sync();
