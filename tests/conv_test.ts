/**
 * Convolutions and transposed convolutions: forward, input gradient, weight gradient and bias
 * gradient, exact on small integers (every product and sum is an integer below 2^24, so any index
 * mistake shows as a wrong number, not a tolerance miss), for both the implicit-GEMM kernels and
 * the naive oracle kernels; gradients end to end against finite differences; argument errors.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import {
  convBackwardBias,
  convBackwardFilter,
  convBackwardFilterAndBias,
  convBackwardInput,
  convForward,
  type ConvImplementation,
  filterSplits,
  setConvImplementation,
} from "../kernels/conv.ts";
import {
  conv2dGeometry,
  type Conv2dOptions,
  conv2dTransposeGeometry,
  type ConvGeometry,
  samePadding,
} from "../kernels/conv_geometry.ts";
import { defaultTuning, type DirectBlocks, setTuning } from "../kernels/tuning_choices.ts";
import { read } from "../kernels/tensor.ts";
import { assertClose, checkOp, createRng, gpuTest, randomNd, toTensor } from "./helpers.ts";
import * as ref from "./reference.ts";

interface Case {
  B: number;
  H: number;
  W: number;
  Ci: number;
  Co: number;
  k: number;
  s: number;
  padding: Conv2dOptions["padding"];
}

/** Kernel 1/3/5, stride 1/2/3, symmetric and TF-same asymmetric padding, odd sizes, batch 1, Ci 1-64, Co 1-64. */
const CONV_CASES: Case[] = [
  { B: 1, H: 5, W: 7, Ci: 1, Co: 4, k: 3, s: 1, padding: 1 },
  { B: 2, H: 6, W: 6, Ci: 3, Co: 1, k: 5, s: 2, padding: "same" },
  { B: 1, H: 7, W: 5, Ci: 4, Co: 64, k: 1, s: 1, padding: "valid" },
  { B: 2, H: 8, W: 8, Ci: 8, Co: 4, k: 3, s: 2, padding: "same" },
  { B: 1, H: 9, W: 9, Ci: 8, Co: 64, k: 5, s: 2, padding: 2 },
  { B: 1, H: 4, W: 4, Ci: 1, Co: 1, k: 5, s: 1, padding: "same" },
  { B: 2, H: 28, W: 28, Ci: 1, Co: 8, k: 5, s: 2, padding: "same" },
  { B: 1, H: 14, W: 14, Ci: 64, Co: 64, k: 3, s: 1, padding: "same" },
  { B: 3, H: 7, W: 7, Ci: 16, Co: 16, k: 3, s: 2, padding: [[0, 1], [1, 0]] },
  // Stride 3 with padding 2: phase offsets where (p - pad) and (p + pad) differ mod the stride.
  { B: 1, H: 10, W: 11, Ci: 8, Co: 8, k: 5, s: 3, padding: 2 },
  // k1 s2: input pixels of odd phases receive no tap at all (an empty GEMM must still write zeros).
  { B: 2, H: 7, W: 6, Ci: 8, Co: 8, k: 1, s: 2, padding: "valid" },
  // K = 4 x 16 x 16 = 1024 batch-pixels: the weight gradient runs split-K over 4 slices.
  { B: 4, H: 16, W: 16, Ci: 4, Co: 4, k: 3, s: 1, padding: "same" },
  // The direct kernel's column groups: 12 channels (three groups of 4), 16 (one of 16), 24 (three of 8),
  // 32 (two of 16, the largest the planner sends there), with stride 2 in both directions.
  { B: 2, H: 6, W: 5, Ci: 12, Co: 12, k: 3, s: 1, padding: "same" },
  { B: 2, H: 9, W: 8, Ci: 16, Co: 24, k: 3, s: 2, padding: "same" },
  { B: 1, H: 7, W: 7, Ci: 32, Co: 32, k: 5, s: 2, padding: 2 },
  // One output channel from a multiple of 4 (the Bernoulli head 16 -> 1): the row kernels for the
  // forward and the stride-1 input gradient (kernels/conv_row.ts) and the "narrow" weight gradient
  // that reads the input channels as vec4s; stride 2 with 8 channels too. The head's 28-pixel rows
  // (one block of 28 forward, four of 7 backward), a prime width (a masked last block of 8), 4 and 8
  // channels per thread, a 5x5 and a 1x1 kernel.
  { B: 2, H: 6, W: 7, Ci: 16, Co: 1, k: 3, s: 1, padding: "same" },
  { B: 1, H: 9, W: 8, Ci: 8, Co: 1, k: 3, s: 2, padding: 1 },
  { B: 2, H: 5, W: 28, Ci: 16, Co: 1, k: 3, s: 1, padding: 1 },
  { B: 1, H: 6, W: 19, Ci: 4, Co: 1, k: 5, s: 1, padding: "same" },
  { B: 1, H: 4, W: 30, Ci: 8, Co: 1, k: 1, s: 1, padding: "valid" },
];

/** The reference's stride and explicit pads (bottom/right from the output size) of a geometry. */
function refOptionsOf(g: ConvGeometry): ref.ConvRefOptions {
  return {
    stride: [g.sy, g.sx],
    pads: [[g.padT, (g.oH - 1) * g.sy + g.kh - g.H - g.padT], [
      g.padL,
      (g.oW - 1) * g.sx + g.kw - g.W - g.padL,
    ]],
  };
}

function refOptions(c: Case, H: number, W: number): ref.ConvRefOptions {
  const pads: [[number, number], [number, number]] = c.padding === "same"
    ? [samePadding(H, c.k, c.s), samePadding(W, c.k, c.s)]
    : c.padding === "valid"
    ? [[0, 0], [0, 0]]
    : typeof c.padding === "number"
    ? [[c.padding, c.padding], [c.padding, c.padding]]
    : c.padding as [[number, number], [number, number]];
  return { stride: [c.s, c.s], pads };
}

/**
 * Every kernel family, and the direct kernels with the register blocks of each kind of adapter
 * (16 x 16 on a CPU, 4 x 4 on a GPU) and with ragged blocks that tile neither pixels nor channels
 * evenly (3 pixels, 5 rows, 7 columns: the largest divisor of the channel count is taken).
 */
const VARIANTS: { name: string; impl: ConvImplementation; blocks?: DirectBlocks }[] = [
  { name: "auto", impl: "auto" },
  { name: "direct 16x16", impl: "direct", blocks: { pixels: 16, rows: 16, cols: 16, dwThreads: 1024 } },
  { name: "direct 4x4", impl: "direct", blocks: { pixels: 4, rows: 4, cols: 4, dwThreads: 65536 } },
  { name: "direct 3/5x7", impl: "direct", blocks: { pixels: 3, rows: 5, cols: 7, dwThreads: 100 } },
  { name: "gemm", impl: "gemm" },
  { name: "naive", impl: "naive" },
];

/** Runs `body` with one variant's kernels, then restores the previous choice. */
async function withVariant(v: (typeof VARIANTS)[number], body: () => Promise<void>): Promise<void> {
  const previous = setConvImplementation(v.impl);
  const previousTuning = setTuning(v.blocks ? { ...defaultTuning(true), direct: v.blocks } : null);
  try {
    await body();
  } finally {
    setConvImplementation(previous);
    setTuning(previousTuning);
  }
}

const int = { low: -3, high: 3, integer: true };

/**
 * A random integer input, filter and bias (the length of the filter's axis `biasAxis`: 3 for a
 * convolution's [kh, kw, Ci, Co], 2 for a transposed one's [kh, kw, Co, Ci]).
 */
function integerOperands(
  rng: ReturnType<typeof createRng>,
  xs: number[],
  ws: number[],
  biasAxis = 3,
): ref.Nd[] {
  return [randomNd(rng, xs, int), randomNd(rng, ws, int), randomNd(rng, [ws[biasAxis]], int)];
}

/** d/dh of h sigmoid(h), in float64. */
function siluGrad(h: number): number {
  const s = 1 / (1 + Math.exp(-h));
  return s * (1 + h * (1 - s));
}
const exact = { rtol: 0, atol: 0 };

for (const variant of VARIANTS) {
  gpuTest(
    `conv2d (${variant.name}): forward, dX, dW, db exact on integers over ${CONV_CASES.length} geometries`,
    () =>
      withVariant(variant, async () => {
        let splitKSeen = variant.impl === "naive";
        const rng = createRng(301);
        for (const c of CONV_CASES) {
          const label = `${variant.name} ${JSON.stringify(c)}`;
          const [x, w, bias] = integerOperands(rng, [c.B, c.H, c.W, c.Ci], [c.k, c.k, c.Ci, c.Co]);
          const o = refOptions(c, c.H, c.W);
          const y = ref.conv2d(x, w, bias, o);
          const g = randomNd(rng, y.shape, int);
          const vjp = ref.conv2dVjp(x, w, g, o);
          const [tx, tw, tb, tg] = [x, w, bias, g].map(toTensor);
          const geometry = conv2dGeometry(tx.shape, tw.shape, tb.shape, { stride: c.s, padding: c.padding });
          const ty = convForward(tx, tw, tb, geometry);
          assert.deepEqual(ty.shape, y.shape, `${label}: output shape`);
          assertClose(await read(ty), y.data, exact, `${label} forward`);
          assertClose(
            await read(convBackwardInput(tg, tw, null, geometry)),
            vjp.dx.data,
            exact,
            `${label} dX`,
          );
          const slices = filterSplits(c.k * c.k * c.Ci, c.Co, c.B * geometry.oH * geometry.oW);
          assertClose(
            await read(convBackwardFilter(tx, tg, geometry)),
            vjp.dw.data,
            exact,
            `${label} dW (${slices} K slices)`,
          );
          splitKSeen ||= slices > 1;
          // dX times an activation's derivative at h (the `activation` option of the ops): applied in
          // the direct kernels' store, after the others' kernels; exact for ReLU (0 or 1) on integers.
          const h = randomNd(rng, vjp.dx.shape, int);
          assertClose(
            await read(convBackwardInput(tg, tw, null, geometry, { op: "relu", x: toTensor(h) })),
            vjp.dx.data.map((v, i) => h.data[i] > 0 ? v : 0),
            exact,
            `${label} dX * relu'(h)`,
          );
          const hs = randomNd(rng, vjp.dx.shape, { low: -6, high: 6 });
          assertClose(
            await read(convBackwardInput(tg, tw, null, geometry, { op: "silu", x: toTensor(hs) })),
            vjp.dx.data.map((v, i) => v * siluGrad(hs.data[i])),
            { rtol: 1e-5, atol: 1e-5 },
            `${label} dX * silu'(h)`,
          );
          assertClose(await read(convBackwardBias(tg)), vjp.db.data, exact, `${label} db`);
          // The fused pass (the direct kernel sums dY for the bias while it correlates).
          const [dw2, db2] = convBackwardFilterAndBias(tx, tg, geometry);
          assertClose(await read(dw2), vjp.dw.data, exact, `${label} dW with db`);
          assertClose(await read(db2), vjp.db.data, exact, `${label} db with dW`);
        }
        assert.ok(splitKSeen, "no case exercised the split-K weight gradient");
      }),
  );
}

interface TCase {
  B: number;
  H: number;
  W: number;
  Cin: number;
  Cout: number;
  k: number;
  s: number;
  crop: [[number, number], [number, number]] | "same" | "valid";
}

/** The reference backbone's crop rule (k5 s2: 14 -> 31 -> crop 1/2 -> 28; k3 s2: 7 -> 15 -> 0/1 -> 14), output padding, odd sizes. */
const TRANSPOSE_CASES: TCase[] = [
  { B: 1, H: 3, W: 4, Cin: 2, Cout: 3, k: 3, s: 2, crop: [[1, 0], [1, 0]] },
  { B: 2, H: 7, W: 7, Cin: 4, Cout: 4, k: 3, s: 2, crop: "same" },
  { B: 1, H: 14, W: 14, Cin: 8, Cout: 8, k: 5, s: 2, crop: "same" },
  { B: 1, H: 5, W: 5, Cin: 3, Cout: 1, k: 1, s: 1, crop: "valid" },
  { B: 1, H: 4, W: 3, Cin: 2, Cout: 5, k: 4, s: 2, crop: [[1, 1], [0, 0]] },
  { B: 2, H: 3, W: 3, Cin: 1, Cout: 2, k: 2, s: 2, crop: [[0, -1], [0, -1]] },
  { B: 1, H: 7, W: 7, Cin: 64, Cout: 64, k: 3, s: 2, crop: "same" },
];

function cropOf(c: TCase): [[number, number], [number, number]] {
  if (c.crop === "valid") return [[0, 0], [0, 0]];
  if (c.crop === "same") {
    const total = c.k - c.s;
    const one: [number, number] = [Math.floor(total / 2), total - Math.floor(total / 2)];
    return [one, one];
  }
  return c.crop;
}

for (const variant of VARIANTS) {
  gpuTest(
    `conv2dTranspose (${variant.name}): forward, dX, dW exact on integers, crop rule included`,
    () =>
      withVariant(variant, async () => {
        const rng = createRng(307);
        for (const c of TRANSPOSE_CASES) {
          const label = `${variant.name} ${JSON.stringify(c)}`;
          const [x, w, bias] = integerOperands(rng, [c.B, c.H, c.W, c.Cin], [c.k, c.k, c.Cout, c.Cin], 2);
          const o: ref.ConvRefOptions = { stride: [c.s, c.s], pads: cropOf(c) };
          const y = ref.conv2dTranspose(x, w, bias, o);
          const [tx, tw, tb] = [x, w, bias].map(toTensor);
          const geometry = conv2dTransposeGeometry(tx.shape, tw.shape, tb.shape, {
            stride: c.s,
            padding: c.crop,
          });
          const ty = convBackwardInput(tx, tw, tb, geometry);
          assert.deepEqual(ty.shape, y.shape, `${label}: output shape`);
          assertClose(await read(ty), y.data, exact, `${label} forward`);
          // A transposed convolution is the adjoint of the convolution whose input it produces:
          // dx = conv(g, w) with the crop as padding, dw from that convolution's filter gradient.
          const g = randomNd(rng, y.shape, int);
          const adjoint = ref.conv2dVjp(g, w, x, o);
          const tg = toTensor(g);
          const dx = ref.conv2d(g, w, null, o).data;
          assertClose(await read(convForward(tg, tw, null, geometry)), dx, exact, `${label} dX`);
          const h = randomNd(rng, x.shape, int);
          assertClose(
            await read(convForward(tg, tw, null, geometry, { op: "relu", x: toTensor(h) })),
            dx.map((v, i) => h.data[i] > 0 ? v : 0),
            exact,
            `${label} dX * relu'(h)`,
          );
          const hs = randomNd(rng, x.shape, { low: -6, high: 6 });
          assertClose(
            await read(convForward(tg, tw, null, geometry, { op: "silu", x: toTensor(hs) })),
            dx.map((v, i) => v * siluGrad(hs.data[i])),
            { rtol: 1e-5, atol: 1e-5 },
            `${label} dX * silu'(h)`,
          );
          assertClose(
            await read(convBackwardFilter(tg, tx, geometry)),
            adjoint.dw.data,
            exact,
            `${label} dW`,
          );
        }
      }),
  );
}

gpuTest(
  "conv2d and conv2dTranspose with an activation: the values of conv(act(x)), gradients against finite differences",
  async () => {
    const rng = createRng(313);
    // SiLU's derivative in the kernels' store (16 channels: the vec4 direct kernel) and after the
    // others' (3 channels: scalar; 1 output channel: the row kernels).
    const cases: [number[], number[], Conv2dOptions][] = [
      [[2, 5, 4, 16], [3, 3, 16, 8], { stride: 1, padding: "same" }],
      [[1, 6, 5, 3], [3, 3, 3, 2], { stride: 2, padding: "same" }],
      [[1, 5, 6, 8], [3, 3, 8, 1], { stride: 1, padding: "same" }],
    ];
    const silu = (v: number) => v / (1 + Math.exp(-v));
    for (const activation of ["silu", "relu"] as const) {
      const act = activation === "silu" ? silu : (v: number) => Math.max(v, 0);
      for (const [xs, ws, options] of cases) {
        const g = conv2dGeometry(xs, ws, null, options);
        const o = refOptionsOf(g);
        const activated = (x: ref.Nd) => ({ shape: x.shape, data: x.data.map(act) });
        // Finite differences through ReLU's kink are not a derivative: the ReLU case checks values only
        // (its gradient is exact in the integer tests above).
        await checkOp({
          name: `conv2d(${activation}(x)) ${JSON.stringify(xs)} * ${JSON.stringify(ws)} ${
            JSON.stringify(options)
          }`,
          inputs: [randomNd(rng, xs), randomNd(rng, ws), randomNd(rng, [ws[3]])],
          gpu: (x, w, b) => ops.conv2d(x, w, b, { ...options, activation }),
          ref: (x, w, b) => ref.conv2d(activated(x), w, b, o),
          tol: { rtol: 1e-5, atol: 1e-5 },
          grad: activation === "silu" ? undefined : false,
        });
        const ts = [xs[0], xs[1], xs[2], ws[2]];
        const tw = [ws[0], ws[1], ws[3], ws[2]];
        const crop = cropOf({ ...TRANSPOSE_CASES[0], k: ws[0], s: g.sy, crop: "same" });
        const to: ref.ConvRefOptions = { stride: [g.sy, g.sx], pads: crop };
        await checkOp({
          name: `conv2dTranspose(${activation}(x)) ${JSON.stringify(ts)} * ${JSON.stringify(tw)}`,
          inputs: [randomNd(rng, ts), randomNd(rng, tw), randomNd(rng, [tw[2]])],
          gpu: (x, w, b) =>
            ops.conv2dTranspose(x, w, b, { stride: options.stride, padding: "same", activation }),
          ref: (x, w, b) => ref.conv2dTranspose(activated(x), w, b, to),
          tol: { rtol: 1e-5, atol: 1e-5 },
          grad: activation === "silu" ? undefined : false,
        });
      }
    }
  },
);

gpuTest("conv2d and conv2dTranspose: gradients of x, w and bias against finite differences", async () => {
  const rng = createRng(311);
  const cases: [number[], number[], Conv2dOptions][] = [
    [[2, 5, 4, 2], [3, 3, 2, 3], { stride: 1, padding: "same" }],
    [[1, 6, 5, 3], [5, 5, 3, 2], { stride: 2, padding: "same" }],
    [[1, 4, 4, 1], [1, 1, 1, 2], { stride: 2 }],
  ];
  for (const [xs, ws, options] of cases) {
    const o = refOptionsOf(conv2dGeometry(xs, ws, null, options));
    await checkOp({
      name: `conv2d ${JSON.stringify(xs)} * ${JSON.stringify(ws)} ${JSON.stringify(options)}`,
      inputs: [randomNd(rng, xs), randomNd(rng, ws), randomNd(rng, [ws[3]])],
      gpu: (x, w, b) => ops.conv2d(x, w, b, options),
      ref: (x, w, b) => ref.conv2d(x, w, b, o),
      tol: { rtol: 1e-5, atol: 1e-5 },
    });
  }
  const tcases: [number[], number[], Conv2dOptions, [[number, number], [number, number]]][] = [
    [[1, 3, 3, 2], [3, 3, 2, 2], { stride: 2, padding: [[1, 0], [1, 0]] }, [[1, 0], [1, 0]]],
    [[2, 2, 3, 1], [5, 5, 3, 1], { stride: 2, padding: "same" }, [[1, 2], [1, 2]]],
  ];
  for (const [xs, ws, options, pads] of tcases) {
    await checkOp({
      name: `conv2dTranspose ${JSON.stringify(xs)} * ${JSON.stringify(ws)}`,
      inputs: [randomNd(rng, xs), randomNd(rng, ws), randomNd(rng, [ws[2]])],
      gpu: (x, w, b) => ops.conv2dTranspose(x, w, b, options),
      ref: (x, w, b) =>
        ref.conv2dTranspose(x, w, b, { stride: [options.stride as number, options.stride as number], pads }),
      tol: { rtol: 1e-5, atol: 1e-5 },
    });
  }
});

gpuTest("conv2d: bad arguments name the op and the shapes", () => {
  const rng = createRng(313);
  const x = toTensor(randomNd(rng, [1, 4, 4, 3]));
  const w = toTensor(randomNd(rng, [3, 3, 2, 5]));
  assert.throws(
    () => ops.conv2d(x, w),
    /conv2d: input \[1, 4, 4, 3\] has 3 channels but filter \[3, 3, 2, 5\] expects 2/,
  );
  const w5 = toTensor(randomNd(rng, [5, 5, 3, 1]));
  assert.throws(
    () => ops.conv2d(x, w5),
    /conv2d: filter \[5, 5, 3, 1\] \(5x5\) is larger than the padded input 4x4/,
  );
  assert.throws(
    () => ops.conv2d(x, w5, null, { stride: 0, padding: 2 }),
    /conv2d: stride must be a positive integer/,
  );
  assert.throws(() => ops.conv2d(toTensor(randomNd(rng, [4, 4, 3])), w5), /conv2d: input must be NHWC/);
  assert.throws(
    () => ops.conv2d(x, w5, toTensor(randomNd(rng, [2])), { padding: "same" }),
    /conv2d: bias must have shape \[1\], got \[2\]/,
  );
  assert.throws(
    () => ops.conv2dTranspose(x, toTensor(randomNd(rng, [3, 3, 2, 4]))),
    /conv2dTranspose: input \[1, 4, 4, 3\] has 3 channels but filter \[3, 3, 2, 4\] expects 4/,
  );
});

Deno.test("TF-same padding and transposed crops: fixed values (TensorFlow's rule, the reference's shapes)", () => {
  // [before, after] for input n, kernel k, stride s: output ceil(n / s), the odd element after.
  const cases: [number, number, number, [number, number]][] = [
    [28, 5, 1, [2, 2]],
    [28, 5, 2, [1, 2]], // the reference's stage-1 stride-2 conv: 28 -> 14
    [14, 3, 2, [0, 1]], // stage 2: 14 -> 7; also the k3 s2 average-pool shortcut
    [28, 3, 2, [0, 1]],
    [7, 3, 1, [1, 1]],
    [5, 4, 1, [1, 2]],
    [6, 1, 3, [0, 0]],
    [4, 5, 1, [2, 2]],
  ];
  for (const [n, k, s, expected] of cases) {
    assert.deepEqual(samePadding(n, k, s), expected, `n ${n} k ${k} s ${s}`);
  }
  // Transposed "same": crop k - s of the full (n - 1) s + k output, the larger half at the end.
  const t5 = conv2dTransposeGeometry([1, 14, 14, 64], [5, 5, 64, 64], null, { stride: 2, padding: "same" });
  assert.deepEqual([t5.H, t5.W, t5.padT, t5.padL], [28, 28, 1, 1]); // 31 cropped 1 / 2
  const t3 = conv2dTransposeGeometry([1, 7, 7, 64], [3, 3, 64, 64], null, { stride: 2, padding: "same" });
  assert.deepEqual([t3.H, t3.W, t3.padT, t3.padL], [14, 14, 0, 0]); // 15 cropped 0 / 1
  const c = conv2dGeometry([1, 28, 28, 1], [5, 5, 1, 64], null, { stride: 2, padding: "same" });
  assert.deepEqual([c.oH, c.oW, c.padT, c.padL], [14, 14, 1, 1]);
});
