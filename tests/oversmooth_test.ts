/**
 * OverSmooth (the `*-oversmooth` presets; models/hvae.ts): the Gaussian likelihood with one learned
 * sigma_x on dequantised images, against float64 log N(x; mu, sigma_x^2); gradients (sigma_x's too)
 * against finite differences; training lowers the loss and moves sigma_x; `deno task train` then
 * `ood` run end to end, and bits per dimension count the 8-bit bins.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { keep, read } from "../kernels/tensor.ts";
import { adamInit } from "../models/adam.ts";
import { initHvae } from "../models/hvae.ts";
import { logLikelihood } from "../models/likelihood.ts";
import { presetConfig } from "../models/presets.ts";
import { createRng } from "../models/rng.ts";
import { imageSetFromPixels, inputBatch } from "../data/loader.ts";
import { trainTinyRun } from "./commands.ts";
import { directionalCheck, trainingLosses } from "./gradient_check.ts";
import { assertClose, gpuTest } from "./helpers.ts";
import { sigmaOf } from "./reference.ts";
import { syntheticPixels } from "./synthetic.ts";

const cfg = presetConfig("tiny-oversmooth");

gpuTest(
  "oversmooth: log p(x | z) is log N(x; mu, sigma_x^2) per pixel, with sigma_x = sigma(u)",
  async () => {
    const params = initHvae(cfg, createRng(2));
    assert.deepEqual(params.likelihood!.u.shape, [1]);
    const x = ops.mul(ops.add(ops.full([2, 28, 28, 1], 0.3), ops.full([1], 0.01)), 1);
    const mu = ops.full([2, 28, 28, 1], 0.5);
    params.likelihood!.u = ops.full([1], -0.7);
    const got = await read(logLikelihood(params, cfg, mu, x));
    const s = sigmaOf(-0.7, cfg.sigma);
    const want = -0.5 * Math.log(2 * Math.PI) - Math.log(s) - 0.5 * ((0.31 - 0.5) / s) ** 2;
    assertClose(got.subarray(0, 3), [want, want, want], { rtol: 1e-5, atol: 1e-5 }, "log N");
    // The Bernoulli presets have no sigma_x; their input is binary, this one's dequantised in [0, 1).
    assert.equal(initHvae(presetConfig("tiny"), createRng(2)).likelihood, undefined);
    const set = imageSetFromPixels("test", syntheticPixels(4), 28, 28);
    const pixels = await read(
      inputBatch(set, Uint32Array.from([0, 1]), { seed: 1, stream: 3, offset: 0 }, "dequantize"),
    );
    assert.ok(
      pixels.some((v) => v > 0 && v < 1 && Math.abs(v * 256 - Math.round(v * 256)) > 1e-3),
      "dequantised",
    );
  },
);

gpuTest(
  "oversmooth: ELBO and informative gradients, sigma_x's included, match finite differences",
  async () => {
    await directionalCheck(cfg, "elbo", 0, 1);
    await directionalCheck(cfg, "informative", 0, 1);
  },
);

gpuTest("oversmooth: training lowers the loss and learns sigma_x", async () => {
  const params = keep(initHvae(cfg, createRng(19)));
  const adam = adamInit(params);
  const set = imageSetFromPixels("train", syntheticPixels(16), 28, 28);
  const x = keep(
    inputBatch(
      set,
      Uint32Array.from({ length: 16 }, (_, i) => i),
      { seed: 1, stream: 1, offset: 0 },
      "dequantize",
    ),
  );
  const sigma0 = (await read(ops.sigma(params.likelihood!.u, cfg.sigma)))[0];
  const losses = await trainingLosses(cfg, params, adam, x, { loss: "elbo", lr: 3e-2, steps: 12 });
  const sigma = (await read(ops.sigma(params.likelihood!.u, cfg.sigma)))[0];
  assert.ok(losses[11] < losses[0] - 50, `loss ${losses[0]} -> ${losses[11]}`);
  assert.ok(sigma < sigma0, `sigma_x ${sigma0} -> ${sigma}`);
});

gpuTest(
  "oversmooth: deno task train --preset tiny-oversmooth, then every score; bits/dim count the bins",
  async () => {
    const { dir: run, report } = await trainTinyRun("tiny-oversmooth");
    for (const r of report.results) assert.ok(r.auroc >= 0 && r.auroc <= 1, r.score);
    const d = report.diagnostics["fashion-mnist"];
    // -log2 p(8-bit image) / D = the density's bits + 8, and a density on [0, 1) can give negative nats.
    assert.ok(
      Math.abs(d.bitsPerDim - d.nll / (784 * Math.LN2)) < 1e-9 && d.bitsPerDim > 0,
      `${d.bitsPerDim}`,
    );
    assert.ok((await Deno.stat(`${run}/reconstructions.png`)).size > 0);
    await Deno.remove(run, { recursive: true });
  },
);
