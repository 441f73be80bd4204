/**
 * The in-distribution scores an OOD threshold is calibrated on (`deno task score`, eval/metrics.ts
 * `thresholdAtFpr`): the run's own scores.csv when `deno task ood` wrote it with the same settings on
 * the whole test set, else the in-distribution test set scored now.
 */

import { loadSplit } from "../data/datasets.ts";
import { imageSetOnGpu } from "../data/loader.ts";
import type { LoadedRun } from "../store/load_run.ts";
import { dispose } from "../kernels/tensor.ts";
import { type EvaluationOptions, type OodReport, REGRET_SCORE, scoresCsvColumn } from "./evaluate.ts";
import { regretSet, scoreSet } from "./score_set.ts";
import { displayName } from "./evaluation_sets.ts";

/** The scores of `score` on the run's in-distribution test images, and where they came from in words. */
export async function calibrationScores(
  run: LoadedRun,
  score: string,
  o: EvaluationOptions,
  log: (line: string) => void,
): Promise<{ values: Float64Array; source: string }> {
  const inName = run.config.training.dataset;
  try {
    const report: OodReport = JSON.parse(await Deno.readTextFile(`${run.dir}/ood.json`));
    const same = report.samples === o.samples && report.iw === o.iw &&
      report.generate === o.generate && report.batchSize === o.batchSize && o.limit === undefined &&
      report.diagnostics[inName]?.images >= 10000 &&
      (score !== REGRET_SCORE || JSON.stringify(report.regret) === JSON.stringify(o.regret));
    if (same) {
      const values = scoresCsvColumn(await Deno.readTextFile(`${run.dir}/scores.csv`), inName, score);
      if (values.length > 0 && values.every(Number.isFinite)) {
        return { values, source: `${run.dir}/scores.csv` };
      }
    }
  } catch {
    // No usable evaluation on disk: score the test set below.
  }
  const split = await loadSplit(inName, "test", { dataDir: o.dataDir });
  const set = imageSetOnGpu(split, o.limit, run.config.model.image);
  try {
    log(
      `calibrating on ${set.count} ${
        displayName(inName)
      } test images (run 'deno task ood' once to reuse its scores)`,
    );
    const seed = run.config.training.seed;
    const values = score === REGRET_SCORE
      ? await regretSet(run.params, run.config.model, set, { ...o.regret!, seed, batchSize: o.batchSize })
      : (await scoreSet(run.params, run.config.model, set, { ...o, seed })).scores[score];
    return { values, source: `${displayName(inName)} test, ${set.count} images from ${split.source}` };
  } finally {
    dispose(set.bytes);
  }
}
