/**
 * The OOD scores (models/scores.ts): the partial passes against the training objective computed with
 * the same noise (L^{>0} is the ELBO; with prior samples, ll_k is the informative loss's k-th term),
 * L^{>k} from its definition, which layers draw noise in a pass (z_{<=k} deterministic), Markov
 * inference, and the CPU scores against Eq. 11 and Appendix L written out for L = 3, with
 * importance weighting and sample averaging.
 */

import assert from "node:assert/strict";
import { parseIdx } from "../data/idx.ts";
import { imageSetOnGpu } from "../data/loader.ts";
import { scoreSet } from "../eval/score_set.ts";
import { engineStats } from "../kernels/engine.ts";
import { dispose, readAll } from "../kernels/tensor.ts";
import { hvaeObjective, initHvae } from "../models/hvae.ts";
import { posteriorStream } from "../models/streams.ts";
import { presetConfig } from "../models/presets.ts";
import { createRng } from "../models/rng.ts";
import {
  adaptiveLlr,
  combinePasses,
  emptyScores,
  imageScores,
  optimalKLlr,
  packPasses,
  partialElbos,
  passColumns,
  passLayout,
  scoreNames,
} from "../models/scores.ts";
import { assertClose, gpuTest, keysOf } from "./helpers.ts";
import { syntheticBatch, syntheticPixels } from "./synthetic.ts";

const tiny = presetConfig("tiny");
const keyOf = keysOf(9, 4);
const meanOf = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0) / xs.length;

gpuTest(
  "scores: L>0 and KL_l are the ELBO's; with prior samples ll_k is the informative loss's term k",
  async () => {
    const params = initHvae(tiny, createRng(3));
    const x = syntheticBatch(6);
    const L = tiny.layers.length;
    const objective = hvaeObjective(params, tiny, x, { loss: "informative", beta: 1, freeBits: 0, keyOf });
    const sampled = partialElbos(params, tiny, x, { keyOf, generate: "sample" });
    const [metrics, ...perImage] = await readAll([
      objective.metrics,
      ...sampled.elbo,
      ...sampled.ll,
      ...sampled.kl,
    ]);
    const elbo = perImage.slice(0, L), ll = perImage.slice(L, 2 * L), kl = perImage.slice(2 * L);
    // metrics: [loss, elbo, kl1..klL, ll0..ll(L-1)], batch means.
    assertClose([meanOf(elbo[0])], [metrics[1]], { atol: 1e-3, rtol: 1e-5 }, "L>0 = ELBO");
    for (let l = 0; l < L; l++) {
      assertClose(
        [meanOf(kl[l])],
        [metrics[2 + l]],
        { atol: 1e-4, rtol: 1e-5 },
        `KL_${l + 1}`,
      );
    }
    for (let k = 0; k < L; k++) {
      assertClose([meanOf(ll[k])], [metrics[2 + L + k]], { atol: 1e-3, rtol: 1e-5 }, `ll_${k}`);
    }
    // L^{>k} = ll_k - sum_{l>k} KL_l, per image (ladder inference: the same KLs in every pass).
    for (let k = 0; k < L; k++) {
      const expected = Array.from(ll[k], (v, i) => {
        let s = v;
        for (let l = k; l < L; l++) s -= kl[l][i];
        return s;
      });
      assertClose(elbo[k], expected, { atol: 1e-3, rtol: 1e-6 }, `L>${k} from its definition`);
    }
  },
);

gpuTest(
  "scores: with prior means, only z_{>k} draw noise in pass k (ladder and Markov inference)",
  async () => {
    // A narrow copy of the reference backbone: Markov inference q(z_l | z_{l-1}), dense upper latents.
    const markov = { ...presetConfig("havtorn3"), preset: "havtorn3-narrow", channels: 8 };
    for (const cfg of [tiny, markov]) {
      const params = initHvae(cfg, createRng(4));
      const x = syntheticBatch(3);
      const L = cfg.layers.length;
      for (let k = 1; k < L; k++) {
        // Other noise for the posterior streams of layers <= k only: pass k must not notice;
        // other noise for layer k + 1 must change it.
        const below = (s: number) => ({ seed: 9, stream: s, offset: s < posteriorStream(k) ? 77 : 4 });
        const above = (s: number) => ({ seed: 9, stream: s, offset: s === posteriorStream(k) ? 77 : 4 });
        const runs = [keyOf, below, above].map((kf) =>
          partialElbos(params, cfg, x, { keyOf: kf, generate: "mean" }).elbo[k]
        );
        const [base, same, other] = await readAll(runs);
        assert.deepEqual(
          Array.from(same),
          Array.from(base),
          `${cfg.preset} k=${k}: z<=${k} must be deterministic`,
        );
        assert.notDeepEqual(
          Array.from(other),
          Array.from(base),
          `${cfg.preset} k=${k}: z${k + 1} must be sampled`,
        );
        assert.ok(Array.from(base).every(Number.isFinite));
      }
    }
  },
);

gpuTest("scores: packPasses lays out L>k, ll_k and KL_l per image as passColumns says", async () => {
  const params = initHvae(tiny, createRng(5));
  const x = syntheticBatch(4);
  const p = partialElbos(params, tiny, x, { keyOf, generate: "mean" });
  const [packed, ...columns] = await readAll([packPasses(p), ...p.elbo, ...p.ll, ...p.kl]);
  const F = passColumns(3).length;
  assert.equal(F, 9);
  columns.forEach((col, c) => {
    for (let i = 0; i < 4; i++) {
      assert.equal(packed[i * F + c], col[i], `column ${passColumns(3)[c]} image ${i}`);
    }
  });
});

Deno.test("scores: LLR_ada is Eq. 11 written out for L = 3, LLR_optk picks the largest R-ratio", () => {
  const ll = [-100, -150, -330], llr = [0, 20, 70];
  // (ll1/ll0) D1 + (ll2/ll1)(D2 - D1) = 1.5 * 20 + 2.2 * 50
  assert.ok(Math.abs(adaptiveLlr(ll, llr) - (1.5 * 20 + 2.2 * 50)) < 1e-9);
  assert.deepEqual(optimalKLlr(ll, llr), { k: 2, score: 70 });
  assert.deepEqual(optimalKLlr([-100, -300, -330], llr), { k: 1, score: 20 });
  // Reconstructions that improve with fewer posterior layers (ratios < 1): k = 0, score 0.
  assert.deepEqual(optimalKLlr([-100, -90, -80], llr), { k: 0, score: 0 });
  // L = 5, the general sum.
  const ll5 = [-10, -20, -25, -50, -55], d5 = [0, 3, 4, 9, 9.5];
  const expected = 2 * 3 + 1.25 * 1 + 2 * 5 + 1.1 * 0.5;
  assert.ok(Math.abs(adaptiveLlr(ll5, d5) - expected) < 1e-9);
});

Deno.test("scores: combinePasses gives log-mean-exp estimates within a draw and averages draws", () => {
  const L = 3, F = 3 * L;
  // Two images, samples = 2 draws x iw = 2 passes; pass values are [elbo>0..2, ll0..2, kl1..3] per image.
  const pass = (shift: number) =>
    Float32Array.from({ length: 2 * F }, (_, j) => {
      const image = Math.floor(j / F), c = j % F;
      if (c < L) return -100 - 10 * c - shift - image; // L>k
      if (c < 2 * L) return -90 - 20 * (c - L) - shift; // ll_k
      return 1 + (c - 2 * L) + shift; // KL
    });
  const passes = [pass(0), pass(2), pass(4), pass(6)];
  const into = emptyScores(L, 2);
  combinePasses(into, 0, passes, L, 2, 2);
  const lme = (a: number, b: number) => Math.max(a, b) + Math.log((1 + Math.exp(-Math.abs(a - b))) / 2);
  for (const image of [0, 1]) {
    const perDraw = [[0, 2], [4, 6]].map(([s1, s2]) => {
      const elbo = [0, 1, 2].map((k) => lme(-100 - 10 * k - s1 - image, -100 - 10 * k - s2 - image));
      const ll = [0, 1, 2].map((k) => -90 - 20 * k - (s1 + s2) / 2);
      const llr = elbo.map((e) => elbo[0] - e);
      return { elbo, ll, llr };
    });
    const avg = (f: (d: typeof perDraw[0]) => number) => (f(perDraw[0]) + f(perDraw[1])) / 2;
    const close = (a: number, b: number, what: string) =>
      assert.ok(Math.abs(a - b) < 1e-4, `${what}: ${a} vs ${b}`);
    close(into.scores.elbo[image], avg((d) => -d.elbo[0]), "elbo");
    close(into.scores["llr>1"][image], avg((d) => d.llr[1]), "llr>1");
    close(into.scores["llr>2"][image], avg((d) => d.llr[2]), "llr>2");
    close(into.scores.llr_ada[image], avg((d) => adaptiveLlr(d.ll, d.llr)), "llr_ada");
    close(into.scores.llr_optk[image], avg((d) => optimalKLlr(d.ll, d.llr).score), "llr_optk");
    close(into.ll[1][image], -110 - 3, "ll_1 mean");
    close(into.kl[2][image], 3 + 3, "KL_3 mean");
  }
  assert.deepEqual(scoreNames(3), ["elbo", "llr>1", "llr>2", "llr_optk", "llr_ada"]);
  assert.throws(() => combinePasses(into, 0, passes, L, 3, 2), /4 passes, expected samples 3 x iw 2/);
});

gpuTest("scores: a set is scored with one readback per batch, memory flat across batches", async () => {
  const params = initHvae(tiny, createRng(6));
  const n = 12;
  const header = new Uint8Array([0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 28, 0, 0, 0, 28]);
  const set = imageSetOnGpu({
    dataset: "mnist",
    split: "test",
    images: parseIdx(new Uint8Array([...header, ...syntheticPixels(n)]), "synthetic", "images"),
    labels: { dims: [n], data: new Uint8Array(n) },
    source: "",
  });
  const options = { seed: 1, samples: 2, iw: 1, generate: "mean" as const, batchSize: 4 };
  await scoreSet(params, tiny, set, options); // warm the pool and the pipelines
  const before = engineStats();
  const scores = await scoreSet(params, tiny, set, options);
  const after = engineStats();
  assert.equal(after.readbacks - before.readbacks, 3, "one readback per batch of 4");
  assert.equal(after.bytesInUse, before.bytesInUse, "no tensor outlives its batch");
  assert.equal(scores.count, n);
  assert.ok(scoreNames(3).every((name) => scores.scores[name].every(Number.isFinite)));
  // Reproducible: the same images, seed and batch size give the same numbers.
  const again = await scoreSet(params, tiny, set, options);
  assert.deepEqual(again.scores.llr_ada, scores.scores.llr_ada);
  dispose(set.bytes);
});

Deno.test("scores: every named score is computed, by name, and the pass layout's columns are a permutation", () => {
  for (let L = 1; L <= 6; L++) {
    const elbo = Array.from({ length: L }, (_, k) => -1000 - 7 * k), ll = elbo.map((e, k) => e - 3 * k);
    const { scores, optk } = imageScores(elbo, ll);
    assert.deepEqual(Object.keys(scores).sort(), scoreNames(L).sort(), `L = ${L}`);
    assert.equal(scores.elbo, 1000);
    for (let k = 1; k < L; k++) assert.equal(scores[`llr>${k}`], 7 * k);
    assert.ok(optk >= 0 && optk < L);
    const at = passLayout(L);
    const columns = [
      ...Array.from({ length: L }, (_, k) => at.elbo(k)),
      ...Array.from({ length: L }, (_, k) => at.ll(k)),
      ...Array.from({ length: L }, (_, l) => at.kl(l + 1)),
    ];
    assert.deepEqual([...columns].sort((a, b) => a - b), Array.from({ length: at.width }, (_, i) => i));
  }
});
