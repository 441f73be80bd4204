/**
 * The colour half end to end on files made here in CIFAR-10's and SVHN's official formats
 * (tests/official_formats.ts): `deno task train --preset tiny-cifar` reads the archive, trains a
 * 3-channel model with the RGB logistic mixture and evaluates it against SVHN; `ood --ood all` scores
 * the colour sanity sets; `score` rates an RGB PNG and refuses a grayscale one by name; a dataset whose
 * images do not fit the preset is a usage error. (The page: tests/browser_test.ts.)
 */

import assert from "node:assert/strict";
import { encodePng } from "../data/png.ts";
import { COLOUR_BUILT_IN_SETS } from "../eval/evaluation_sets.ts";
import { runTask } from "./commands.ts";
import { gpuTest } from "./helpers.ts";
import { colourDataDir } from "./official_formats.ts";

gpuTest(
  "colour: train tiny-cifar on CIFAR-10's archive, ood against SVHN and the colour sets, score RGB PNGs",
  async () => {
    const data = await colourDataDir();
    const run = `${data}/run`;
    const trained = await runTask("train", [
      ...["--preset", "tiny-cifar", "--data-dir", data, "--epochs", "1", "--batch-size", "20"],
      ...["--eval-limit", "20", "--eval-batch-size", "20", "--out", run],
    ]);
    assert.equal(trained.code, 0, trained.out + trained.err);
    assert.match(trained.out, /40 cifar10 training images from /);
    const config = JSON.parse(await Deno.readTextFile(`${run}/config.json`));
    assert.deepEqual(config.model.image, { height: 32, width: 32, channels: 3 });
    assert.equal(config.training.dataset, "cifar10");
    assert.equal(config.model.likelihood, "logistic-mixture");
    const report = JSON.parse(await Deno.readTextFile(`${run}/ood.json`));
    assert.equal(report.in, "cifar10");
    assert.deepEqual([...new Set(report.results.map((r: { ood: string }) => r.ood))], ["svhn"]);
    for (const r of report.results) assert.ok(r.auroc >= 0 && r.auroc <= 1, `${r.score} ${r.auroc}`);
    // Bits per dimension count the 3072 values of an image.
    const d = report.diagnostics.cifar10;
    assert.ok(Math.abs(d.bitsPerDim - d.nll / (3072 * Math.LN2)) < 1e-9, JSON.stringify(d));
    // The pictures are RGB PNGs (IHDR colour type 2).
    for (const picture of ["reconstructions.png", "samples.png"]) {
      const png = await Deno.readFile(`${run}/${picture}`);
      assert.equal(png[25], 2, `${picture} is RGB`);
    }

    const all = await runTask("ood", [
      ...["--run", run, "--ood", "all", "--data-dir", data, "--limit", "20", "--eval-batch-size", "20"],
    ]);
    assert.equal(all.code, 0, all.out + all.err);
    const full = JSON.parse(await Deno.readTextFile(`${run}/ood.json`));
    assert.deepEqual(Object.keys(full.sets).sort(), ["cifar10", ...COLOUR_BUILT_IN_SETS].sort());
    assert.match(all.out, /CIFAR-10 inverted: CIFAR-10 test \(.*\), inverted/);

    const rgb = Uint8Array.from({ length: 32 * 32 * 3 }, (_, i) => (i * 7) % 256);
    await Deno.writeFile(`${data}/rgb.png`, await encodePng(rgb, 32, 32, 3));
    await Deno.writeFile(`${data}/gray.png`, await encodePng(rgb.subarray(0, 1024), 32, 32));
    const scored = await runTask("score", [
      "--run",
      run,
      "--input",
      `${data}/rgb.png`,
      "--data-dir",
      data,
      "--json",
    ]);
    assert.equal(scored.code, 0, scored.out + scored.err);
    const line = JSON.parse(scored.out.trim().split("\n").at(-1)!);
    assert.ok(Number.isFinite(line.scores.llr_ada), scored.out);
    const gray = await runTask("score", ["--run", run, "--input", `${data}/gray.png`, "--data-dir", data]);
    assert.notEqual(gray.code, 0);
    assert.match(gray.err, /gray\.png: a grayscale PNG; the model takes RGB images/);

    const wrong = await runTask("train", [
      "--preset",
      "tiny",
      "--dataset",
      "cifar10",
      "--out",
      `${data}/wrong`,
    ]);
    assert.equal(wrong.code, 2, wrong.out + wrong.err);
    assert.match(
      wrong.err,
      /--dataset cifar10 holds 32x32 RGB images; preset 'tiny' takes 28x28 \(its datasets: fashion-mnist, mnist, kmnist\)/,
    );
    await Deno.remove(data, { recursive: true });
  },
);
