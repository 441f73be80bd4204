/**
 * The LVAE (top-down inference, `*-lvae` presets; models/hvae.ts): its posterior is the precision-
 * weighted product of the bottom-up estimate and the prior, built from the top down; the ELBO is
 * ll - sum KL(q || p) of those; both losses' gradients match finite differences; training lowers the
 * loss; and `deno task train` then `ood` run end to end on `tiny-lvae` with every score.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { readAll, readScalar } from "../kernels/tensor.ts";
import * as hvae from "../models/hvae.ts";
import { unitScaleU } from "../kernels/distributions.ts";
import { presetConfig, PRESETS } from "../models/presets.ts";
import { sigmaOf } from "./reference.ts";
import { inferenceVariantTests, topDownPass } from "./inference_variant_tests.ts";
import { assertClose, gpuTest, keysOf } from "./helpers.ts";

const cfg = presetConfig("tiny-lvae");
const keyOf = keysOf(7, 1);

Deno.test("lvae presets: the HVAE presets' backbones and latents, with top-down inference", () => {
  for (const name of ["small", "small5", "tiny", "havtorn3", "paper3", "paper5"]) {
    const [plain, lvae] = [PRESETS[name](), PRESETS[`${name}-lvae`]()];
    assert.equal(lvae.inference, "topdown");
    assert.deepEqual(lvae.layers.map((l) => l.latent), plain.layers.map((l) => l.latent), name);
    assert.equal(lvae.channels, plain.channels);
  }
});

gpuTest(
  "lvae: q(z_l | x, z>l) is the precision-weighted product of the bottom-up estimate and the prior",
  async () => {
    // The top layer is the bottom-up estimate itself; below, the product with p(z_l | z_{l+1}).
    const { params, x, L, q, td, metrics, ll } = await topDownPass(cfg, keyOf);
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
    // The ELBO of the objective is log p(x | z) - sum_l KL(q_l || p_l) of these posteriors.
    let kl = 0;
    for (let l = 0; l < L; l++) {
      const p = td.priors[l] ?? { mu: ops.full([1], 0), u: ops.full([1], unitScaleU(cfg.sigma)) };
      const klL = await readScalar(
        ops.mean(
          hvae.perImage(ops.gaussianKl(td.posteriors[l].mu, td.posteriors[l].u, p.mu, p.u, cfg.sigma)),
        ),
      );
      assertClose([metrics[2 + l]], [klL], { rtol: 1e-5, atol: 1e-4 }, `KL_${l + 1}`);
      kl += klL;
    }
    assertClose([metrics[1]], [ll - kl], { rtol: 1e-5, atol: 1e-3 }, "elbo");
    // The latent figures read the merged posterior means, one per layer.
    const means = hvae.posteriorMeans(params, cfg, x);
    assert.deepEqual(means.map((m) => m.shape[0]), [5, 5, 5]);
  },
);

inferenceVariantTests("lvae", "tiny-lvae", "topdown");
