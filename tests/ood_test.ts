/**
 * The evaluation end to end on `tiny`: `deno task train` evaluating at its end writes every file
 * (ood.json in the schema of docs/design.md section 7, scores.csv, the SVGs and PNGs), `deno task ood` reproduces the
 * same results from the seed, the metrics recompute from scores.csv, and `deno task score` scores
 * PNG and IDX inputs and rejects bad ones (wrong size, corrupt PNG, missing run, bad flags).
 */

import assert from "node:assert/strict";
import { encodeIdx } from "../data/idx.ts";
import { detectionMetrics } from "../eval/metrics.ts";
import { decodePng, encodePng } from "../data/png.ts";
import { runTask } from "./commands.ts";
import { BUILT_IN_SETS } from "../eval/evaluation_sets.ts";
import { gpuTest } from "./helpers.ts";
import { syntheticPixels } from "./synthetic.ts";

const task = (script: string, ...args: string[]) => runTask(script, args);

gpuTest("ood: train evaluates at its end, ood reproduces it, score rates user images", async () => {
  const root = await Deno.makeTempDir();
  const run = `${root}/run`;
  const trained = await task(
    "train",
    ...["--preset", "tiny", "--train-limit", "192", "--batch-size", "64", "--epochs", "1"],
    ...["--eval-limit", "40", "--eval-batch-size", "16", "--out", run],
  );
  assert.equal(trained.code, 0, trained.out + trained.err);
  assert.match(trained.out, /Fashion-MNIST \(in, 40\) vs MNIST \(OOD, 40\); scores: higher = more OOD/);
  assert.match(trained.out, /llr_ada/);
  assert.match(trained.out, /bits\/dim/);
  for (
    const file of [
      "config.json",
      "metrics.jsonl",
      "model.safetensors",
      "ood.json",
      "scores.csv",
      "roc-mnist.svg",
      "histograms-mnist.svg",
      "reconstructions.png",
      "samples.png",
    ]
  ) assert.ok((await Deno.stat(`${run}/${file}`)).size > 0, file);

  const report = JSON.parse(await Deno.readTextFile(`${run}/ood.json`));
  assert.equal(report.in, "fashion-mnist");
  assert.equal(report.orientation, "higher = more OOD");
  assert.deepEqual(report.results.map((r: { score: string }) => r.score), [
    "elbo",
    "llr>1",
    "llr>2",
    "llr_optk",
    "llr_ada",
  ]);
  for (const r of report.results) {
    assert.equal(r.ood, "mnist");
    for (const key of ["auroc", "auprc", "fpr80"]) assert.ok(r[key] >= 0 && r[key] <= 1, `${r.score} ${key}`);
  }
  assert.equal(report.diagnostics["fashion-mnist"].images, 40);
  assert.equal(report.diagnostics.mnist.kl.length, 3);

  // The metrics recompute from the per-image scores.
  const [head, ...rows] = (await Deno.readTextFile(`${run}/scores.csv`)).trim().split("\n");
  const cols = head.split(",");
  assert.equal(rows.length, 80);
  for (const r of report.results) {
    const c = cols.indexOf(r.score);
    const of = (set: string) =>
      rows.map((l) => l.split(",")).filter((x) => x[0] === set).map((x) => Number(x[c]));
    const m = detectionMetrics(of("fashion-mnist"), of("mnist"));
    assert.ok(Math.abs(m.auroc - r.auroc) < 1e-9, `${r.score}: AUROC from scores.csv`);
  }

  // Pictures: SVG documents and PNGs that decode at the grid's size.
  for (const svg of ["roc-mnist.svg", "histograms-mnist.svg"]) {
    const text = await Deno.readTextFile(`${run}/${svg}`);
    assert.match(text, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(text, /<\/svg>\n$/);
  }
  assert.match(await Deno.readTextFile(`${run}/roc-mnist.svg`), /<polyline/);
  const recon = await decodePng(await Deno.readFile(`${run}/reconstructions.png`), "reconstructions.png");
  // 8 + gap + 8 columns and 1 + L rows of 56-pixel cells, 2-pixel gaps.
  assert.deepEqual([recon.width, recon.height], [17 * 56 + 18 * 2, 4 * 56 + 5 * 2]);
  const samples = await decodePng(await Deno.readFile(`${run}/samples.png`), "samples.png");
  assert.deepEqual([samples.width, samples.height], [8 * 56 + 9 * 2, 8 * 56 + 9 * 2]);

  // `deno task ood` reproduces the evaluation from the seed.
  const again = await task("ood", "--run", run, "--limit", "40", "--eval-batch-size", "16");
  assert.equal(again.code, 0, again.out + again.err);
  const second = JSON.parse(await Deno.readTextFile(`${run}/ood.json`));
  assert.deepEqual(second.results, report.results, "the same results from the same seed and batch size");

  // --ood all: every built-in set available here is scored, the others are skipped with a reason;
  // a directory of the user's files is a set of its own.
  const mine = `${root}/mine`;
  await Deno.mkdir(mine);
  await Deno.writeFile(`${mine}/blobs.idx`, encodeIdx([3, 28, 28], syntheticPixels(3)));
  const small = ["--limit", "16", "--eval-batch-size", "16"];
  const all = await task("ood", "--run", run, "--ood", `all,${mine}`, ...small);
  assert.equal(all.code, 0, all.out + all.err);
  const full = JSON.parse(await Deno.readTextFile(`${run}/ood.json`));
  const setsScored = Object.keys(full.sets);
  for (const name of BUILT_IN_SETS) {
    const skip = full.skipped.find((s: { set: string }) => s.set === name);
    assert.ok(setsScored.includes(name) !== Boolean(skip), `${name}: setsScored or skipped, not both`);
    if (skip) assert.match(all.out, new RegExp(`ood: skipped ${name}: .+`));
  }
  for (const name of ["fashion-mnist", "mnist", "fashion-mnist-inverted", "noise", "blank", mine]) {
    assert.ok(setsScored.includes(name), name);
  }
  assert.equal(full.sets[mine].images, 3);
  assert.match(all.out, /AUROC % by OOD set/);
  assert.ok((await Deno.stat(`${run}/roc-dir-mine.svg`)).size > 0);
  assert.equal(new Set(full.results.map((r: { ood: string }) => r.ood)).size, setsScored.length - 1);
  // The evaluation that the checks below reuse: MNIST only, as before.
  assert.equal((await task("ood", "--run", run, "--limit", "40", "--eval-batch-size", "16")).code, 0);

  // `deno task score` on a PNG and an IDX file, as JSON lines.
  const pixels = syntheticPixels(3);
  await Deno.writeFile(`${root}/blob.png`, await encodePng(pixels.subarray(0, 784), 28, 28));
  await Deno.writeFile(`${root}/blobs.idx`, encodeIdx([2, 28, 28], pixels.subarray(784)));
  const scored = await task(
    "score",
    ...["--run", run, "--input", `${root}/blob.png`, "--input", `${root}/blobs.idx`],
    ...["--json", "--calibration-limit", "40", "--fpr", "0.1"],
  );
  assert.equal(scored.code, 0, scored.out + scored.err);
  const lines = scored.out.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.image), [
    `${root}/blob.png`,
    `${root}/blobs.idx#0`,
    `${root}/blobs.idx#1`,
  ]);
  for (const l of lines) {
    assert.equal(l.score, "llr_ada");
    assert.ok(Number.isFinite(l.value) && Number.isFinite(l.threshold));
    assert.equal(l.ood, l.value > l.threshold);
  }

  // Bad inputs: clear errors, nothing written.
  await Deno.writeFile(`${root}/big.png`, await encodePng(new Uint8Array(30 * 30), 30, 30));
  const big = await task("score", "--run", run, "--input", `${root}/big.png`, "--calibration-limit", "8");
  assert.equal(big.code, 1);
  assert.match(big.err, /big\.png: the image is 30x30; the model takes 28x28/);
  const corrupt = (await Deno.readFile(`${root}/blob.png`)).slice();
  corrupt[50] ^= 0x55;
  await Deno.writeFile(`${root}/corrupt.png`, corrupt);
  const bad = await task("score", "--run", run, "--input", `${root}/corrupt.png`);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /corrupt\.png: corrupt PNG \(CRC mismatch/);
  const missing = await task("score", "--run", `${root}/nothing`, "--input", `${root}/blob.png`);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /nothing\/config\.json not found/);
  assert.equal((await task("score", "--run", run)).code, 2);
  assert.equal(
    (await task("score", "--run", run, "--input", `${root}/blob.png`, "--score", "llr>7")).code,
    2,
  );
  assert.equal((await task("ood")).code, 2);
  assert.equal((await task("ood", "--run", run, "--generate", "median")).code, 2);
  assert.equal((await task("ood", "--run", run, "--ood", "cifar100")).code, 2);
  await Deno.remove(root, { recursive: true });
});
