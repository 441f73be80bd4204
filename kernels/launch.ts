/**
 * The one path from an op to the GPU: compile (cached) the kernel variant, bind the tensors'
 * buffers, and record the dispatch. Also the grid helpers every elementwise kernel shares.
 */

import { compile, type KernelSpec, type UniformValues } from "./runtime/program.ts";
import { getRecorder } from "./runtime/recorder.ts";
import { gpu } from "./runtime/device.ts";
import { isDryRun, type Tensor } from "./tensor.ts";

/**
 * Records `spec` reading `inputs` and writing `outputs`. `flops` (2 per multiply-add) is the useful
 * work, for the profiler's GFLOP/s column (kernels/runtime/profiler.ts); bytes are counted here.
 */
export function launch(
  spec: KernelSpec,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  uniforms: UniformValues,
  workgroups: readonly [number, number?, number?],
  label = spec.key,
  flops?: number,
): void {
  if (workgroups.some((w) => w === 0) || isDryRun()) return;
  const kernel = compile(spec);
  const buffers = [...inputs.map((t) => t.buffer), ...outputs.map((t) => t.buffer)];
  const recorder = getRecorder();
  const work = recorder.profiler
    ? { flops, bytes: [...inputs, ...outputs].reduce((a, t) => a + 4 * t.size, 0) }
    : undefined;
  recorder.dispatch(kernel, buffers, uniforms, workgroups, label, work);
}

/**
 * A 2-D grid of `groups` workgroups that respects the per-dimension limit (65535 on most GPUs).
 * Kernels recover the linear group index with `GROUP_INDEX` below.
 */
export function grid(groups: number): [number, number] {
  const max = gpu().maxWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y];
}

/** Threads per workgroup of the one-thread-per-element kernels. */
export const ELEMENTWISE_WORKGROUP = 256;

/**
 * Elements per thread of an elementwise kernel: 4 (one vec4) where every operand is contiguous in
 * the output's order, else 1. Why: llvmpipe turns every storage-buffer load of a SIMD row of
 * threads into a gather, one per f32; with vec4 elements the same bytes take a quarter of the loads.
 * Measured on Zen 5 (docs/design.md section 8.1, `deno task bench`, 401K elements): relu 1.98 ms with
 * f32 threads, 0.29 ms with vec4; SiLU 2.08 ms and 0.99 ms. Buffers come in 256-byte size classes
 * (kernels/runtime/pool.ts), so the last vec4 of a tensor whose size is not a multiple of 4 lies inside its buffer: the kernel
 * computes and stores those 0-3 padding elements too, and nothing ever reads them.
 */
export type ElementsPerThread = 1 | 4;

/** The WGSL element type of a kernel with `per` elements per thread. */
export function elementType(per: ElementsPerThread): "f32" | "vec4<f32>" {
  return per === 4 ? "vec4<f32>" : "f32";
}

/** The grid for `n` elements, `per` to a thread. */
export function elementwiseGrid(
  n: number,
  per: ElementsPerThread = 1,
  size = ELEMENTWISE_WORKGROUP,
): [number, number] {
  return grid(Math.ceil(n / per / size));
}

/**
 * WGSL: the opening of an elementwise entry point: `i` is the index of the thread's element (or of
 * its vec4 of elements), and threads past the `P.n` elements return. The caller writes the rest of
 * the body and the closing brace.
 */
export function elementwiseMain(per: ElementsPerThread = 1, size = ELEMENTWISE_WORKGROUP): string {
  return `@compute @workgroup_size(${size})
fn main(${GRID_BUILTINS}) {
  let i = ${GROUP_INDEX} * ${size}u + lid;
  if (i >= ${per === 4 ? "(P.n + 3u) / 4u" : "P.n"}) { return; }`;
}

/** WGSL: the linear workgroup index for a `grid()` launch. Needs `wid` and `nwg` builtins in scope. */
export const GROUP_INDEX = "(wid.x + wid.y * nwg.x)";

/** WGSL entry-point parameters that `GROUP_INDEX` uses. */
export const GRID_BUILTINS =
  "@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32";
