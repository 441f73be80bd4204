/**
 * Average pooling over NHWC windows, and its adjoint.
 *
 *   forward   y[b, oh, ow, c] = (1 / d) sum_{ky, kx in bounds} x[b, oh*sy + ky - top, ow*sx + kx - left, c]
 *   backward  dx[b, ih, iw, c] = sum over the windows that cover (ih, iw) of g[b, oh, ow, c] / d
 * The divisor d is either the window size kh * kw whatever the padding ("window": zero padding
 * counts, as in the reference backbone's residual shortcut, AvgPool k3 s2 with TF-"same" padding and
 * divisor 9), or the number of taps inside the image ("valid"). Geometry and padding rules are the
 * convolution's (kernels/conv.ts), with Ci = Co = channels.
 */

import { wgsl } from "wgsl-preprocessor";
import { type ConvGeometry, GEOMETRY_UNIFORMS } from "./conv_geometry.ts";
import { elementwiseGrid, elementwiseMain, launch } from "./launch.ts";
import { type KernelBody, memoSpec } from "./runtime/program.ts";
import { emptyTensor, type Tensor } from "./tensor.ts";

/**
 * The divisor of an average-pool window: the full window (`window`), or the taps inside the input
 * (`valid`).
 */
export type PoolDivisor = "window" | "valid";

function poolSpec({ backward, divisor }: { backward: boolean; divisor: PoolDivisor }): KernelBody {
  return {
    uniforms: [["n", "u32"], ...GEOMETRY_UNIFORMS],
    inputs: [["X", "f32"]],
    outputs: [["Out", "f32"]],
    body: wgsl`
// The first window (of size k, stride s) that reaches padded position n: oh s + k > n.
fn firstWindow(n: u32, s: u32, k: u32) -> u32 {
  return select(0u, (n - k) / s + 1u, n >= k);
}
// The divisor of the window of output (oh, ow).
fn divisor(oh: u32, ow: u32) -> f32 {
#if ${divisor === "window"}
  return f32(P.kh * P.kw);
#else
  let h0 = i32(oh * P.sy) - i32(P.padT);
  let w0 = i32(ow * P.sx) - i32(P.padL);
  let rows = min(i32(P.H), h0 + i32(P.kh)) - max(0, h0);
  let cols = min(i32(P.W), w0 + i32(P.kw)) - max(0, w0);
  return f32(rows * cols);
#endif
}
${elementwiseMain()}
  let c = i % P.Ci;
  var acc = 0.0;
#if ${backward}
  // X is the output cotangent [B, oH, oW, C]; i runs over the input [B, H, W, C].
  let iw = (i / P.Ci) % P.W;
  let ih = (i / (P.Ci * P.W)) % P.H;
  let b = i / (P.Ci * P.W * P.H);
  // The windows covering (ih, iw): output rows oh with oh sy <= ih + padT < oh sy + kh, i.e. from
  // first(ih + padT, sy, kh) to (ih + padT) / sy (and columns alike): two divisions per axis, not two
  // per tap (integer division runs lane by lane on a CPU adapter).
  let nh = ih + P.padT;
  let nw = iw + P.padL;
  let ohEnd = min(nh / P.sy + 1u, P.oH);
  let owEnd = min(nw / P.sx + 1u, P.oW);
  for (var oh = firstWindow(nh, P.sy, P.kh); oh < ohEnd; oh++) {
    for (var ow = firstWindow(nw, P.sx, P.kw); ow < owEnd; ow++) {
      acc += X[((b * P.oH + oh) * P.oW + ow) * P.Ci + c] / divisor(oh, ow);
    }
  }
#else
  let ow = (i / P.Ci) % P.oW;
  let oh = (i / (P.Ci * P.oW)) % P.oH;
  let b = i / (P.Ci * P.oW * P.oH);
  for (var ky = 0u; ky < P.kh; ky++) {
    let ih = i32(oh * P.sy + ky) - i32(P.padT);
    if (ih < 0 || ih >= i32(P.H)) { continue; }
    for (var kx = 0u; kx < P.kw; kx++) {
      let iw = i32(ow * P.sx + kx) - i32(P.padL);
      if (iw < 0 || iw >= i32(P.W)) { continue; }
      acc += X[((b * P.H + u32(ih)) * P.W + u32(iw)) * P.Ci + c];
    }
  }
  acc = acc / divisor(oh, ow);
#endif
  Out[i] = acc;
}
`,
  };
}

const spec = (backward: boolean, divisor: PoolDivisor) =>
  memoSpec("avgpool", { backward, divisor }, poolSpec);

function uniforms(g: ConvGeometry, n: number): Record<string, number> {
  return { n, ...g };
}

/** y [B, oH, oW, C] = average pool of x [B, H, W, C]. */
export function avgPoolForward(x: Tensor, g: ConvGeometry, divisor: PoolDivisor): Tensor {
  const y = emptyTensor([g.B, g.oH, g.oW, g.Ci], "f32", "avgPool2d");
  launch(spec(false, divisor), [x], [y], uniforms(g, y.size), elementwiseGrid(y.size), "avgPool2d");
  return y;
}

/** dx [B, H, W, C] from the cotangent of the pooled output. */
export function avgPoolBackward(g: Tensor, geometry: ConvGeometry, divisor: PoolDivisor): Tensor {
  const dx = emptyTensor([geometry.B, geometry.H, geometry.W, geometry.Ci], "f32", "avgPool2d-vjp");
  launch(
    spec(true, divisor),
    [g],
    [dx],
    uniforms(geometry, dx.size),
    elementwiseGrid(dx.size),
    "avgPool2d-vjp",
  );
  return dx;
}
