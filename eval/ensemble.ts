/**
 * WAIC over an ensemble of trained runs (Choi, Jang & Alemi, "WAIC, but why? Generative ensembles for
 * robust anomaly detection", arXiv:1810.01392, 2018; the paper's "WAIC(5VAE)" rows of Tables 1-2):
 *   WAIC(x) = E_theta[log p(x | theta)] - Var_theta[log p(x | theta)]
 * over the ensemble's models theta, with log p(x | theta) estimated by each model's ELBO L_x. A low WAIC
 * is unlike the training data, so the score is -WAIC = Var - E (higher = more OOD), with the variance
 * over the M models taken as (1/M) sum (v - mean)^2.
 *
 * It is computed from the runs' evaluations (each run's ood.json and scores.csv): every run scores the
 * same binarised test images (eval/score_set.ts, `TEST_BINARIZATION`), so image i of a set is the same
 * image in every run and the per-image values line up.
 */

import { type OodReport, type OodResult, scoresCsvColumn } from "./evaluate.ts";
import { detectionMetrics } from "./metrics.ts";
import { displayName, fileKey } from "./evaluation_sets.ts";

/** The score's name in tables and waic.json. */
export const WAIC_SCORE = "waic";

/** -WAIC per image from log-likelihood estimates `logLik[m][i]` of models m = 0..M-1 (higher = more OOD). */
export function waicScores(logLik: readonly ArrayLike<number>[]): Float64Array {
  const M = logLik.length;
  if (M < 2) throw new Error(`WAIC needs an ensemble of at least 2 models, got ${M}`);
  const n = logLik[0].length;
  for (const [m, values] of logLik.entries()) {
    if (values.length !== n) throw new Error(`WAIC: model ${m} scored ${values.length} images, model 0 ${n}`);
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let mean = 0;
    for (let m = 0; m < M; m++) mean += logLik[m][i];
    mean /= M;
    let variance = 0;
    for (let m = 0; m < M; m++) variance += (logLik[m][i] - mean) ** 2;
    variance /= M;
    out[i] = variance - mean;
  }
  return out;
}

/** One run's evaluation as the ensemble reads it. */
export interface EvaluatedRun {
  /** The run directory. */
  dir: string;
  /** Its ood.json. */
  report: OodReport;
  /** Its scores.csv, as text. */
  csv: string;
}

/** What `waicEvaluation` returns (and `deno task ood` writes as waic.json). */
export interface WaicReport {
  /** The in-distribution set. */
  in: string;
  /** Always "higher = more OOD". */
  orientation: string;
  /** The ensemble's runs, with their epochs and seeds. */
  runs: { dir: string; epochs: number; seed: number }[];
  /** -WAIC, and the ensemble mean of -L_x for comparison, against every OOD set all runs scored. */
  results: OodResult[];
  /** Images scored per set. */
  images: Record<string, number>;
}

/** Reads a run's evaluation; a run without one is an error that says how to make it. */
export async function readEvaluation(dir: string): Promise<EvaluatedRun> {
  try {
    const report: OodReport = JSON.parse(await Deno.readTextFile(`${dir}/ood.json`));
    const csv = await Deno.readTextFile(`${dir}/scores.csv`);
    return { dir, report, csv };
  } catch (error) {
    throw new Error(
      `${dir} has no readable evaluation (ood.json, scores.csv: ${(error as Error).message}); ` +
        `run 'deno task ood --run ${dir}' first`,
    );
  }
}

/**
 * -WAIC and the ensemble's mean -L_x against every OOD set that all runs scored. The runs must share
 * their in-distribution set and have scored the same number of images of each set (the same
 * `--limit`); otherwise the images would not line up and the error names the run that differs.
 */
export function waicEvaluation(runs: readonly EvaluatedRun[]): WaicReport {
  if (runs.length < 2) {
    throw new Error(`WAIC needs at least 2 runs (--run A --run B ...), got ${runs.length}`);
  }
  const first = runs[0].report;
  const sets = Object.keys(first.sets ?? {}).filter((s) => runs.every((r) => r.report.sets?.[s]));
  const images: Record<string, number> = {};
  for (const set of sets) {
    images[set] = first.sets[set].images;
    for (const run of runs) {
      if (run.report.in !== first.in) {
        throw new Error(`${run.dir} was trained on ${run.report.in}, ${runs[0].dir} on ${first.in}`);
      }
      if (run.report.sets[set].images !== images[set]) {
        throw new Error(
          `${run.dir} scored ${run.report.sets[set].images} ${displayName(set)} images, ${runs[0].dir} ` +
            `${images[set]}: evaluate every run with the same --limit`,
        );
      }
    }
  }
  const oodSets = sets.filter((s) => s !== first.in);
  if (!sets.includes(first.in) || oodSets.length === 0) {
    throw new Error(`the runs have no OOD set in common (${runs.map((r) => r.dir).join(", ")})`);
  }
  // log p(x | theta_m) ~ L_x, the column `elbo>0` of scores.csv.
  const scoresOf = (set: string) => {
    const logLik = runs.map((r) => scoresCsvColumn(r.csv, fileKey(set), "elbo>0"));
    const meanNll = Float64Array.from(
      logLik[0],
      (_, i) => -logLik.reduce((s, v) => s + v[i], 0) / logLik.length,
    );
    return { waic: waicScores(logLik), meanNll };
  };
  const inScores = scoresOf(first.in);
  const results: OodResult[] = [];
  for (const set of oodSets) {
    const out = scoresOf(set);
    for (const [score, key] of [[WAIC_SCORE, "waic"], ["elbo_mean", "meanNll"]] as const) {
      const m = detectionMetrics(inScores[key], out[key]);
      results.push({ ood: set, score, auroc: m.auroc, auprc: m.auprc, fpr80: m.fpr80 });
    }
  }
  return {
    in: first.in,
    orientation: first.orientation,
    runs: runs.map((r) => ({ dir: r.dir, epochs: r.report.epochs, seed: r.report.seed })),
    results,
    images,
  };
}

/** waic.md: the ensemble, then AUROC / AUPRC / FPR80 in % of each score against each OOD set. */
export function waicTable(report: WaicReport): string {
  const pct = (v: number) => (100 * v).toFixed(1);
  const lines = [
    `WAIC over an ensemble of ${report.runs.length} runs (Choi et al. 2018); ${displayName(report.in)} (in, ${
      report.images[report.in]
    } images); scores: ${report.orientation}`,
    "",
    ...report.runs.map((r) => `- ${r.dir}: seed ${r.seed}, ${r.epochs} epoch(s)`),
    "",
    "| OOD set | score | AUROC % | AUPRC % | FPR80 % |",
    "| ------- | ----- | ------- | ------- | ------- |",
    ...report.results.map((r) =>
      `| ${displayName(r.ood)} (${report.images[r.ood]}) | ${r.score} | ${pct(r.auroc)} | ${pct(r.auprc)} | ${
        pct(r.fpr80)
      } |`
    ),
  ];
  return lines.join("\n");
}
