/**
 * Detection metrics with OOD as the positive class (docs/design.md section 4), exact on ties, with
 * scikit-learn's semantics as Havtorn et al.'s `ood-llr-results.py` uses them:
 *   AUROC   area under the ROC curve over unique thresholds; ties count half (the Mann-Whitney U / n m);
 *   AUPRC   average precision, sum_n (R_n - R_{n-1}) P_n over descending unique thresholds
 *           (`average_precision_score`: a step sum, not a trapezoid);
 *   FPR80   the fraction of in-distribution images flagged at the first (highest) threshold that
 *           flags at least 80% of the OOD images.
 * A threshold t flags every image with score >= t. Fractions in, fractions out.
 */

/** ROC points at every unique threshold, from the highest down; starts at (0, 0), ends at (1, 1). */
export interface Roc {
  /** False-positive rates, ascending. */
  fpr: number[];
  /** True-positive rates at the same thresholds. */
  tpr: number[];
  /** The threshold of each point (Infinity for the first). */
  thresholds: number[];
  /** Precision at each point (the first is 1 by convention). */
  precision: number[];
}

function checkScores(inScores: ArrayLike<number>, outScores: ArrayLike<number>): void {
  if (inScores.length === 0 || outScores.length === 0) {
    throw new Error(
      `metrics: need in-distribution and OOD scores, got ${inScores.length} and ${outScores.length}`,
    );
  }
  for (const [name, xs] of [["in-distribution", inScores], ["OOD", outScores]] as const) {
    for (let i = 0; i < xs.length; i++) {
      if (Number.isNaN(xs[i])) throw new Error(`metrics: ${name} score ${i} is NaN`);
    }
  }
}

/** The ROC curve of OOD detection (OOD positive), one point per distinct threshold. */
export function roc(inScores: ArrayLike<number>, outScores: ArrayLike<number>): Roc {
  checkScores(inScores, outScores);
  const n = inScores.length, m = outScores.length;
  const all = new Float64Array(n + m);
  const positive = new Uint8Array(n + m);
  for (let i = 0; i < n; i++) all[i] = inScores[i];
  for (let j = 0; j < m; j++) [all[n + j], positive[n + j]] = [outScores[j], 1];
  const order = Array.from({ length: n + m }, (_, i) => i).sort((a, b) => all[b] - all[a]);
  const out: Roc = { fpr: [0], tpr: [0], thresholds: [Infinity], precision: [1] };
  let tp = 0, fp = 0;
  for (let i = 0; i < order.length;) {
    const t = all[order[i]];
    // Every image tied at t crosses the threshold together.
    while (i < order.length && all[order[i]] === t) {
      if (positive[order[i]]) tp++;
      else fp++;
      i++;
    }
    out.fpr.push(fp / n);
    out.tpr.push(tp / m);
    out.thresholds.push(t);
    out.precision.push(tp / (tp + fp));
  }
  return out;
}

/** AUROC: the trapezoid over the unique-threshold ROC, which counts ties half. */
export function auroc(
  inScores: ArrayLike<number>,
  outScores: ArrayLike<number>,
  curve: Roc = roc(inScores, outScores),
): number {
  let area = 0;
  for (let i = 1; i < curve.fpr.length; i++) {
    area += (curve.fpr[i] - curve.fpr[i - 1]) * (curve.tpr[i] + curve.tpr[i - 1]) / 2;
  }
  return area;
}

/** AUPRC as average precision: sum over unique thresholds of (recall step) x precision. */
export function averagePrecision(
  inScores: ArrayLike<number>,
  outScores: ArrayLike<number>,
  curve: Roc = roc(inScores, outScores),
): number {
  let ap = 0;
  for (let i = 1; i < curve.tpr.length; i++) ap += (curve.tpr[i] - curve.tpr[i - 1]) * curve.precision[i];
  return ap;
}

/** FPR at the first threshold (from the top) whose TPR reaches `tpr` (0.8: FPR80). */
export function fprAtTpr(
  inScores: ArrayLike<number>,
  outScores: ArrayLike<number>,
  tpr = 0.8,
  curve: Roc = roc(inScores, outScores),
): number {
  for (let i = 0; i < curve.tpr.length; i++) if (curve.tpr[i] >= tpr) return curve.fpr[i];
  return 1;
}

/** The paper's three detection metrics, as fractions. */
export interface Detection {
  /** Area under the ROC curve (ties count half). */
  auroc: number;
  /** Average precision (the area under the precision-recall curve, as a step sum). */
  auprc: number;
  /** The in-distribution fraction flagged where 80% of OOD images are. */
  fpr80: number;
}

/** All three metrics from one sort. */
export function detectionMetrics(
  inScores: ArrayLike<number>,
  outScores: ArrayLike<number>,
): Detection & { roc: Roc } {
  const curve = roc(inScores, outScores);
  return {
    auroc: auroc(inScores, outScores, curve),
    auprc: averagePrecision(inScores, outScores, curve),
    fpr80: fprAtTpr(inScores, outScores, 0.8, curve),
    roc: curve,
  };
}

/**
 * The threshold t for a target false-positive rate on in-distribution scores: images with score > t
 * are flagged OOD, and at most `fpr` of `inScores` lie above t (fewer when scores tie at t).
 */
export function thresholdAtFpr(inScores: ArrayLike<number>, fpr: number): number {
  if (!(fpr >= 0 && fpr <= 1)) throw new Error(`thresholdAtFpr: fpr must be in [0, 1], got ${fpr}`);
  if (inScores.length === 0) throw new Error("thresholdAtFpr: no in-distribution scores");
  const sorted = Float64Array.from(inScores).sort().reverse();
  const allowed = Math.floor(fpr * sorted.length);
  return allowed >= sorted.length ? -Infinity : sorted[allowed];
}
