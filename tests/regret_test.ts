/**
 * Likelihood Regret (models/regret.ts): the ELBO under a given posterior is the model's own ELBO at
 * the model's posterior, its gradient in the posterior's parameters matches finite differences, the
 * importance-weighted bound is the log-mean-exp of its draws (float64), no steps give no regret and
 * steps raise the bound, and `deno task ood --regret` adds the score to every table and file.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { valueAndGrad } from "../autograd/tape.ts";
import { read, readAll, readScalar, scope, tensor } from "../kernels/tensor.ts";
import { type Gaussian, hvaeObjective, initHvae } from "../models/hvae.ts";
import { presetConfig } from "../models/presets.ts";
import { elboUnder, iwBound, likelihoodRegret, modelPosterior } from "../models/regret.ts";
import { createRng } from "../models/rng.ts";
import { regretEstimateKeys } from "../models/streams.ts";
import { encodeIdx } from "../data/idx.ts";
import { encodePng } from "../data/png.ts";
import { runTask } from "./commands.ts";
import { assertClose, gpuTest, keysOf } from "./helpers.ts";
import { syntheticBatch, syntheticPixels } from "./synthetic.ts";

const keyOf = keysOf(4, 2);

for (const preset of ["tiny", "tiny-lvae"]) {
  gpuTest(`regret (${preset}): the ELBO under the model's posterior is the model's ELBO`, async () => {
    const cfg = presetConfig(preset);
    const params = initHvae(cfg, createRng(5));
    const x = syntheticBatch(6);
    const model = await read(
      hvaeObjective(params, cfg, x, { loss: "elbo", beta: 1, freeBits: 0, keyOf }).metrics,
    );
    const q = modelPosterior(params, cfg, x, keyOf);
    const mine = await readScalar(ops.mean(elboUnder(params, cfg, x, q, keyOf)));
    assertClose([mine], [model[1]], { rtol: 1e-5, atol: 1e-3 }, "ELBO");
  });
}

gpuTest("regret: the ELBO's gradient in the posterior's parameters matches finite differences", async () => {
  const cfg = presetConfig("tiny");
  const params = initHvae(cfg, createRng(6));
  const x = syntheticBatch(3);
  const q = modelPosterior(params, cfg, x, keyOf);
  const f = (qq: Gaussian[]) => ops.sum(elboUnder(params, cfg, x, qq, keyOf));
  const { grads } = scope(() => valueAndGrad(f)(q));
  const rng = createRng(8);
  const leaves = q.flatMap((g) => [g.mu, g.u]);
  const direction = leaves.map((t) => Float32Array.from({ length: t.size }, () => rng.normal()));
  const g = await readAll(grads.flatMap((gg) => [gg.mu, gg.u]));
  let analytic = 0;
  g.forEach((gi, i) => gi.forEach((v, j) => analytic += v * direction[i][j]));
  const at = async (s: number) => {
    const moved = leaves.map((t, i) => ops.add(t, ops.mul(tensor(direction[i], t.shape), s)));
    const shifted = q.map((_, l) => ({ mu: moved[2 * l], u: moved[2 * l + 1] }));
    return await readScalar(scope(() => f(shifted)));
  };
  const h = 1e-3;
  const numeric = (await at(h) - await at(-h)) / (2 * h);
  const rel = Math.abs(numeric - analytic) / Math.max(1, Math.abs(analytic));
  assert.ok(rel < 2e-2, `directional derivative ${analytic} vs finite differences ${numeric} (rel ${rel})`);
});

gpuTest("regret: the importance-weighted bound is the log-mean-exp of its draws", async () => {
  const cfg = presetConfig("tiny");
  const params = initHvae(cfg, createRng(9));
  const x = syntheticBatch(4);
  const q = modelPosterior(params, cfg, x, keyOf);
  const o = { steps: 0, lr: 0, iw: 5, seed: 3, batch: 2 };
  const bound = await read(iwBound(params, cfg, x, q, o));
  const draws = await readAll(
    Array.from(
      { length: 5 },
      (_, k) => elboUnder(params, cfg, x, q, regretEstimateKeys(3, 2, 5, k), "sample"),
    ),
  );
  const want = Array.from({ length: 4 }, (_, b) => {
    const w = draws.map((d) => d[b]);
    const m = Math.max(...w);
    return m + Math.log(w.reduce((s, v) => s + Math.exp(v - m), 0) / w.length);
  });
  assertClose(bound, want, { rtol: 1e-5, atol: 1e-3 }, "IW bound");
});

// BIVA's posterior (both halves of each layer as one Gaussian) is optimised like any other.
for (const preset of ["tiny", "tiny-biva"]) {
  gpuTest(`regret (${preset}): no steps, no regret; steps raise the bound of every image`, async () => {
    const cfg = presetConfig(preset);
    const params = initHvae(cfg, createRng(10));
    const x = syntheticBatch(6);
    const none = await read(
      likelihoodRegret(params, cfg, x, { steps: 0, lr: 1e-2, iw: 4, seed: 1, batch: 0 }),
    );
    assert.deepEqual([...none], [0, 0, 0, 0, 0, 0]);
    const some = await read(
      likelihoodRegret(params, cfg, x, { steps: 30, lr: 3e-2, iw: 4, seed: 1, batch: 0 }),
    );
    for (const v of some) assert.ok(v > 0, `regret ${v}`);
  });
}

gpuTest(
  "regret: deno task ood --regret adds the score to ood.json, scores.csv and the tables; score --regret",
  async () => {
    const run = await Deno.makeTempDir();
    const trained = await runTask("train", [
      ...["--preset", "tiny", "--train-limit", "128", "--batch-size", "64", "--epochs", "1", "--no-eval"],
      ...["--out", run],
    ]);
    assert.equal(trained.code, 0, trained.out + trained.err);
    const flags = ["--run", run, "--limit", "16", "--eval-batch-size", "8"];
    const r = await runTask("ood", [...flags, "--regret", "--regret-steps", "3", "--regret-iw", "2"]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /\n {2}regret +\d+\.\d +\d+\.\d +\d+\.\d/);
    const report = JSON.parse(await Deno.readTextFile(`${run}/ood.json`));
    assert.deepEqual(report.regret, { steps: 3, lr: 1e-2, iw: 2 });
    assert.ok(report.results.some((x: { score: string }) => x.score === "regret"));
    const head = (await Deno.readTextFile(`${run}/scores.csv`)).split("\n")[0].split(",");
    assert.ok(head.includes("regret"), head.join(","));
    const bad = await runTask("ood", [...flags, "--regret", "--regret-lr", "0"]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--regret-lr must be a positive number, got '0'/);

    // deno task score: a user's image gets its regret, the same alone as third among others.
    const pixels = syntheticPixels(3);
    await Deno.writeFile(`${run}/one.png`, await encodePng(pixels.subarray(2 * 784), 28, 28));
    await Deno.writeFile(`${run}/three.idx`, encodeIdx([3, 28, 28], pixels));
    const scoreFlags = [
      ...["--run", run, "--regret-steps", "3", "--regret-iw", "2", "--calibration-limit", "16"],
      ...["--eval-batch-size", "8", "--json"],
    ];
    const alone = await runTask("score", [...scoreFlags, "--input", `${run}/one.png`, "--score", "regret"]);
    assert.equal(alone.code, 0, alone.out + alone.err);
    const [one] = alone.out.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(one.score, "regret");
    assert.ok(Number.isFinite(one.value) && Number.isFinite(one.threshold), JSON.stringify(one));
    assert.equal(one.scores.regret, one.value);
    const among = await runTask("score", [...scoreFlags, "--input", `${run}/three.idx`, "--regret"]);
    assert.equal(among.code, 0, among.out + among.err);
    const three = among.out.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(three.map((l) => l.score), ["llr_ada", "llr_ada", "llr_ada"]);
    for (const l of three) assert.ok(Number.isFinite(l.scores.regret), JSON.stringify(l));
    assertClose(
      [three[2].scores.regret],
      [one.value],
      { rtol: 1e-4, atol: 1e-4 },
      "regret alone vs among others",
    );
    // Without --regret no regret is computed.
    const plain = await runTask("score", [...scoreFlags, "--input", `${run}/one.png`]);
    assert.equal(JSON.parse(plain.out.trim()).scores.regret, undefined);
    await Deno.remove(run, { recursive: true });
  },
);
