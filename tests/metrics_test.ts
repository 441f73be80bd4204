/**
 * AUROC, AUPRC (average precision) and FPR80 (eval/metrics.ts) on hand-computed cases and against
 * brute-force definitions on cases with many ties; the calibrated threshold of `deno task score`.
 */

import assert from "node:assert/strict";
import { auroc, averagePrecision, detectionMetrics, fprAtTpr, roc, thresholdAtFpr } from "../eval/metrics.ts";
import { createRng } from "./helpers.ts";

const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

Deno.test("metrics: hand-computed cases", () => {
  // scikit-learn's documented example: y = [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8]:
  // roc_auc_score 0.75, average_precision_score 0.8333...
  const inScores = [0.1, 0.4], outScores = [0.35, 0.8];
  close(auroc(inScores, outScores), 0.75, "AUROC");
  close(averagePrecision(inScores, outScores), 0.5 * 1 + 0.5 * (2 / 3), "AP");
  // TPR reaches 0.8 only at threshold 0.35, where 0.4 is flagged too: FPR 0.5.
  close(fprAtTpr(inScores, outScores), 0.5, "FPR80");
  // Perfect separation, and the reverse.
  assert.deepEqual(
    { ...detectionMetrics([1, 2, 3], [4, 5]), roc: undefined },
    { auroc: 1, auprc: 1, fpr80: 0, roc: undefined },
  );
  close(auroc([4, 5], [1, 2, 3]), 0, "reversed AUROC");
  close(fprAtTpr([4, 5], [1, 2, 3]), 1, "reversed FPR80");
  // All tied: AUROC one half, AP the OOD fraction, everything flagged at once.
  close(auroc([7, 7, 7], [7]), 0.5, "tied AUROC");
  close(averagePrecision([7, 7, 7], [7]), 0.25, "tied AP");
  close(fprAtTpr([7, 7, 7], [7]), 1, "tied FPR80");
  // Partial ties: in [1, 2, 2], out [2, 3]: pairs (out > in) = 2 + 2 + 2 ... by hand:
  // out 2 vs in {1, 2, 2}: 1 win + 2 ties = 2; out 3: 3 wins. (2 + 3) / 6.
  close(auroc([1, 2, 2], [2, 3]), 5 / 6, "partial ties AUROC");
  // Thresholds 3: R 1/2, P 1; 2: R 1, P 2/4. AP = 0.5 * 1 + 0.5 * 0.5.
  close(averagePrecision([1, 2, 2], [2, 3]), 0.75, "partial ties AP");
  // TPR 0.5 at 3, 1.0 at 2 (FPR 2/3).
  close(fprAtTpr([1, 2, 2], [2, 3]), 2 / 3, "partial ties FPR80");
  const curve = roc([1, 2, 2], [2, 3]);
  assert.deepEqual(curve.fpr, [0, 0, 2 / 3, 1]);
  assert.deepEqual(curve.tpr, [0, 0.5, 1, 1]);
  assert.throws(() => auroc([], [1]), /need in-distribution and OOD scores/);
  assert.throws(() => auroc([NaN], [1]), /in-distribution score 0 is NaN/);
});

Deno.test("metrics: brute-force definitions on integer scores with many ties", () => {
  const rng = createRng(17);
  for (let trial = 0; trial < 20; trial++) {
    const n = 5 + Math.floor(rng.uniform() * 40), m = 5 + Math.floor(rng.uniform() * 40);
    const ins = Array.from({ length: n }, () => Math.floor(rng.uniform() * 6));
    const outs = Array.from({ length: m }, () => Math.floor(rng.uniform() * 6) + (trial % 3));
    // Mann-Whitney: P(out > in) + P(out = in) / 2 over all pairs.
    let u = 0;
    for (const o of outs) for (const i of ins) u += o > i ? 1 : o === i ? 0.5 : 0;
    // Average precision and FPR80 by scanning each unique threshold t (flag s >= t) from the top.
    const thresholds = [...new Set([...ins, ...outs])].sort((a, b) => b - a);
    let ap = 0, prevRecall = 0, fpr80 = NaN;
    for (const t of thresholds) {
      const tp = outs.filter((s) => s >= t).length, fp = ins.filter((s) => s >= t).length;
      ap += (tp / m - prevRecall) * (tp / (tp + fp));
      prevRecall = tp / m;
      if (Number.isNaN(fpr80) && tp / m >= 0.8) fpr80 = fp / n;
    }
    const got = detectionMetrics(ins, outs);
    assert.ok(
      Math.abs(got.auroc - u / (n * m)) < 1e-12,
      `trial ${trial} AUROC ${got.auroc} vs ${u / (n * m)}`,
    );
    assert.ok(Math.abs(got.auprc - ap) < 1e-12, `trial ${trial} AP ${got.auprc} vs ${ap}`);
    assert.equal(got.fpr80, fpr80, `trial ${trial} FPR80`);
  }
});

Deno.test("metrics: the calibrated threshold flags at most the target fraction, and no fewer than needed", () => {
  const rng = createRng(3);
  for (const fpr of [0, 0.05, 0.1, 0.5, 1]) {
    for (const ties of [false, true]) {
      const scores = Array.from({ length: 200 }, () => ties ? Math.floor(rng.uniform() * 10) : rng.normal());
      const t = thresholdAtFpr(scores, fpr);
      const flagged = scores.filter((s) => s > t).length;
      assert.ok(flagged <= Math.floor(fpr * 200), `fpr ${fpr} ties ${ties}: ${flagged} flagged`);
      // Any lower threshold among the scores would flag more than allowed.
      const lower = scores.filter((s) => s < t);
      if (lower.length) {
        const next = Math.max(...lower);
        assert.ok(
          scores.filter((s) => s > next).length > Math.floor(fpr * 200),
          `fpr ${fpr}: threshold too high`,
        );
      }
    }
  }
  assert.throws(() => thresholdAtFpr([1, 2], 1.5), /fpr must be in \[0, 1\]/);
});
