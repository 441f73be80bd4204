/**
 * The discretized logistic mixture (kernels/logistic_mixture.ts, models/likelihood.ts): log p(x) per
 * pixel against the float64 textbook form, at the edges (levels 0 and 255), in the middle bins, where
 * the midpoint density takes over, below the log-scale clamp and at large scales; gradients by finite
 * differences; the 256 levels' probabilities sum to 1; the 8-bit input; the mixture's mean image;
 * a model with this likelihood has a 3K-channel head, exact gradients and a falling loss.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { imageSetFromPixels, inputBatch } from "../data/loader.ts";
import { grad } from "../autograd/tape.ts";
import { keep, read, type Tensor } from "../kernels/tensor.ts";
import { adamInit } from "../models/adam.ts";
import { initHvae } from "../models/hvae.ts";
import { likelihoodOf, meanImage, withLikelihood } from "../models/likelihood.ts";
import { presetConfig } from "../models/presets.ts";
import { createRng } from "../models/rng.ts";
import { trainTinyRun } from "./commands.ts";
import { directionalCheck, trainingLosses } from "./gradient_check.ts";
import { assertClose, checkOp, gpuTest, type Rng, toTensor } from "./helpers.ts";
import * as ref from "./reference.ts";
import { syntheticBatch, syntheticPixels } from "./synthetic.ts";

/** Head outputs [pixels, 3K]: logits, means and log-scales drawn from the given ranges. */
function headOutputs(
  rng: Rng,
  pixels: number,
  K: number,
  logScale: [number, number],
  mean: [number, number] = [-1, 1],
): ref.Nd {
  const data = new Float64Array(pixels * 3 * K);
  const draw = ([lo, hi]: [number, number]) => Math.fround(lo + (hi - lo) * rng.uniform());
  for (let p = 0; p < pixels; p++) {
    for (let k = 0; k < K; k++) {
      data[p * 3 * K + k] = draw([-2, 2]);
      data[p * 3 * K + K + k] = draw(mean);
      data[p * 3 * K + 2 * K + k] = draw(logScale);
    }
  }
  return ref.nd([pixels, 3 * K], data);
}

/** Levels v as x = 2v/255 - 1 (float32), [v.length, 1]. */
const levels = (v: number[]) => ref.nd([v.length, 1], v.map((l) => Math.fround(2 * l / 255 - 1)));

/** Random levels with both edges among them. */
function someLevels(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, (_, i) => i === 0 ? 0 : i === 1 ? 255 : Math.floor(rng.uniform() * 256));
}

const mixture = (K: number) => (p: Tensor, x: Tensor) => ops.logisticMixtureLogLik(p, x, K);
const reference = (K: number) => (p: ref.Nd, x: ref.Nd) => ref.logisticMixtureLogLik(p, x, K);

for (const K of [1, 10]) {
  gpuTest(`logistic mixture (K = ${K}): log p(x) and its gradient, edges and middle bins`, async () => {
    const rng = createRng(500 + K);
    const n = 24;
    await checkOp({
      name: `logistic mixture K=${K}`,
      inputs: [headOutputs(rng, n, K, [-4, 0.5]), levels(someLevels(rng, n))],
      gpu: mixture(K),
      ref: reference(K),
      tol: { rtol: 2e-5, atol: 2e-5 },
      grad: { wrt: [0], rtol: 2e-3 },
    });
  });
}

gpuTest("logistic mixture: the midpoint density where a middle bin's probability is below 1e-5", async () => {
  const rng = createRng(511);
  // Narrow components far from the pixel: sigmoid(plus) - sigmoid(minus) underflows 1e-5.
  const x = levels(Array.from({ length: 12 }, (_, i) => 100 + i));
  const p = headOutputs(rng, 12, 3, [-6.5, -5.5], [0.4, 0.9]);
  const want = ref.logisticMixtureLogLik(p, x, 3);
  assert.ok(want.data.every((v) => v < Math.log(1e-5)), "every component in its midpoint regime");
  await checkOp({
    name: "logistic mixture midpoint",
    inputs: [p, x],
    gpu: mixture(3),
    ref: reference(3),
    tol: { rtol: 2e-5, atol: 1e-3 },
    grad: { wrt: [0], rtol: 2e-3 },
  });
  // Just under the threshold (a bin probability of 1e-7 .. 1e-5), where the midpoint form and the
  // exact difference differ by ~0.15 nats: the switch happens where the definition says.
  const s = -5.5, v = 128, xv = Math.fround(2 * v / 255 - 1);
  const near = ref.nd([4, 3], [12.5, 13, 14, 15].flatMap((z) => [0, Math.fround(xv - z * Math.exp(s)), s]));
  const sig = (t: number) => 1 / (1 + Math.exp(-t));
  for (let i = 0; i < 4; i++) {
    const c = xv - near.data[3 * i + 1];
    const delta = sig((c + 1 / 255) / Math.exp(s)) - sig((c - 1 / 255) / Math.exp(s));
    assert.ok(delta > 1e-7 && delta < 1e-5, `bin probability ${delta} just under the threshold`);
  }
  const xs = levels([v, v, v, v]);
  assertClose(
    await read(ops.logisticMixtureLogLik(toTensor(near), toTensor(xs), 1)),
    ref.logisticMixtureLogLik(near, xs, 1).data,
    { rtol: 1e-5, atol: 1e-3 },
    "midpoint just under the threshold",
  );
});

gpuTest("logistic mixture: log-scales below the clamp at -7, and very large scales", async () => {
  const rng = createRng(513);
  for (const [range, K] of [[[-12, -7.5], 4], [[3, 6], 4]] as [[number, number], number][]) {
    const n = 16;
    await checkOp({
      name: `logistic mixture log-scales in [${range}]`,
      inputs: [headOutputs(rng, n, K, range), levels(someLevels(rng, n))],
      gpu: mixture(K),
      ref: reference(K),
      tol: { rtol: 2e-5, atol: 1e-4 },
      grad: range[0] < -7 ? { wrt: [0], atol: 1e-6 } : { wrt: [0], rtol: 2e-3 },
    });
  }
  // Below the clamp the log-scale gets no gradient.
  const p = toTensor(headOutputs(rng, 4, 2, [-12, -8]));
  const g = grad((q: Tensor) =>
    ops.sum(ops.logisticMixtureLogLik(q, toTensor(levels([3, 90, 200, 255])), 2))
  )(p);
  const d = await read(g);
  for (let i = 0; i < 4; i++) {
    assert.deepEqual([...d.subarray(i * 6 + 4, i * 6 + 6)], [0, 0], "clamped log-scales");
  }
});

gpuTest("logistic mixture: the probabilities of the 256 levels sum to 1", async () => {
  const rng = createRng(517);
  // Parameter sets with ordinary, tiny (at and below the clamp) and huge scales, each repeated for
  // every level of a pixel.
  const sets = [[-3, 0.5], [-7, -6], [-10, -8], [2, 5]] as [number, number][];
  for (const range of sets) {
    const K = 5, M = 3;
    const one = headOutputs(rng, M, K, range);
    const data = new Float64Array(M * 256 * 3 * K);
    for (let m = 0; m < M; m++) {
      for (let v = 0; v < 256; v++) {
        data.set(one.data.subarray(m * 3 * K, (m + 1) * 3 * K), (m * 256 + v) * 3 * K);
      }
    }
    const x = levels(Array.from({ length: M * 256 }, (_, i) => i % 256));
    const lp = await read(
      ops.logisticMixtureLogLik(toTensor(ref.nd([M * 256, 3 * K], data)), toTensor(x), K),
    );
    for (let m = 0; m < M; m++) {
      let total = 0;
      for (let v = 0; v < 256; v++) total += Math.exp(lp[m * 256 + v]);
      assert.ok(
        Math.abs(total - 1) < 1e-4,
        `log-scales in [${range}], pixel ${m}: the levels sum to ${total}`,
      );
    }
  }
});

/** RGB head outputs [pixels, 10K]: logits, then per channel K means, K log-scales, K coefficients. */
function rgbHeadOutputs(rng: Rng, pixels: number, K: number, logScale: [number, number]): ref.Nd {
  const data = new Float64Array(pixels * 10 * K);
  const draw = ([lo, hi]: [number, number]) => Math.fround(lo + (hi - lo) * rng.uniform());
  for (let p = 0; p < pixels; p++) {
    const row = p * 10 * K;
    for (let k = 0; k < K; k++) {
      data[row + k] = draw([-2, 2]);
      for (let c = 0; c < 3; c++) {
        data[row + K + 3 * K * c + k] = draw([-1, 1]);
        data[row + K + 3 * K * c + K + k] = draw(logScale);
        data[row + K + 3 * K * c + 2 * K + k] = draw([-2, 2]);
      }
    }
  }
  return ref.nd([pixels, 10 * K], data);
}

/** RGB pixels [n, 3] of levels `v` (each a triple) as 2v/255 - 1. */
const rgbLevels = (v: number[][]) => ref.nd([v.length, 3], v.flat().map((l) => Math.fround(2 * l / 255 - 1)));

for (const K of [1, 5]) {
  gpuTest(`logistic mixture, RGB (K = ${K}): coupled means, log p(x) and its gradient`, async () => {
    const rng = createRng(520 + K);
    const n = 24;
    // Every channel at both edges somewhere, the rest at random levels.
    const v = Array.from(
      { length: n },
      (_, i) => [0, 1, 2].map((c) => i === c ? 0 : i === c + 3 ? 255 : Math.floor(rng.uniform() * 256)),
    );
    for (const range of [[-4, 0.5], [-7.5, -5]] as [number, number][]) {
      await checkOp({
        name: `RGB logistic mixture K=${K}, log-scales in [${range}]`,
        inputs: [rgbHeadOutputs(rng, n, K, range), rgbLevels(v)],
        gpu: mixture(K),
        ref: reference(K),
        tol: { rtol: 2e-5, atol: 1e-4 },
        grad: { wrt: [0], rtol: 2e-3, atol: 1e-5 },
      });
    }
  });
}

gpuTest("logistic mixture, RGB: green's mean follows red, blue's follows red and green", async () => {
  // One component, coefficients a = tanh(r0), b = tanh(r1), c = tanh(r2): moving red by d moves the
  // best green by a d, which the likelihood of a fixed green reflects; checked against the reference.
  const K = 1, row = new Float64Array(10);
  row.set([0, 0, -3, 1.2, 0.1, -3, -0.8, -0.2, -3, 0.6]);
  const pixels = [[40, 120, 200], [200, 120, 200], [40, 30, 200], [40, 120, 10]];
  const params = ref.nd([4, 10], pixels.flatMap(() => [...row]));
  const x = rgbLevels(pixels);
  const got = await read(ops.logisticMixtureLogLik(toTensor(params), toTensor(x), K));
  assertClose(got, reference(K)(params, x).data, { rtol: 1e-5, atol: 1e-4 }, "coupled");
  // Without the coupling (r = 0) the channels are independent: log p = sum of three bins.
  const flat = ref.nd([1, 10], [0, 0.1, -3, 0, -0.2, -3, 0, 0.3, -3, 0]);
  const one = rgbLevels([[90, 150, 30]]);
  const sum3 = [0.1, -0.2, 0.3].reduce((a, m, c) => a + ref.logisticBinLogProb(one.data[c], m, -3), 0);
  assertClose(await read(ops.logisticMixtureLogLik(toTensor(flat), toTensor(one), 1)), [sum3], {
    rtol: 1e-5,
    atol: 1e-4,
  }, "independent channels");
});

gpuTest(
  "logistic mixture, RGB: the 256^3 levels of a pixel sum to 1 (float64, every level); the kernel's 256^2 (G, B) sum to p(R)",
  async () => {
    const rng = createRng(531);
    const K = 2;
    const head = rgbHeadOutputs(rng, 1, K, [-3, -1]);
    const at = (j: number) => head.data[j];
    const pi = [0, 1].map((k) => Math.exp(at(k)) / (Math.exp(at(0)) + Math.exp(at(1))));
    const x = (v: number) => 2 * v / 255 - 1;
    const P = (v: number, mu: number, c: number, k: number) =>
      Math.exp(ref.logisticBinLogProb(x(v), mu, at(K + 3 * K * c + K + k)));
    const m = (c: number, k: number) => at(K + 3 * K * c + k);
    const r = (c: number, k: number) => Math.tanh(at(K + 3 * K * c + 2 * K + k));
    // Every one of the 256^3 levels, in float64, grouped by the order of the coupling.
    const marginalR = (R: number) => [0, 1].reduce((a, k) => a + pi[k] * P(R, m(0, k), 0, k), 0);
    let total = 0;
    for (let k = 0; k < K; k++) {
      let sumK = 0;
      for (let R = 0; R < 256; R++) {
        const pR = P(R, m(0, k), 0, k);
        for (let G = 0; G < 256; G++) {
          const pG = P(G, m(1, k) + r(0, k) * x(R), 1, k);
          const muB = m(2, k) + r(1, k) * x(R) + r(2, k) * x(G);
          let sumB = 0;
          for (let B = 0; B < 256; B++) sumB += P(B, muB, 2, k);
          sumK += pR * pG * sumB;
        }
      }
      total += pi[k] * sumK;
    }
    assert.ok(Math.abs(total - 1) < 1e-4, `the 256^3 levels sum to ${total}`);
    // The kernel over all (G, B) for three reds: their probabilities sum to the red marginal.
    for (const R of [0, 77, 255]) {
      const n = 256 * 256;
      const params = new Float64Array(n * 10 * K);
      for (let i = 0; i < n; i++) params.set(head.data, i * 10 * K);
      const levelsRgb = new Float64Array(n * 3);
      for (let i = 0; i < n; i++) levelsRgb.set([x(R), x(i >> 8), x(i & 255)].map(Math.fround), 3 * i);
      const lp = await read(
        ops.logisticMixtureLogLik(
          toTensor(ref.nd([n, 10 * K], params)),
          toTensor(ref.nd([n, 3], levelsRgb)),
          K,
        ),
      );
      let sum = 0;
      for (let i = 0; i < n; i++) sum += Math.exp(lp[i]);
      assert.ok(Math.abs(sum / marginalR(R) - 1) < 1e-3, `R = ${R}: sum ${sum}, p(R) ${marginalR(R)}`);
    }
  },
);

gpuTest("logistic mixture: a wrong head width or image shape is refused by name", () => {
  const p = ops.full([2, 4, 4, 9], 0), x = ops.full([2, 4, 4, 1], 0);
  assert.throws(
    () => ops.logisticMixtureLogLik(p, x, 4),
    /9 channels per pixel; 4 components over 1 image channel\(s\) need 12/,
  );
  assert.throws(
    () => ops.logisticMixtureLogLik(p, ops.full([2, 4, 4, 2], 0), 3),
    /2 channels; the mixture models 1/,
  );
  assert.throws(() => ops.logisticMixtureLogLik(p, ops.full([2, 4, 4, 3], 0), 1), /need 10$/);
  assert.throws(() => ops.logisticMixtureLogLik(p, ops.full([2, 4, 5, 1], 0), 3), /do not match/);
  assert.throws(() => ops.logisticMixtureLogLik(p, x, 0), /integer in \[1, 64\]/);
});

gpuTest("8-bit input: the levels as 2v/255 - 1, no draw; the mean image of the mixture", async () => {
  const pixels = syntheticPixels(2);
  const set = imageSetFromPixels("levels", pixels, 28, 28);
  const x = await read(
    inputBatch(set, Uint32Array.from([1, 0]), { seed: 9, stream: 1, offset: 4 }, "levels"),
  );
  const want = [...pixels.subarray(784, 1568), ...pixels.subarray(0, 784)].map((v) => 2 * v / 255 - 1);
  assertClose(x, want, { rtol: 0, atol: 1e-6 }, "levels");
  // The mean image: sum_k softmax(l)_k clamp(mu_k, -1, 1), on [0, 1].
  const cfg = withLikelihood(presetConfig("tiny"), "logistic-mixture", 3);
  const out = headOutputs(createRng(3), 5, 3, [-2, 0], [-1.5, 1.5]);
  const shown = await read(meanImage(cfg, ops.reshape(toTensor(out), [1, 1, 5, 9])));
  const expected = Array.from({ length: 5 }, (_, p) => {
    const row = out.data.subarray(p * 9, p * 9 + 9);
    const z = [0, 1, 2].reduce((a, k) => a + Math.exp(row[k]), 0);
    const m = [0, 1, 2].reduce((a, k) => a + Math.exp(row[k]) / z * Math.min(1, Math.max(-1, row[3 + k])), 0);
    return (m + 1) / 2;
  });
  assertClose(shown, expected, { rtol: 1e-5, atol: 1e-6 }, "mean image");
});

const cfg = withLikelihood(presetConfig("tiny"), "logistic-mixture", 4);

gpuTest(
  "logistic-mixture model: a 3K-channel head; ELBO and informative gradients match finite differences",
  async () => {
    const params = initHvae(cfg, createRng(2));
    assert.equal(params.out.weight.shape.at(-1), 12);
    assert.equal(params.likelihood, undefined);
    assert.equal(likelihoodOf(cfg).input, "levels");
    // The other weights of a seed are the Bernoulli model's.
    const bernoulli = initHvae(presetConfig("tiny"), createRng(2));
    assert.deepEqual([...await read(params.q.z1.weight)], [...await read(bernoulli.q.z1.weight)]);
    await directionalCheck(cfg, "elbo", 0, 1);
    await directionalCheck(cfg, "informative", 0, 1);
  },
);

gpuTest("logistic-mixture model: training lowers the loss on 8-bit images", async () => {
  const params = keep(initHvae(cfg, createRng(19)));
  const adam = adamInit(params);
  const x = keep(syntheticBatch(16, "levels"));
  for (const loss of ["elbo", "informative"] as const) {
    const losses = await trainingLosses(cfg, params, adam, x, { loss, lr: 3e-3, steps: 10 });
    assert.ok(losses.every(Number.isFinite), `${loss}: finite losses ${losses}`);
    assert.ok(losses[9] < losses[0], `${loss}: the loss falls (${losses[0]} -> ${losses[9]})`);
  }
});

gpuTest(
  "logistic-mixture: train then ood end to end; the config says so; an old config is Bernoulli",
  async () => {
    const run = await trainTinyRun("tiny", ["--likelihood", "logistic-mixture", "--components", "3"]);
    try {
      assert.equal(run.config.model.likelihood, "logistic-mixture");
      assert.equal(run.config.model.components, 3);
      const mnist = run.report.results.filter((r: { ood: string }) => r.ood === "mnist");
      assert.deepEqual(mnist.map((r: { score: string }) => r.score), [
        "elbo",
        "llr>1",
        "llr>2",
        "llr_optk",
        "llr_ada",
      ]);
      assert.ok(mnist.every((r: { auroc: number }) => r.auroc >= 0 && r.auroc <= 1));
      // Probabilities of the 8-bit levels: bits per dimension with no bin correction, -L_x / (784 ln 2).
      const d = run.report.diagnostics["fashion-mnist"];
      assert.ok(Math.abs(d.bitsPerDim - d.nll / (784 * Math.LN2)) < 1e-9);
      assert.ok(d.bitsPerDim > 0 && d.bitsPerDim < 8, `bits/dim ${d.bitsPerDim} of a level distribution`);
      assert.ok(await Deno.stat(`${run.dir}/reconstructions.png`).then((s) => s.size > 0));
    } finally {
      await Deno.remove(run.dir, { recursive: true });
    }
    const old = presetConfig("tiny");
    delete old.likelihood;
    assert.equal(likelihoodOf(old).name, "bernoulli");
    assert.throws(
      () => withLikelihood(old, "poisson"),
      /unknown likelihood 'poisson' \(choices: bernoulli, gaussian/,
    );
    // A config.json naming an Object member is refused, not taken for a likelihood.
    for (const name of ["toString", "__proto__"]) {
      assert.throws(() => likelihoodOf({ ...old, likelihood: name as "bernoulli" }), /unknown likelihood/);
    }
  },
);

gpuTest(
  "logistic mixture composes with the LVAE and BIVA: exact informative gradients, free bits and beta",
  async () => {
    for (const preset of ["tiny-lvae", "tiny-biva"]) {
      const model = withLikelihood(presetConfig(preset), "logistic-mixture", 2);
      assert.equal(initHvae(model, createRng(1)).out.weight.shape.at(-1), 6);
      await directionalCheck(model, "informative", 0, 1);
      await directionalCheck(model, "elbo", 2, 0.5);
    }
  },
);
