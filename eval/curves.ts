/**
 * Curves, not snapshots: OOD detection measured on a fixed subset of the test sets after every N
 * epochs of a training run (`deno task train --eval-every N`), because one epoch's AUROC is a point
 * on a moving curve (independent runs of the `small` model rose and fell by 0.1 AUROC between
 * epochs 1 and 3). Each point scores the same images with the same keys as the full evaluation
 * (eval/score_set.ts), so the last point of a run equals a `deno task ood` of that checkpoint on the
 * same subset. Written as `curves.jsonl` (one line per epoch and OOD set) and drawn as `curves.svg`.
 */

import { writeFileAtomic } from "../data/files.ts";
import type { ImageSet } from "../data/loader.ts";
import type { HvaeConfig, HvaeParams } from "../models/hvae.ts";
import type { RunConfig } from "../models/run_from_bytes.ts";
import { type GenerateMode, scoreNames } from "../models/scores.ts";
import { appendLine, writeRunConfig } from "../store/training_run.ts";
import { type EvaluationOptions, resolveOodSets } from "./evaluate.ts";
import { detectionMetrics } from "./metrics.ts";
import { lineSvg } from "./plots.ts";
import { scoreSet } from "./score_set.ts";
import { displayName, loadTestSet, testSetOnGpu } from "./evaluation_sets.ts";

/** What --eval-every measures (saved in config.json as `curves`). */
export interface CurveSettings {
  /** Every this many epochs. */
  every: number;
  /** Images per set. */
  limit: number;
  /** The OOD sets (as --ood names them). */
  ood: string[];
  /** The scoring passes, as the evaluation's. */
  samples: number;
  iw: number;
  generate: GenerateMode;
  batchSize: number;
}

/** One line of curves.jsonl: every score's metrics against one OOD set after an epoch. */
export interface CurvePoint {
  /** Epochs completed. */
  epoch: number;
  /** The global step after them. */
  step: number;
  /** The OOD set. */
  ood: string;
  /** Images scored: in-distribution, OOD. */
  images: [number, number];
  /** AUROC, AUPRC and FPR80 per score. */
  metrics: Record<string, { auroc: number; auprc: number; fpr80: number }>;
}

/** The fixed subsets a run's curves are measured on. */
export interface CurveSets {
  /** The in-distribution test subset. */
  in: ImageSet;
  /** The OOD test subsets, by set name. */
  ood: { name: string; set: ImageSet }[];
}

/** Scores the curve subsets with the current parameters; one point per OOD set. */
export async function curvePoints(
  params: HvaeParams,
  cfg: HvaeConfig,
  sets: CurveSets,
  o: { seed: number; samples: number; iw: number; generate: GenerateMode; batchSize: number },
  at: { epoch: number; step: number },
): Promise<CurvePoint[]> {
  const L = cfg.layers.length;
  const inScores = await scoreSet(params, cfg, sets.in, o);
  const points: CurvePoint[] = [];
  for (const { name, set } of sets.ood) {
    const out = await scoreSet(params, cfg, set, o);
    const metrics: CurvePoint["metrics"] = {};
    for (const score of scoreNames(L)) {
      const m = detectionMetrics(inScores.scores[score], out.scores[score]);
      metrics[score] = { auroc: m.auroc, auprc: m.auprc, fpr80: m.fpr80 };
    }
    points.push({ ...at, ood: name, images: [sets.in.count, set.count], metrics });
  }
  return points;
}

/** AUROC per epoch of every score, one panel per OOD set (the run's curves.svg). */
export function curvesSvg(points: readonly CurvePoint[], title: string): string {
  const sets = [...new Set(points.map((p) => p.ood))];
  const panels = sets.map((ood) => {
    const mine = points.filter((p) => p.ood === ood).sort((a, b) => a.epoch - b.epoch);
    const scores = Object.keys(mine[0].metrics);
    return {
      title: `${displayName(ood)} (OOD, ${mine[0].images[1]} images)`,
      series: scores.map((score) => ({
        name: score,
        x: mine.map((p) => p.epoch),
        y: mine.map((p) => p.metrics[score]?.auroc ?? NaN),
      })),
    };
  });
  return lineSvg(panels, { title, xLabel: "epochs trained", yLabel: "AUROC", yRange: [0, 1] });
}

/** The curve settings of `--eval-every N --curve-limit M` with the evaluation's passes. */
export function curveSettings(every: number, limit: number, e: EvaluationOptions): CurveSettings {
  return {
    every,
    limit,
    ood: e.ood,
    samples: e.samples,
    iw: e.iw,
    generate: e.generate,
    batchSize: e.batchSize,
  };
}

/**
 * A run's curve settings: those given now (--eval-every), else, when the flag is absent, those saved
 * in its config.json (a resumed run continues the same curve on the same sets); written back into
 * config.json when they change.
 */
export async function runCurves(
  dir: string,
  run: RunConfig,
  given: CurveSettings | null,
  flagGiven: boolean,
): Promise<CurveSettings | null> {
  const saved = (run as RunConfig & { curves?: CurveSettings }).curves;
  const curves = given ?? (!flagGiven && saved?.every ? saved : null);
  if (JSON.stringify(curves) !== JSON.stringify(saved ?? null)) {
    Object.assign(run, { curves });
    await writeRunConfig(dir, run);
  }
  return curves;
}

/** Loads the in-distribution test subset and the OOD sets' subsets of a run's curves (on the GPU). */
export async function loadCurveSets(
  run: RunConfig,
  c: CurveSettings,
  evaluation: EvaluationOptions,
  log: (line: string) => void,
): Promise<CurveSets> {
  const inSet = await loadTestSet(run.training.dataset, run.model.image, { dataDir: evaluation.dataDir });
  const { loaded } = await resolveOodSets(
    { ...evaluation, ood: c.ood },
    run.training.dataset,
    run.model.image,
    (l) => log(`curves: ${l.replace(/^ood: /, "")}`),
  );
  log(
    `every ${c.every} epoch(s): OOD detection on the first ${c.limit} images of ${inSet.display} and of ` +
      `${loaded.map((t) => t.display).join(", ")} into curves.jsonl and curves.svg`,
  );
  return {
    in: await testSetOnGpu(inSet, c.limit, run.model.image),
    ood: await Promise.all(
      loaded.map(async (t) => ({ name: t.name, set: await testSetOnGpu(t, c.limit, run.model.image) })),
    ),
  };
}

/**
 * Measures a curve point of the run in `dir`, appends its lines to curves.jsonl (after the
 * checkpoint, like metrics.jsonl) and redraws curves.svg; returns the epoch's summary line.
 */
export async function addCurvePoints(
  dir: string,
  run: RunConfig,
  params: HvaeParams,
  c: CurveSettings,
  sets: CurveSets,
  at: { epoch: number; step: number },
): Promise<string> {
  const t = run.training;
  const points = await curvePoints(params, run.model, sets, { ...c, seed: t.seed }, at);
  for (const p of points) await appendLine(`${dir}/curves.jsonl`, JSON.stringify(p));
  const all: CurvePoint[] = (await Deno.readTextFile(`${dir}/curves.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  const title = `OOD detection during training: ${run.model.preset}, ${t.loss}, seed ${t.seed}`;
  await writeFileAtomic(`${dir}/curves.svg`, new TextEncoder().encode(curvesSvg(all, title)));
  return `epoch ${at.epoch}: AUROC ${
    points.map((p) =>
      `${displayName(p.ood)} elbo ${p.metrics.elbo.auroc.toFixed(3)} llr_ada ${
        p.metrics.llr_ada.auroc.toFixed(3)
      }`
    ).join("; ")
  } (first ${c.limit} images; curves.svg)`;
}
