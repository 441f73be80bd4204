/**
 * The paper's figures made from an experiment's runs (`deno task reproduce`, eval/experiments.ts):
 *   kl.svg              Fig. 6: KL per layer of each run on the in-distribution test set ("the degree
 *                       of posterior collapse"), log scale;
 *   roc-<set>.svg       Fig. 3 with several runs: the ROC of LLR^ada of each run, from its scores.csv;
 *   curves.svg          AUROC per epoch of each run (runs trained with --eval-every), one panel per
 *                       score and OOD set: curves over epochs and seeds, not one epoch's snapshot;
 *   latents-<run>.svg   Fig. 7: the posterior means of z_l for in-distribution test images, per layer,
 *                       projected to 2-D by PCA, coloured by class.
 */

import { type ImageSet, inputBatch } from "../data/loader.ts";
import { noGrad } from "../autograd/tape.ts";
import { dispose, readAll, scope } from "../kernels/tensor.ts";
import { type HvaeConfig, type HvaeParams, posteriorMeans } from "../models/hvae.ts";
import { likelihoodOf } from "../models/likelihood.ts";
import { TEST_BINARIZATION } from "../models/streams.ts";
import type { CurvePoint } from "./curves.ts";
import { scoresCsvColumn } from "./evaluate.ts";
import { runLabel, type RunOutcome } from "./experiments.ts";
import { detectionMetrics } from "./metrics.ts";
import { barSvg, lineSvg, rocSvg, scatterSvg } from "./plots.ts";
import { displayName, fileKey } from "./evaluation_sets.ts";

/** Fashion-MNIST's class names, by label (Xiao et al. 2017). */
export const FASHION_CLASSES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];

/** A run's name in legends. */
export const runName = runLabel;

/** Fig. 6: KL per layer of every run, in nats, log scale. */
export function klFigure(runs: readonly RunOutcome[]): string {
  const kls = runs.map((r) => r.report.diagnostics[r.report.in].kl);
  const layers = Math.max(...kls.map((k) => k.length));
  return barSvg(
    Array.from({ length: layers }, (_, l) => `z${l + 1}`),
    runs.map((r, i) => ({ name: runName(r), values: kls[i] })),
    {
      title: "KL per layer on the in-distribution test set (Fig. 6)",
      xLabel: "latent layer",
      yLabel: "KL (nats)",
      log: true,
    },
  );
}

/** Fig. 3 with several runs: the ROC of `score` against `ood` for each run, from its scores.csv. */
export async function rocFigure(runs: readonly RunOutcome[], ood: string, score: string): Promise<string> {
  const series = [];
  for (const r of runs) {
    const csv = await Deno.readTextFile(`${r.dir}/scores.csv`);
    const m = detectionMetrics(
      scoresCsvColumn(csv, r.report.in, score),
      scoresCsvColumn(csv, fileKey(ood), score),
    );
    series.push({ name: runName(r), fpr: m.roc.fpr, tpr: m.roc.tpr, auroc: m.auroc });
  }
  return rocSvg(
    series,
    `ROC of ${score}, ${displayName(runs[0].report.in)} (in) vs ${displayName(ood)} (OOD)`,
  );
}

/** AUROC per epoch of every run for each of `scores` and OOD set, or null when no run recorded curves. */
export async function curvesFigure(
  runs: readonly RunOutcome[],
  scores: readonly string[],
): Promise<string | null> {
  const curves: { run: RunOutcome; points: CurvePoint[] }[] = [];
  for (const run of runs) {
    const text = await Deno.readTextFile(`${run.dir}/curves.jsonl`).catch(() => "");
    const points = text.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as CurvePoint);
    if (points.length) curves.push({ run, points });
  }
  if (curves.length === 0) return null;
  const sets = [...new Set(curves.flatMap((c) => c.points.map((p) => p.ood)))];
  const panels = sets.flatMap((ood) =>
    scores.map((score) => ({
      title: `${score} vs ${displayName(ood)}`,
      series: curves.map(({ run, points }) => {
        const mine = points.filter((p) => p.ood === ood).sort((a, b) => a.epoch - b.epoch);
        return {
          name: runName(run),
          x: mine.map((p) => p.epoch),
          y: mine.map((p) => p.metrics[score]?.auroc ?? NaN),
        };
      }),
    }))
  );
  return lineSvg(panels, {
    title: "AUROC per epoch, every run (curves.jsonl)",
    xLabel: "epochs trained",
    yLabel: "AUROC",
    yRange: [0, 1],
  });
}

/**
 * The first two principal components of the rows of `x` (n x d, row-major), by power iteration on
 * the centred data with deflation (deterministic start); returns each row's two coordinates.
 */
export function pca2(x: Float64Array, n: number, d: number): [Float64Array, Float64Array] {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j] / n;
  const c = Float64Array.from(x, (v, k) => v - mean[k % d]);
  const project = (v: Float64Array) => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += c[i * d + j] * v[j];
      out[i] = s;
    }
    return out;
  };
  const components: Float64Array[] = [];
  for (let k = 0; k < 2; k++) {
    let v = Float64Array.from({ length: d }, (_, j) => 1 + ((j * 7919 + k * 104729) % 97) / 97);
    for (let it = 0; it < 200; it++) {
      const xv = project(v);
      const next = new Float64Array(d);
      for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) next[j] += c[i * d + j] * xv[i];
      for (const u of components) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += next[j] * u[j];
        for (let j = 0; j < d; j++) next[j] -= dot * u[j];
      }
      const norm = Math.hypot(...next) || 1;
      v = next.map((a) => a / norm);
    }
    components.push(v);
  }
  return [project(components[0]), project(components[1])];
}

/**
 * Fig. 7: the posterior means of every layer (all z below taken at their means, as in scoring) for
 * the first `count` images of `set`, projected to 2-D by PCA, coloured by label.
 */
export async function latentFigure(
  params: HvaeParams,
  cfg: HvaeConfig,
  set: ImageSet,
  count: number,
  title: string,
): Promise<string> {
  const ids = Uint32Array.from({ length: Math.min(count, set.count) }, (_, i) => i);
  const means = noGrad(() =>
    scope(() => {
      const x = inputBatch(set, ids, TEST_BINARIZATION, likelihoodOf(cfg).input);
      return posteriorMeans(params, cfg, x);
    })
  );
  const values = await readAll(means);
  dispose(means);
  const panels = values.map((v, l) => {
    const d = v.length / ids.length;
    const [px, py] = pca2(Float64Array.from(v), ids.length, d);
    return { title: `z${l + 1} (${d} dims)`, x: px, y: py, classes: set.labels.subarray(0, ids.length) };
  });
  return scatterSvg(panels, {
    title,
    classNames: set.name.startsWith("Fashion-MNIST") ? FASHION_CLASSES : undefined,
  });
}
