/**
 * Convolutions to one output channel (the Bernoulli likelihood head, 16 -> 1 at 28x28) on the direct
 * path, each input pixel loaded once per kernel row instead of once per tap: the forward, the
 * stride-1 input gradient and the (horizontal stride 1) weight gradient, and their launchers, which
 * kernels/conv.ts calls where `convPlan` says `narrow`.
 *
 * Why kernels of their own: with one output channel each loaded input vec4 serves a single dot
 * product, so a per-tap kernel spends nearly all its time loading (on llvmpipe every per-invocation
 * load is a gather). Here a thread owns `pixels` neighbouring outputs of one output row; for each
 * kernel row ky it loads the (pixels - 1) * sx + kw input columns that row's taps reach once, and
 * every tap kx reuses them from registers: at 3x3, stride 1 and 8 pixels, 10 loads per kernel row
 * instead of 24. The kernel width and stride are compile-time constants (the register indices of the
 * reuse are), so each (kw, sx) is one pipeline.
 *
 *   Y[b, oh, ow] = bias + sum_{ky, kx, ci} X[b, oh*sy + ky - padT, ow*sx + kx - padL, ci] W[ky, kx, ci, 0]
 */

import { elementwiseGrid, elementwiseMain, launch } from "./launch.ts";
import { sumSlices } from "./reduce.ts";
import {
  type ElementType,
  type KernelBody,
  type KernelSpec,
  memoSpec,
  type UniformType,
  type UniformValues,
  type Variant,
} from "./runtime/program.ts";
import { convFlops, type ConvGeometry, GEOMETRY_UNIFORMS } from "./conv_geometry.ts";
import { emptyTensor, type Tensor } from "./tensor.ts";

/** Threads per workgroup: small, so that the threads of a small batch still reach every core. */
const ROW_WORKGROUP = 64;

/**
 * At most this many pixels per thread, forward and input gradient. The forward keeps one scalar sum
 * per pixel, so a whole row fits: 16 -> 1 at 28x28, batch 128 (Zen 5, docs/design.md section 8.1, 20
 * calls per readback): 6.4 ms per call in the direct kernel, 4.1 / 3.7 / 3.4 / 3.2 ms with 8 / 10 / 14 /
 * 28 pixels. The input gradient keeps 4 vec4 sums per pixel (16 channels): 8.4 ms direct, 3.4 ms with
 * 7 pixels, 4.4 with 8 and 4.0 with 14 (the sums no longer fit in registers).
 */
const ROW_FORWARD_PIXELS = 32;
const ROW_INPUT_PIXELS = 8;
/** Threads the weight gradient's slices of output rows aim for (a few hundred fill two cores). */
const ROW_FILTER_THREADS = 512;

/**
 * Pixels per thread for rows of `width`: the largest divisor of the width up to `max` (no thread
 * computes padding), unless the best divisor is under max / 2: then `max`, with a masked last block.
 */
function rowPixels(width: number, max: number): number {
  for (let d = Math.min(width, max); d >= max / 2; d--) if (width % d === 0) return d;
  return Math.min(width, max);
}

/** A one-output-channel forward variant. */
export interface RowVariant extends Variant {
  /** Output pixels per thread, along the row. */
  pixels: number;
  /** Kernel width (a compile-time constant: the reuse indexes registers by it). */
  kw: number;
  /** Horizontal stride (likewise). */
  sx: number;
  bias: boolean;
}

/** The uniforms of the forward and input-gradient row kernels: threads, blocks per row, the geometry. */
const ROW_UNIFORMS: [string, UniformType][] = [["n", "u32"], ["rowBlocks", "u32"], ...GEOMETRY_UNIFORMS];

/**
 * A forward or input-gradient row kernel: `ROW_UNIFORMS`; the input `source`, the weights as vec4s and
 * a bias of element `bias` (none when null); an output `Out` of element `out`; `body` after the thread
 * index i.
 */
function rowKernel(
  source: readonly [string, ElementType],
  bias: ElementType | null,
  out: ElementType,
  body: string,
): KernelBody {
  return {
    uniforms: ROW_UNIFORMS,
    inputs: [source, ["Wt", "vec4<f32>"], ...(bias ? [["Bias", bias] as const] : [])],
    outputs: [["Out", out]],
    body: `\n${elementwiseMain(1, ROW_WORKGROUP)}${body}`,
  };
}

const lines = (count: number, line: (i: number) => string, sep = "\n  ") =>
  Array.from({ length: count }, (_, i) => line(i)).join(sep);

function rowForwardSpec({ pixels, kw, sx, bias }: RowVariant): KernelBody {
  const columns = (pixels - 1) * sx + kw;
  return rowKernel(
    ["X", "vec4<f32>"],
    bias ? "f32" : null,
    "f32",
    `
  let row = i / P.rowBlocks;
  let ow0 = (i % P.rowBlocks) * ${pixels}u;
  let oh = row % P.oH;
  let b = row / P.oH;
  let iw0 = i32(ow0 * ${sx}u) - i32(P.padL);
  let groups = P.Ci / 4u;
  // Input column t of the window: its offset (0 where it is padding) and a 0/1 mask.
  ${
      lines(
        columns,
        (t) =>
          `let ok${t} = iw0 + ${t} >= 0 && iw0 + ${t} < i32(P.W); let m${t} = select(0.0, 1.0, ok${t}); let c${t} = select(0u, u32(iw0 + ${t}), ok${t});`,
      )
    }
  ${lines(pixels, (p) => `var a${p} = 0.0;`, " ")}
  for (var ky = 0u; ky < P.kh; ky++) {
    let ih = i32(oh * P.sy + ky) - i32(P.padT);
    if (ih < 0 || ih >= i32(P.H)) { continue; }
    let base = (b * P.H + u32(ih)) * P.W;
    let tap = ky * ${kw}u * groups;
    for (var r = 0u; r < groups; r++) {
      ${lines(columns, (t) => `let x${t} = X[(base + c${t}) * groups + r] * m${t};`, " ")}
      ${lines(kw, (kx) => `let w${kx} = Wt[tap + ${kx}u * groups + r];`, " ")}
      ${lines(pixels, (p) => lines(kw, (kx) => `a${p} += dot(x${p * sx + kx}, w${kx});`, " "), "\n      ")}
    }
  }
  ${bias ? "let bias = Bias[0];" : ""}
  ${
      lines(
        pixels,
        (p) => `if (ow0 + ${p}u < P.oW) { Out[row * P.oW + ow0 + ${p}u] = a${p}${bias ? " + bias" : ""}; }`,
      )
    }
}`,
  );
}

/** The pipeline spec of a one-output-channel forward variant. */
const rowForward = (variant: RowVariant): KernelSpec => memoSpec("conv-row", variant, rowForwardSpec);

/** A one-output-channel input-gradient variant (stride 1). */
export interface RowInputVariant extends Variant {
  /** Input pixels per thread, along the row. */
  pixels: number;
  kw: number;
  /** Input channels per thread, a multiple of 4. */
  cols: number;
  bias: boolean;
}

/**
 * The input gradient of a stride-1 convolution to one output channel, the same reuse read the other
 * way: dX[b, ih, iw, ci] = sum_{ky, kx} dY[b, ih + padT - ky, iw + padL - kx] W[ky, kx, ci, 0]. A
 * thread owns `pixels` input pixels of one row and `cols` channels; per kernel row it loads the
 * pixels + kw - 1 gradient values its taps reach once, and the weights of each tap as vec4s over ci
 * (contiguous when Co = 1).
 */
function rowInputSpec({ pixels, kw, cols, bias }: RowInputVariant): KernelBody {
  const columns = pixels + kw - 1;
  const quads = cols / 4;
  return rowKernel(
    ["DY", "f32"],
    bias ? "vec4<f32>" : null,
    "vec4<f32>",
    `
  let colGroups = P.Ci / ${cols}u;
  let q0 = (i % colGroups) * ${quads}u;
  let rest = i / colGroups;
  let row = rest / P.rowBlocks;
  let iw0 = (rest % P.rowBlocks) * ${pixels}u;
  let ih = row % P.H;
  let b = row / P.H;
  let ow0 = i32(iw0 + P.padL) - ${kw - 1};
  // Gradient column t of the window: output column ow0 + t, its offset (0 outside) and a 0/1 mask.
  ${
      lines(
        columns,
        (t) =>
          `let ok${t} = ow0 + ${t} >= 0 && ow0 + ${t} < i32(P.oW); let m${t} = select(0.0, 1.0, ok${t}); let c${t} = select(0u, u32(ow0 + ${t}), ok${t});`,
      )
    }
  ${lines(pixels, (p) => lines(quads, (h) => `var a${p}_${h} = vec4<f32>(0.0);`, " "))}
  for (var ky = 0u; ky < P.kh; ky++) {
    let oh = i32(ih + P.padT) - i32(ky);
    if (oh < 0 || oh >= i32(P.oH)) { continue; }
    let base = (b * P.oH + u32(oh)) * P.oW;
    ${lines(columns, (t) => `let d${t} = DY[base + c${t}] * m${t};`, " ")}
    ${
      lines(
        kw,
        (kx) =>
          lines(
            quads,
            (h) => `let w${kx}_${h} = Wt[(ky * ${kw}u + ${kx}u) * (P.Ci / 4u) + q0 + ${h}u];`,
            " ",
          ),
        "\n    ",
      )
    }
    ${
      lines(
        pixels,
        (p) =>
          lines(
            kw,
            (kx) => lines(quads, (h) => `a${p}_${h} += d${p + kw - 1 - kx} * w${kx}_${h};`, " "),
            " ",
          ),
        "\n    ",
      )
    }
  }
  ${
      lines(
        pixels,
        (p) =>
          `if (iw0 + ${p}u < P.W) { let at = (row * P.W + iw0 + ${p}u) * (P.Ci / 4u) + q0; ${
            lines(quads, (h) => `Out[at + ${h}u] = a${p}_${h}${bias ? ` + Bias[q0 + ${h}u]` : ""};`, " ")
          } }`,
      )
    }
}`,
  );
}

/** The pipeline spec of a one-output-channel input-gradient variant. */
const rowInput = (variant: RowInputVariant): KernelSpec => memoSpec("conv-row-dx", variant, rowInputSpec);

/** A one-output-channel weight-gradient variant (stride 1 along rows). */
export interface RowFilterVariant extends Variant {
  kw: number;
  /** Input channels per thread, a multiple of 4. */
  cols: number;
  bias: boolean;
}

/**
 * The weight gradient of a convolution to one output channel, horizontal stride 1:
 * dW[ky, kx, ci, 0] = sum_{b, oh, ow} X[b, oh*sy + ky - padT, ow + kx - padL, ci] dY[b, oh, ow].
 * A thread owns one kernel row ky, `cols` channels and a slice of output rows; along each row it
 * keeps the kw input columns its taps see in registers and slides them one column per output pixel,
 * so a pixel costs one gradient value and cols / 4 input vec4s for kw x cols multiply-adds (the
 * direct kernel's "narrow" variant loads the input again for every tap). Partial sums per slice,
 * [slices, kh, kw, Ci] (and with `bias` the slice's sum of dY, from the threads of ky = 0 and the
 * first channels), are added up by a reduction.
 */
function rowFilterSpec({ kw, cols, bias }: RowFilterVariant): KernelBody {
  const quads = cols / 4;
  const window = (kx: number, h: number) => `x${kx}_${h}`;
  return {
    uniforms: [["n", "u32"], ["rowsPerSlice", "u32"], ...GEOMETRY_UNIFORMS],
    inputs: [["X", "vec4<f32>"], ["DY", "f32"]],
    outputs: [["Partial", "vec4<f32>"], ...(bias ? [["BiasPartial", "f32"] as const] : [])],
    body: `
${elementwiseMain(1, ROW_WORKGROUP)}
  let groups = P.Ci / 4u;
  let colGroups = P.Ci / ${cols}u;
  let q0 = (i % colGroups) * ${quads}u;
  let ky = (i / colGroups) % P.kh;
  let slice = i / (colGroups * P.kh);
  let rowEnd = min(P.B * P.oH, (slice + 1u) * P.rowsPerSlice);
  ${lines(kw, (kx) => lines(quads, (h) => `var a${kx}_${h} = vec4<f32>(0.0);`, " "))}
  ${bias ? "var bsum = 0.0;\n  let biasThread = ky == 0u && q0 == 0u;" : ""}
  for (var row = slice * P.rowsPerSlice; row < rowEnd; row++) {
    let oh = row % P.oH;
    let b = row / P.oH;
    let ih = i32(oh * P.sy + ky) - i32(P.padT);
    let valid = ih >= 0 && ih < i32(P.H);
    if (!valid${bias ? " && !biasThread" : ""}) { continue; }
    let base = (b * P.H + u32(max(ih, 0))) * P.W;
    let m = select(0.0, 1.0, valid);
    // The window: input columns ow + kx - padL for kx < kw (zero outside the row), first for ow = 0.
    ${
      lines(kw - 1, (kx) =>
        `let c${kx} = i32(${kx}) - i32(P.padL); let k${kx} = select(0.0, m, c${kx} >= 0 && c${kx} < i32(P.W)); ${
          lines(quads, (h) =>
            `var ${window(kx + 1, h)} = X[(base + u32(max(c${kx}, 0))) * groups + q0 + ${h}u] * k${kx};`, " ")
        }`)
    }
    ${lines(quads, (h) => `var ${window(0, h)} = vec4<f32>(0.0);`, " ")}
    let dRow = row * P.oW;
    for (var ow = 0u; ow < P.oW; ow++) {
      // Slide: drop column ow - 1 - padL, take column ow + kw - 1 - padL.
      let c = i32(ow + ${kw - 1}u) - i32(P.padL);
      let k = select(0.0, m, c >= 0 && c < i32(P.W));
      let at = (base + u32(clamp(c, 0, i32(P.W) - 1))) * groups + q0;
      ${
      lines(kw - 1, (kx) => lines(quads, (h) => `${window(kx, h)} = ${window(kx + 1, h)};`, " "), "\n      ")
    }
      ${lines(quads, (h) => `${window(kw - 1, h)} = X[at + ${h}u] * k;`, " ")}
      let d = DY[dRow + ow];
      ${bias ? "bsum += d;" : ""}
      ${lines(kw, (kx) => lines(quads, (h) => `a${kx}_${h} += d * ${window(kx, h)};`, " "), "\n      ")}
    }
  }
  let dst = (slice * P.kh + ky) * ${kw}u * groups + q0;
  ${lines(kw, (kx) => lines(quads, (h) => `Partial[dst + ${kx}u * groups + ${h}u] = a${kx}_${h};`, " "))}
  ${bias ? "if (biasThread) { BiasPartial[slice] = bsum; }" : ""}
}`,
  };
}

/** The pipeline spec of a one-output-channel weight-gradient variant. */
const rowFilter = (variant: RowFilterVariant): KernelSpec => memoSpec("conv-row-dw", variant, rowFilterSpec);

// ---------------------------------------------------------------- launchers (kernels/conv.ts routes here)

/** Input channels per thread of the input and weight gradients: 16, 8 or 4 (Ci is a multiple of 4). */
const channelBlock = (Ci: number) => Ci % 16 === 0 ? 16 : Ci % 8 === 0 ? 8 : 4;

/** Records a row kernel of `threads` threads with the geometry's uniforms and `uniforms`. */
function launchRow(
  spec: KernelSpec,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  threads: number,
  uniforms: UniformValues,
  g: ConvGeometry,
  label: string,
): void {
  launch(
    spec,
    inputs,
    outputs,
    { n: threads, ...uniforms, ...g },
    elementwiseGrid(threads, 1, ROW_WORKGROUP),
    label,
    convFlops(g),
  );
}

/** The forward of a one-output-channel convolution into `y`; `inputs`: X, W and the bias if any. */
export function launchRowForward(inputs: readonly Tensor[], y: Tensor, g: ConvGeometry): void {
  const pixels = rowPixels(g.oW, ROW_FORWARD_PIXELS);
  const rowBlocks = Math.ceil(g.oW / pixels);
  const spec = rowForward({ pixels, kw: g.kw, sx: g.sx, bias: inputs.length === 3 });
  launchRow(spec, inputs, [y], g.B * g.oH * rowBlocks, { rowBlocks }, g, "conv2d");
}

/** The stride-1 input gradient of a one-output-channel convolution into `dx`; `inputs`: dY, W, bias. */
export function launchRowInput(inputs: readonly Tensor[], dx: Tensor, g: ConvGeometry): void {
  const cols = channelBlock(g.Ci);
  const pixels = rowPixels(g.W, ROW_INPUT_PIXELS);
  const rowBlocks = Math.ceil(g.W / pixels);
  const spec = rowInput({ pixels, kw: g.kw, cols, bias: inputs.length === 3 });
  launchRow(spec, inputs, [dx], g.B * g.H * rowBlocks * (g.Ci / cols), { rowBlocks }, g, "conv2d-dx");
}

/**
 * The weight (and bias) gradient of a one-output-channel convolution with horizontal stride 1 on the
 * sliding-window kernel (`rowFilter`): slices of output rows, about
 * `ROW_FILTER_THREADS` threads in all, then a sum over the slices.
 */
export function rowFilterAndBias(
  x: Tensor,
  dy: Tensor,
  g: ConvGeometry,
  withBias: boolean,
): { dw: Tensor; db: Tensor | null } {
  const cols = channelBlock(g.Ci);
  const threadsPerSlice = g.kh * (g.Ci / cols);
  const rows = g.B * g.oH;
  const rowsPerSlice = Math.ceil(
    rows / Math.max(1, Math.min(rows, Math.ceil(ROW_FILTER_THREADS / threadsPerSlice))),
  );
  const slices = Math.ceil(rows / rowsPerSlice);
  const partial = emptyTensor(
    slices === 1 ? [g.kh, g.kw, g.Ci, 1] : [slices, g.kh * g.kw * g.Ci],
    "f32",
    "conv2d-dw",
  );
  const biasPartial = withBias ? emptyTensor(slices === 1 ? [1] : [slices, 1], "f32", "conv2d-db") : null;
  launchRow(
    rowFilter({ kw: g.kw, cols, bias: withBias }),
    [x, dy],
    biasPartial ? [partial, biasPartial] : [partial],
    slices * threadsPerSlice,
    { rowsPerSlice },
    g,
    "conv2d-dw",
  );
  if (slices === 1) return { dw: partial, db: biasPartial };
  return {
    dw: sumSlices(partial, 0, [g.kh, g.kw, g.Ci, 1]),
    db: biasPartial && sumSlices(biasPartial, 0, [1]),
  };
}
