/**
 * 2-D convolution in three directions: forward, input gradient, weight gradient. Transposed
 * convolutions are the same three kernels used the other way round (`conv2dTransposeGeometry`
 * below; the rules in autograd/rules.ts).
 *
 * Layout: activations NHWC, filters HWIO ([kh, kw, Ci, Co]). Why channels-last: the GEMM view of a
 * convolution has K = (ky, kx, ci) and N = co; with NHWC the innermost input index is ci, so the
 * A-operand loads of consecutive k are consecutive in memory, the output [B*oH*oW, Co] is exactly
 * the row-major GEMM result (no transpose), and flattening for a dense layer is free. Channel
 * counts in the model (1, 8, 16, 64) are small, which is where NCHW loses most.
 *
 * Each direction is an implicit GEMM on kernels/gemm.ts (index math in the loads, no im2col buffer):
 *   forward  Y[m = (b, oh, ow), co] = sum_{k = (ky, kx, ci)} X[b, oh*s + ky - pad, ow*s + kx - pad, ci] W[k, co] (+ bias)
 *   dX       dX[m = (b, ih, iw), ci] = sum_{k = (ky, kx, co)} dY[b, (ih + pad - ky)/s, (iw + pad - kx)/s, co] W[ky, kx, ci, co]
 *            (taps where the division is not exact, or out of range, contribute 0; so the pixels are
 *            split by stride phase into s^2 GEMMs that visit only the taps reaching them)
 *   dW       dW[m = (ky, kx, ci), co] = sum_{k = (b, oh, ow)} X[b, oh*s + ky - pad, ...ci] dY[k, co]
 *            K = batch x pixels is huge and M x N small, so it is split over workgroups (split-K)
 *            into partial sums that a reduction adds up: never one thread per weight over the batch.
 * On a CPU adapter at every width (kernels/tuning_choices.ts `SOFTWARE_DIRECT_COLUMNS`), on a GPU up
 * to 32 channels (the `small` preset's 16, the likelihood head's 1), the same three directions run as direct kernels instead: each thread
 * computes a register block (output pixels x channels, or for the weight gradient input x output
 * channels) with no workgroup memory (`directSpec`,
 * `directFilterSpec`). `convPlan` chooses per call among naive, direct and GEMM, with its reasons in
 * one place; the block sizes and the channel count where GEMMs take over are per-adapter choices
 * (kernels/tuning_choices.ts, measured by kernels/tuner.ts). One output channel (the Bernoulli head)
 * goes to the row kernels of kernels/conv_row.ts. The input gradient of a convolution of act(x) can
 * apply act'(x) as it stores each value (`ActivationGrad`; the direct kernels do it in place, the
 * others in a pass after).
 * A naive kernel for each direction (one thread per output element) is kept as an on-GPU oracle:
 * `setConvImplementation("naive")` routes every convolution through it.
 *
 * Shapes, padding rules and validation live in kernels/conv_geometry.ts; only the top/left padding
 * enters the index math here (the output size carries the rest).
 */

import { wgsl } from "wgsl-preprocessor";
import { gemmGrid, gemmSpec, type GemmTiling, tilingFor } from "./gemm.ts";
import { elementwiseGrid, elementwiseMain, launch } from "./launch.ts";
import { reduce, sumSlices } from "./reduce.ts";
import { type KernelBody, memoSpec, type UniformType, type Variant } from "./runtime/program.ts";
import { emptyTensor, type Tensor } from "./tensor.ts";
import { tuning } from "./tuning_choices.ts";
import { gpu } from "./runtime/device.ts";
import { unaryVjp } from "./unary.ts";
import { launchRowForward, launchRowInput, rowFilterAndBias } from "./conv_row.ts";
import { convFlops, type ConvGeometry, GEOMETRY_UNIFORMS } from "./conv_geometry.ts";

/**
 * WGSL shared by every conv kernel, GEMM or naive: the three ways of reading an operand.
 * Bindings X (input), DY (output gradient) and Wt (filter) are whichever a kernel declares.
 */
const inputAt = /* wgsl */ `
// X at the input pixel that output (oh, ow) sees through tap (ky, kx); 0 in the padding.
fn inputAt(b: u32, oh: u32, ow: u32, ky: u32, kx: u32, ci: u32) -> f32 {
  let ih = i32(oh * P.sy + ky) - i32(P.padT);
  let iw = i32(ow * P.sx + kx) - i32(P.padL);
  if (ih < 0 || iw < 0 || ih >= i32(P.H) || iw >= i32(P.W)) { return 0.0; }
  return X[((b * P.H + u32(ih)) * P.W + u32(iw)) * P.Ci + ci];
}`;
const gradOutAt = /* wgsl */ `
// DY at the output pixel that input (ih, iw) feeds through tap (ky, kx); 0 when no output uses it.
fn gradOutAt(b: u32, ih: u32, iw: u32, ky: u32, kx: u32, co: u32) -> f32 {
  let nh = i32(ih + P.padT) - i32(ky);
  let nw = i32(iw + P.padL) - i32(kx);
  if (nh < 0 || nw < 0) { return 0.0; }
  let oh = u32(nh) / P.sy;
  let ow = u32(nw) / P.sx;
  if (oh * P.sy != u32(nh) || ow * P.sx != u32(nw) || oh >= P.oH || ow >= P.oW) { return 0.0; }
  return DY[((b * P.oH + oh) * P.oW + ow) * P.Co + co];
}`;
const weightAt = /* wgsl */ `
fn weightAt(ky: u32, kx: u32, ci: u32, co: u32) -> f32 {
  return Wt[((ky * P.kw + kx) * P.Ci + ci) * P.Co + co];
}`;

/** Splits a flat index into (outer, middle, inner) for row-major sizes (., mid, inner). */
const split3 = /* wgsl */ `
fn split3(i: u32, mid: u32, inner: u32) -> vec3<u32> {
  return vec3<u32>(i / (mid * inner), (i / inner) % mid, i % inner);
}`;

/**
 * Which kernels the convolutions use: "auto" lets `convPlan` choose per call (the default); the
 * others force one family wherever it applies ("direct" and "gemm" fall back to the plan where their
 * kernel cannot serve a shape), so tests can run every variant on the same cases. "naive" is the oracle.
 */
export type ConvImplementation = "auto" | "direct" | "gemm" | "naive";
let implementation: ConvImplementation = "auto";

/** Routes all convolutions through one kernel family (see `ConvImplementation`); returns the previous. */
export function setConvImplementation(which: ConvImplementation): ConvImplementation {
  const previous = implementation;
  implementation = which;
  return previous;
}

// ---------------------------------------------------------------- implicit-GEMM variants

function forwardSpec({ bias, ...tiling }: { bias: boolean } & GemmTiling): KernelBody {
  return gemmSpec({
    tiling,
    uniforms: GEOMETRY_UNIFORMS,
    inputs: bias ? [["X", "f32"], ["Wt", "f32"], ["Bias", "f32"]] : [["X", "f32"], ["Wt", "f32"]],
    outputs: [["Y", "f32"]],
    functions: wgsl`${inputAt}${split3}
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let o = split3(m, P.oH, P.oW);
  let t = split3(k, P.kw, P.Ci);
  return inputAt(o.x, o.y, o.z, t.x, t.y, t.z);
}
fn loadB(z: u32, k: u32, n: u32) -> f32 { return Wt[k * P.Co + n]; }
fn storeC(z: u32, m: u32, n: u32, v: f32) {
#if ${bias}
  Y[m * P.Co + n] = v + Bias[n];
#else
  Y[m * P.Co + n] = v;
#endif
}`,
    aContiguous: "k",
    bContiguous: "n",
  });
}

/**
 * One phase (py, px) of the stride for the input gradient: its input pixels ih0 + sy t (t < Hz) by
 * iw0 + sx u (u < Wz) receive exactly the taps ky = py + sy j (j < Jy), kx = px + sx i (i < Jx).
 */
const PHASE_UNIFORMS: [string, UniformType][] = ["py", "px", "ih0", "iw0", "Hz", "Wz", "Jx"].map((
  n,
) => [n, "u32"]);

/**
 * The input gradient for one phase (py, px) of the stride: the input pixels ih with
 * (ih + padT) mod sy = py, i.e. ih = ih0 + sy * t for t < Hz, receive exactly the taps
 * ky = py + sy * j (j < Jy); other taps would multiply structural zeros. So a stride-s input gradient
 * is s^2 GEMMs with K smaller by about s^2 (the tfjs/XLA trick); stride 1 is the single phase.
 */
function backwardInputSpec({ bias, ...tiling }: { bias: boolean } & GemmTiling): KernelBody {
  return gemmSpec({
    tiling,
    uniforms: [...GEOMETRY_UNIFORMS, ...PHASE_UNIFORMS],
    inputs: bias ? [["DY", "f32"], ["Wt", "f32"], ["Bias", "f32"]] : [["DY", "f32"], ["Wt", "f32"]],
    outputs: [["DX", "f32"]],
    functions: wgsl`${weightAt}${split3}
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let p = split3(m, P.Hz, P.Wz);
  let t = split3(k, P.Jx, P.Co);
  // (ih + padT - ky) is a multiple of the stride by construction of the phase.
  let nh = i32(P.ih0 + p.y * P.sy + P.padT) - i32(P.py + t.x * P.sy);
  let nw = i32(P.iw0 + p.z * P.sx + P.padL) - i32(P.px + t.y * P.sx);
  if (nh < 0 || nw < 0) { return 0.0; }
  let oh = u32(nh) / P.sy;
  let ow = u32(nw) / P.sx;
  if (oh >= P.oH || ow >= P.oW) { return 0.0; }
  return DY[((p.x * P.oH + oh) * P.oW + ow) * P.Co + t.z];
}
fn loadB(z: u32, k: u32, n: u32) -> f32 {
  let t = split3(k, P.Jx, P.Co);
  return weightAt(P.py + t.x * P.sy, P.px + t.y * P.sx, n, t.z);
}
fn storeC(z: u32, m: u32, n: u32, v: f32) {
  let p = split3(m, P.Hz, P.Wz);
  let at = ((p.x * P.H + P.ih0 + p.y * P.sy) * P.W + P.iw0 + p.z * P.sx) * P.Ci + n;
#if ${bias}
  DX[at] = v + Bias[n];
#else
  DX[at] = v;
#endif
}`,
    aContiguous: "k",
    bContiguous: "k",
  });
}

function backwardFilterSpec(tiling: GemmTiling): KernelBody {
  return gemmSpec({
    tiling,
    uniforms: GEOMETRY_UNIFORMS,
    inputs: [["X", "f32"], ["DY", "f32"]],
    outputs: [["Partial", "f32"]],
    functions: `${inputAt}${split3}
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let t = split3(m, P.kw, P.Ci);
  let o = split3(k, P.oH, P.oW);
  return inputAt(o.x, o.y, o.z, t.x, t.y, t.z);
}
fn loadB(z: u32, k: u32, n: u32) -> f32 { return DY[k * P.Co + n]; }
fn storeC(z: u32, m: u32, n: u32, v: f32) { Partial[(z * P.M + m) * P.N + n] = v; }`,
    aContiguous: "m",
    bContiguous: "n",
    splitK: true,
  });
}

// ---------------------------------------------------------------- direct variants

/**
 * Threads per workgroup of the direct kernels on a CPU adapter: two SIMD rows of llvmpipe's 8 lanes. Small, because
 * llvmpipe hands whole workgroups to its threads, so a dispatch of a few hundred threads in
 * 256-thread workgroups leaves a core idle at the end (a 7x7 stage at batch 128 and 8 pixels per
 * thread is 784 threads: 4 workgroups of 256, 49 of 16). Measured on Zen 5 (docs/design.md section
 * 8.1), 16 channels, batch 128, 5-20 calls per run: against 256, the 7x7 k3 forward and input
 * gradient 7% faster, weight gradient 28%; 14x14 weight gradient 10%; 14x14 forward and input
 * gradient unchanged (16, 32 and 64 within 8% of each other). It also keeps the tuner honest: it
 * times at batch 16, where 16 pixels per thread made a single 256-thread workgroup of a 7x7 stage
 * and lost to 8 (91 against 66 ms); with 16-thread workgroups 16 pixels win there too (64 against
 * 73 ms), as they do at batch 128 (`deno task tune --preset small`).
 */
const CPU_DIRECT_WORKGROUP = 16;
/** On a GPU: 256 as before, until a GPU measures otherwise (16 would leave half of a 32-wide warp idle). */
const GPU_DIRECT_WORKGROUP = 256;
/** The direct kernels' workgroup size on this process's adapter (fixed for its life, so not in the key). */
const directWorkgroup = () => gpu().adapter.isFallbackAdapter ? CPU_DIRECT_WORKGROUP : GPU_DIRECT_WORKGROUP;

/** `count` WGSL lines from `line(index)`, joined with `sep`. */
const unroll = (count: number, line: (index: number) => string, sep = "\n  ") =>
  Array.from({ length: count }, (_, index) => line(index)).join(sep);

/**
 * Direct convolution for few channels, forward and input gradient (the same loop read the other
 * way): one thread per `pixels` output pixels and a group of `cols` output channels, looping over the
 * taps and the reduced channels, with no workgroup memory and no barrier. Per reduced channel a
 * thread loads `cols` weights once and uses each for all its pixels: pixels x cols multiply-adds
 * (in as many scalar registers) from cols + pixels loads. Why: on a CPU adapter every load whose
 * address differs between invocations is a per-lane gather, so the multiply-adds per load set the
 * speed; a GEMM tile over N = 16 columns also pays a workgroup barrier per K step, which llvmpipe runs
 * as coroutine switches. Measured on Zen 4 (docs/design.md section 8.1, `deno task bench`), batch
 * 128, 16 -> 16 channels, 14x14, k3 forward: 158-187 ms as a 128x16 GEMM tile; direct with 1 / 2 / 4 / 8 / 16
 * pixels per thread 72 / 38 / 22 / 16 / 14 ms (8.1 GFLOP/s).
 * Pixels a tap misses (padding) read index 0 and are multiplied by 0, so all pixels share one loop.
 * The input gradient of a strided convolution runs once per stride phase (`PHASE_UNIFORMS`): its
 * pixels all receive the same taps, so none is spent on the taps of another phase (3/4 of them at
 * stride 2, as a transposed convolution's forward).
 */
/** A direct forward / input-gradient variant: its parameters, and its key through `memoSpec`. */
interface DirectVariant extends Variant {
  direction: "fwd" | "dx";
  bias: boolean;
  cols: number;
  pixels: number;
  vec4: boolean;
  /** Forward only: input channels one at a time, weights, bias and output as vec4s over Co (`ConvPlan`). */
  wide: boolean;
  /** An activation's derivative at H multiplies each output (`ActivationGrad`), or none. */
  dact: InputActivation | "none";
}

function directSpec({ direction, bias, cols, pixels, vec4, wide, dact }: DirectVariant): KernelBody {
  const fwd = direction === "fwd";
  if (wide && (!fwd || vec4 || cols % 4 !== 0)) {
    throw new Error("conv direct: wide is forward, scalar input, vec4 columns");
  }
  // fwd: outputs co at output pixels (B, oH, oW), reducing ci of X; weights [ky, kx, ci, co].
  // dx: outputs ci at input pixels (B, H, W), reducing co of DY; the same weights.
  const outC = fwd ? "P.Co" : "P.Ci";
  const redC = fwd ? "P.Ci" : "P.Co";
  const src = fwd ? "X" : "DY";
  // T: the output's, weights' and bias's element; the input's is a vec4 only with `vec4`.
  const T = vec4 || wide ? "vec4<f32>" : "f32";
  const In = vec4 ? "vec4<f32>" : "f32";
  const where = (p: number) =>
    fwd
      ? `let ih${p} = i32(q${p}.y * P.sy + ky) - i32(P.padT);
      let iw${p} = i32(q${p}.z * P.sx + kx) - i32(P.padL);
      let ok${p} = ih${p} >= 0 && iw${p} >= 0 && ih${p} < i32(P.H) && iw${p} < i32(P.W);
      let at${p} = ((q${p}.x * P.H + u32(ih${p})) * P.W + u32(iw${p})) * P.Ci;`
      : `let oh${p} = i32(q${p}.y) + dh;
      let ow${p} = i32(q${p}.z) + dw;
      let ok${p} = oh${p} >= 0 && ow${p} >= 0 && oh${p} < i32(P.oH) && ow${p} < i32(P.oW);
      let at${p} = ((q${p}.x * P.oH + u32(oh${p})) * P.oW + u32(ow${p})) * P.Co;`;
  // The reduction over channels r. Scalar: per r, `cols` weights and one value per pixel. vec4 (every
  // channel count a multiple of 4): per 4 channels, 4 x cols/4 (fwd) or cols (dx) weight vec4s and
  // one vec4 per pixel, a quarter of the loads for the same multiply-adds. wide (forward, Ci not a
  // multiple of 4, Co is: the stem's one input channel): per input channel, cols/4 weight vec4s.
  const reduction = wide
    ? `for (var r = 0u; r < P.Ci; r++) {
        let wr = (tap + r * P.Co) / 4u;
        ${unroll(cols / 4, (h) => `let w${h} = Wt[wr + ${h}u];`, " ")}
        ${
      unroll(
        pixels,
        (p) =>
          `let v${p} = X[s${p} + r] * m${p}; ` +
          unroll(cols, (c) => `a${p}_${c} = fma(v${p}, w${c >> 2}.${XYZW[c & 3]}, a${p}_${c});`, " "),
        "\n        ",
      )
    }
      }`
    : !vec4
    ? `for (var r = 0u; r < ${redC}; r++) {
        let wr = tap + ${fwd ? "r * P.Co" : "r"};
        ${unroll(cols, (c) => `let w${c} = Wt[wr + ${fwd ? `${c}u` : `${c}u * P.Co`}];`, " ")}
        ${
      unroll(
        pixels,
        (p) =>
          `let v${p} = ${src}[s${p} + r] * m${p}; ` +
          unroll(cols, (c) => `a${p}_${c} = fma(v${p}, w${c}, a${p}_${c});`, " "),
        "\n        ",
      )
    }
      }`
    : fwd
    ? `for (var r = 0u; r < P.Ci / 4u; r++) {
        let wr = tap / 4u + 4u * r * (P.Co / 4u);
        ${
      unroll(4, (j) =>
        unroll(cols / 4, (h) => `let w${j}_${h} = Wt[wr + ${j}u * (P.Co / 4u) + ${h}u];`, " "), "\n        ")
    }
        ${
      unroll(
        pixels,
        (p) =>
          `let v${p} = ${src}[s${p} / 4u + r] * m${p};\n        ` +
          unroll(
            4,
            (j) =>
              unroll(
                cols,
                (c) => `a${p}_${c} = fma(v${p}.${XYZW[j]}, w${j}_${c >> 2}.${XYZW[c & 3]}, a${p}_${c});`,
                " ",
              ),
            "\n        ",
          ),
        "\n        ",
      )
    }
      }`
    : `for (var r = 0u; r < P.Co / 4u; r++) {
        ${unroll(cols, (c) => `let w${c} = Wt[tap / 4u + ${c}u * (P.Co / 4u) + r];`, " ")}
        ${
      unroll(
        pixels,
        (p) =>
          `let v${p} = ${src}[s${p} / 4u + r] * m${p}; ` +
          unroll(cols, (c) => `a${p}_${c} += dot(v${p}, w${c});`, " "),
        "\n        ",
      )
    }
      }`;
  // With an activation derivative (`dact`), each output is multiplied by act'(H) at its own index.
  const scaled = (value: string, at: string) => dact === "none" ? value : `(${value}) * dact_(H[${at}])`;
  const store = (p: number) =>
    vec4 || wide
      ? unroll(
        cols / 4,
        (h) =>
          `Out[d / 4u + ${h}u] = ${
            scaled(
              `vec4<f32>(${unroll(4, (k) => `a${p}_${4 * h + k}`, ", ")})${
                bias ? ` + Bias[c0 / 4u + ${h}u]` : ""
              }`,
              `d / 4u + ${h}u`,
            )
          };`,
        " ",
      )
      : unroll(cols, (c) =>
        `Out[d + ${c}u] = ${scaled(`a${p}_${c}${bias ? ` + b${c}` : ""}`, `d + ${c}u`)};`, " ");
  return {
    uniforms: [["n", "u32"], ["pixelsTotal", "u32"], ...GEOMETRY_UNIFORMS, ...(fwd ? [] : PHASE_UNIFORMS)],
    inputs: [
      [src, In],
      ["Wt", T],
      ...(bias ? [["Bias", T] as const] : []),
      ...(dact === "none" ? [] : [["H", T] as const]),
    ],
    outputs: [["Out", T]],
    body: `${dact === "none" ? "" : ACTIVATION_GRAD_WGSL[dact](T)}
${elementwiseMain(1, directWorkgroup())}
  let groups = ${outC} / ${cols}u;
  let c0 = (i % groups) * ${cols}u;
  let first = (i / groups) * ${pixels}u;
  ${
      unroll(pixels, (p) =>
        `let q${p} = split3(min(first + ${p}u, P.pixelsTotal - 1u), ${fwd ? "P.oH, P.oW" : "P.Hz, P.Wz"});`)
    }
  ${unroll(pixels, (p) => unroll(cols, (c) => `var a${p}_${c} = 0.0;`, " "))}
  for (var ${fwd ? "ky = 0u; ky < P.kh; ky++" : "ky = P.py; ky < P.kh; ky += P.sy"}) {
    for (var ${fwd ? "kx = 0u; kx < P.kw; kx++" : "kx = P.px; kx < P.kw; kx += P.sx"}) {
      let tap = ${fwd ? "(ky * P.kw + kx) * P.Ci * P.Co + c0" : "((ky * P.kw + kx) * P.Ci + c0) * P.Co"};${
      fwd ? "" : `
      // Input pixel ih0 + sy t of this phase meets output row t + dh through tap ky: the division is
      // exact by the phase's construction, and done once per tap instead of once per pixel (integer
      // division is lane by lane on a CPU adapter).
      let dh = (i32(P.ih0 + P.padT) - i32(ky)) / i32(P.sy);
      let dw = (i32(P.iw0 + P.padL) - i32(kx)) / i32(P.sx);`
    }
      ${
      unroll(
        pixels,
        (p) =>
          `${where(p)}
      let m${p} = select(0.0, 1.0, ok${p});
      let s${p} = select(0u, at${p}, ok${p});`,
        "\n      ",
      )
    }
      ${reduction}
    }
  }
  ${bias && !vec4 && !wide ? unroll(cols, (c) => `let b${c} = Bias[c0 + ${c}u];`, " ") : ""}
  ${
      unroll(pixels, (p) =>
        `if (first + ${p}u < P.pixelsTotal) {
    let d = ${
          fwd
            ? `(first + ${p}u) * P.Co`
            : `((q${p}.x * P.H + P.ih0 + q${p}.y * P.sy) * P.W + P.iw0 + q${p}.z * P.sx) * P.Ci`
        } + c0;
    ${store(p)}
  }`)
    }
}
${split3}
`,
  };
}

const XYZW = ["x", "y", "z", "w"];

/** An activation whose derivative a convolution's input gradient can apply on the way out. */
export type InputActivation = "relu" | "silu";

/**
 * `act'(x)` for an input gradient that goes on through the activation that made the convolution's
 * input: dL/dh = conv_dx(g) * act'(h) for a convolution of act(h). Applied as the direct kernels
 * store each output (the `dact` variants), it saves the separate pass of the activation's VJP
 * (kernels/unary.ts), which reads and writes the whole gradient once more.
 */
export interface ActivationGrad {
  op: InputActivation;
  /** The pre-activation h, the shape of the gradient. */
  x: Tensor;
}

/**
 * A forward or input-gradient direction: (its input, the filter, the bias or null, the geometry, an
 * activation derivative to apply or null) -> its output. No validation (see autograd/ops.ts).
 */
export type ConvDirection2d = (
  input: Tensor,
  w: Tensor,
  bias: Tensor | null,
  g: ConvGeometry,
  act?: ActivationGrad | null,
) => Tensor;

/** WGSL `dact_(h)`: the derivative of each activation, for element type `T`. */
const ACTIVATION_GRAD_WGSL: Record<InputActivation, (T: string) => string> = {
  relu: (T) => `fn dact_(h: ${T}) -> ${T} { return select(${T}(0.0), ${T}(1.0), h > ${T}(0.0)); }\n`,
  // d/dh h sigmoid(h) = s (1 + h (1 - s)); for h < -88 exp overflows to inf and s = 0 (no NaN).
  silu: (T) =>
    `fn dact_(h: ${T}) -> ${T} { let s = 1.0 / (1.0 + exp(-h)); return s * (1.0 + h * (1.0 - s)); }\n`,
};

/**
 * Direct weight gradient for few channels: one thread per (K slice, tap ky kx, group of `rows`
 * input channels, group of `cols` output channels) sums X[q at the tap, ci] * dY[q, co] over the
 * batch-and-pixel indices q of its slice into rows x cols scalar registers; a reduction adds the
 * slices. Per q a thread loads rows + cols values for rows x cols multiply-adds (the same blocking as
 * `directSpec`, for the same reason). The pixel counters advance without division. Measured on
 * llvmpipe at batch 128, 16 channels, 14x14 k3: see `deno task bench --filter conv-small`.
 */
/** A direct weight-gradient variant. */
interface DirectFilterVariant extends Variant {
  rows: number;
  cols: number;
  vec4: boolean;
  /** Input channels one at a time, gradients and partial sums as vec4s over Co (`ConvPlan`). */
  wide: boolean;
  bias: boolean;
  narrow: boolean;
}

function directFilterSpec({ rows, cols, vec4, wide, bias, narrow }: DirectFilterVariant): KernelBody {
  if (narrow && (cols !== 1 || rows % 4 !== 0 || vec4)) {
    throw new Error("conv direct dW: narrow is one column and rows a multiple of 4");
  }
  if (wide && (vec4 || narrow || cols % 4 !== 0)) {
    throw new Error("conv direct dW: wide is scalar input, vec4 columns");
  }
  // T: the gradient's and partial sums' element; the input's is a vec4 with `vec4` or `narrow`.
  // wide (Ci not a multiple of 4, Co is: the stem's one input channel): gradients as vec4s, input scalar.
  const T = vec4 || wide ? "vec4<f32>" : "f32";
  // Per batch-and-pixel index q: `cols` gradient values and `rows` input values (scalar), or as
  // cols/4 and rows/4 vec4s when every channel count is a multiple of 4 (a quarter of the loads).
  // With `bias`, every thread also sums its gradient values over all q of its slice (the tap does
  // not matter), and the threads of the first row block store them: the bias gradient's partial
  // sums come out of the same pass over dY.
  const gradients = vec4 || wide
    ? unroll(cols / 4, (h) => `let g${h} = DY[d / 4u + ${h}u];`, " ")
    : unroll(cols, (c) => `let g${c} = DY[d + ${c}u];`, " ");
  const biasSums = vec4 || wide ? cols / 4 : cols;
  // narrow (one output channel, the likelihood head's 16 -> 1): the input is read as rows/4 vec4s,
  // the one gradient value as a scalar.
  const accumulate = narrow
    ? unroll(
      rows / 4,
      (k) =>
        `let v${k} = X[s / 4u + ${k}u]; ` +
        unroll(4, (j) => `a${4 * k + j}_0 = fma(v${k}.${XYZW[j]}, g0, a${4 * k + j}_0);`, " "),
      "\n      ",
    )
    : vec4
    ? `${
      unroll(
        rows / 4,
        (k) =>
          `let v${k} = X[s / 4u + ${k}u];\n      ` +
          unroll(
            4,
            (j) =>
              unroll(
                cols,
                (c) =>
                  `a${4 * k + j}_${c} = fma(v${k}.${XYZW[j]}, g${c >> 2}.${XYZW[c & 3]}, a${
                    4 * k + j
                  }_${c});`,
                " ",
              ),
            "\n      ",
          ),
        "\n      ",
      )
    }`
    : `${
      unroll(
        rows,
        (r) =>
          `let v${r} = X[s + ${r}u]; ` +
          unroll(
            cols,
            (c) => `a${r}_${c} = fma(v${r}, ${wide ? `g${c >> 2}.${XYZW[c & 3]}` : `g${c}`}, a${r}_${c});`,
            " ",
          ),
        "\n      ",
      )
    }`;
  const store = vec4 || wide
    ? unroll(
      rows,
      (r) =>
        unroll(
          cols / 4,
          (h) =>
            `Partial[(dst + ${r}u * P.Co) / 4u + ${h}u] = vec4<f32>(${
              unroll(4, (k) => `a${r}_${4 * h + k}`, ", ")
            });`,
          " ",
        ),
    )
    : unroll(rows, (r) => unroll(cols, (c) => `Partial[dst + ${r}u * P.Co + ${c}u] = a${r}_${c};`, " "));
  return {
    uniforms: [["n", "u32"], ["kChunk", "u32"], ...GEOMETRY_UNIFORMS],
    inputs: [["X", narrow || vec4 ? "vec4<f32>" : "f32"], ["DY", T]],
    outputs: [["Partial", T], ...(bias ? [["BiasPartial", T] as const] : [])],
    body: `
${elementwiseMain(1, directWorkgroup())}
  let colGroups = P.Co / ${cols}u;
  let c0 = (i % colGroups) * ${cols}u;
  let rowGroups = P.kh * P.kw * (P.Ci / ${rows}u);
  let m0 = ((i / colGroups) % rowGroups) * ${rows}u;
  let slice = i / (colGroups * rowGroups);
  let t = split3(m0, P.kw, P.Ci);
  let qBegin = slice * P.kChunk;
  let qEnd = min(P.B * P.oH * P.oW, qBegin + P.kChunk);
  var o = split3(qBegin, P.oH, P.oW);
  ${unroll(rows, (r) => unroll(cols, (c) => `var a${r}_${c} = 0.0;`, " "))}
  ${bias ? unroll(biasSums, (h) => `var bs${h} = ${T}(0.0);`, " ") : ""}
  for (var q = qBegin; q < qEnd; q++) {
    let ih = i32(o.y * P.sy + t.x) - i32(P.padT);
    let iw = i32(o.z * P.sx + t.y) - i32(P.padL);
    let d = q * P.Co + c0;
    ${
      bias
        ? `${gradients}
    ${unroll(biasSums, (h) => `bs${h} += g${h};`, " ")}`
        : ""
    }
    if (ih >= 0 && iw >= 0 && ih < i32(P.H) && iw < i32(P.W)) {
      let s = ((o.x * P.H + u32(ih)) * P.W + u32(iw)) * P.Ci + t.z;
      ${bias ? "" : gradients}
      ${accumulate}
    }
    o.z += 1u;
    if (o.z == P.oW) { o.z = 0u; o.y += 1u; if (o.y == P.oH) { o.y = 0u; o.x += 1u; } }
  }
  let dst = (slice * P.kh * P.kw * P.Ci + m0) * P.Co + c0;
  ${store}${
      bias
        ? `
  if (m0 == 0u) {
    ${
          unroll(
            biasSums,
            (h) => `BiasPartial[(slice * P.Co + c0)${vec4 || wide ? " / 4u" : ""} + ${h}u] = bs${h};`,
            " ",
          )
        }
  }`
        : ""
    }
}
${split3}
`,
  };
}

// ---------------------------------------------------------------- naive oracle variants

function naiveSpec({ direction, bias }: { direction: "fwd" | "dx" | "dw"; bias: boolean }): KernelBody {
  const inputs: [string, "f32"][] = direction === "fwd"
    ? [["X", "f32"], ["Wt", "f32"]]
    : direction === "dx"
    ? [["DY", "f32"], ["Wt", "f32"]]
    : [["X", "f32"], ["DY", "f32"]];
  if (bias) inputs.push(["Bias", "f32"]);
  const [own, other] = direction === "fwd" ? ["co", "ci"] : ["ci", "co"];
  return {
    uniforms: [["n", "u32"], ["kChunk", "u32"], ...GEOMETRY_UNIFORMS],
    inputs,
    outputs: [["Out", "f32"]],
    body: wgsl`${direction === "dx" ? "" : inputAt}${direction === "dw" ? "" : weightAt}${
      direction === "fwd" ? "" : gradOutAt
    }${split3}
${elementwiseMain()}
  var acc = 0.0;
#if ${direction !== "dw"}
  // fwd: one thread per (output pixel, co), summing X at the pixel's taps x W over (ky, kx, ci);
  // dx: one thread per (input pixel, ci), summing dY at the outputs it feeds x W over (ky, kx, co).
  let ${own} = i % P.${own === "co" ? "Co" : "Ci"};
  let p = split3(i / P.${own === "co" ? "Co" : "Ci"}, ${direction === "fwd" ? "P.oH, P.oW" : "P.H, P.W"});
  for (var ky = 0u; ky < P.kh; ky++) { for (var kx = 0u; kx < P.kw; kx++) {
    for (var ${other} = 0u; ${other} < P.${other === "co" ? "Co" : "Ci"}; ${other}++) {
      acc += ${
      direction === "fwd" ? "inputAt" : "gradOutAt"
    }(p.x, p.y, p.z, ky, kx, ${other}) * weightAt(ky, kx, ci, co);
    }
  } }
#if ${bias}
  acc += Bias[${own}];
#endif
#else
  // One thread per (K slice, weight): the batch-and-pixels index q runs over this slice only.
  let weights = P.kh * P.kw * P.Ci * P.Co;
  let slice = i / weights;
  let co = i % P.Co;
  let t = split3((i % weights) / P.Co, P.kw, P.Ci);
  let qEnd = min(P.B * P.oH * P.oW, (slice + 1u) * P.kChunk);
  for (var q = slice * P.kChunk; q < qEnd; q++) {
    let o = split3(q, P.oH, P.oW);
    acc += inputAt(o.x, o.y, o.z, t.x, t.y, t.z) * DY[q * P.Co + co];
  }
#endif
  Out[i] = acc;
}
`,
  };
}

const forward = (bias: boolean, t: GemmTiling) => memoSpec("conv-fwd", { bias, ...t }, forwardSpec);
const backwardInput = (bias: boolean, t: GemmTiling) =>
  memoSpec("conv-dx", { bias, ...t }, backwardInputSpec);
const backwardFilter = (t: GemmTiling) => memoSpec("conv-dw", { ...t }, backwardFilterSpec);
const naive = (direction: "fwd" | "dx" | "dw", bias: boolean) =>
  memoSpec("conv-naive", { direction, bias }, naiveSpec);
const direct = (variant: DirectVariant) => memoSpec("conv-direct", variant, directSpec);
const directFilter = (variant: DirectFilterVariant) => memoSpec("conv-direct-dw", variant, directFilterSpec);

// ---------------------------------------------------------------- the planner

/** A convolution direction: forward, input gradient, weight gradient. */
export type ConvDirection = "fwd" | "dx" | "dw";

/** The kernel family one convolution call runs on, and why (`convPlan`). */
export type ConvPlan =
  | { kernel: "naive"; reason: string }
  | { kernel: "gemv"; reason: string }
  /**
   * A register block of `rows` x `cols` per thread: rows are output pixels (fwd, dx) or input
   * channels (dw); `vec4`: channels read four at a time (every channel count and channel block a
   * multiple of 4).
   */
  | {
    kernel: "direct";
    rows: number;
    cols: number;
    vec4: boolean;
    /**
     * Forward and weight gradient with Co and the column block multiples of 4 but not Ci (the stem's
     * one input channel): weights, gradients, bias and outputs as vec4s over Co, the input one
     * channel at a time. A quarter of the weight (forward) or gradient (dW) loads of the scalar loop:
     * the stem 1 -> 16 k5 s2 at batch 128 (Zen 5, 20 calls per readback) forward 4.5 -> 3.9 ms, weight
     * gradient 11.9 -> 7.6 ms.
     */
    wide: boolean;
    /**
     * One output channel (Co = 1) with Ci a multiple of 4: the forward and (at stride 1) the input
     * gradient run the row kernels of kernels/conv_row.ts, which load each input pixel once per
     * kernel row; the weight gradient reads the input channels four at a time (`directFilterSpec`).
     */
    narrow: boolean;
    reason: string;
  }
  | { kernel: "gemm"; tiling: GemmTiling; reason: string };

/** Sees every convolution direction as it is recorded (kernels/tuner.ts collects the shapes in use). */
export type ConvObserver = (direction: ConvDirection, g: ConvGeometry) => void;
let observer: ConvObserver | null = null;

/** Installs `fn` (null: none) as the convolution observer; returns the previous one. */
export function observeConvolutions(fn: ConvObserver | null): ConvObserver | null {
  const previous = observer;
  observer = fn;
  return previous;
}

/** The largest divisor of `n` that is at most `max`: a block that tiles `n` channels exactly. */
function blockFor(n: number, max: number): number {
  for (let d = Math.min(n, max); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

/**
 * Chooses the kernel for one convolution direction; the one place where the choice and its reasons
 * live. Naive when forced (the oracle); direct for <= `directColumns` output columns (Co forward and
 * for the weight gradient, Ci for the input gradient; kernels/tuning_choices.ts), with register blocks
 * that tile the channels; else the implicit GEMM (the input gradient split by stride phase, the weight
 * gradient split over K). The "gemm" family keeps matrix-vector shapes (<= 4 columns) on the naive
 * kernel ("gemv"), where its tile would be nearly all padding.
 * Why direct: at 16 channels the direct kernels ran 2-3x faster than the GEMM tile on llvmpipe with
 * one pixel per thread and 5x with 16 (`directSpec`), and at 64 channels 5-6x (kernels/tuning_choices.ts);
 * on a GPU the GEMM's reuse of staged operands should win at 64, unmeasured yet. Matrix-vector shapes
 * (the 64 -> 1 likelihood conv at 28x28, batch 128, Zen 5, `deno task bench`): 218 ms one thread per output, 64 ms direct; as a GEMM it took 286 ms on
 * the other EPYC of ours (docs/design.md section 8.1).
 */
export function convPlan(direction: ConvDirection, g: ConvGeometry): ConvPlan {
  if (implementation === "naive") return { kernel: "naive", reason: "forced: the oracle" };
  const columns = direction === "dx" ? g.Ci : g.Co;
  const t = tuning();
  if (implementation === "direct" || (implementation === "auto" && columns <= t.directColumns)) {
    const blocks = t.direct;
    const rows = direction === "dw" ? blockFor(g.Ci, blocks.rows) : blocks.pixels;
    const cols = blockFor(columns, blocks.cols);
    const vec4 = g.Ci % 4 === 0 && g.Co % 4 === 0 && cols % 4 === 0 && (direction !== "dw" || rows % 4 === 0);
    const wide = !vec4 && direction !== "dx" && g.Co % 4 === 0 && cols % 4 === 0;
    const narrow = g.Co === 1 && g.Ci % 4 === 0 &&
      (direction === "fwd" || (direction === "dx" ? g.sy === 1 && g.sx === 1 : rows % 4 === 0));
    return {
      kernel: "direct",
      rows,
      cols,
      vec4,
      wide,
      narrow,
      reason: implementation === "direct" ? "forced" : `${columns} <= ${t.directColumns} output columns`,
    };
  }
  if (columns <= 4) return { kernel: "gemv", reason: `${columns} output columns: a matrix-vector product` };
  return { kernel: "gemm", tiling: tilingFor(columns), reason: "implicit GEMM" };
}

/** One phase of the stride for the input gradient (see `PHASE_UNIFORMS`). */
interface StridePhase {
  py: number;
  px: number;
  ih0: number;
  iw0: number;
  Hz: number;
  Wz: number;
  Jy: number;
  Jx: number;
}

/** The sy x sx phases of the stride that hold input pixels; every input pixel is in exactly one. */
function stridePhases(g: ConvGeometry): StridePhase[] {
  const count = (size: number, first: number, s: number) => first < size ? Math.ceil((size - first) / s) : 0;
  const phases: StridePhase[] = [];
  for (let py = 0; py < g.sy; py++) {
    for (let px = 0; px < g.sx; px++) {
      const ih0 = (((py - g.padT) % g.sy) + g.sy) % g.sy;
      const iw0 = (((px - g.padL) % g.sx) + g.sx) % g.sx;
      const phase = {
        py,
        px,
        ih0,
        iw0,
        Hz: count(g.H, ih0, g.sy),
        Wz: count(g.W, iw0, g.sx),
        Jy: count(g.kh, py, g.sy),
        Jx: count(g.kw, px, g.sx),
      };
      if (phase.Hz * phase.Wz > 0) phases.push(phase);
    }
  }
  return phases;
}

/**
 * Records the direct kernel for `pixelsTotal` output pixels of a forward or input-gradient direction
 * (one stride phase of the latter; `phase` holds its uniforms).
 */
function launchDirect(
  plan: ConvPlan & { kernel: "direct" },
  d: "fwd" | "dx",
  inputs: Tensor[],
  out: Tensor,
  g: ConvGeometry,
  pixelsTotal: number,
  flops: number,
  phase: Partial<StridePhase> = {},
  act: ActivationGrad | null = null,
): void {
  const columns = d === "fwd" ? g.Co : g.Ci;
  const threads = Math.ceil(pixelsTotal / plan.rows) * (columns / plan.cols);
  launch(
    direct({
      direction: d,
      bias: inputs.length === 3,
      cols: plan.cols,
      pixels: plan.rows,
      vec4: plan.vec4,
      wide: plan.wide,
      dact: act?.op ?? "none",
    }),
    act ? [...inputs, act.x] : inputs,
    [out],
    { n: threads, pixelsTotal, ...g, ...phase },
    elementwiseGrid(threads, 1, directWorkgroup()),
    d === "fwd" ? "conv2d" : "conv2d-dx",
    flops,
  );
}

/**
 * `act`'s derivative applied to a finished gradient `d` (disposed) in a pass of its own: for the
 * kernels that have no `dact` variant. The activation's VJP reads only g and x, so x stands in for y.
 */
function applyActivationGrad(d: Tensor, act: ActivationGrad | null): Tensor {
  if (!act) return d;
  const out = unaryVjp(act.op, d, act.x, act.x);
  d.dispose();
  return out;
}

/** Records the naive kernel (one thread per output) for a forward or input-gradient direction. */
function launchNaive(d: "fwd" | "dx", inputs: Tensor[], out: Tensor, g: ConvGeometry): void {
  launch(
    naive(d, inputs.length === 3),
    inputs,
    [out],
    { n: out.size, kChunk: 0, ...g },
    elementwiseGrid(out.size),
    d === "fwd" ? "conv2d" : "conv2d-dx",
    convFlops(g),
  );
}

/**
 * Y[B, oH, oW, Co] = conv(X[B, H, W, Ci], W[kh, kw, Ci, Co]) (+ bias[Co]); no validation (see ops).
 * With `act` (a transposed convolution's input gradient), Y is multiplied by act'(act.x).
 */
export const convForward: ConvDirection2d = (x, w, bias, g, act = null) => {
  observer?.("fwd", g);
  const y = emptyTensor([g.B, g.oH, g.oW, g.Co], "f32", "conv2d");
  const inputs = bias ? [x, w, bias] : [x, w];
  const plan = convPlan("fwd", g);
  if (act && plan.kernel === "direct" && !plan.narrow) {
    launchDirect(plan, "fwd", inputs, y, g, g.B * g.oH * g.oW, convFlops(g), {}, act);
    return y;
  }
  if (plan.kernel === "direct" && plan.narrow) {
    launchRowForward(inputs, y, g);
  } else if (plan.kernel === "direct") {
    launchDirect(plan, "fwd", inputs, y, g, g.B * g.oH * g.oW, convFlops(g));
  } else if (plan.kernel !== "gemm") {
    launchNaive("fwd", inputs, y, g);
  } else {
    const M = g.B * g.oH * g.oW, N = g.Co, K = g.kh * g.kw * g.Ci;
    const t = plan.tiling;
    launch(
      forward(!!bias, t),
      inputs,
      [y],
      { M, N, K, kChunk: 0, ...g },
      gemmGrid(M, N, 1, t),
      "conv2d",
      2 * M * N * K,
    );
  }
  return applyActivationGrad(y, act);
};

/**
 * dX[B, H, W, Ci] from dY[B, oH, oW, Co] and W (+ bias[Ci], for transposed convolutions). The
 * direct and GEMM kernels run once per phase of the stride (see `stridePhases`). With `act`, dX is
 * multiplied by act'(act.x): the gradient of the pre-activation of a convolution of act(x).
 */
export const convBackwardInput: ConvDirection2d = (dy, w, bias, g, act = null) => {
  observer?.("dx", g);
  const dx = emptyTensor([g.B, g.H, g.W, g.Ci], "f32", "conv2d-dx");
  const inputs = bias ? [dy, w, bias] : [dy, w];
  const plan = convPlan("dx", g);
  if (plan.kernel !== "direct" && plan.kernel !== "gemm") {
    launchNaive("dx", inputs, dx, g);
    return applyActivationGrad(dx, act);
  }
  if (plan.kernel === "direct" && plan.narrow) {
    launchRowInput(inputs, dx, g);
    return applyActivationGrad(dx, act);
  }
  for (const phase of stridePhases(g)) {
    const M = g.B * phase.Hz * phase.Wz, N = g.Ci, K = phase.Jy * phase.Jx * g.Co;
    if (plan.kernel === "direct") {
      launchDirect(plan, "dx", inputs, dx, g, M, 2 * M * N * K, phase, act);
      continue;
    }
    const t = plan.tiling;
    launch(
      backwardInput(!!bias, t),
      inputs,
      [dx],
      { M, N, K, kChunk: 0, ...g, ...phase },
      gemmGrid(M, N, 1, t),
      "conv2d-dx",
      2 * M * N * K,
    );
  }
  return plan.kernel === "direct" ? dx : applyActivationGrad(dx, act);
};

/**
 * How many K slices the weight gradient uses: enough workgroups to fill a GPU (~512) when the
 * output tiles alone are few, each slice at least 256 long, at most 64 slices.
 */
export function filterSplits(M: number, N: number, K: number): number {
  const tiles = gemmGrid(M, N, 1, tilingFor(N)).reduce((a, b) => a * b, 1);
  return Math.max(1, Math.min(64, Math.floor(K / 256), Math.ceil(512 / tiles)));
}

/**
 * dW[kh, kw, Ci, Co] from X and dY: a split-K GEMM or direct kernel (or, for the "gemm" family's
 * matrix-vector shapes, the naive one: one thread per weight and K slice), then a sum over the slices.
 */
export function convBackwardFilter(x: Tensor, dy: Tensor, g: ConvGeometry): Tensor {
  return backwardFilterAndBias(x, dy, g, false).dw;
}

/**
 * dW as `convBackwardFilter` and d(bias)[Co] = sum of dY over batch and pixels, from one pass over
 * dY where the direct kernel serves (its threads sum dY on the way; a [slices, Co] reduction
 * remains), else from a separate reduction (`convBackwardBias`).
 */
export function convBackwardFilterAndBias(x: Tensor, dy: Tensor, g: ConvGeometry): [Tensor, Tensor] {
  const { dw, db } = backwardFilterAndBias(x, dy, g, true);
  return [dw, db ?? convBackwardBias(dy)];
}

function backwardFilterAndBias(
  x: Tensor,
  dy: Tensor,
  g: ConvGeometry,
  withBias: boolean,
): { dw: Tensor; db: Tensor | null } {
  observer?.("dw", g);
  const M = g.kh * g.kw * g.Ci, N = g.Co, K = g.B * g.oH * g.oW;
  const plan = convPlan("dw", g);
  const t = tilingFor(N);
  // Slices: the oracle runs unsplit; the GEMM takes enough to fill a GPU (filterSplits); the
  // per-weight kernels (direct and matrix-vector) aim for a number of threads (`dwThreads`) with
  // slices of >= 256.
  const threadsPerSlice = plan.kernel === "direct" ? M * N / (plan.rows * plan.cols) : M * N;
  const aim = plan.kernel === "direct" ? tuning().direct.dwThreads : 4096;
  const splits = plan.kernel === "naive"
    ? 1
    : plan.kernel === "gemm"
    ? filterSplits(M, N, K)
    : Math.max(1, Math.min(Math.floor(K / 256), Math.ceil(aim / threadsPerSlice)));
  if (plan.kernel === "direct" && plan.narrow && g.sx === 1) return rowFilterAndBias(x, dy, g, withBias);
  const step = plan.kernel === "gemm" ? t.TK : 1;
  const kChunk = Math.ceil(Math.ceil(K / splits) / step) * step;
  const slices = Math.ceil(K / kChunk);
  const partial = emptyTensor(slices === 1 ? [g.kh, g.kw, g.Ci, g.Co] : [slices, M, N], "f32", "conv2d-dw");
  let biasPartial: Tensor | null = null;
  if (plan.kernel === "gemm") {
    launch(
      backwardFilter(t),
      [x, dy],
      [partial],
      { M, N, K, kChunk, ...g },
      gemmGrid(M, N, slices, t),
      "conv2d-dw",
      convFlops(g),
    );
  } else if (plan.kernel === "direct") {
    const threads = slices * threadsPerSlice;
    biasPartial = withBias ? emptyTensor(slices === 1 ? [g.Co] : [slices, g.Co], "f32", "conv2d-db") : null;
    launch(
      directFilter({
        rows: plan.rows,
        cols: plan.cols,
        vec4: plan.vec4,
        wide: plan.wide,
        bias: withBias,
        narrow: plan.narrow,
      }),
      [x, dy],
      biasPartial ? [partial, biasPartial] : [partial],
      { n: threads, kChunk, ...g },
      elementwiseGrid(threads, 1, directWorkgroup()),
      "conv2d-dw",
      convFlops(g),
    );
  } else {
    launch(
      naive("dw", false),
      [x, dy],
      [partial],
      { n: partial.size, kChunk, ...g },
      elementwiseGrid(partial.size),
      "conv2d-dw",
      convFlops(g),
    );
  }
  if (slices === 1) return { dw: partial, db: biasPartial };
  return {
    dw: sumSlices(partial, 0, [g.kh, g.kw, g.Ci, g.Co]),
    db: biasPartial && sumSlices(biasPartial, 0, [g.Co]),
  };
}

/** d(bias)[Co] = sum of dY over batch and pixels. */
export function convBackwardBias(dy: Tensor): Tensor {
  return reduce("sum", dy, [0, 1, 2]);
}
