/**
 * The ceiling of an adapter: the most arithmetic and the most memory traffic its kernels can do,
 * measured by two WGSL kernels that do nothing else. Every other kernel's speed reads as a fraction
 * of these (the profiler's `%FMA` and `%BW` columns, kernels/runtime/profiler.ts), the way a roofline model
 * (Williams, Waterman and Patterson, "Roofline", CACM 2009) bounds a kernel by compute and bandwidth.
 *
 *   FMA peak     every thread runs `FMA_CHAINS` independent vec4 multiply-add chains in registers
 *                for `iters` steps and writes one vec4: no loads in the loop, enough independent
 *                chains to hide the FMA latency, so the time is the adapter's arithmetic throughput.
 *   Stream       every thread sums `STREAM_VEC4_PER_THREAD` vec4 loads, thread i reading vec4
 *                i + k * threads (consecutive threads, consecutive addresses, as an elementwise
 *                kernel reads), and writes one vec4; from a 64 MiB buffer (larger than a CPU's
 *                caches) and from the first 8 MiB of it (cache-resident, as a model's activations
 *                often are), the faster counting. Four loads per thread: on Zen 5
 *                (docs/design.md section 8.1, `deno task bench`) 1, 4, 16 and 64 gave 3.7, 7.9,
 *                4.9 and 1.8 GB/s from 64 MiB (more streams than the prefetchers follow).
 *
 * On a CPU adapter (llvmpipe) an invocation is one SIMD lane, so the FMA peak is what the JIT makes
 * of lane-parallel code (the CPU's nominal peak, `nominalCpuPeak`, is the bound it approaches), and
 * the stream figure includes the per-lane address arithmetic every storage load pays there.
 */

import { elementwiseGrid, elementwiseMain, launch } from "./launch.ts";
import { type KernelBody, memoSpec } from "./runtime/program.ts";
import { emptyTensor, readAll, type Tensor } from "./tensor.ts";

/** Independent vec4 accumulators per thread in the FMA kernel. */
export const FMA_CHAINS = 8;
/** vec4 loads per thread in the stream kernel. */
export const STREAM_VEC4_PER_THREAD = 4;
/** Threads of the FMA kernel: enough to fill two CPU cores many times over and a GPU's SMs. */
const THREADS = 65536;
/** Threads of the stream kernel: 64 MiB of vec4s, `STREAM_VEC4_PER_THREAD` each. */
const STREAM_THREADS = (64 << 20) / 16 / STREAM_VEC4_PER_THREAD;

/** Pipeline keys, one place each (spec and cache agree). */

function fmaSpec(): KernelBody {
  const chains = Array.from({ length: FMA_CHAINS }, (_, c) => c);
  return {
    uniforms: [["n", "u32"], ["iters", "u32"], ["scale", "f32"], ["shift", "f32"]],
    inputs: [],
    outputs: [["Out", "vec4<f32>"]],
    body: `
${elementwiseMain()}
  // Values from the thread index and the uniforms, so the compiler can fold nothing.
  let m = vec4<f32>(P.scale);
  let c = vec4<f32>(P.shift);
  ${chains.map((j) => `var a${j} = vec4<f32>(f32(i + ${j}u) * 1e-6);`).join(" ")}
  for (var k = 0u; k < P.iters; k++) {
    ${chains.map((j) => `a${j} = fma(a${j}, m, c);`).join(" ")}
  }
  Out[i] = ${chains.map((j) => `a${j}`).join(" + ")};
}
`,
  };
}

function streamSpec(): KernelBody {
  return {
    uniforms: [["n", "u32"]],
    inputs: [["Src", "vec4<f32>"]],
    outputs: [["Out", "vec4<f32>"]],
    body: `
${elementwiseMain()}
  var s = vec4<f32>(0.0);
  ${Array.from({ length: STREAM_VEC4_PER_THREAD }, (_, k) => `s += Src[i + ${k}u * P.n];`).join(" ")}
  Out[i] = s;
}
`,
  };
}

const fma = () => memoSpec("ceiling-fma", { chains: FMA_CHAINS }, fmaSpec);
const stream = () => memoSpec("ceiling-stream", { vec4PerThread: STREAM_VEC4_PER_THREAD }, streamSpec);

/**
 * Records the FMA kernel on `threads` threads into `out` ([threads * 4]): thread i's vec4 is the sum
 * over chains j of a_j after `iters` steps of a_j <- a_j * scale + shift from a_j = (i + j) * 1e-6.
 */
export function fmaChains(out: Tensor, threads: number, iters: number, scale: number, shift: number): void {
  launch(
    fma(),
    [],
    [out],
    { n: threads, iters, scale, shift },
    elementwiseGrid(threads),
    "ceiling-fma",
    fmaFlops(iters, threads),
  );
}

/**
 * Records the stream kernel on `threads` threads: out vec4 i = sum over k < `STREAM_VEC4_PER_THREAD`
 * of src vec4 i + k * threads.
 */
export function streamSum(src: Tensor, out: Tensor, threads: number): void {
  launch(stream(), [src], [out], { n: threads }, elementwiseGrid(threads), "ceiling-stream");
}

/** The adapter's measured ceiling. */
export interface Ceiling {
  /** Multiply-adds x 2 per second, in GFLOP/s, of the FMA kernel. */
  gflops: number;
  /** Bytes read and written per second, in GB/s, of the stream kernel. */
  gbps: number;
}

/** FLOPs of one FMA dispatch of `iters` steps. */
const fmaFlops = (iters: number, threads = THREADS) => threads * iters * FMA_CHAINS * 4 * 2;
/** Bytes of one stream dispatch. */
const streamBytes = (threads: number) => threads * (STREAM_VEC4_PER_THREAD + 1) * 16;

/**
 * Times `record` (which records `reps` dispatches) with one readback of `out`, doubling `reps` until
 * a run takes at least `minMs`, so the readback's fixed cost stays a small part; returns ms per rep
 * (the best of `runs` runs at that size).
 */
async function timeDispatches(
  record: (reps: number) => void,
  out: Tensor,
  minMs: number,
  runs: number,
): Promise<number> {
  const run = async (reps: number) => {
    const t0 = performance.now();
    record(reps);
    await readAll([out]);
    return performance.now() - t0;
  };
  await run(1); // compiles the pipeline
  let reps = 1;
  let ms = await run(reps);
  while (ms < minMs && reps < 1 << 16) {
    reps *= 2;
    ms = await run(reps);
  }
  let best = ms;
  for (let r = 1; r < runs; r++) best = Math.min(best, await run(reps));
  return best / reps;
}

/**
 * Measures the ceiling of the current adapter (about `(runs + 2) * minMs` ms per kernel). The best
 * of `runs` runs counts: a ceiling is what the adapter can do, and on a shared machine noise only
 * ever lowers it (on Zen 5, docs/design.md section 8.1, `deno task bench`, single runs of the FMA kernel
 * ranged 37-58 GFLOP/s).
 */
export async function measureCeiling(options: { minMs?: number; runs?: number } = {}): Promise<Ceiling> {
  const minMs = options.minMs ?? 200;
  const runs = options.runs ?? 5;
  const out = emptyTensor([STREAM_THREADS * 4], "f32", "ceiling");
  const src = emptyTensor([STREAM_THREADS * STREAM_VEC4_PER_THREAD * 4], "f32", "ceiling");
  try {
    // Fill the source once so the stream kernel reads real pages, not never-touched ones.
    fmaChains(src, src.size / 4, 1, 0.5, 0.25);
    const iters = 256;
    const fmaMs = await timeDispatches(
      (reps) => {
        for (let r = 0; r < reps; r++) fmaChains(out, THREADS, iters, 0.999, 1e-3);
      },
      out,
      minMs,
      runs,
    );
    let gbps = 0;
    for (const threads of [STREAM_THREADS, STREAM_THREADS / 8]) {
      const ms = await timeDispatches(
        (reps) => {
          for (let r = 0; r < reps; r++) streamSum(src, out, threads);
        },
        out,
        minMs,
        runs,
      );
      gbps = Math.max(gbps, streamBytes(threads) / ms / 1e6);
    }
    return { gflops: fmaFlops(iters) / fmaMs / 1e6, gbps };
  } finally {
    out.dispose();
    src.dispose();
  }
}

/**
 * The CPU's nominal float32 peak in GFLOP/s, for a CPU adapter: cores x FMA pipes x lanes x 2 x GHz.
 * `lanes` is the SIMD width the adapter compiles to (llvmpipe names it: "256 bits" = 8 floats), not
 * the CPU's widest, since that is the most the adapter's code can use; two FMA pipes per core (AMD
 * Zen 2-5, Intel since Haswell). Null when a figure is unknown.
 */
export function nominalCpuPeak(cores: number, ghz: number | null, adapterBits: number | null): number | null {
  if (!ghz || !adapterBits || !cores) return null;
  return cores * 2 * (adapterBits / 32) * 2 * ghz;
}
