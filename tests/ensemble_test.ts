/**
 * WAIC over an ensemble of runs (eval/ensemble.ts): the score against a float64 reference written the
 * other way round (E[v^2] - E[v]^2), the evaluation's checks on runs that do not line up, and
 * `deno task ood --run A --run B --out DIR` end to end on `tiny`, reusing the runs' evaluations when
 * started again.
 */

import assert from "node:assert/strict";
import { type EvaluatedRun, waicEvaluation, waicScores } from "../eval/ensemble.ts";
import type { OodReport } from "../eval/evaluate.ts";
import { detectionMetrics } from "../eval/metrics.ts";
import { runTask } from "./commands.ts";
import { gpuTest } from "./helpers.ts";

/** -WAIC = Var - E with Var = E[v^2] - E[v]^2, in float64. */
function waicReference(logLik: number[][], i: number): number {
  const v = logLik.map((m) => m[i]);
  const e = v.reduce((s, x) => s + x, 0) / v.length;
  const e2 = v.reduce((s, x) => s + x * x, 0) / v.length;
  return (e2 - e * e) - e;
}

/** Deterministic pseudo-random log-likelihoods: model m, image i. */
const logLikOf = (m: number, n: number, shift = 0) =>
  Array.from(
    { length: n },
    (_, i) => -200 - shift - 30 * Math.sin(1.7 * i + m) - 5 * Math.cos(0.3 * i * (m + 1)),
  );

Deno.test("waic: -(mean - variance) over the models, per image", () => {
  const logLik = [0, 1, 2, 3, 4].map((m) => logLikOf(m, 50));
  const got = waicScores(logLik);
  for (let i = 0; i < 50; i++) {
    const want = waicReference(logLik, i);
    assert.ok(Math.abs(got[i] - want) < 1e-9 * Math.abs(want), `image ${i}: ${got[i]} vs ${want}`);
  }
  // Models that agree: the variance vanishes and -WAIC is -log p.
  const same = waicScores([logLik[0], logLik[0]]);
  assert.deepEqual(Array.from(same), logLik[0].map((v) => -v));
  assert.throws(() => waicScores([logLik[0]]), /at least 2 models, got 1/);
  assert.throws(() => waicScores([logLik[0], logLik[1].slice(1)]), /model 1 scored 49 images, model 0 50/);
});

/** A run's evaluation as `deno task ood` writes it, holding only what WAIC reads. */
function evaluated(dir: string, seed: number, counts: Record<string, number>, shift: number): EvaluatedRun {
  const rows = ["set,index,label,elbo,elbo>0"];
  for (const [set, n] of Object.entries(counts)) {
    const values = logLikOf(seed, n, set === "mnist" ? shift : 0);
    values.forEach((v, i) => rows.push(`${set},${i},0,${-v},${v}`));
  }
  const sets = Object.fromEntries(
    Object.entries(counts).map(([s, n]) => [s, { display: s, source: "test", images: n }]),
  );
  const report = {
    in: "fashion-mnist",
    orientation: "higher = more OOD",
    epochs: 1,
    seed,
    sets,
  } as unknown as OodReport;
  return { dir, report, csv: rows.join("\n") + "\n" };
}

Deno.test("waic: the ensemble's metrics from the runs' scores.csv; runs that do not line up are refused", () => {
  const counts = { "fashion-mnist": 30, mnist: 20 };
  const runs = [1, 2, 3].map((seed) => evaluated(`run${seed}`, seed, counts, 5000));
  const report = waicEvaluation(runs);
  assert.deepEqual(report.results.map((r) => `${r.ood}:${r.score}`), ["mnist:waic", "mnist:elbo_mean"]);
  const ll = (n: number, shift: number) => [1, 2, 3].map((m) => logLikOf(m, n, shift));
  const inLl = ll(30, 0), outLl = ll(20, 5000);
  const want = detectionMetrics(
    inLl[0].map((_, i) => waicReference(inLl, i)),
    outLl[0].map((_, i) => waicReference(outLl, i)),
  );
  assert.ok(Math.abs(report.results[0].auroc - want.auroc) < 1e-12);
  assert.ok(report.results[0].auroc > 0.9, "the shifted set is detected");
  assert.deepEqual(report.runs.map((r) => r.seed), [1, 2, 3]);
  assert.equal(report.images.mnist, 20);

  const fewer = evaluated("run9", 9, { "fashion-mnist": 30, mnist: 10 }, 5000);
  assert.throws(
    () => waicEvaluation([runs[0], fewer]),
    /run9 scored 10 MNIST images, run1 20: .*same --limit/,
  );
  assert.throws(() => waicEvaluation([runs[0]]), /at least 2 runs/);
  const noOod = evaluated("run8", 8, { "fashion-mnist": 30 }, 0);
  assert.throws(() => waicEvaluation([runs[0], noOod]), /no OOD set in common/);
});

gpuTest(
  "waic: deno task ood --run A --run B --out DIR scores the ensemble, reusing evaluations",
  async () => {
    const root = await Deno.makeTempDir();
    const runs = [`${root}/a`, `${root}/b`];
    for (const [i, run] of runs.entries()) {
      const trained = await runTask("train", [
        ...["--preset", "tiny", "--train-limit", "128", "--batch-size", "64", "--epochs", "1"],
        ...["--seed", String(i + 1), "--no-eval", "--out", run],
      ]);
      assert.equal(trained.code, 0, trained.out + trained.err);
    }
    const flags = ["--run", runs[0], "--run", runs[1], "--limit", "24", "--eval-batch-size", "12"];
    const noOut = await runTask("ood", flags);
    assert.equal(noOut.code, 2);
    assert.match(noOut.err, /several --run: name the ensemble's --out DIR/);

    const first = await runTask("ood", [...flags, "--out", `${root}/ensemble`]);
    assert.equal(first.code, 0, first.out + first.err);
    assert.match(first.out, /\| MNIST \(24\) \| waic \|/);
    const waic = JSON.parse(await Deno.readTextFile(`${root}/ensemble/waic.json`));
    assert.deepEqual(waic.runs.map((r: { seed: number }) => r.seed), [1, 2]);
    assert.deepEqual(waic.results.map((r: { score: string }) => r.score), ["waic", "elbo_mean"]);
    for (const r of waic.results) assert.ok(r.auroc >= 0 && r.auroc <= 1);

    // Started again: both evaluations are reused and the ensemble's results are the same.
    const again = await runTask("ood", [...flags, "--out", `${root}/ensemble`]);
    assert.equal(again.code, 0, again.out + again.err);
    assert.equal(again.out.match(/holds this evaluation; reused/g)?.length, 2);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(`${root}/ensemble/waic.json`)), waic);
    // Another --limit does not line up with those evaluations: each run is scored again.
    const other = await runTask("ood", [
      ...flags.slice(0, 4),
      "--limit",
      "12",
      "--out",
      `${root}/ensemble12`,
    ]);
    assert.equal(other.code, 0, other.out + other.err);
    assert.doesNotMatch(other.out, /reused/);
    await Deno.remove(root, { recursive: true });
  },
);
