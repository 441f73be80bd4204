/**
 * The geometry of a 2-D convolution, transposed convolution or pooling window: the padding rules
 * (TensorFlow's "same", explicit per-side padding, transposed-convolution crops), the validation of
 * shapes and options with errors that name the op and the shapes, and `ConvGeometry`, the numbers
 * every conv and pooling kernel reads as uniforms. kernels/conv.ts and kernels/avgpool.ts use it;
 * autograd/ops.ts calls the validating constructors.
 *
 * Only the top/left padding enters the kernels' index math; the output size carries the rest, which
 * is how TF-"same" asymmetric padding and transposed-convolution crops are both expressed.
 */

import type { UniformType } from "./runtime/program.ts";
import { type Shape, shapeString } from "./shape.ts";

/** Everything the index math needs; batch B, input H x W x Ci, output oH x oW x Co. */
export interface ConvGeometry {
  /** Batch size. */
  B: number;
  /** Input height. */
  H: number;
  /** Input width. */
  W: number;
  /** Input channels. */
  Ci: number;
  /** Output height. */
  oH: number;
  /** Output width. */
  oW: number;
  /** Output channels. */
  Co: number;
  /** Kernel height. */
  kh: number;
  /** Kernel width. */
  kw: number;
  /** Vertical stride. */
  sy: number;
  /** Horizontal stride. */
  sx: number;
  /** Zero rows above the input (the rest of the padding is implied by the output size). */
  padT: number;
  /** Zero columns left of the input. */
  padL: number;
}

/** The uniforms of a ConvGeometry, in its field order (shared by the pooling kernels). */
export const GEOMETRY_UNIFORMS: [string, UniformType][] = [
  "B",
  "H",
  "W",
  "Ci",
  "oH",
  "oW",
  "Co",
  "kh",
  "kw",
  "sy",
  "sx",
  "padT",
  "padL",
].map((name) => [name, "u32"]);

/** Per-side padding [[top, bottom], [left, right]], or a rule. */
export type Padding2d =
  | "same"
  | "valid"
  | number
  | readonly [readonly [number, number], readonly [number, number]];

/** Options of `conv2d` and `conv2dTranspose`. */
export interface Conv2dOptions {
  /** One stride for both axes, or [sy, sx]. Default 1. */
  stride?: number | readonly [number, number];
  /**
   * Convolution: zero padding. "same" is TensorFlow's rule: output ceil(in / s), total padding
   * max(0, (out - 1) s + k - in) with the odd element at the bottom/right. Default "valid".
   * Transposed convolution: the crop of the full (in - 1) s + k output, which may be negative at the
   * bottom/right to extend it (PyTorch's output_padding); "same" gives output in x s.
   */
  padding?: Padding2d;
}

function strides2(stride: Conv2dOptions["stride"], op: string): [number, number] {
  const [sy, sx] = typeof stride === "number" || stride === undefined ? [stride ?? 1, stride ?? 1] : stride;
  if (![sy, sx].every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error(
      `${op}: stride must be a positive integer or a pair of them, got ${JSON.stringify(stride)}`,
    );
  }
  return [sy, sx];
}

/** TensorFlow "same": [before, after] for input n, kernel k, stride s. */
export function samePadding(n: number, k: number, s: number): [number, number] {
  const out = Math.ceil(n / s);
  const total = Math.max(0, (out - 1) * s + k - n);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

function explicitPads(padding: Padding2d, op: string): [[number, number], [number, number]] | null {
  if (padding === "same" || padding === "valid") return null;
  const pads = typeof padding === "number" ? [[padding, padding], [padding, padding]] : padding;
  if (
    !Array.isArray(pads) || pads.length !== 2 || pads.some((p) => !Array.isArray(p) || p.length !== 2) ||
    pads.flat().some((v) => !Number.isInteger(v))
  ) {
    throw new Error(
      `${op}: padding must be "same", "valid", an integer or [[top, bottom], [left, right]], got ${
        JSON.stringify(padding)
      }`,
    );
  }
  return [[pads[0][0], pads[0][1]], [pads[1][0], pads[1][1]]];
}

function checkNhwc(x: Shape, w: Shape, op: string, wName: string): void {
  if (x.length !== 4) {
    throw new Error(`${op}: input must be NHWC [batch, height, width, channels], got ${shapeString(x)}`);
  }
  if (w.length !== 4) throw new Error(`${op}: filter must be ${wName}, got ${shapeString(w)}`);
}

function checkBias(bias: Shape | null, channels: number, op: string): void {
  if (bias && (bias.length !== 1 || bias[0] !== channels)) {
    throw new Error(`${op}: bias must have shape [${channels}], got ${shapeString(bias)}`);
  }
}

/**
 * The checks a convolution and a transposed convolution share: NHWC input, a 4-D filter whose
 * input-channel axis (2 for `[kh, kw, in, out]`, 3 for the `transposed` filter `[kh, kw, out, in]`)
 * matches the input, the bias, the strides; the padding option with its default.
 */
function checkArguments(
  x: Shape,
  w: Shape,
  bias: Shape | null,
  options: Conv2dOptions,
  op: string,
  transposed = false,
) {
  checkNhwc(
    x,
    w,
    op,
    transposed ? "[kh, kw, out_channels, in_channels]" : "[kh, kw, in_channels, out_channels]",
  );
  const [B, H, W, inC] = x;
  const [kh, kw] = w;
  const [wIn, outC] = transposed ? [w[3], w[2]] : [w[2], w[3]];
  if (wIn !== inC) {
    throw new Error(
      `${op}: input ${shapeString(x)} has ${inC} channels but filter ${shapeString(w)} expects ${wIn}`,
    );
  }
  checkBias(bias, outC, op);
  const [sy, sx] = strides2(options.stride, op);
  return { B, H, W, inC, outC, kh, kw, sy, sx, padding: options.padding ?? "valid" };
}

/** Validates a convolution's arguments and returns its geometry; errors name the op and the shapes. */
export function conv2dGeometry(
  x: Shape,
  w: Shape,
  bias: Shape | null,
  options: Conv2dOptions = {},
  op = "conv2d",
): ConvGeometry {
  const { B, H, W, inC: Ci, outC: Co, kh, kw, sy, sx, padding } = checkArguments(x, w, bias, options, op);
  let pads = explicitPads(padding, op);
  if (padding === "same") pads = [samePadding(H, kh, sy), samePadding(W, kw, sx)];
  if (padding === "valid") pads = [[0, 0], [0, 0]];
  const [[pT, pB], [pL, pR]] = pads!;
  if ([pT, pB, pL, pR].some((v) => v < 0)) throw new Error(`${op}: negative padding ${JSON.stringify(pads)}`);
  if (H + pT + pB < kh || W + pL + pR < kw || kh < 1 || kw < 1) {
    throw new Error(
      `${op}: filter ${shapeString(w)} (${kh}x${kw}) is larger than the padded input ` +
        `${H + pT + pB}x${W + pL + pR} of ${shapeString(x)}`,
    );
  }
  const oH = Math.floor((H + pT + pB - kh) / sy) + 1;
  const oW = Math.floor((W + pL + pR - kw) / sx) + 1;
  return { B, H, W, Ci, oH, oW, Co, kh, kw, sy, sx, padT: pT, padL: pL };
}

/**
 * Validates a transposed convolution (filter [kh, kw, out_channels, in_channels], TensorFlow's
 * convention: the filter of the convolution it is the adjoint of) and returns the geometry of that
 * convolution: its input is the transposed convolution's output.
 */
export function conv2dTransposeGeometry(
  x: Shape,
  w: Shape,
  bias: Shape | null,
  options: Conv2dOptions = {},
): ConvGeometry {
  const op = "conv2dTranspose";
  const { B, H, W, inC: Cin, outC: Cout, kh, kw, sy, sx, padding } = checkArguments(
    x,
    w,
    bias,
    options,
    op,
    true,
  );
  let crops = explicitPads(padding, op);
  if (padding === "valid") crops = [[0, 0], [0, 0]];
  if (padding === "same") {
    const crop = (k: number, s: number): [number, number] => {
      const c = k - s; // full output (n - 1) s + k, target n s
      return c >= 0 ? [Math.floor(c / 2), c - Math.floor(c / 2)] : [0, c];
    };
    crops = [crop(kh, sy), crop(kw, sx)];
  }
  const [[cT, cB], [cL, cR]] = crops!;
  if (cT < 0 || cL < 0) throw new Error(`${op}: top/left crop must be >= 0, got ${JSON.stringify(crops)}`);
  const oH = (H - 1) * sy + kh - cT - cB;
  const oW = (W - 1) * sx + kw - cL - cR;
  if (oH < 1 || oW < 1 || kh < 1 || kw < 1) {
    throw new Error(
      `${op}: crop ${JSON.stringify(crops)} leaves no output for ${shapeString(x)} and filter ${
        shapeString(w)
      }`,
    );
  }
  return { B, H: oH, W: oW, Ci: Cout, oH: H, oW: W, Co: Cin, kh, kw, sy, sx, padT: cT, padL: cL };
}

/** Multiply-adds x 2 of one direction of a convolution (all three do the same work). */
export function convFlops(g: ConvGeometry): number {
  return 2 * g.B * g.oH * g.oW * g.Co * g.kh * g.kw * g.Ci;
}
