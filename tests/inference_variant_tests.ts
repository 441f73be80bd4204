/**
 * The checks every inference wiring of models/hvae.ts shares (the LVAE's and BIVA's tests register
 * them): the ELBO's, the informative loss's and free bits' gradients against finite differences, a
 * few training steps that lower the loss, and `deno task train` then `ood` end to end on the tiny
 * preset with every score and the KL per layer.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import type { RandomKey } from "../kernels/philox.ts";
import { keep, read, readScalar } from "../kernels/tensor.ts";
import { adamInit } from "../models/adam.ts";
import { encode, type HvaeConfig, hvaeObjective, initHvae, posteriorTopDown } from "../models/hvae.ts";
import { headOutput } from "../models/likelihood.ts";
import { presetConfig } from "../models/presets.ts";
import { createRng } from "../models/rng.ts";
import { trainTinyRun } from "./commands.ts";
import { directionalCheck, trainingLosses } from "./gradient_check.ts";
import { gpuTest } from "./helpers.ts";
import { syntheticBatch } from "./synthetic.ts";

/**
 * One pass of a fresh model of a top-down variant over five synthetic images: the bottom-up
 * estimates `q`, the top-down pass `td` (whose top layer is inferred bottom-up, once: checked here),
 * the ELBO objective's metrics [loss, elbo, KL_1..L] and the mean Bernoulli log-likelihood of the
 * images under td's reconstruction, for the variant's own test to rebuild the ELBO from.
 */
export async function topDownPass(cfg: HvaeConfig, keyOf: (stream: number) => RandomKey) {
  const params = initHvae(cfg, createRng(3));
  const x = syntheticBatch(5);
  const L = cfg.layers.length;
  const q = encode(params, cfg, x, keyOf);
  const td = posteriorTopDown(params, cfg, q, 0, keyOf);
  assert.equal(td.posteriors[L - 1], q[L - 1], "the top layer is inferred bottom-up, once");
  const o = hvaeObjective(params, cfg, x, { loss: "elbo", beta: 1, freeBits: 0, keyOf });
  const metrics = await read(o.metrics);
  const reconstruction = headOutput(params, cfg, td.stages[0].at(-1)!);
  const ll = await readScalar(ops.mean(ops.sum(ops.bernoulliLogLik(reconstruction, x), [1, 2, 3])));
  return { params, x, L, q, td, metrics, ll };
}

/** Registers the shared tests for the tiny preset `preset`, whose inference is `inference`. */
export function inferenceVariantTests(
  name: string,
  preset: string,
  inference: HvaeConfig["inference"],
): void {
  const cfg = presetConfig(preset);

  gpuTest(`${name}: ELBO and informative loss gradients match finite differences`, async () => {
    await directionalCheck(cfg, "elbo", 0, 1);
    await directionalCheck(cfg, "informative", 0, 1);
    await directionalCheck(cfg, "elbo", 2, 0.5);
  });

  gpuTest(`${name}: training steps lower the loss`, async () => {
    const params = keep(initHvae(cfg, createRng(19)));
    const adam = adamInit(params);
    const x = keep(syntheticBatch(16));
    const losses = await trainingLosses(cfg, params, adam, x, { loss: "informative", lr: 3e-3, steps: 12 });
    assert.ok(losses[11] < losses[0] - 5, `loss ${losses[0]} -> ${losses[11]}`);
  });

  gpuTest(`${name}: deno task train --preset ${preset}, then every score and the KL per layer`, async () => {
    const { dir, report, config } = await trainTinyRun(preset);
    assert.deepEqual(
      report.results.map((r: { score: string }) => r.score),
      ["elbo", "llr>1", "llr>2", "llr_optk", "llr_ada"],
    );
    for (const r of report.results) assert.ok(r.auroc >= 0 && r.auroc <= 1, r.score);
    const kl = report.diagnostics["fashion-mnist"].kl;
    assert.equal(kl.length, cfg.layers.length);
    for (const v of kl) assert.ok(Number.isFinite(v) && v >= 0, `KL ${v}`);
    assert.equal(config.model.inference, inference);
    await Deno.remove(dir, { recursive: true });
  });
}
