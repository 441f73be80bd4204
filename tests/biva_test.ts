/**
 * BIVA (bidirectional inference, `*-biva` presets; models/hvae.ts): two latents [TD, BU] per layer
 * under the top; the TD half of the posterior is the precision-weighted product of the top-down
 * estimate and the prior's TD half, the BU half is the bottom-up posterior whose sample the stage
 * above reads; the ELBO is ll - sum KL of both halves (float64); both losses' gradients match finite
 * differences; training lowers the loss; and `deno task train` then `ood` run end to end on
 * `tiny-biva` with every score.
 */

import assert from "node:assert/strict";
import { valueAndGrad } from "../autograd/tape.ts";
import { readAll, scope } from "../kernels/tensor.ts";
import * as hvae from "../models/hvae.ts";
import type { HvaeParams } from "../models/hvae.ts";
import { presetConfig, PRESETS } from "../models/presets.ts";
import { createRng } from "../models/rng.ts";
import { sigmaOf } from "./reference.ts";
import { inferenceVariantTests, topDownPass } from "./inference_variant_tests.ts";
import { assertClose, gpuTest, keysOf } from "./helpers.ts";
import { syntheticBatch } from "./synthetic.ts";

const cfg = presetConfig("tiny-biva");
const keyOf = keysOf(7, 1);

/** KL(N(m1, s1^2) || N(m2, s2^2)) in float64. */
const gaussianKl64 = (m1: number, s1: number, m2: number, s2: number) =>
  Math.log(s2 / s1) + (s1 * s1 + (m1 - m2) ** 2) / (2 * s2 * s2) - 0.5;

/** Element i of the last axis' first (TD) or second (BU) half of a [..., 2n] array read flat. */
const halves = (a: ArrayLike<number>, n: number) => {
  const td: number[] = [], bu: number[] = [];
  for (let i = 0; i < a.length; i++) (i % (2 * n) < n ? td : bu).push(a[i]);
  return { td, bu };
};

Deno.test("biva presets: the HVAE presets' backbones and latents, two per layer under the top", () => {
  for (const name of ["small", "small5", "tiny", "havtorn3", "paper3", "paper5"]) {
    const [plain, biva] = [PRESETS[name](), PRESETS[`${name}-biva`]()];
    assert.equal(biva.inference, "bidirectional");
    hvae.validateConfig(biva);
    assert.deepEqual(biva.layers.map((l) => l.latent), plain.layers.map((l) => l.latent), name);
    const L = biva.layers.length;
    biva.layers.forEach((layer, l) => {
      const z = hvae.generativeLatent(biva, l), own = layer.latent;
      const width = (s: typeof z) => s.kind === "conv" ? s.channels : s.size;
      assert.equal(width(z), (l < L - 1 ? 2 : 1) * width(own), `${name} z${l + 1}`);
    });
  }
  // A decoder that reads z1 as it is must take both halves: the check names the layer.
  const bad = PRESETS["havtorn3-biva"]();
  bad.layers[0].decoder[0].in = 8;
  assert.throws(
    () => hvae.validateConfig(bad),
    /z1 enters dec.stage1 as it is \(16 channels\), its first block reads 8/,
  );
});

gpuTest(
  "biva: q(z_l) = [precision-weighted TD estimate, bottom-up BU]; the ELBO sums the KL of both",
  async () => {
    const { params, x, L, q, td, metrics, ll } = await topDownPass(cfg, keyOf);
    let kl = 0;
    for (let l = L - 1; l >= 0; l--) {
      const post = td.posteriors[l];
      const prior = td.priors[l];
      const [mu, u, z] = await readAll([post.mu, post.u, post.z]);
      const [pm, pu]: (ArrayLike<number> | null)[] = prior
        ? await readAll([prior.mu, prior.u])
        : [new Float32Array(mu.length), null];
      const ps = (i: number) => pu ? sigmaOf(pu[i], cfg.sigma) : 1;
      // KL_l in float64: every element of the posterior (both halves) against the prior's.
      let klL = 0;
      for (let i = 0; i < mu.length; i++) klL += gaussianKl64(mu[i], sigmaOf(u[i], cfg.sigma), pm![i], ps(i));
      klL /= x.shape[0];
      assertClose([metrics[2 + l]], [klL], { rtol: 1e-4, atol: 1e-4 }, `KL_${l + 1}`);
      kl += klL;
      if (l === L - 1) continue;
      const n = q[l].mu.shape[q[l].mu.rank - 1];
      const [bm, bu, bz, em, eu] = await readAll([q[l].mu, q[l].u, q[l].z, q[l].td!.mu, q[l].td!.u]);
      const [m, s, zz] = [halves(mu, n), halves(u, n), halves(z, n)];
      // The BU half is encode's posterior and sample: the sample the stage above read.
      assert.deepEqual(m.bu, Array.from(bm), `BU mean of z${l + 1}`);
      assert.deepEqual(s.bu, Array.from(bu), `BU scale of z${l + 1}`);
      assert.deepEqual(zz.bu, Array.from(bz), `BU sample of z${l + 1}`);
      // The TD half: the precision-weighted product of the estimate and the prior's TD half.
      const prm = halves(pm!, n).td, pru = halves(pu!, n).td;
      const wantMu: number[] = [], wantS: number[] = [];
      for (let i = 0; i < em.length; i++) {
        const p1 = sigmaOf(eu[i], cfg.sigma) ** -2, p2 = sigmaOf(pru[i], cfg.sigma) ** -2;
        wantMu.push((em[i] * p1 + prm[i] * p2) / (p1 + p2));
        wantS.push(Math.sqrt(1 / (p1 + p2)));
      }
      assertClose(m.td, wantMu, { rtol: 1e-5, atol: 1e-6 }, `TD mean of z${l + 1}`);
      assertClose(
        s.td.map((v) => sigmaOf(v, cfg.sigma)),
        wantS,
        { rtol: 1e-5, atol: 1e-6 },
        `TD sigma of z${l + 1}`,
      );
      // The TD sample is a fresh draw of its own stream, not the BU one.
      assert.notDeepEqual(zz.td, zz.bu);
    }
    assertClose([metrics[1]], [ll - kl], { rtol: 1e-5, atol: 1e-3 }, "elbo");
    // The latent figures read [TD, BU] means under the top, the top's mean at the top.
    const means = hvae.posteriorMeans(params, cfg, x);
    assert.deepEqual(means.map((m) => m.shape), [[5, 14, 14, 4], [5, 8], [5, 2]]);
  },
);

gpuTest("biva: the bottom-up path is stochastic, the layer above reads the sample below", async () => {
  const params = hvae.initHvae(cfg, createRng(4));
  const x = syntheticBatch(3);
  const sampled = hvae.encode(params, cfg, x, keyOf, 0);
  const meanFirst = hvae.encode(params, cfg, x, keyOf, 1);
  const [z1, mu1] = await readAll([meanFirst[0].z, meanFirst[0].mu]);
  assert.deepEqual(Array.from(z1), Array.from(mu1), "meanBelow 1: z1^BU is its mean");
  // z2's posterior changes with z1^BU (and the top's with z2^BU): scores rerun inference per k.
  for (const l of [1, 2]) {
    const [a, b] = await readAll([sampled[l].mu, meanFirst[l].mu]);
    assert.ok(a.some((v, i) => Math.abs(v - b[i]) > 1e-6), `q(z${l + 1}) ignores the sample below`);
  }
});

gpuTest(
  "biva: every parameter reaches the ELBO (both inference stacks, their joins, both heads)",
  async () => {
    const params = hvae.initHvae(cfg, createRng(8));
    const x = syntheticBatch(4);
    const { grads } = scope(() =>
      valueAndGrad((p: HvaeParams) =>
        hvae.hvaeObjective(p, cfg, x, { loss: "elbo", beta: 1, freeBits: 0, keyOf }).loss
      )(
        params,
      )
    );
    const flat = hvae.flattenParams(grads);
    const values = await readAll(flat.leaves);
    flat.paths.forEach((name, i) => assert.ok(values[i].some((v) => v !== 0), `no gradient reaches ${name}`));
    for (
      const name of [
        "encTd.stage1.fromBu.weight",
        "encTd.stage2.block0.conv1.weight",
        "enc.stage3.fromTd.weight",
      ]
    ) {
      assert.ok(flat.paths.includes(name), name);
    }
  },
);

inferenceVariantTests("biva", "tiny-biva", "bidirectional");
