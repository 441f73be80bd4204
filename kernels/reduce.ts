/**
 * Reductions (sum, max) over any set of axes, with keepdims, and a scale for means.
 *
 * Every reduction is brought to the canonical form [outer, R, inner] (reduce the middle axis):
 * reduced axes that sit next to each other merge into one block; separate blocks are reduced one
 * pass each, innermost first (no permute). Two variants of one template:
 *   serial  one thread per output, looping over its R elements (many outputs, short rows);
 *   group   one 64-thread workgroup per output, strided partial sums then a tree in workgroup
 *           memory (few outputs, long rows).
 * Where `inner` is a multiple of 4, each thread (or workgroup) takes four neighbouring outputs as
 * one vec4 (`:v4`): a quarter of the loads on a CPU adapter (kernels/launch.ts).
 * Very long rows (R >= 8192) are split into chunks of 2048 reduced by a first pass, then the
 * chunk partials by a second: a full-tensor sum does not serialise on one workgroup.
 */

import { wgsl } from "wgsl-preprocessor";
import { grid, GRID_BUILTINS, GROUP_INDEX, launch } from "./launch.ts";
import { type KernelBody, type KernelSpec, memoSpec } from "./runtime/program.ts";
import { normalizeAxes, sizeOf } from "./shape.ts";
import { emptyTensor, type Tensor, viewOf } from "./tensor.ts";

export type ReduceOp = "sum" | "max";

// max's identity is -inf, built from a uniform (R - R = 0) so that it is not a constant expression:
// Tint (Chrome's WGSL compiler) rejects a constant that evaluates to an infinity, while naga accepts it.
const IDENTITY = { sum: "0.0", max: "bitcast<f32>(0xff800000u + (P.R - P.R))" } as const;
const COMBINE = {
  sum: (a: string, b: string) => `${a} + ${b}`,
  max: (a: string, b: string) => `max(${a}, ${b})`,
};

/** Threads of the `group` variant's workgroup: a power of two for the tree, small enough for any adapter. */
const GROUP = 64;
/** Threads per workgroup of the `serial` variant (one output each). */
const SERIAL_WORKGROUP = 64;
/**
 * Rows of one chunk of a very long reduction. Rows of at least 4 chunks are split: the first pass
 * then has R / 2048 x inner outputs to spread over the adapter (a 4M-element sum: 2048 workgroups),
 * and the second pass reduces rows short enough for one workgroup each.
 */
const CHUNK = 2048;
/**
 * The `group` variant pays a barrier per tree level; it wins when rows are long (>= 256: each of
 * the 64 threads then sums >= 4 elements) and outputs too few (< 8192) for one thread per output to
 * fill the adapter.
 */
const GROUP_MIN_ROW = 256;
const GROUP_MAX_OUTPUTS = 8192;

function reduceSpec({ op, group, vec4 }: { op: ReduceOp; group: boolean; vec4: boolean }): KernelBody {
  const combine = COMBINE[op];
  const T = vec4 ? "vec4<f32>" : "f32";
  return {
    uniforms: [["outer", "u32"], ["R", "u32"], ["inner", "u32"], ["chunk", "u32"], ["chunks", "u32"], [
      "scale",
      "f32",
    ]],
    inputs: [["X", T]],
    outputs: [["Out", T]],
    // With vec4, `inner` counts vec4s: each thread reduces four neighbouring outputs at once.
    body: wgsl`
#if ${group}
var<workgroup> partial: array<${T}, ${GROUP}>;
#endif
@compute @workgroup_size(${group ? GROUP : SERIAL_WORKGROUP})
fn main(${GRID_BUILTINS}) {
#if ${group}
  let o = ${GROUP_INDEX};
#else
  let o = ${GROUP_INDEX} * ${SERIAL_WORKGROUP}u + lid;
#endif
  let total = P.outer * P.chunks * P.inner;
  if (o >= total) { return; }
  let ii = o % P.inner;
  let t = o / P.inner;
  let c = t % P.chunks;
  let oo = t / P.chunks;
  let start = c * P.chunk;
  let stop = min(P.R, start + P.chunk);
  let base = oo * P.R * P.inner + ii;
  var acc = ${T}(${IDENTITY[op]});
#if ${group}
  for (var r = start + lid; r < stop; r += ${GROUP}u) {
    acc = ${combine("acc", "X[base + r * P.inner]")};
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var width = ${GROUP / 2}u; width > 0u; width = width / 2u) {
    if (lid < width) {
      partial[lid] = ${combine("partial[lid]", "partial[lid + width]")};
    }
    workgroupBarrier();
  }
  if (lid == 0u) { Out[o] = partial[0] * P.scale; }
#else
  for (var r = start; r < stop; r++) {
    acc = ${combine("acc", "X[base + r * P.inner]")};
  }
  Out[o] = acc * P.scale;
#endif
}
`,
  };
}

const spec = (op: ReduceOp, group: boolean, vec4: boolean): KernelSpec =>
  memoSpec("reduce", { op, group, vec4 }, reduceSpec);

/** Reduces [outer, R, inner] to [outer, inner] with one or two passes; returns a flat tensor. */
function reduceCanonical(
  op: ReduceOp,
  x: Tensor,
  outer: number,
  R: number,
  inner: number,
  scale: number,
): Tensor {
  const chunks = R >= 4 * CHUNK ? Math.ceil(R / CHUNK) : 1;
  const chunk = chunks > 1 ? CHUNK : Math.max(R, 1);
  const outputs = outer * chunks * inner;
  const out = emptyTensor([outputs], "f32", op);
  // Four neighbouring outputs per thread when rows are whole vec4s (kernels/launch.ts says why).
  const vec4 = inner % 4 === 0;
  const threads = vec4 ? outputs / 4 : outputs;
  const group = chunk >= GROUP_MIN_ROW && threads < GROUP_MAX_OUTPUTS;
  const groups = group ? threads : Math.ceil(threads / SERIAL_WORKGROUP);
  launch(
    spec(op, group, vec4),
    [x],
    [out],
    { outer, R, inner: vec4 ? inner / 4 : inner, chunk, chunks, scale: chunks > 1 ? 1 : scale },
    grid(groups),
    op,
  );
  if (chunks === 1) return out;
  const second = reduceCanonical(op, out, outer, chunks, inner, scale);
  out.dispose();
  return second;
}

/** Reduces `axes` (all when undefined) of x with `op`, multiplying the result by `scale`. */
export function reduce(
  op: ReduceOp,
  x: Tensor,
  axes?: number | readonly number[],
  keepdims = false,
  scale = 1,
): Tensor {
  if (x.dtype !== "f32") throw new Error(`${op}: expected an f32 tensor, got ${x}`);
  const ax = normalizeAxes(axes, x.rank, op);
  const outShape = keepdims
    ? x.shape.map((d, i) => ax.includes(i) ? 1 : d)
    : x.shape.filter((_, i) => !ax.includes(i));
  if (op === "max" && ax.some((a) => x.shape[a] === 0)) {
    throw new Error(`max: cannot reduce an empty axis of ${x}`);
  }
  // Reduced axes that sit next to each other form one block [outer, R, inner]. Several blocks are
  // reduced one after another, innermost first, each pass on the previous one's smaller output:
  // cheaper than permuting them together (which reads and writes all of x once more) and the same
  // for sum and max. The scale applies once, in the last pass.
  const blocks: [number, number][] = [];
  for (const a of ax) {
    const last = blocks[blocks.length - 1];
    if (last && last[1] === a - 1) last[1] = a;
    else blocks.push([a, a]);
  }
  if (blocks.length === 0) blocks.push([x.rank, x.rank - 1]);
  let shape = [...x.shape];
  let flat = x;
  for (let b = blocks.length - 1; b >= 0; b--) {
    const [first, last] = blocks[b];
    const next = reduceCanonical(
      op,
      flat,
      sizeOf(shape.slice(0, first)),
      sizeOf(shape.slice(first, last + 1)),
      sizeOf(shape.slice(last + 1)),
      b === 0 ? scale : 1,
    );
    if (flat !== x) flat.dispose();
    flat = next;
    shape = [...shape.slice(0, first), ...shape.slice(last + 1)];
  }
  // reduceCanonical returns a flat vector: view its storage with the output shape.
  const out = viewOf(flat, outShape);
  flat.dispose();
  return out;
}

/**
 * The sum over `axis` of split-K partial sums (a weight gradient's or a matmul's slices), as a tensor
 * of `shape` (the remaining axes, reshaped); `partial` is disposed.
 */
export function sumSlices(partial: Tensor, axis: number, shape: readonly number[]): Tensor {
  const summed = reduce("sum", partial, axis);
  partial.dispose();
  const out = viewOf(summed, shape);
  summed.dispose();
  return out;
}
