/**
 * The LVAE (top-down inference, `*-lvae` presets; models/hvae.ts): its posterior is the precision-
 * weighted product of the bottom-up estimate and the prior, built from the top down; the ELBO is
 * ll - sum KL(q || p) of those; both losses' gradients match finite differences; training lowers the
 * loss; and `deno task train` then `ood` run end to end on `tiny-lvae` with every score.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { read, readAll, readScalar } from "../kernels/tensor.ts";
import {
  encode,
  hvaeObjective,
  initHvae,
  perImage,
  posteriorMeans,
  posteriorTopDown,
} from "../models/hvae.ts";
import { headOutput } from "../models/likelihood.ts";
import { unitScaleU } from "../kernels/distributions.ts";
import { presetConfig, PRESETS } from "../models/presets.ts";
import { createRng } from "../models/rng.ts";
import { sigmaOf } from "./reference.ts";
import { inferenceVariantTests } from "./inference_variant_tests.ts";
import { assertClose, gpuTest } from "./helpers.ts";
import { syntheticBatch } from "./synthetic.ts";

const cfg = presetConfig("tiny-lvae");
const keyOf = (stream: number) => ({ seed: 7, stream, offset: 1 });

Deno.test("lvae presets: the HVAE presets' backbones and latents, with top-down inference", () => {
  for (const name of ["small", "small5", "tiny", "havtorn3", "paper3", "paper5"]) {
    const [hvae, lvae] = [PRESETS[name](), PRESETS[`${name}-lvae`]()];
    assert.equal(lvae.inference, "topdown");
    assert.deepEqual(lvae.layers.map((l) => l.latent), hvae.layers.map((l) => l.latent), name);
    assert.equal(lvae.channels, hvae.channels);
  }
});

gpuTest(
  "lvae: q(z_l | x, z>l) is the precision-weighted product of the bottom-up estimate and the prior",
  async () => {
    const params = initHvae(cfg, createRng(3));
    const x = syntheticBatch(5);
    const L = cfg.layers.length;
    const q = encode(params, cfg, x, keyOf);
    const td = posteriorTopDown(params, cfg, q, 0, keyOf);
    // The top layer is the bottom-up estimate itself; below, the product with p(z_l | z_{l+1}).
    assert.equal(td.posteriors[L - 1], q[L - 1]);
    for (let l = L - 2; l >= 0; l--) {
      const [m1, u1, m2, u2, mu, u] = await readAll([
        q[l].mu,
        q[l].u,
        td.priors[l]!.mu,
        td.priors[l]!.u,
        td.posteriors[l].mu,
        td.posteriors[l].u,
      ]);
      const wantMu: number[] = [], wantS: number[] = [], gotS: number[] = [];
      for (let i = 0; i < mu.length; i++) {
        const p1 = sigmaOf(u1[i], cfg.sigma) ** -2, p2 = sigmaOf(u2[i], cfg.sigma) ** -2;
        wantMu.push((m1[i] * p1 + m2[i] * p2) / (p1 + p2));
        wantS.push(Math.sqrt(1 / (p1 + p2)));
        gotS.push(sigmaOf(u[i], cfg.sigma));
      }
      assertClose(mu, wantMu, { rtol: 1e-5, atol: 1e-6 }, `mu of z${l + 1}`);
      assertClose(gotS, wantS, { rtol: 1e-5, atol: 1e-6 }, `sigma of z${l + 1}`);
      // Narrower than either factor: the product of two Gaussians.
      for (let i = 0; i < gotS.length; i++) {
        assert.ok(gotS[i] <= Math.min(sigmaOf(u1[i], cfg.sigma), sigmaOf(u2[i], cfg.sigma)) * (1 + 1e-5));
      }
    }
    // The ELBO of the objective is log p(x | z) - sum_l KL(q_l || p_l) of these posteriors.
    const o = hvaeObjective(params, cfg, x, { loss: "elbo", beta: 1, freeBits: 0, keyOf });
    const metrics = await read(o.metrics);
    const ll = await readScalar(
      ops.mean(ops.sum(ops.bernoulliLogLik(headOutput(params, cfg, td.stages[0].at(-1)!), x), [1, 2, 3])),
    );
    let kl = 0;
    for (let l = 0; l < L; l++) {
      const p = td.priors[l] ?? { mu: ops.full([1], 0), u: ops.full([1], unitScaleU(cfg.sigma)) };
      const klL = await readScalar(
        ops.mean(perImage(ops.gaussianKl(td.posteriors[l].mu, td.posteriors[l].u, p.mu, p.u, cfg.sigma))),
      );
      assertClose([metrics[2 + l]], [klL], { rtol: 1e-5, atol: 1e-4 }, `KL_${l + 1}`);
      kl += klL;
    }
    assertClose([metrics[1]], [ll - kl], { rtol: 1e-5, atol: 1e-3 }, "elbo");
    // The latent figures read the merged posterior means, one per layer.
    const means = posteriorMeans(params, cfg, x);
    assert.deepEqual(means.map((m) => m.shape[0]), [5, 5, 5]);
  },
);

inferenceVariantTests("lvae", "tiny-lvae", "topdown");
