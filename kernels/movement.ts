/**
 * Movement ops: reshape (a view, no copy), permute, broadcastTo, slice, pad, concat, and fill.
 *
 * All copies go through one strided-copy kernel: for every index c of an iteration shape,
 *   dst[dstOffset + sum_d c_d * dstStride_d] = src[srcOffset + sum_d c_d * srcStride_d].
 * permute reads with permuted strides, broadcastTo with zero strides, slice with an offset; pad fills
 * and copies into the interior; concat copies each part into its slab. It moves 32-bit words, so it
 * serves f32 and u32 alike.
 */

import { elementwiseGrid, elementwiseMain, launch } from "./launch.ts";
import type { KernelSpec } from "./runtime/program.ts";
import { stridedOffsets } from "./binary.ts";
import {
  broadcastShapes,
  broadcastStrides,
  checkShape,
  type Shape,
  shapeString,
  sizeOf,
  stridesOf,
} from "./shape.ts";
import { emptyTensor, type Tensor, viewOf } from "./tensor.ts";

/** Elements of the innermost axis one copy thread moves (its index math is paid once per run). */
const COPY_RUN = 16;

/**
 * The strided copy. Each thread moves a run of up to COPY_RUN elements along the innermost axis
 * (strides SIn, DIn) of one position of the outer axes (`shape`, strides SStr and DStr, rank
 * `rank`). Why runs: unravelling an index costs a division and a modulo per axis, which a CPU
 * adapter executes lane by lane; once per run instead of per element, the copy of the nearest
 * upsampling's broadcast (128 x 14 x 2 x 14 x 2 x 16) took ~10x less time on llvmpipe.
 */
const COPY: KernelSpec = {
  key: "copy-strided",
  uniforms: [
    ["n", "u32"],
    ["rank", "u32"],
    ["srcOff", "u32"],
    ["dstOff", "u32"],
    ["inner", "u32"],
    ["runs", "u32"],
    ["SIn", "u32"],
    ["DIn", "u32"],
    ["shape", "u32x8"],
    ["SStr", "u32x8"],
    ["DStr", "u32x8"],
  ],
  inputs: [["Src", "u32"]],
  outputs: [["Dst", "u32"]],
  body: `
${elementwiseMain()}
  let outer = i / P.runs;
  let first = (i % P.runs) * ${COPY_RUN}u;
${stridedOffsets(["S", "D"], "outer")}
  let s = P.srcOff + off_S;
  let d = P.dstOff + off_D;
  let last = min(P.inner, first + ${COPY_RUN}u);
  for (var j = first; j < last; j++) {
    Dst[d + j * P.DIn] = Src[s + j * P.SIn];
  }
}
`,
};

/**
 * The same copy over fewer axes: axes of size 1 dropped, and each axis merged into the next where
 * both operands step through them as one (stride[d] = stride[d + 1] * shape[d + 1] on both sides).
 * A contiguous copy becomes one axis; a broadcast of [B, 1] to [B, N] stays two.
 */
function collapseAxes(
  shape: Shape,
  srcStrides: readonly number[],
  dstStrides: readonly number[],
): { shape: number[]; src: number[]; dst: number[] } {
  const out = { shape: [] as number[], src: [] as number[], dst: [] as number[] };
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const k = out.shape.length - 1;
    if (
      k >= 0 && out.src[k] === srcStrides[d] * shape[d] && out.dst[k] === dstStrides[d] * shape[d]
    ) {
      out.shape[k] *= shape[d];
      out.src[k] = srcStrides[d];
      out.dst[k] = dstStrides[d];
    } else {
      out.shape.push(shape[d]);
      out.src.push(srcStrides[d]);
      out.dst.push(dstStrides[d]);
    }
  }
  if (out.shape.length === 0) return { shape: [1], src: [0], dst: [0] };
  return out;
}

const FILL: KernelSpec = {
  key: "fill",
  uniforms: [["n", "u32"], ["bits", "u32"]],
  inputs: [],
  // Four words per thread (kernels/launch.ts says why).
  outputs: [["Dst", "vec4<u32>"]],
  body: `
${elementwiseMain(4)}
  Dst[i] = vec4<u32>(P.bits);
}
`,
};

/** @internal Records one strided copy from `src` into the existing tensor `dst`. */
export function copyStrided(
  src: Tensor,
  srcOffset: number,
  srcStrides: readonly number[],
  shape: Shape,
  dst: Tensor,
  dstOffset: number,
  dstStrides: readonly number[],
  label = "copy",
): void {
  if (sizeOf(shape) === 0) return;
  const axes = collapseAxes(shape, srcStrides, dstStrides);
  const rank = axes.shape.length - 1;
  const inner = axes.shape[rank];
  const runs = Math.ceil(inner / COPY_RUN);
  const n = sizeOf(axes.shape.slice(0, rank)) * runs;
  launch(
    COPY,
    [src],
    [dst],
    {
      n,
      rank,
      srcOff: srcOffset,
      dstOff: dstOffset,
      inner,
      runs,
      SIn: axes.src[rank],
      DIn: axes.dst[rank],
      shape: axes.shape.slice(0, rank),
      SStr: axes.src.slice(0, rank),
      DStr: axes.dst.slice(0, rank),
    },
    elementwiseGrid(n),
    label,
  );
}

const word = new DataView(new ArrayBuffer(4));
/** The 32-bit pattern of `value` stored as `dtype`. */
function bitsOf(value: number, dtype: "f32" | "u32"): number {
  if (dtype === "u32") return value >>> 0;
  word.setFloat32(0, value, true);
  return word.getUint32(0, true);
}

/** A tensor of `shape` filled with `value` (no upload: a GPU fill). */
export function full(shape: Shape, value: number, dtype: "f32" | "u32" = "f32"): Tensor {
  const out = emptyTensor(shape, dtype, "full");
  fillInto(out, value);
  return out;
}

/** @internal Overwrites every element of a freshly created tensor with `value`. */
export function fillInto(out: Tensor, value: number): void {
  launch(
    FILL,
    [],
    [out],
    { n: out.size, bits: bitsOf(value, out.dtype) },
    elementwiseGrid(out.size, 4),
    "fill",
  );
}

/** Same data, new shape (one dimension may be -1). Shares storage: no copy. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const known = shape.filter((d) => d !== -1);
  const holes = shape.length - known.length;
  if (holes > 1) throw new Error(`reshape: more than one -1 in ${shapeString(shape)}`);
  const resolved = [...shape];
  if (holes === 1) {
    const rest = sizeOf(known);
    if (rest === 0 || x.size % rest !== 0) {
      throw new Error(`reshape: cannot infer -1 reshaping ${x} to ${shapeString(shape)}`);
    }
    resolved[shape.indexOf(-1)] = x.size / rest;
  }
  checkShape(resolved, "reshape");
  if (sizeOf(resolved) !== x.size) {
    throw new Error(
      `reshape: ${x} has ${x.size} elements, shape ${shapeString(shape)} needs ${sizeOf(resolved)}`,
    );
  }
  return viewOf(x, resolved);
}

/** Reorders axes: out.shape[i] = x.shape[perm[i]]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const rank = x.rank;
  const seen = new Set(perm);
  if (
    perm.length !== rank || seen.size !== rank || perm.some((p) => !Number.isInteger(p) || p < 0 || p >= rank)
  ) {
    throw new Error(`permute: ${JSON.stringify(perm)} is not a permutation of the ${rank} axes of ${x}`);
  }
  const inStrides = stridesOf(x.shape);
  const shape = perm.map((p) => x.shape[p]);
  const out = emptyTensor(shape, x.dtype, "permute");
  copyStrided(x, 0, perm.map((p) => inStrides[p]), shape, out, 0, stridesOf(shape), "permute");
  return out;
}

/** Materialises x broadcast to `shape` (NumPy rules). */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  checkShape(shape, "broadcastTo");
  const result = broadcastShapes("broadcastTo", x.shape, shape);
  if (result.length !== shape.length || result.some((d, i) => d !== shape[i])) {
    throw new Error(`broadcastTo: ${x} cannot be broadcast to ${shapeString(shape)}`);
  }
  const out = emptyTensor(shape, x.dtype, "broadcastTo");
  copyStrided(x, 0, broadcastStrides(x.shape, shape), shape, out, 0, stridesOf(shape), "broadcastTo");
  return out;
}

/** Resolves begin/end per axis (negative counts from the end; end defaults to the axis size). */
export function resolveSlice(
  x: Tensor,
  begin: readonly number[],
  end?: readonly (number | undefined)[],
): { start: number[]; shape: number[] } {
  if (begin.length > x.rank || (end && end.length > x.rank)) {
    throw new Error(`slice: begin/end longer than the rank of ${x}`);
  }
  const start: number[] = [];
  const shape: number[] = [];
  for (let d = 0; d < x.rank; d++) {
    const size = x.shape[d];
    let b = begin[d] ?? 0;
    let e = end?.[d] ?? size;
    if (b < 0) b += size;
    if (e < 0) e += size;
    if (!Number.isInteger(b) || !Number.isInteger(e) || b < 0 || e > size || b > e) {
      throw new Error(`slice: axis ${d} range [${begin[d]}, ${end?.[d]}) is invalid for ${x}`);
    }
    start.push(b);
    shape.push(e - b);
  }
  return { start, shape };
}

/** x[begin[0]:end[0], begin[1]:end[1], ...] (step 1). */
export function slice(x: Tensor, begin: readonly number[], end?: readonly (number | undefined)[]): Tensor {
  const { start, shape } = resolveSlice(x, begin, end);
  const strides = stridesOf(x.shape);
  const offset = start.reduce((acc, s, d) => acc + s * strides[d], 0);
  const out = emptyTensor(shape, x.dtype, "slice");
  copyStrided(x, offset, strides, shape, out, 0, stridesOf(shape), "slice");
  return out;
}

/** Pads each axis with `pads[d] = [before, after]` elements of `value`. */
export function pad(x: Tensor, pads: readonly (readonly [number, number])[], value = 0): Tensor {
  if (
    pads.length !== x.rank ||
    pads.some(([a, b]) => !Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b < 0)
  ) {
    throw new Error(
      `pad: ${JSON.stringify(pads)} must give non-negative [before, after] for each axis of ${x}`,
    );
  }
  const shape = x.shape.map((d, i) => d + pads[i][0] + pads[i][1]);
  const out = emptyTensor(shape, x.dtype, "pad");
  fillInto(out, value);
  const outStrides = stridesOf(shape);
  const offset = pads.reduce((acc, [before], d) => acc + before * outStrides[d], 0);
  copyStrided(x, 0, stridesOf(x.shape), x.shape, out, offset, outStrides, "pad");
  return out;
}

/** Joins tensors along `axis`; all other axes must match. */
export function concat(parts: readonly Tensor[], axis: number): Tensor {
  if (parts.length === 0) throw new Error("concat: no tensors given");
  const rank = parts[0].rank;
  const ax = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(ax) || ax < 0 || ax >= rank) {
    throw new Error(`concat: axis ${axis} out of range for rank ${rank}`);
  }
  for (const p of parts) {
    if (
      p.rank !== rank || p.dtype !== parts[0].dtype ||
      p.shape.some((d, i) => i !== ax && d !== parts[0].shape[i])
    ) {
      throw new Error(`concat: ${parts.join(", ")} do not match outside axis ${ax}`);
    }
  }
  const shape = [...parts[0].shape];
  shape[ax] = parts.reduce((acc, p) => acc + p.shape[ax], 0);
  const out = emptyTensor(shape, parts[0].dtype, "concat");
  const outStrides = stridesOf(shape);
  let at = 0;
  for (const p of parts) {
    copyStrided(p, 0, stridesOf(p.shape), p.shape, out, at * outStrides[ax], outStrides, "concat");
    at += p.shape[ax];
  }
  return out;
}
