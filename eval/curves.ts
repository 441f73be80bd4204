/**
 * Curves, not snapshots: OOD detection measured on a fixed subset of the test sets after every N
 * epochs of a training run (`deno task train --eval-every N`), because one epoch's AUROC is a point
 * on a moving curve (independent runs of the `small` model rose and fell by 0.1 AUROC between
 * epochs 1 and 3). Each point scores the same images with the same keys as the full evaluation
 * (eval/score_set.ts), so the last point of a run equals a `deno task ood` of that checkpoint on the
 * same subset. Written as `curves.jsonl` (one line per epoch and OOD set) and drawn as `curves.svg`.
 */

import type { ImageSet } from "../data/loader.ts";
import type { HvaeConfig, HvaeParams } from "../models/hvae.ts";
import { type GenerateMode, scoreNames } from "../models/scores.ts";
import { detectionMetrics } from "./metrics.ts";
import { lineSvg } from "./plots.ts";
import { scoreSet } from "./score_set.ts";
import { displayName } from "./test_sets.ts";

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
