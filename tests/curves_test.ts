/**
 * `deno task train --eval-every N` (eval/curves.ts): a point per N epochs and OOD set in curves.jsonl,
 * the last equal to a `deno task ood` of the final checkpoint on the same subset, curves.svg drawn,
 * resumed runs continuing the curve (lines past the checkpoint dropped), and the flag's errors.
 */

import assert from "node:assert/strict";
import { runTask } from "./commands.ts";
import { gpuTest } from "./helpers.ts";

gpuTest("curves: AUROC per epoch on a fixed subset, equal to the evaluation of the checkpoint", async () => {
  const root = await Deno.makeTempDir();
  const run = `${root}/run`;
  const common = ["--preset", "tiny", "--train-limit", "128", "--batch-size", "64", "--ood", "mnist,blank"];
  const curve = ["--eval-every", "1", "--curve-limit", "24", "--eval-batch-size", "16"];
  const trained = await runTask("train", [...common, ...curve, "--epochs", "2", "--no-eval", "--out", run]);
  assert.equal(trained.code, 0, trained.out + trained.err);
  assert.match(trained.out, /epoch 2: AUROC MNIST elbo 0\.\d+ llr_ada 0\.\d+; Blank elbo/);
  const lines = async () =>
    (await Deno.readTextFile(`${run}/curves.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
  const points = await lines();
  assert.deepEqual(points.map((p) => [p.epoch, p.step, p.ood]), [
    [1, 2, "mnist"],
    [1, 2, "blank"],
    [2, 4, "mnist"],
    [2, 4, "blank"],
  ]);
  for (const p of points) {
    assert.deepEqual(p.images, [24, 24]);
    assert.deepEqual(Object.keys(p.metrics), ["elbo", "llr>1", "llr>2", "llr_optk", "llr_ada"]);
  }
  const svg = await Deno.readTextFile(`${run}/curves.svg`);
  assert.match(svg, /^<svg xmlns/);
  assert.equal(svg.match(/<polyline/g)?.length, 10, "5 scores x 2 sets");
  // The last point is the evaluation of the final checkpoint on the same images with the same keys.
  const sameImages = ["--limit", "24", "--eval-batch-size", "16"];
  const ood = await runTask("ood", ["--run", run, "--ood", "mnist,blank", ...sameImages]);
  assert.equal(ood.code, 0, ood.out + ood.err);
  const report = JSON.parse(await Deno.readTextFile(`${run}/ood.json`));
  for (const r of report.results) {
    const last = points.find((p) => p.epoch === 2 && p.ood === r.ood);
    assert.equal(last.metrics[r.score].auroc, r.auroc, `${r.ood} ${r.score}`);
  }
  // Resumed: a line past the checkpoint is dropped, and the curve goes on.
  await Deno.writeTextFile(
    `${run}/curves.jsonl`,
    JSON.stringify({ ...points[3], epoch: 9, step: 99 }) + "\n",
    {
      append: true,
    },
  );
  // Without --eval-every, the run keeps the curve settings it recorded (config.json `curves`).
  const resumed = await runTask("train", ["--resume", run, "--epochs", "3", "--no-eval"]);
  assert.equal(resumed.code, 0, resumed.out + resumed.err);
  assert.match(resumed.out, /dropped 1 line\(s\) of curves\.jsonl/);
  assert.deepEqual((await lines()).map((p) => p.epoch), [1, 1, 2, 2, 3, 3]);
  const bad = await runTask("train", [...common, "--eval-every=-1", "--out", `${root}/bad`]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--eval-every must be a non-negative integer/);
});
