/**
 * Elementwise unary ops and their derivative kernels, from one table.
 *
 * Each row gives the forward expression `f` (of `x` and the scalar parameter `p`) and the
 * vector-Jacobian product `vjp` (of the cotangent `g`, the input `x`, the output `y` and `p`). One
 * WGSL template serves every row, forward or backward, selected by a preprocessor branch; the
 * pipeline key is `unary:<op>` or `unary-vjp:<op>`. Numerically careful forms where the naive one
 * fails in float32: log1p/expm1 (series near 0), softplus/sigmoid (no overflow for large |x|),
 * tanh (no inf/inf, no cancellation near 0). The autodiff rules in autograd/rules.ts call `unaryVjp`.
 */

import { wgsl } from "wgsl-preprocessor";
import { elementType, elementwiseGrid, elementwiseMain, launch } from "./launch.ts";
import { type KernelBody, type KernelSpec, memoSpec } from "./runtime/program.ts";
import { emptyTensor, type Tensor } from "./tensor.ts";

/**
 * WGSL helpers shared by the elementwise kernels, written once for the element type `T`: the kernel
 * declares `alias T = f32;` (broadcasting variants, one element per thread) or `alias T = vec4<f32>;`
 * (contiguous variants, four elements per thread; see `elementType` below). Hence `T(0.0)` splats
 * and branch-free `select`s instead of early returns.
 */
export const MATH_WGSL = /* wgsl */ `
// WGSL only promises log/exp to an absolute 2^-21 near 1, so the textbook corrections that divide
// by log(1 + x) lose all relative accuracy for tiny x on real drivers. Small arguments use series:
// log1p(x) = 2 atanh(s), s = x / (2 + x), |s| <= 1/3 (terms to s^13, relative error < 2e-8);
// expm1(x) by Horner to x^9 for |x| < 0.5 (relative error < 3e-9). Both forms are evaluated and
// one selected per element; the one not taken may be inf or NaN, which select discards.
fn log1p_(x: T) -> T {
  let s = x / (2.0 + x);
  let s2 = s * s;
  let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 / 13.0)))));
  return select(2.0 * s * series, log(1.0 + x), abs(x) >= T(0.5));
}
fn expm1_(x: T) -> T {
  let series = x * (1.0 + x / 2.0 * (1.0 + x / 3.0 * (1.0 + x / 4.0 * (1.0 + x / 5.0 * (1.0 + x / 6.0 * (1.0 + x / 7.0 * (1.0 + x / 8.0 * (1.0 + x / 9.0))))))));
  return select(series, exp(x) - 1.0, abs(x) >= T(0.5));
}
fn sigmoid_(x: T) -> T {
  let e = exp(-abs(x));
  let s = 1.0 / (1.0 + e);
  return select(e * s, s, x >= T(0.0));
}
fn softplus_(x: T) -> T {
  return max(x, T(0.0)) + log1p_(exp(-abs(x)));
}
fn tanh_(x: T) -> T {
  // (1 - e^-2|x|) / (1 + e^-2|x|) with the numerator from expm1: exact near 0, no inf/inf far out.
  let e = expm1_(-2.0 * abs(x));
  return sign(x) * (-e) / (2.0 + e);
}
fn pow_(x: T, p: f32) -> T {
  if (p == 0.0) { return T(1.0); }
  let m = pow(abs(x), T(p));
  // A negative base: NaN for a fractional exponent, else the sign of (-1)^p. The NaN's bits depend on
  // p (p - p = 0) so that it is not a constant expression: Tint (Chrome) rejects a constant NaN.
  let nan = bitcast<f32>(0x7fc00000u + u32(p - p));
  let negative = select(select(m, -m, fract(p * 0.5) != 0.0), T(nan), fract(p) != 0.0);
  return select(negative, m, x >= T(0.0));
}
`;

interface UnaryRow {
  /** Forward: WGSL expression of x (and p). */
  f: string;
  /** VJP: WGSL expression of g, x, y (and p); absent for ops with zero or undefined derivative. */
  vjp?: string;
}

export const UNARY = {
  neg: { f: "-x", vjp: "-g" },
  abs: { f: "abs(x)", vjp: "g * sign(x)" },
  sign: { f: "sign(x)" },
  exp: { f: "exp(x)", vjp: "g * y" },
  log: { f: "log(x)", vjp: "g / x" },
  log1p: { f: "log1p_(x)", vjp: "g / (1.0 + x)" },
  expm1: { f: "expm1_(x)", vjp: "g * (y + 1.0)" },
  sqrt: { f: "sqrt(x)", vjp: "g * 0.5 / y" },
  square: { f: "x * x", vjp: "2.0 * g * x" },
  reciprocal: { f: "1.0 / x", vjp: "-g * y * y" },
  relu: { f: "max(x, T(0.0))", vjp: "select(T(0.0), g, x > T(0.0))" },
  sigmoid: { f: "sigmoid_(x)", vjp: "g * y * (1.0 - y)" },
  /**
   * x sigmoid(x) (SiLU, Elfwing et al. 2018) in one pass each way: as mul(x, sigmoid(x)) it took two
   * kernels forward and four backward (both mul VJPs, the sigmoid VJP, the sum of the two paths).
   * d/dx = s + x s (1 - s) with s = sigmoid(x).
   */
  silu: { f: "x * sigmoid_(x)", vjp: "g * sigmoid_(x) * (1.0 + x * (1.0 - sigmoid_(x)))" },
  softplus: { f: "softplus_(x)", vjp: "g * sigmoid_(x)" },
  tanh: { f: "tanh_(x)", vjp: "g * (1.0 - y * y)" },
  /** x^p for a scalar p; negative x allowed for integer p. */
  pow: { f: "pow_(x, p)", vjp: "g * p * pow_(x, p - 1.0)" },
} satisfies Record<string, UnaryRow>;

export type UnaryOp = keyof typeof UNARY;

function unarySpec({ op, backward }: { op: UnaryOp; backward: boolean }): KernelBody {
  const row: UnaryRow = UNARY[op];
  if (backward && !row.vjp) throw new Error(`unary ${op} has no derivative kernel`);
  const T = elementType(4);
  return {
    uniforms: [["n", "u32"], ["p", "f32"]],
    inputs: backward ? [["G", T], ["X", T], ["Y", T]] : [["X", T]],
    outputs: [["Out", T]],
    body: wgsl`alias T = ${T};
${MATH_WGSL}
${elementwiseMain(4)}
  let p = P.p;
  let x = X[i];
#if ${backward}
  let g = G[i];
  let y = Y[i];
  Out[i] = ${row.vjp ?? "T(0.0)"};
#else
  Out[i] = ${row.f};
#endif
}
`,
  };
}

const specFor = (op: UnaryOp, backward: boolean): KernelSpec =>
  memoSpec("unary", { op, backward }, unarySpec);

/** y = f(x) elementwise (`p` is the exponent of `pow`); four elements per thread. */
export function unary(op: UnaryOp, x: Tensor, p = 0): Tensor {
  if (x.dtype !== "f32") throw new Error(`${op}: expected an f32 tensor, got ${x}`);
  const out = emptyTensor(x.shape, "f32", op);
  launch(specFor(op, false), [x], [out], { n: x.size, p }, elementwiseGrid(x.size, 4), op);
  return out;
}

/** The cotangent of x for y = f(x), given the cotangent g of y: g * f'(x), one kernel. */
export function unaryVjp(op: UnaryOp, g: Tensor, x: Tensor, y: Tensor, p = 0): Tensor {
  const out = emptyTensor(x.shape, "f32", `${op}-vjp`);
  launch(
    specFor(op, true),
    [g, x, y],
    [out],
    { n: x.size, p },
    elementwiseGrid(x.size, 4),
    `${op}-vjp`,
  );
  return out;
}
