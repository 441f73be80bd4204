/**
 * Weight normalisation (Salimans & Kingma, 2016): w = g * v / ||v||, one norm per output unit.
 *
 * Output units are one axis of v: the last for HWIO filters [kh, kw, Ci, Co] and dense weights [in, out],
 * axis 2 for transposed-conv filters [kh, kw, Co, Ci]. v is read as [R, C, I] (the axes before, the unit
 * axis, the axes after) and each thread owns one unit c, the R x I values v[r, c, i]. For w = g v / n
 * with n = ||v||:
 *   dL/dg = <dw, v> / n
 *   dL/dv = (g / n) (dw - v <dw, v> / n^2)
 * computed in one backward kernel with two outputs. The norm is floored at 1e-20 so an all-zero
 * column gives w = 0, not NaN.
 */

import { wgsl } from "wgsl-preprocessor";
import { grid, GRID_BUILTINS, GROUP_INDEX, launch } from "./launch.ts";
import { type KernelBody, memoSpec } from "./runtime/program.ts";
import { shapeString } from "./shape.ts";
import { emptyTensor, type Tensor } from "./tensor.ts";

const WORKGROUP = 64;

function weightNormSpec({ backward }: { backward: boolean }): KernelBody {
  return {
    uniforms: [["R", "u32"], ["C", "u32"], ["I", "u32"]],
    inputs: backward ? [["V", "f32"], ["Gain", "f32"], ["DW", "f32"]] : [["V", "f32"], ["Gain", "f32"]],
    outputs: backward ? [["DV", "f32"], ["DG", "f32"]] : [["Out", "f32"]],
    body: wgsl`
@compute @workgroup_size(${WORKGROUP})
fn main(${GRID_BUILTINS}) {
  let c = ${GROUP_INDEX} * ${WORKGROUP}u + lid;
  if (c >= P.C) { return; }
  var sq = 0.0;
#if ${backward}
  var dot = 0.0;
  for (var r = 0u; r < P.R; r++) {
    for (var i = 0u; i < P.I; i++) {
      let at = (r * P.C + c) * P.I + i;
      sq += V[at] * V[at];
      dot += V[at] * DW[at];
    }
  }
  let norm = max(sqrt(sq), 1e-20);
  DG[c] = dot / norm;
  let scale = Gain[c] / norm;
  let proj = dot / (norm * norm);
  for (var r = 0u; r < P.R; r++) {
    for (var i = 0u; i < P.I; i++) {
      let at = (r * P.C + c) * P.I + i;
      DV[at] = scale * (DW[at] - V[at] * proj);
    }
  }
#else
  for (var r = 0u; r < P.R; r++) {
    for (var i = 0u; i < P.I; i++) {
      let at = (r * P.C + c) * P.I + i;
      sq += V[at] * V[at];
    }
  }
  let scale = Gain[c] / max(sqrt(sq), 1e-20);
  for (var r = 0u; r < P.R; r++) {
    for (var i = 0u; i < P.I; i++) {
      let at = (r * P.C + c) * P.I + i;
      Out[at] = V[at] * scale;
    }
  }
#endif
}
`,
  };
}

const spec = (backward: boolean) => memoSpec("weightnorm", { backward }, weightNormSpec);

/** Checks v and g [C] for the unit axis `axis` of v (negative counts from the end); returns (R, C, I). */
export function weightNormShape(v: Tensor, g: Tensor, axis = -1): [number, number, number] {
  const a = axis < 0 ? v.rank + axis : axis;
  if (v.rank < 1 || a < 0 || a >= v.rank || !Number.isInteger(a)) {
    throw new Error(`weightNorm: unit axis ${axis} is not an axis of weights ${shapeString(v.shape)}`);
  }
  const C = v.shape[a];
  if (g.rank !== 1 || g.shape[0] !== C) {
    throw new Error(
      `weightNorm: gains ${shapeString(g.shape)} must be [${C}] for weights ${
        shapeString(v.shape)
      } (unit axis ${a})`,
    );
  }
  const R = v.shape.slice(0, a).reduce((n, d) => n * d, 1);
  return [R, C, v.size / Math.max(R * C, 1)];
}

/** w = g * v / ||v||, one norm per index of the unit axis (over all the other axes). */
export function weightNormForward(v: Tensor, g: Tensor, axis = -1): Tensor {
  const [R, C, I] = weightNormShape(v, g, axis);
  const w = emptyTensor(v.shape, "f32", "weightNorm");
  launch(spec(false), [v, g], [w], { R, C, I }, grid(Math.ceil(C / WORKGROUP)), "weightNorm");
  return w;
}

/** [dv, dg] from the cotangent dw of w. */
export function weightNormBackward(v: Tensor, g: Tensor, dw: Tensor, axis = -1): [Tensor, Tensor] {
  const [R, C, I] = weightNormShape(v, g, axis);
  const dv = emptyTensor(v.shape, "f32", "weightNorm-vjp");
  const dg = emptyTensor([C], "f32", "weightNorm-vjp");
  launch(spec(true), [v, g, dw], [dv, dg], { R, C, I }, grid(Math.ceil(C / WORKGROUP)), "weightNorm-vjp");
  return [dv, dg];
}
