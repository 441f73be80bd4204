/**
 * The checks every inference wiring of models/hvae.ts shares (the LVAE's and BIVA's tests register
 * them): the ELBO's, the informative loss's and free bits' gradients against finite differences, a
 * few training steps that lower the loss, and `deno task train` then `ood` end to end on the tiny
 * preset with every score and the KL per layer.
 */

import assert from "node:assert/strict";
import { keep } from "../kernels/tensor.ts";
import { adamInit } from "../models/adam.ts";
import { type HvaeConfig, initHvae } from "../models/hvae.ts";
import { presetConfig } from "../models/presets.ts";
import { createRng } from "../models/rng.ts";
import { trainTinyRun } from "./commands.ts";
import { directionalCheck, trainingLosses } from "./gradient_check.ts";
import { gpuTest } from "./helpers.ts";
import { syntheticBatch } from "./synthetic.ts";

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
