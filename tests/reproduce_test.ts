/**
 * The paper's experiments (eval/experiments.ts, `deno task reproduce`): the tables' arithmetic on
 * made-up reports (means, sample standard deviations, the paper's figures beside ours from
 * docs/paper_values.json), and a two-seed `tiny` experiment end to end: trained, evaluated, tabulated,
 * then skipped when asked again.
 */

import assert from "node:assert/strict";
import type { OodReport } from "../eval/evaluate.ts";
import {
  EXPERIMENTS,
  markdownTable,
  meanStd,
  type PaperValues,
  pctCell,
  type RunOutcome,
} from "../eval/experiments.ts";
import { klFigure, pca2 } from "../eval/figures.ts";
import { runTask } from "./commands.ts";
import { colourDataDir } from "./official_formats.ts";
import { gpuTest } from "./helpers.ts";

const paper: PaperValues = JSON.parse(await Deno.readTextFile("docs/paper_values.json"));

/** A run whose ood.json says `auroc` for every score and set given. */
function outcome(
  loss: "elbo" | "informative",
  seed: number,
  auroc: Record<string, number>,
  kl: number[],
): RunOutcome {
  const results = Object.entries(auroc).flatMap(([ood, a]) =>
    ["elbo", "llr>1", "llr_ada"].map((score) => ({ ood, score, auroc: a, auprc: a / 2, fpr80: 1 - a }))
  );
  const diagnostics = {
    images: 10,
    reconstructionNll: [784 * Math.LN2, 1568 * Math.LN2],
    llr: [0, 1],
    kl,
    nll: 1,
    bitsPerDim: 1,
  };
  return {
    loss,
    seed,
    dir: `runs/${loss}-${seed}`,
    epochs: 1,
    report: {
      in: "fashion-mnist",
      results,
      diagnostics: { "fashion-mnist": diagnostics },
    } as unknown as OodReport,
  };
}

Deno.test("experiments: means, sample deviations, and the paper's figures beside ours", () => {
  assert.deepEqual(meanStd([1, 2, 3]), { mean: 2, std: 1 });
  assert.ok(Number.isNaN(meanStd([5]).std));
  assert.equal(pctCell([0.5]), "50.0");
  assert.equal(pctCell([0.5, 0.7]), `60.0 ± ${(100 * Math.SQRT1_2 * 0.2).toFixed(1)}`);
  assert.equal(pctCell([]), "–");
  const runs = [
    outcome("informative", 1, { mnist: 0.9, noise: 0.6 }, [3, 2, 1]),
    outcome("informative", 2, { mnist: 0.8, noise: 0.7 }, [5, 4, 3]),
    outcome("elbo", 1, { mnist: 0.4 }, [9, 0, 0]),
  ];
  const t2 = EXPERIMENTS.table2.table(runs, paper);
  const ada = t2.rows.find((r) => r[0] === "llr_ada")!;
  assert.deepEqual(ada.slice(0, 3), ["llr_ada", "85.0 ± 7.1", "97.0"]);
  assert.ok(
    t2.rows.some((r) => r[0] === "llr_optk" && r[1] === "–" && r[2] === "94.3"),
    "the paper's rows we lack",
  );
  const t5 = EXPERIMENTS.table5.table(runs.filter((r) => r.loss === "informative"), paper);
  assert.deepEqual(t5.rows.find((r) => r[0] === "mnist")!.slice(0, 3), ["mnist", "85.0 ± 7.1", "97.0 ± 0.5"]);
  assert.deepEqual(t5.rows.find((r) => r[0] === "kmnist")!.slice(1, 3), ["–", "95.0 ± 1.1"]);
  const t3 = EXPERIMENTS.table3.table(runs, paper);
  assert.deepEqual(t3.columns.slice(0, 3), ["model", "mnist", "noise"]);
  assert.deepEqual(t3.rows.map((r) => r[1]), ["40.0 / –", "85.0 ± 7.1 / 97.0"]);
  // With an ensemble of the ELBO runs, a WAIC row beside the paper's WAIC(5VAE) of Table 1.
  const waic = {
    in: "fashion-mnist",
    orientation: "higher = more OOD",
    runs: [{ dir: "a", epochs: 1, seed: 1 }, { dir: "b", epochs: 1, seed: 2 }],
    results: [{ ood: "mnist", score: "waic", auroc: 0.5, auprc: 0.5, fpr80: 0.5 }],
    images: { "fashion-mnist": 10, mnist: 10 },
  };
  const t3w = EXPERIMENTS.table3.table(runs, paper, waic);
  assert.deepEqual(t3w.rows[2].slice(0, 3), ["WAIC (2 ELBO runs)", "50.0 / 76.6", "– / –"]);
  // Table 6: a row per remedy, each from its own runs; the plain tables ignore the variants.
  const remedies = [
    ...runs,
    { ...outcome("elbo", 1, { mnist: 0.7 }, [1, 1, 1]), variant: "lvae" as const },
    { ...outcome("elbo", 1, { mnist: 0.6 }, [1, 1, 1]), variant: "warmup" as const },
    { ...outcome("elbo", 1, { mnist: 0.4 }, [1, 1, 1]), variant: "biva" as const },
  ];
  const t6 = EXPERIMENTS.table6.table(remedies, paper);
  assert.deepEqual(t6.columns, ["model", "L_x", "LLR>2", "LLR^ada"]);
  assert.deepEqual(t6.rows.map((r) => r[0].split(" ")[0]), [
    "vanilla",
    "KL",
    "OverSmooth",
    "LVAE",
    "BIVA",
    "informative",
  ]);
  assert.equal(t6.rows[1][3], "60.0 / 68.1");
  assert.equal(t6.rows[3][3], "70.0 / –");
  assert.equal(t6.rows[2][3], "– / 80.9");
  assert.equal(t6.rows[4][3], "40.0 / 35.1");
  assert.deepEqual(EXPERIMENTS.table3.table(remedies, paper).rows, t3.rows);
  const t14 = EXPERIMENTS.table14.table(runs, paper);
  assert.deepEqual(t14.rows[0], ["1", "9.00", "259.00", "4.00", "22.80"]);
  assert.deepEqual(t14.rows[4], ["5", "–", "5.00e-4", "–", "19.70"]);
  const bits = EXPERIMENTS["bits-per-dim"].table(runs, paper);
  assert.deepEqual(bits.rows[1], ["1", "2.000", "7.656", "2.000", "4.019"]);
  assert.match(
    markdownTable(t2),
    /^\*\*Fashion-MNIST \(in\) vs MNIST \(OOD\), informative loss\*\*\n\n\| score \| auroc % \(ours\)/,
  );
});

Deno.test("figures: PCA finds the direction of largest variance first; KL bars on a log scale", () => {
  // Points along (1, 2, 0) with a small spread along (0, 0, 1): PC1 is the line, PC2 the spread.
  const n = 50,
    t = Array.from({ length: n }, (_, i) => i - 25),
    e = Array.from({ length: n }, (_, i) => (i % 5) - 2);
  const x = Float64Array.from(t.flatMap((ti, i) => [ti, 2 * ti, 0.1 * e[i]]));
  const [p1, p2] = pca2(x, n, 3);
  const corr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    const ma = Array.from(a).reduce((s, v) => s + v, 0) / n,
      mb = Array.from(b).reduce((s, v) => s + v, 0) / n;
    let ab = 0, aa = 0, bb = 0;
    for (let i = 0; i < n; i++) {
      [ab, aa, bb] = [ab + (a[i] - ma) * (b[i] - mb), aa + (a[i] - ma) ** 2, bb + (b[i] - mb) ** 2];
    }
    return ab / Math.sqrt(aa * bb);
  };
  assert.ok(Math.abs(corr(p1, t)) > 0.9999, `PC1 ~ t: ${corr(p1, t)}`);
  assert.ok(Math.abs(corr(p2, e)) > 0.99, `PC2 ~ the spread: ${corr(p2, e)}`);
  // Along the line, PC1 moves sqrt(1 + 4) per unit of t (up to the small spread).
  assert.ok(Math.abs(Math.abs(p1[0] - p1[1]) - Math.sqrt(5)) < 0.05);
  const runs = [
    outcome("elbo", 1, { mnist: 0.4 }, [200, 0.01, 0.0005]),
    outcome("informative", 1, { mnist: 0.9 }, [20, 10, 300]),
  ];
  const svg = klFigure(runs);
  assert.equal(svg.match(/class="bar"/g)?.length, 6, "3 layers x 2 runs");
  for (const tick of ["1e-4", "1e+0", "1e+3"]) assert.ok(svg.includes(`>${tick}</text>`), tick);
  assert.match(svg, />elbo seed 1</);
});

gpuTest("reproduce: a two-seed experiment trains, evaluates, tabulates, and skips what is done", async () => {
  const out = await Deno.makeTempDir();
  const args = [
    "table5",
    ...["--preset", "tiny", "--likelihood", "logistic-mixture", "--components", "2"],
    ...["--epochs", "1", "--seeds", "2", "--train-limit", "128"],
    ...["--eval-limit", "16", "--eval-batch-size", "16", "--out", out],
  ];
  const first = await runTask("reproduce", args);
  assert.equal(first.code, 0, first.out + first.err);
  const json = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
  assert.deepEqual([json.experiment, json.preset, json.epochs, json.seeds, json.evalLimit], [
    "table5",
    "tiny",
    1,
    2,
    16,
  ]);
  assert.match(json.commit, /^([0-9a-f]{40}|unknown)$/);
  // Every run trained the likelihood asked for, and the results say so.
  assert.deepEqual([json.likelihood, json.components], ["logistic-mixture", 2]);
  for (const seed of [1, 2]) {
    const config = JSON.parse(await Deno.readTextFile(`${out}/tiny-informative-seed${seed}/config.json`));
    assert.deepEqual([config.model.likelihood, config.model.components], ["logistic-mixture", 2]);
  }
  assert.deepEqual(json.runs.map((r: { seed: number; loss: string }) => [r.loss, r.seed]), [[
    "informative",
    1,
  ], ["informative", 2]]);
  const md = await Deno.readTextFile(`${out}/results.md`);
  assert.match(md, /\| mnist \| \d+\.\d ± \d+\.\d \| 97\.0 ± 0\.5 \|/);
  assert.match(
    md,
    /preset `tiny` with the logistic-mixture likelihood \(256-level discretized logistic mixture on 8-bit images, 2 components\), 1 epoch\(s\) on the first 128 training images, seeds 1, 2/,
  );
  for (const figure of ["kl.svg", "roc-mnist.svg", "latents-informative-seed1.svg"]) {
    assert.match(
      await Deno.readTextFile(`${out}/${figure}`),
      /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[^]*<\/svg>\n$/,
      figure,
    );
    assert.ok(json.figures.includes(figure), figure);
  }
  assert.match(await Deno.readTextFile(`${out}/latents-informative-seed1.svg`), />Ankle boot</);
  const again = await runTask("reproduce", args);
  assert.equal(again.code, 0, again.out + again.err);
  assert.equal(again.out.match(/trained \(1 epochs\), skipped/g)?.length, 2);
  assert.equal(again.out.match(/evaluated, skipped/g)?.length, 2);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(`${out}/results.json`)).table, json.table);
  const bad = await runTask("reproduce", ["table99"]);
  assert.equal(bad.code, 2);
  assert.match(
    bad.err,
    /name one experiment \(table2, table12, table3, table5, table6, table14, bits-per-dim, cifar-table2, cifar-table7, cifar-table3\), got 'table99'/,
  );
});

gpuTest("reproduce: every experiment runs end to end on tiny and writes its table and figures", async () => {
  const root = await Deno.makeTempDir();
  for (const name of Object.keys(EXPERIMENTS).filter((n) => n !== "table5" && !n.startsWith("cifar-"))) {
    const out = `${root}/${name}`;
    const r = await runTask("reproduce", [
      name,
      ...[
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--train-limit",
        "64",
        "--eval-limit",
        "8",
        "--eval-batch-size",
        "8",
      ],
      // table3 with two seeds: its ELBO runs also form a WAIC ensemble.
      ...(name === "table3" ? ["--seeds", "2"] : []),
      ...["--out", out],
    ]);
    assert.equal(r.code, 0, r.out + r.err);
    const json = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
    assert.equal(json.experiment, name);
    assert.ok(json.table.rows.length > 0, name);
    assert.match(await Deno.readTextFile(`${out}/results.md`), new RegExp(`^# ${name}: `));
    for (const figure of json.figures) {
      assert.match(await Deno.readTextFile(`${out}/${figure}`), /^<svg/, figure);
    }
    assert.ok(
      json.figures.includes("kl.svg") && json.figures.some((f: string) => f.startsWith("latents-")),
      name,
    );
    if (name === "table3") {
      assert.match(
        await Deno.readTextFile(`${out}/results.md`),
        /\| WAIC \(2 ELBO runs\) \| \d+\.\d \/ 76\.6 \|/,
      );
      assert.deepEqual(JSON.parse(await Deno.readTextFile(`${out}/waic.json`)).runs.length, 2);
    }
  }
  // Runs evaluated on MNIST alone (table2's) are evaluated again for an experiment on every set.
  const shared = `${root}/table2`;
  const all = await runTask("reproduce", [
    "table5",
    ...["--preset", "tiny", "--epochs", "1", "--seeds", "1", "--train-limit", "64", "--eval-limit", "8"],
    ...["--eval-batch-size", "8", "--out", shared],
  ]);
  assert.equal(all.code, 0, all.out + all.err);
  assert.match(all.out, /tiny-informative-seed1: trained \(1 epochs\), skipped/);
  assert.doesNotMatch(all.out, /tiny-informative-seed1: evaluated, skipped/);
  const sets = JSON.parse(await Deno.readTextFile(`${shared}/results.json`)).table.rows.map((r: string[]) =>
    r[0]
  );
  assert.ok(sets.includes("noise") && sets.includes("blank"), sets.join(" "));
});

gpuTest(
  "reproduce: the CIFAR-10 tables on tiny-cifar from files in the official formats; without the data, one line",
  async () => {
    const data = await colourDataDir();
    for (const name of Object.keys(EXPERIMENTS).filter((n) => n.startsWith("cifar-"))) {
      const out = `${data}/${name}`;
      const r = await runTask("reproduce", [
        name,
        ...["--preset", "tiny-cifar", "--epochs", "1", "--data-dir", data, "--eval-limit", "8"],
        ...["--eval-batch-size", "8", "--out", out],
      ]);
      assert.equal(r.code, 0, r.out + r.err);
      const json = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
      assert.equal(json.preset, "tiny-cifar");
      assert.ok(json.table.rows.length > 0, name);
      const md = await Deno.readTextFile(`${out}/results.md`);
      assert.match(md, /CIFAR-10 \(in\)/);
      if (name === "cifar-table2") assert.match(md, /\| llr>2 \| \d+\.\d \| 93\.0 \|/);
      if (name === "cifar-table7") {
        assert.match(md, /\| BIVA \(bidirectional inference\) \| \d+\.\d \/ 13\.3 \|/);
      }
      if (name === "cifar-table3") {
        assert.match(md, /\| ours \(informative\) \| \d+\.\d \/ 92\.6 \|/);
        assert.match(md, /– \/ 83\.0 \|$/m, "LFWPeople: the paper's figure alone");
      }
    }
    const empty = await Deno.makeTempDir();
    const refused = await runTask("reproduce", [
      "cifar-table2",
      "--preset",
      "tiny-cifar",
      "--data-dir",
      empty,
    ]);
    assert.equal(refused.code, 1, refused.out + refused.err);
    assert.match(
      refused.err,
      /^reproduce: cifar-table2 cannot run here: cifar10: --data-dir .* does not hold cifar10's cifar-10-binary\.tar\.gz/m,
    );
    assert.equal(refused.err.trim().split("\n").length, 1, refused.err);
    const gray = await runTask("reproduce", ["cifar-table2", "--preset", "tiny", "--data-dir", data]);
    assert.equal(gray.code, 2);
    assert.match(
      gray.err,
      /cifar-table2 trains on cifar10: --dataset cifar10 holds 32x32 RGB images; preset 'tiny' takes 28x28/,
    );
    await Deno.remove(data, { recursive: true });
    await Deno.remove(empty, { recursive: true });
  },
);
