/**
 * Elementwise binary ops with NumPy broadcasting, comparisons, and the ternary `where`.
 *
 * Variants of one template, chosen per call (pipeline key `binary:<op>:<mode>`):
 *   same     both operands contiguous with the output's shape: no index math, a vec4 per thread;
 *   scalarA  the left operand is a number carried in the uniforms (no upload, no flush); vec4s;
 *   scalarB  the right operand is a number; vec4s;
 *   bcast    general broadcasting: the output index is unravelled and dotted with each operand's
 *            strides, which are 0 along broadcast axes; one f32 per thread.
 * Expressions are written for the element type `T` (f32 or vec4<f32>; kernels/launch.ts).
 * Comparisons return 1.0 / 0.0 in f32 (masks multiply straight into other f32 math).
 */

import { wgsl } from "wgsl-preprocessor";
import { elementType, elementwiseGrid, elementwiseMain, launch } from "./launch.ts";
import { type KernelBody, memoSpec } from "./runtime/program.ts";
import { broadcastShapes, broadcastStrides, sameShape, type Shape, sizeOf } from "./shape.ts";
import { emptyTensor, Tensor } from "./tensor.ts";

export const BINARY = {
  add: "a + b",
  sub: "a - b",
  mul: "a * b",
  div: "a / b",
  maximum: "max(a, b)",
  minimum: "min(a, b)",
  greater: "select(T(0.0), T(1.0), a > b)",
  greaterEqual: "select(T(0.0), T(1.0), a >= b)",
  less: "select(T(0.0), T(1.0), a < b)",
  lessEqual: "select(T(0.0), T(1.0), a <= b)",
  equal: "select(T(0.0), T(1.0), a == b)",
  notEqual: "select(T(0.0), T(1.0), a != b)",
} as const;

export type BinaryOp = keyof typeof BINARY;
type Mode = "same" | "scalarA" | "scalarB" | "bcast";

/**
 * WGSL statements that unravel the linear index `i` (or `index`) over the uniform shape `shape` (rank `rank`)
 * and accumulate one offset per operand from its `<name>Str` strides into `off_<name>`.
 */
export function stridedOffsets(operands: readonly string[], index = "i"): string {
  const decl = operands.map((o) => `  var off_${o} = 0u;`).join("\n");
  const acc = operands.map((o) => `    off_${o} += c * ${o}Str_at(d);`).join("\n");
  return `${decl}
  var rem = ${index};
  for (var k = 0u; k < P.rank; k++) {
    let d = P.rank - 1u - k;
    let dim = shape_at(d);
    let c = rem % dim;
    rem = rem / dim;
${acc}
  }`;
}

function binarySpec({ op, mode }: { op: BinaryOp; mode: Mode }): KernelBody {
  const bcast = mode === "bcast";
  const per = bcast ? 1 : 4;
  const T = elementType(per);
  return {
    uniforms: [
      ["n", "u32"],
      ["s", "f32"],
      ["rank", "u32"],
      ["shape", "u32x8"],
      ["AStr", "u32x8"],
      ["BStr", "u32x8"],
    ],
    inputs: mode === "scalarA" ? [["B", T]] : mode === "scalarB" ? [["A", T]] : [["A", T], ["B", T]],
    outputs: [["Out", T]],
    body: wgsl`alias T = ${T};
${elementwiseMain(per)}
#if ${bcast}
${bcast ? stridedOffsets(["A", "B"]) : ""}
  let a = A[off_A];
  let b = B[off_B];
#elif ${mode === "scalarA"}
  let a = T(P.s);
  let b = B[i];
#elif ${mode === "scalarB"}
  let a = A[i];
  let b = T(P.s);
#else
  let a = A[i];
  let b = B[i];
#endif
  Out[i] = ${BINARY[op]};
}
`,
  };
}

function checkF32(op: string, t: Tensor): void {
  if (t.dtype !== "f32") throw new Error(`${op}: expected f32 operands, got ${t}`);
}

/** out = a (op) b with broadcasting; either side may be a number. */
export function binary(op: BinaryOp, a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === "number" && typeof b === "number") {
    throw new Error(`${op}: at least one operand must be a tensor`);
  }
  const uniforms = { n: 0, s: 0, rank: 0, shape: [] as number[], AStr: [] as number[], BStr: [] as number[] };
  let mode: Mode;
  let inputs: Tensor[];
  let shape: Shape;
  if (typeof a === "number") {
    checkF32(op, b as Tensor);
    mode = "scalarA";
    uniforms.s = a;
    inputs = [b as Tensor];
    shape = (b as Tensor).shape;
  } else if (typeof b === "number") {
    checkF32(op, a);
    mode = "scalarB";
    uniforms.s = b;
    inputs = [a];
    shape = a.shape;
  } else {
    checkF32(op, a);
    checkF32(op, b);
    inputs = [a, b];
    shape = broadcastShapes(op, a.shape, b.shape);
    if (sameShape(a.shape, shape) && sameShape(b.shape, shape)) mode = "same";
    else {
      mode = "bcast";
      uniforms.rank = shape.length;
      uniforms.shape = [...shape];
      uniforms.AStr = broadcastStrides(a.shape, shape);
      uniforms.BStr = broadcastStrides(b.shape, shape);
    }
  }
  const out = emptyTensor(shape, "f32", op);
  uniforms.n = sizeOf(shape);
  const spec = memoSpec("binary", { op, mode }, binarySpec);
  launch(spec, inputs, [out], uniforms, elementwiseGrid(uniforms.n, mode === "bcast" ? 1 : 4), op);
  return out;
}

function whereSpec({ aScalar, bScalar }: { aScalar: boolean; bScalar: boolean }): KernelBody {
  const inputs: [string, "f32"][] = [["C", "f32"]];
  if (!aScalar) inputs.push(["A", "f32"]);
  if (!bScalar) inputs.push(["B", "f32"]);
  const operands = ["C", ...(aScalar ? [] : ["A"]), ...(bScalar ? [] : ["B"])];
  return {
    uniforms: [
      ["n", "u32"],
      ["sa", "f32"],
      ["sb", "f32"],
      ["rank", "u32"],
      ["shape", "u32x8"],
      ["CStr", "u32x8"],
      ["AStr", "u32x8"],
      ["BStr", "u32x8"],
    ],
    inputs,
    outputs: [["Out", "f32"]],
    body: wgsl`
${elementwiseMain()}
${stridedOffsets(operands)}
#if ${aScalar}
  let a = P.sa;
#else
  let a = A[off_A];
#endif
#if ${bScalar}
  let b = P.sb;
#else
  let b = B[off_B];
#endif
  Out[i] = select(b, a, C[off_C] != 0.0);
}
`,
  };
}

/** out = cond != 0 ? a : b, broadcasting all three; `a` and `b` may be numbers. */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  checkF32("where", cond);
  const shapes: Shape[] = [cond.shape];
  if (a instanceof Tensor) shapes.push(a.shape);
  if (b instanceof Tensor) shapes.push(b.shape);
  const shape = broadcastShapes("where", ...shapes);
  const aScalar = typeof a === "number";
  const bScalar = typeof b === "number";
  const inputs = [cond, ...(aScalar ? [] : [a as Tensor]), ...(bScalar ? [] : [b as Tensor])];
  const out = emptyTensor(shape, "f32", "where");
  const n = sizeOf(shape);
  const spec = memoSpec("where", { aScalar, bScalar }, whereSpec);
  launch(
    spec,
    inputs,
    [out],
    {
      n,
      sa: aScalar ? a : 0,
      sb: bScalar ? b : 0,
      rank: shape.length,
      shape,
      CStr: broadcastStrides(cond.shape, shape),
      AStr: aScalar ? [] : broadcastStrides((a as Tensor).shape, shape),
      BStr: bScalar ? [] : broadcastStrides((b as Tensor).shape, shape),
    },
    elementwiseGrid(n),
    "where",
  );
  return out;
}
