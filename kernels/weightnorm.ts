/**
 * Weight normalisation (Salimans & Kingma, 2016): w = g * v / ||v||, one norm per output unit.
 *
 * Output units are the last axis (HWIO filters [kh, kw, Ci, Co], dense weights [in, out]), so v is
 * read as R rows by C columns and each thread owns a column. For w = g v / n with n = ||v||:
 *   dL/dg = <dw, v> / n
 *   dL/dv = (g / n) (dw - v <dw, v> / n^2)
 * computed in one backward kernel with two outputs. The norm is floored at 1e-20 so an all-zero
 * column gives w = 0, not NaN.
 */

import { wgsl } from "wgsl-preprocessor";
import { grid, GRID_BUILTINS, GROUP_INDEX, launch } from "./launch.ts";
import { type KernelSpec, memoSpec } from "./runtime/program.ts";
import { shapeString } from "./shape.ts";
import { emptyTensor, type Tensor } from "./tensor.ts";

const WORKGROUP = 64;

function weightNormSpec(backward: boolean): KernelSpec {
  return {
    key: `weightnorm:${backward ? "vjp" : "fwd"}`,
    uniforms: [["R", "u32"], ["C", "u32"]],
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
    let v = V[r * P.C + c];
    sq += v * v;
    dot += v * DW[r * P.C + c];
  }
  let norm = max(sqrt(sq), 1e-20);
  DG[c] = dot / norm;
  let scale = Gain[c] / norm;
  let proj = dot / (norm * norm);
  for (var r = 0u; r < P.R; r++) {
    let at = r * P.C + c;
    DV[at] = scale * (DW[at] - V[at] * proj);
  }
#else
  for (var r = 0u; r < P.R; r++) {
    let v = V[r * P.C + c];
    sq += v * v;
  }
  let scale = Gain[c] / max(sqrt(sq), 1e-20);
  for (var r = 0u; r < P.R; r++) {
    Out[r * P.C + c] = V[r * P.C + c] * scale;
  }
#endif
}
`,
  };
}

const spec = (backward: boolean) =>
  memoSpec(`weightnorm:${backward ? "vjp" : "fwd"}`, () => weightNormSpec(backward));

/** Checks v [..., C] and g [C]; returns (R, C). */
export function weightNormShape(v: Tensor, g: Tensor): [number, number] {
  const C = v.shape[v.rank - 1];
  if (v.rank < 1 || g.rank !== 1 || g.shape[0] !== C) {
    throw new Error(
      `weightNorm: gains ${shapeString(g.shape)} must be [${C}] for weights ${shapeString(v.shape)}`,
    );
  }
  return [v.size / Math.max(C, 1), C];
}

/** w = g * v / ||v||, norms over all axes but the last. */
export function weightNormForward(v: Tensor, g: Tensor): Tensor {
  const [R, C] = weightNormShape(v, g);
  const w = emptyTensor(v.shape, "f32", "weightNorm");
  launch(spec(false), [v, g], [w], { R, C }, grid(Math.ceil(C / WORKGROUP)), "weightNorm");
  return w;
}

/** [dv, dg] from the cotangent dw of w. */
export function weightNormBackward(v: Tensor, g: Tensor, dw: Tensor): [Tensor, Tensor] {
  const [R, C] = weightNormShape(v, g);
  const dv = emptyTensor(v.shape, "f32", "weightNorm-vjp");
  const dg = emptyTensor([C], "f32", "weightNorm-vjp");
  launch(spec(true), [v, g, dw], [dv, dg], { R, C }, grid(Math.ceil(C / WORKGROUP)), "weightNorm-vjp");
  return [dv, dg];
}
