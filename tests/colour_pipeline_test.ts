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
import { runTask, trainTinyColourRun } from "./commands.ts";
import { gpuTest } from "./helpers.ts";
import { colourDataDir } from "./official_formats.ts";
import { decoderWidths, encoderWidths, featureShapes, initHvae } from "../models/hvae.ts";
import { presetConfig } from "../models/presets.ts";
import { withLikelihood } from "../models/likelihood.ts";
import { createRng } from "../models/rng.ts";
import { directionalCheck } from "./gradient_check.ts";

gpuTest(
  "colour: train tiny-cifar on CIFAR-10's archive, ood against SVHN and the colour sets, score RGB PNGs",
  async () => {
    const data = await colourDataDir();
    const run = await trainTinyColourRun(data, ["--eval-limit", "20", "--eval-batch-size", "20"]);
    const config = JSON.parse(await Deno.readTextFile(`${run}/config.json`));
    assert.deepEqual(config.model.image, { height: 32, width: 32, channels: 3 });
    assert.equal(config.training.dataset, "cifar10");
    assert.equal(config.data.images, 40, "the five training batches of 8");
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

gpuTest(
  "cifar presets: Havtorn's widening backbone, its shapes, and exact gradients through widths and skips",
  async () => {
    // The README's backbone: 32 -> 64 -> 128 -> 256 channels, conv latents at 16x16, 8x8 and 4x4.
    const cfg = withLikelihood(presetConfig("cifar3"), "logistic-mixture");
    const enc = encoderWidths(cfg), dec = decoderWidths(cfg);
    assert.deepEqual(enc.map((s) => [s.input, ...s.blocks.map((b) => b.out)]), [
      [3, 32, 32, 64],
      [128, 64, 64, 128],
      [64, 128, 128, 256],
    ]);
    assert.deepEqual(dec.map((s) => [s.input, s.end]), [[128, 32], [64, 64], [32, 128]]);
    assert.deepEqual(featureShapes(cfg), [{ h: 16, w: 16 }, { h: 8, w: 8 }, { h: 4, w: 4 }]);
    assert.deepEqual(
      presetConfig("cifar5").layers.map((l) => l.latent),
      [128, 64, 32, 28, 24].map((channels) => ({
        kind: "conv",
        channels,
      })),
    );
    const params = initHvae(cfg, createRng(1));
    assert.deepEqual(params.q.z1.weight.shape, [3, 3, 64, 256], "q(z1) reads stage 1's 64 channels");
    assert.deepEqual(params.p.z2.weight.shape, [3, 3, 128, 128], "p(z2 | z3) reads stage 3's 128 channels");
    assert.deepEqual(
      params.out.weight.shape,
      [1, 1, 32, 100],
      "the RGB mixture head: 10 x 10 channels from 32",
    );
    // Block 1 of stage 1's decoder (32x32) takes a skip from block 1 of stage 2's (64 channels at 16x16).
    assert.deepEqual(params.dec.stage1.block1.skip!.weight.shape, [5, 5, 32, 64]);
    // Gradients: the same backbone 8x narrower, every layer widening, narrowing and skipping, against
    // finite differences (without weight norm, whose fresh KLs are too curved for float32 differences).
    for (const preset of ["tiny-havtorn-cifar", "tiny-havtorn-cifar-lvae", "tiny-havtorn-cifar-biva"]) {
      const model = { ...presetConfig(preset), weightNorm: false };
      await directionalCheck(model, "informative", 0, 1);
      await directionalCheck(model, "elbo", 2, 0.5);
    }
  },
);
