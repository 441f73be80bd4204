/**
 * The vector-Jacobian product of every primitive, in one table (tinygrad's gradient table, written
 * out as functions). For y = f(x1, ..., xn) and the cotangent g = dL/dy, each rule returns
 * dL/dxi = g . dy/dxi for the inputs whose `needs[i]` is set (null elsewhere).
 *
 * Broadcasting: a binary op's output may be larger than an input; the input's cotangent is then the
 * output cotangent summed over the broadcast axes (`sumTo`). Rules use raw kernels, never recorded.
 */

import { binary, where } from "../kernels/binary.ts";
import { matmul } from "../kernels/matmul.ts";
import {
  convBackwardBias,
  convBackwardFilter,
  convBackwardFilterAndBias,
  convBackwardInput,
  convForward,
  type InputActivation,
} from "../kernels/conv.ts";
import type { ConvGeometry } from "../kernels/conv_geometry.ts";
import { broadcastTo, pad, permute, reshape, slice } from "../kernels/movement.ts";
import { reduce } from "../kernels/reduce.ts";
import { type DistributionOp, distributionVjp, type SigmaMap } from "../kernels/distributions.ts";
import type { RandomKey } from "../kernels/philox.ts";
import { avgPoolBackward, type PoolDivisor } from "../kernels/avgpool.ts";
import { logisticMixtureVjp } from "../kernels/logistic_mixture.ts";
import { weightNormBackward } from "../kernels/weightnorm.ts";
import { broadcastAxes, normalizeAxes, type Shape, sizeOf } from "../kernels/shape.ts";
import { isTensor, type Tensor } from "../kernels/tensor.ts";
import { UNARY, unary, type UnaryOp, unaryVjp } from "../kernels/unary.ts";

type Operand = Tensor | number;

/** The activation derivative a convolution's input gradient applies (none without an activation). */
const activationGrad = (attrs: ConvAttrs, x: Operand) =>
  attrs.activation ? { op: attrs.activation.op, x: t(x) } : null;

/**
 * A convolution's attributes: its geometry, and with an `activation` option (autograd/ops.ts) the
 * activation and the activated input act(x) that was convolved (the weight gradient reads it).
 */
interface ConvAttrs {
  geometry: ConvGeometry;
  activation?: { op: InputActivation; input: Tensor };
}

/** The axes of a reduction and whether they were kept. */
interface ReduceAttrs {
  axes: number | readonly number[] | undefined;
  keepdims: boolean;
}

/**
 * Each primitive's attributes: what its op records besides inputs and output, and its rule reads
 * (typed here once, so neither side needs a cast). Primitives not listed record none.
 */
export interface PrimitiveAttrs {
  pow: { p: number };
  sum: ReduceAttrs;
  mean: ReduceAttrs;
  max: ReduceAttrs;
  logsumexp: ReduceAttrs;
  permute: { perm: number[] };
  slice: { start: number[] };
  pad: { pads: [number, number][] };
  concat: { axis: number };
  matmul: { transA: boolean; transB: boolean };
  conv2d: ConvAttrs;
  conv2dTranspose: ConvAttrs;
  avgPool2d: { geometry: ConvGeometry; divisor: PoolDivisor };
  weightNorm: { axis: number };
  distribution: { op: DistributionOp; sigma: SigmaMap; key?: RandomKey };
  logisticMixture: { components: number };
}

/** Every primitive with a rule. */
export type PrimitiveName =
  | Exclude<UnaryOp, "sign">
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "maximum"
  | "minimum"
  | "where"
  | "reshape"
  | "broadcastTo"
  | keyof PrimitiveAttrs;

/** The attributes primitive `P` records: `PrimitiveAttrs[P]`, or none. */
export type AttrsOf<P extends PrimitiveName> = P extends keyof PrimitiveAttrs ? PrimitiveAttrs[P]
  : Record<never, never>;

/** What a rule gets: the output's cotangent, the op's inputs, output and attributes, and which inputs need one. */
export interface VjpArgs<A = Record<never, never>> {
  g: Tensor;
  inputs: readonly Operand[];
  output: Tensor;
  attrs: A;
  needs: readonly boolean[];
}

type Rule<A = Record<never, never>> = (args: VjpArgs<A>) => (Tensor | null)[];

/** Sums `g` over the axes along which `shape` was broadcast to g's shape, then views it as `shape`. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  const axes = broadcastAxes(shape, g.shape);
  if (axes.length === 0) return g;
  return reshape(reduce("sum", g, axes), shape);
}

const t = (x: Operand): Tensor => x as Tensor;
const shapeOf = (x: Operand): Shape => isTensor(x) ? x.shape : [];

/** The reduced shape with kept (size-1) axes, for broadcasting a reduction's cotangent back. */
function keptShape(x: Tensor, attrs: ReduceAttrs): number[] {
  const axes = normalizeAxes(attrs.axes, x.rank, "vjp");
  return x.shape.map((d, i) => axes.includes(i) ? 1 : d);
}

/** For y = f(x) elementwise: one fused kernel computing g * f'(x). */
const unaryRule = (op: UnaryOp): Rule<{ p?: number }> => ({ g, inputs: [x], output, attrs }) => [
  unaryVjp(op, g, t(x), output, attrs.p ?? 0),
];

const unaryRules = Object.fromEntries(
  (Object.keys(UNARY) as UnaryOp[]).filter((op) => "vjp" in UNARY[op]).map((op) => [op, unaryRule(op)]),
) as Record<Exclude<UnaryOp, "sign">, Rule<{ p?: number }>>;

/** Share of the cotangent that max/min route to `a`: 1 where a wins, 1/2 on ties, 0 where b wins. */
function winnerMask(a: Operand, b: Operand, wins: "greater" | "less"): Tensor {
  const strict = binary(wins, a, b);
  const tie = binary("equal", a, b);
  return binary("add", strict, binary("mul", tie, 0.5));
}

/** The rule of every primitive, its attributes typed by `PrimitiveAttrs`. */
export const VJP: { [P in PrimitiveName]: Rule<AttrsOf<P>> } = {
  ...unaryRules,

  // d(a + b) = da + db
  add: ({ g, inputs: [a, b], needs }) => [
    needs[0] ? sumTo(g, shapeOf(a)) : null,
    needs[1] ? sumTo(g, shapeOf(b)) : null,
  ],
  // d(a - b) = da - db
  sub: ({ g, inputs: [a, b], needs }) => [
    needs[0] ? sumTo(g, shapeOf(a)) : null,
    needs[1] ? sumTo(binary("mul", g, -1), shapeOf(b)) : null,
  ],
  // d(a b) = b da + a db
  mul: ({ g, inputs: [a, b], needs }) => [
    needs[0] ? sumTo(binary("mul", g, b), shapeOf(a)) : null,
    needs[1] ? sumTo(binary("mul", g, a), shapeOf(b)) : null,
  ],
  // d(a / b) = da / b - (a / b^2) db = da / b - (y / b) db
  div: ({ g, inputs: [a, b], output, needs }) => [
    needs[0] ? sumTo(binary("div", g, b), shapeOf(a)) : null,
    needs[1] ? sumTo(binary("mul", binary("div", g, b), binary("mul", output, -1)), shapeOf(b)) : null,
  ],
  // max(a, b): the cotangent goes to the larger input, split evenly on ties.
  maximum: ({ g, inputs: [a, b], needs }) => {
    const m = winnerMask(a, b, "greater");
    return [
      needs[0] ? sumTo(binary("mul", g, m), shapeOf(a)) : null,
      needs[1] ? sumTo(binary("mul", g, binary("sub", 1, m)), shapeOf(b)) : null,
    ];
  },
  minimum: ({ g, inputs: [a, b], needs }) => {
    const m = winnerMask(a, b, "less");
    return [
      needs[0] ? sumTo(binary("mul", g, m), shapeOf(a)) : null,
      needs[1] ? sumTo(binary("mul", g, binary("sub", 1, m)), shapeOf(b)) : null,
    ];
  },
  // where(c, a, b): the cotangent flows to the branch that was selected; c gets none.
  where: ({ g, inputs: [c, a, b], needs }) => [
    null,
    needs[1] ? sumTo(where(t(c), g, 0), shapeOf(a)) : null,
    needs[2] ? sumTo(where(t(c), 0, g), shapeOf(b)) : null,
  ],

  // y = sum_axes x: every summed element receives g.
  sum: ({ g, inputs: [x], attrs }) => [broadcastTo(reshape(g, keptShape(t(x), attrs)), t(x).shape)],
  // y = mean_axes x = sum / n.
  mean: ({ g, inputs: [x], attrs }) => {
    const shape = keptShape(t(x), attrs);
    const n = t(x).size / Math.max(1, sizeOf(shape));
    return [broadcastTo(reshape(binary("mul", g, 1 / n), shape), t(x).shape)];
  },
  // y = max_axes x: g goes to the maximal elements, split evenly between ties.
  max: ({ g, inputs: [x], output, attrs }) => {
    const shape = keptShape(t(x), attrs);
    const mask = binary("equal", t(x), reshape(output, shape));
    const count = reduce("sum", mask, attrs.axes, true);
    return [binary("mul", mask, binary("div", reshape(g, shape), count))];
  },
  // y = log sum exp x: dy/dx = softmax(x) = exp(x - y).
  logsumexp: ({ g, inputs: [x], output, attrs }) => {
    const shape = keptShape(t(x), attrs);
    const softmax = unary("exp", binary("sub", t(x), reshape(output, shape)));
    return [binary("mul", softmax, reshape(g, shape))];
  },

  // Movement ops: each VJP is the inverse movement (or its adjoint).
  reshape: ({ g, inputs: [x] }) => [reshape(g, t(x).shape)],
  permute: ({ g, attrs }) => {
    const perm = attrs.perm;
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [permute(g, inverse)];
  },
  broadcastTo: ({ g, inputs: [x] }) => [sumTo(g, t(x).shape)],
  // slice <-> pad with zeros are adjoint.
  slice: ({ g, inputs: [x], attrs }) => {
    const start = attrs.start;
    return [pad(g, start.map((s, d) => [s, t(x).shape[d] - s - g.shape[d]] as [number, number]))];
  },
  pad: ({ g, inputs: [x], attrs }) => {
    const pads = attrs.pads;
    return [slice(g, pads.map(([before]) => before), pads.map(([before], d) => before + t(x).shape[d]))];
  },
  concat: ({ g, inputs, attrs, needs }) => {
    const axis = attrs.axis;
    let at = 0;
    return inputs.map((x, i) => {
      const size = t(x).shape[axis];
      const begin = g.shape.map((_, d) => d === axis ? at : 0);
      const end = g.shape.map((s, d) => d === axis ? at + size : s);
      at += size;
      return needs[i] ? slice(g, begin, end) : null;
    });
  },

  // C = op(A) op(B). With plain A, B: dA = g B^T, dB = A^T g. Transposed operands swap roles:
  // transA (A stored [K, M]): dA = B g^T;  transB (B stored [N, K]): dB = g^T A.
  matmul: ({ g, inputs: [a, b], attrs, needs }) => {
    const { transA, transB } = attrs;
    const A = t(a), B = t(b);
    let dA: Tensor | null = null, dB: Tensor | null = null;
    if (needs[0]) {
      dA = transA ? matmul(B, g, { transA: transB, transB: true }) : matmul(g, B, { transB: !transB });
      dA = sumTo(dA, A.shape);
    }
    if (needs[1]) {
      dB = transB ? matmul(g, A, { transA: true, transB: transA }) : matmul(A, g, { transA: !transA });
      dB = sumTo(dB, B.shape);
    }
    return [dA, dB];
  },

  // y = conv(x, w) + b: dx is the transposed convolution of g with w, dw correlates x with g over
  // batch and pixels, db sums g over batch and pixels (kernels/conv.ts; dw and db in one pass over g
  // where the kernel allows).
  // With an activation, y = conv(act(x), w) + b: the filter correlates act(x) with g, and dx takes
  // act'(x) from the input-gradient kernel itself.
  conv2d: ({ g, inputs: [x, w], attrs, needs }) => {
    const { geometry, activation } = attrs;
    const input = activation?.input ?? t(x);
    const [dw, db] = needs[1] && needs[2]
      ? convBackwardFilterAndBias(input, g, geometry)
      : [needs[1] ? convBackwardFilter(input, g, geometry) : null, needs[2] ? convBackwardBias(g) : null];
    return [needs[0] ? convBackwardInput(g, t(w), null, geometry, activationGrad(attrs, x)) : null, dw, db];
  },
  // y = conv^T(x, w) + b is the adjoint of a convolution whose input is y: dx = conv(g, w),
  // dw correlates g (that convolution's input) with x (its output), db sums g.
  conv2dTranspose: ({ g, inputs: [x, w], attrs, needs }) => {
    const { geometry, activation } = attrs;
    return [
      needs[0] ? convForward(g, t(w), null, geometry, activationGrad(attrs, x)) : null,
      needs[1] ? convBackwardFilter(g, activation?.input ?? t(x), geometry) : null,
      needs[2] ? convBackwardBias(g) : null,
    ];
  },

  // Average pooling is linear: its VJP spreads each output cotangent over its window, divided alike.
  avgPool2d: ({ g, attrs }) => [
    avgPoolBackward(g, attrs.geometry, attrs.divisor),
  ],
  // w = g v / ||v||: dg = <dw, v> / ||v||, dv = (g / ||v||) (dw - v <dw, v> / ||v||^2).
  weightNorm: ({ g, inputs: [v, gain], attrs, needs }) => {
    const [dv, dg] = weightNormBackward(t(v), t(gain), g, attrs.axis);
    return [needs[0] ? dv : null, needs[1] ? dg : null];
  },

  // The fused probability primitives: each input's VJP expression is in the table of
  // kernels/distributions.ts; one kernel computes all that are needed, then broadcasting is undone.
  distribution: ({ g, inputs, attrs, needs }) => {
    const { op, sigma, key } = attrs;
    const grads = distributionVjp(op, g, inputs.map(t), needs, sigma, key);
    return grads.map((d, k) => d ? sumTo(d, t(inputs[k]).shape) : null);
  },
  // The 8-bit likelihood: one fused kernel per pixel gives the cotangent of all 3K head outputs
  // (kernels/logistic_mixture.ts); the images are data and get none.
  logisticMixture: ({ g, inputs: [params, x], attrs, needs }) => [
    needs[0] ? logisticMixtureVjp(g, t(params), t(x), attrs.components) : null,
    null,
  ],
};
