/**
 * The paper's evaluation end to end (docs/design.md sections 3, 4, 7; paper Tables 2, 10, 13-15 and
 * Figs. 2-5, 9): score the in-distribution test set and each OOD test set with a trained run, compute
 * AUROC / AUPRC / FPR80 for every score, print the tables, and write into the run directory
 *   ood.json                 the results (docs/design.md section 7) and the diagnostics;
 *   scores.csv               every image's scores and the estimates behind them, to recompute metrics;
 *   roc-<ood>.svg            ROC curves of all scores (Fig. 3);
 *   histograms-<ood>.svg     LLR^{>k} and LLR^{ada} for in vs out (Fig. 4);
 *   reconstructions.png      inputs and reconstructions from p(x | z_{>k}), k = 0..L-1 (Figs. 2, 5);
 *   samples.png              samples from the prior (Fig. 9).
 * `deno task ood` and the end of `deno task train` both call `evaluateRun`.
 */

import type { DatasetName } from "../data/datasets.ts";
import type { ImageSet } from "../data/loader.ts";
import { dispose } from "../kernels/tensor.ts";
import type { LoadedRun } from "../store/load_run.ts";
import { completedEpochs } from "../store/run_lifecycle.ts";
import { writeFilesAtomic } from "../data/files.ts";
import { type GenerateMode, type ImageScores, passColumns, scoreNames } from "../models/scores.ts";
import { type Likelihood, likelihoodOf } from "../models/likelihood.ts";
import { imageChannels } from "../models/hvae.ts";
import { type Detection, detectionMetrics } from "./metrics.ts";
import { histogramSvg, rocSvg } from "./plots.ts";
import { type GridImage, imageGrid } from "./grid.ts";
import { encodePng } from "../data/png.ts";
import {
  priorSamples,
  reconstructions,
  REGRET_SCORE,
  regretSet,
  type RegretSettings,
  scoreSet,
} from "./score_set.ts";

export { REGRET_SCORE, type RegretSettings };
import {
  builtInSetsFor,
  type DirectorySet,
  displayName,
  fileKey,
  loadTestSet,
  oodSetsAskedFor,
  openTestSet,
  type TestImageShape,
  type TestSet,
  testSetOnGpu,
} from "./evaluation_sets.ts";
import { scoreAllInputs } from "./user_images.ts";
import { progressReporter } from "./progress.ts";

export const ORIENTATION = "higher = more OOD";

/** Settings of the evaluation (`evaluateRun`). */
export interface EvaluationOptions {
  /**
   * The OOD test sets: built-in names (eval/evaluation_sets.ts) or directories; "all" for every built-in
   * set available here (the others are skipped, each with its reason); none for the paper's pair of
   * the training data (`pairedOodSet`: MNIST, or SVHN for CIFAR-10).
   */
  ood: string[];
  /** Independent draws per image, scores averaged. */
  samples: number;
  /** Passes per draw for importance-weighted estimates. */
  iw: number;
  /** z_k .. z_1 of the partial passes as prior means or samples. */
  generate: GenerateMode;
  /** Images per scoring batch. */
  batchSize: number;
  /** Score only the first N images of each test set. */
  limit?: number;
  /** Where to look for the datasets first. */
  dataDir?: string;
  /** Where lines go (console.log by default). */
  log?: (line: string) => void;
  /** Also score Likelihood Regret (models/regret.ts; costly: `steps` optimisation steps per batch). */
  regret?: RegretSettings | null;
}

/** Likelihood diagnostics of one scored set. */
export interface Diagnostics {
  /** Images scored. */
  images: number;
  /** Mean -log p(x | z_{>k}) = -ll_k, k = 0..L-1 (Tables 13, 15). */
  reconstructionNll: number[];
  /** Mean LLR^{>k}, k = 0..L-1 (LLR^{>0} = 0). */
  llr: number[];
  /** Mean KL_l, l = 1..L, in nats (Table 14). */
  kl: number[];
  /** Mean -L_x in nats and in bits per dimension. */
  nll: number;
  /** -L_x in bits per pixel. */
  bitsPerDim: number;
}

/** One line of ood.json's results: a score's metrics against one OOD set. */
export interface OodResult extends Detection {
  /** The OOD set (its name, or the directory given). */
  ood: string;
  /** The score (`scoreNames`). */
  score: string;
}

/** The contents of ood.json (docs/design.md section 7). */
export interface OodReport {
  /** The in-distribution set. */
  in: DatasetName;
  /** Always "higher = more OOD". */
  orientation: string;
  /** The run directory. */
  run: string;
  /** Epochs the run had completed. */
  epochs: number;
  /** The run's seed. */
  seed: number;
  /** Draws per image. */
  samples: number;
  /** Importance-weighted passes per draw. */
  iw: number;
  /** Prior means or samples in the partial passes. */
  generate: GenerateMode;
  /** Images per scoring batch: the passes' noise is keyed by batch, so results depend on it. */
  batchSize: number;
  /** Likelihood Regret's settings when it was scored, else null. */
  regret: RegretSettings | null;
  /** Every score against every OOD set. */
  results: OodResult[];
  /** Every scored set: its display name, where it came from, images scored. */
  sets: Record<string, { display: string; source: string; images: number }>;
  /** Sets of `--ood all` that are not available here, and why. */
  skipped: { set: string; why: string }[];
  /** Diagnostics per scored set. */
  diagnostics: Record<string, Diagnostics>;
  /** Seconds the evaluation took. */
  seconds: number;
}

const mean = (xs: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s / xs.length;
};

/**
 * The diagnostics of a scored set. With a density on dequantised images (the Gaussian likelihood)
 * the negative log-likelihoods here are of the 8-bit images, the density's plus D ln 256 (Theis et
 * al. 2016; `Likelihood.binNatsPerDim`), so bits per dimension count the bins too; the logistic
 * mixture's are probabilities of the levels already, and bits per dimension compare with the paper's.
 */
function diagnosticsOf(s: ImageScores, pixels: number, likelihood: Likelihood): Diagnostics {
  const L = s.ll.length;
  const bins = pixels * likelihood.binNatsPerDim;
  const nll = -mean(s.partialElbo[0]) + bins;
  return {
    images: s.count,
    reconstructionNll: s.ll.map((ll) => -mean(ll) + bins),
    llr: Array.from({ length: L }, (_, k) => mean(s.partialElbo[0]) - mean(s.partialElbo[k])),
    kl: s.kl.map(mean),
    nll,
    bitsPerDim: nll / (pixels * Math.LN2),
  };
}

const pct = (v: number) => (100 * v).toFixed(1).padStart(7);

/** The paper's Table 2 layout: one row per score, AUROC / AUPRC / FPR80 in %. */
export function resultsTable(
  results: readonly OodResult[],
  inName: string,
  ood: string,
  counts: [number, number],
): string {
  const rows = results.filter((r) => r.ood === ood);
  const lines = [
    `${displayName(inName)} (in, ${counts[0]}) vs ${displayName(ood)} (OOD, ${
      counts[1]
    }); scores: ${ORIENTATION}`,
    `  score       AUROC %  AUPRC %  FPR80 %`,
    ...rows.map((r) => `  ${r.score.padEnd(10)}${pct(r.auroc)}  ${pct(r.auprc)}  ${pct(r.fpr80)}`),
  ];
  return lines.join("\n");
}

/**
 * AUROC in % of every score (columns) against every OOD set (rows): one run's part of the paper's
 * Table 3, whose columns are the sets.
 */
export function setsTable(
  results: readonly OodResult[],
  sets: readonly string[],
  scores: readonly string[],
): string {
  const width = Math.max(16, ...sets.map((n) => displayName(n).length + 2));
  const lines = [
    `AUROC % by OOD set; scores: ${ORIENTATION}`,
    `  ${"set".padEnd(width)}${scores.map((n) => n.padStart(10)).join("")}`,
  ];
  for (const set of sets) {
    const cells = scores.map((score) => {
      const r = results.find((x) => x.ood === set && x.score === score);
      return (r ? (100 * r.auroc).toFixed(1) : "-").padStart(10);
    });
    lines.push(`  ${displayName(set).padEnd(width)}${cells.join("")}`);
  }
  return lines.join("\n");
}

const num = (v: number) => (Math.abs(v) >= 1e5 ? v.toExponential(2) : v.toFixed(2)).padStart(17);

/** Tables 13-15: reconstruction NLL and LLR^{>k} per k, KL per layer, bits per dimension, in vs out. */
export function diagnosticsTable(diag: Record<string, Diagnostics>, sets: string[]): string {
  const L = diag[sets[0]].kl.length;
  // One column per set, one row per quantity: as wide as the sets, however many there are.
  const row = (label: string, cell: (d: Diagnostics) => string) =>
    `  ${label.padEnd(18)}${sets.map((n) => cell(diag[n])).join("")}`;
  const lines = [`  ${"".padEnd(18)}${sets.map((n) => displayName(n).slice(0, 16).padStart(17)).join("")}`];
  for (let k = 0; k < L; k++) lines.push(row(`-log p(x|z>${k})`, (d) => num(d.reconstructionNll[k])));
  for (let k = 1; k < L; k++) lines.push(row(`LLR>${k}`, (d) => num(d.llr[k])));
  for (let l = 0; l < L; l++) lines.push(row(`KL_${l + 1}`, (d) => num(d.kl[l])));
  lines.push(row("-L_x", (d) => num(d.nll)));
  lines.push(row("bits/dim", (d) => num(d.bitsPerDim)));
  return lines.join("\n");
}

/**
 * One score of one set from scores.csv's text (`set` is the set's file key, e.g. "fashion-mnist");
 * the inverse of `scoresCsv`. An unknown score is an error naming it.
 */
export function scoresCsvColumn(csv: string, set: string, score: string): Float64Array {
  const [head, ...rows] = csv.trim().split("\n");
  const c = head.split(",").indexOf(score);
  if (c < 0) throw new Error(`scores.csv has no column '${score}'`);
  return Float64Array.from(
    rows.map((r) => r.split(",")).filter((x) => x[0] === set).map((x) => Number(x[c])),
  );
}

/** scores.csv: one row per image of every scored set. */
function scoresCsv(
  sets: readonly { key: string; labels: Uint8Array; scores: ImageScores }[],
  L: number,
  names: readonly string[],
): string {
  const cols = [
    "set",
    "index",
    "label",
    ...names,
    "optk",
    ...passColumns(L),
  ];
  const lines = [cols.join(",")];
  const g = (v: number) => Number.isFinite(v) ? String(Math.fround(v)) : String(v);
  for (const set of sets) {
    const s = set.scores;
    for (let i = 0; i < s.count; i++) {
      lines.push([
        set.key,
        i,
        set.labels[i],
        ...names.map((n) => g(s.scores[n][i])),
        s.optk[i],
        ...s.partialElbo.map((a) => g(a[i])),
        ...s.ll.map((a) => g(a[i])),
        ...s.kl.map((a) => g(a[i])),
      ].join(","));
    }
  }
  return lines.join("\n") + "\n";
}

/**
 * Refuses scores that are not finite: NaN compares false with any threshold and would rank
 * arbitrarily, so a model whose outputs overflow must be an error naming the run, never a result.
 */
export function checkFinite(dir: string, sets: readonly { name: string; scores: ImageScores }[]): void {
  for (const { name, scores } of sets) {
    for (const [score, values] of Object.entries(scores.scores)) {
      let bad = 0;
      for (const v of values) if (!Number.isFinite(v)) bad++;
      if (bad > 0) {
        throw new Error(
          `${dir}: ${bad} of ${values.length} ${name} images have a non-finite ${score} score: the model's ` +
            `outputs overflow, so no result can be trusted (nothing was written)`,
        );
      }
    }
  }
}

/**
 * The OOD sets to score: `o.ood` as given, or for "all" every built-in set that loads here (the
 * in-distribution set excepted); a set of "all" that cannot be loaded is skipped with its reason,
 * one asked for by name is an error.
 */
export async function resolveOodSets(
  o: EvaluationOptions,
  inName: DatasetName,
  image: TestImageShape,
  log: (line: string) => void,
): Promise<{ loaded: (TestSet | DirectorySet)[]; skipped: { set: string; why: string }[] }> {
  const load = (name: string) => openTestSet(name, image, { dataDir: o.dataDir, inDistribution: inName });
  const loaded: (TestSet | DirectorySet)[] = [], skipped: { set: string; why: string }[] = [];
  const asked = oodSetsAskedFor(o.ood, inName);
  if (!asked.includes("all")) {
    for (const name of asked) loaded.push(await load(name));
    return { loaded, skipped };
  }
  const wanted = [...builtInSetsFor(inName), ...o.ood.filter((n) => n !== "all")];
  for (const name of wanted) {
    try {
      loaded.push(await load(name));
    } catch (error) {
      // The first line says what is missing; a dataset's last line says how to provide it.
      const lines = (error as Error).message.split("\n");
      const how = lines.find((l) => l.startsWith("To provide it"));
      skipped.push({ set: name, why: lines[0].replace(/ Looked at:$/, "") + (how ? ` ${how}` : "") });
    }
  }
  if (loaded.length === 0) throw new Error(`--ood all: no OOD set is available here`);
  log(
    `ood: --ood all: ${loaded.map((t) => t.display).join(", ")}${
      skipped.length ? `; ${skipped.length} skipped (below)` : ""
    }`,
  );
  return { loaded, skipped };
}

/**
 * Whether a previous evaluation (a run's ood.json) is the one `o` asks for: the run's current epochs,
 * the same draws, passes, generation and batch size (the passes' noise is keyed by batch), the same
 * number of images, and every OOD set asked for tried ("all": every built-in set, scored or skipped).
 * `deno task reproduce` and an ensemble `deno task ood` then reuse it instead of scoring again.
 */
export function holdsEvaluation(previous: OodReport | null, o: EvaluationOptions, epochs: number): boolean {
  if (!previous?.sets || !previous.diagnostics) return false;
  const tried = [...Object.keys(previous.sets), ...(previous.skipped ?? []).map((x) => x.set)];
  const wanted = oodSetsAskedFor(o.ood, previous.in).flatMap((s) =>
    s === "all" ? builtInSetsFor(previous.in) : [s]
  );
  const images = previous.diagnostics[previous.in]?.images;
  return wanted.every((s) => tried.includes(s)) && previous.epochs === epochs &&
    previous.samples === o.samples && previous.iw === o.iw && previous.generate === o.generate &&
    previous.batchSize === o.batchSize && images === Math.min(o.limit ?? 10000, 10000) &&
    JSON.stringify(previous.regret ?? null) === JSON.stringify(o.regret ?? null);
}

/** A set being evaluated: on the device (a directory's first 8 images only, for the pictures). */
interface EvaluatedSet {
  name: string;
  key: string;
  display: string;
  source: string;
  set: ImageSet;
}

/** A set's scores, with its name, file key and labels. */
interface ScoredSet {
  name: string;
  key: string;
  labels: Uint8Array;
  scores: ImageScores;
}

/**
 * Scores every set (the in-distribution one first) with every score, and Likelihood Regret when asked
 * for; pushes each set onto `sets` as it is uploaded (the caller releases them, whatever happens).
 */
async function scoreEvaluationSets(
  run: LoadedRun,
  loadedSets: readonly (TestSet | DirectorySet)[],
  o: EvaluationOptions,
  sets: EvaluatedSet[],
  log: (line: string) => void,
): Promise<ScoredSet[]> {
  const cfg = run.config.model, seed = run.config.training.seed;
  const scored: ScoredSet[] = [];
  for (const loaded of loadedSets) {
    const { name, display } = loaded;
    log(`ood: ${display}: ${loaded.source}`);
    const key = fileKey(name);
    const onBatch = progressReporter(`ood: scoring ${display}`, { stream: "stdout", log });
    if ("inputs" in loaded) {
      // A user's directory streams, each image scored as if alone (as `deno task score` scores it,
      // with regret in the same pass), so the two commands agree image by image.
      sets.push({ name, key, display, source: loaded.source, set: await testSetOnGpu(loaded, 8, cfg.image) });
      const scores = await scoreAllInputs(run, loaded.inputs, {
        samples: o.samples,
        iw: o.iw,
        generate: o.generate,
        batchSize: o.batchSize,
        regret: o.regret,
        limit: o.limit,
        onBatch,
      });
      scored.push({ name, key, labels: new Uint8Array(scores.count), scores });
      continue;
    }
    const set = await testSetOnGpu(loaded, o.limit, cfg.image);
    sets.push({ name, key, display, source: loaded.source, set });
    const passes = { samples: o.samples, iw: o.iw, generate: o.generate, batchSize: o.batchSize };
    scored.push({
      name,
      key,
      labels: set.labels,
      scores: await scoreSet(run.params, cfg, set, { seed, ...passes, onBatch }),
    });
  }
  if (o.regret) {
    for (const [i, { display, set }] of sets.entries()) {
      if (scored[i].scores.scores[REGRET_SCORE]) continue; // a directory's, scored with it
      scored[i].scores.scores[REGRET_SCORE] = await regretSet(run.params, cfg, set, {
        ...o.regret,
        seed,
        batchSize: o.batchSize,
        onBatch: progressReporter(`ood: scoring ${display} (likelihood regret, ${o.regret.steps} steps)`, {
          stream: "stdout",
          log,
        }),
      });
    }
  }
  checkFinite(run.dir, scored);
  return scored;
}

/**
 * The metrics of every OOD set against the in-distribution one (scored[0]) and every score, the
 * diagnostics of every set, and their files: ROC curves, score histograms and scores.csv.
 */
function detectionResults(
  run: LoadedRun,
  scored: readonly ScoredSet[],
  names: readonly string[],
  text: (name: string, body: string) => void,
): { results: OodResult[]; diagnostics: Record<string, Diagnostics> } {
  const cfg = run.config.model, L = cfg.layers.length, inName = run.config.training.dataset;
  // Dimensions: pixels times channels (bits per dimension count each colour value).
  const pixels = cfg.image.height * cfg.image.width * imageChannels(cfg);
  const inScores = scored[0].scores;
  const results: OodResult[] = [];
  const diagnostics: Record<string, Diagnostics> = {
    [inName]: diagnosticsOf(inScores, pixels, likelihoodOf(cfg)),
  };
  for (const out of scored.slice(1)) {
    diagnostics[out.name] = diagnosticsOf(out.scores, pixels, likelihoodOf(cfg));
    const curves = [];
    for (const score of names) {
      const m = detectionMetrics(inScores.scores[score], out.scores.scores[score]);
      results.push({ ood: out.name, score, auroc: m.auroc, auprc: m.auprc, fpr80: m.fpr80 });
      curves.push({ name: score, fpr: m.roc.fpr, tpr: m.roc.tpr, auroc: m.auroc });
    }
    const title = `${displayName(inName)} (in) vs ${displayName(out.name)} (OOD), ${cfg.preset}`;
    text(`roc-${out.key}.svg`, rocSvg(curves, `ROC: ${title}`));
    const panels = scoreNames(L).filter((n) => n.startsWith("llr>") || n === "llr_ada").map((n) => ({
      title: n === "llr_ada" ? "LLR ada (Eq. 11)" : `LLR>${n.slice(4)}`,
      in: inScores.scores[n],
      out: out.scores.scores[n],
    }));
    text(
      `histograms-${out.key}.svg`,
      histogramSvg(panels, { in: displayName(inName), out: displayName(out.name) }, `Scores: ${title}`),
    );
  }
  text("scores.csv", scoresCsv(scored, L, names));
  return { results, diagnostics };
}

/**
 * The pictures: 8 in-distribution and 8 OOD images (the first of each of the first two sets) with
 * their reconstructions from p(x | z>k) (Figs. 2 and 5), and 64 samples from the prior (Fig. 9).
 */
async function evaluationPictures(
  run: LoadedRun,
  sets: readonly EvaluatedSet[],
): Promise<[string, Uint8Array][]> {
  const cfg = run.config.model, L = cfg.layers.length, seed = run.config.training.seed;
  const picks = Uint32Array.from({ length: 8 }, (_, i) => i);
  const columns: (Float32Array | null)[][] = [];
  for (const [i, { set }] of sets.slice(0, 2).entries()) {
    if (i > 0) columns.push(new Array(L + 1).fill(null));
    const ids = picks.subarray(0, Math.min(8, set.count));
    columns.push(...(await reconstructions(run.params, cfg, set, ids, seed)));
  }
  const { height: h, width: w } = cfg.image;
  const channels = imageChannels(cfg) === 3 ? 3 : 1;
  const rows = Array.from({ length: L + 1 }, (_, r) => columns.map((c) => c[r]));
  const recon = imageGrid(rows, h, w, { scale: 2, channels });
  const samples = await priorSamples(run.params, cfg, 64, seed);
  const grid = imageGrid(Array.from({ length: 8 }, (_, r) => samples.slice(8 * r, 8 * r + 8)), h, w, {
    scale: 2,
    channels,
  });
  const png = (g: GridImage) => encodePng(g.pixels, g.width, g.height, g.channels);
  return [[`${run.dir}/reconstructions.png`, await png(recon)], [`${run.dir}/samples.png`, await png(grid)]];
}

/** Prints the evaluation: a table per OOD set, one across sets, the skipped sets, the diagnostics, the files. */
function printEvaluation(
  report: OodReport,
  scored: readonly ScoredSet[],
  names: readonly string[],
  cfg: LoadedRun["config"]["model"],
  log: (line: string) => void,
): void {
  const inName = report.in, setNames = scored.slice(1).map((s) => s.name), L = cfg.layers.length;
  for (const out of scored.slice(1)) {
    log("");
    log(resultsTable(report.results, inName, out.name, [scored[0].scores.count, out.scores.count]));
  }
  if (scored.length > 2) {
    log("");
    log(setsTable(report.results, setNames, names));
  }
  for (const { set, why } of report.skipped) log(`ood: skipped ${set}: ${why}`);
  log("");
  log(
    `Diagnostics (the paper's Tables 13-15), means in nats, ${report.epochs} epoch(s), seed ${report.seed}:`,
  );
  log(diagnosticsTable(report.diagnostics, scored.map((s) => s.name)));
  log("");
  log(
    `ood: wrote ${report.run}/{ood.json, scores.csv, ${
      scored.slice(1).map((x) => `roc-${x.key}.svg, histograms-${x.key}.svg`).join(", ")
    }, reconstructions.png, samples.png} in ${report.seconds} s`,
  );
  log(
    `ood: reconstructions.png: columns are ${displayName(inName)} then ${
      displayName(setNames[0])
    } test images; rows are ${likelihoodOf(cfg).inputCaption}, then p(x | z>k) for k = 0..${L - 1}`,
  );
}

/** Runs the whole evaluation of `run`, writes its files into the run directory, returns the report. */
export async function evaluateRun(run: LoadedRun, o: EvaluationOptions): Promise<OodReport> {
  const log = o.log ?? console.log;
  const started = performance.now();
  const cfg = run.config.model;
  const inName = run.config.training.dataset;
  const inSet = await loadTestSet(inName, cfg.image, { dataDir: o.dataDir });
  const { loaded: oodSets, skipped } = await resolveOodSets(o, inName, cfg.image, log);
  // Every score of the model, and Likelihood Regret when asked for.
  const names = [...scoreNames(cfg.layers.length), ...(o.regret ? [REGRET_SCORE] : [])];
  const sets: EvaluatedSet[] = [];
  try {
    const scored = await scoreEvaluationSets(run, [inSet, ...oodSets], o, sets, log);
    // Every output is made in memory first and written all or nothing at the end (data/files.ts):
    // a failure leaves the previous evaluation's files as they were, never a mix of old and new.
    const files: [string, Uint8Array][] = [];
    const text = (name: string, body: string) =>
      files.push([`${run.dir}/${name}`, new TextEncoder().encode(body)]);
    const { results, diagnostics } = detectionResults(run, scored, names, text);
    files.push(...await evaluationPictures(run, sets));
    const report: OodReport = {
      in: inName,
      orientation: ORIENTATION,
      run: run.dir,
      epochs: await completedEpochs(run.dir),
      seed: run.config.training.seed,
      samples: o.samples,
      iw: o.iw,
      generate: o.generate,
      batchSize: o.batchSize,
      regret: o.regret ?? null,
      results,
      sets: Object.fromEntries(
        sets.map((
          x,
          i,
        ) => [x.name, { display: x.display, source: x.source, images: scored[i].scores.count }]),
      ),
      skipped,
      diagnostics,
      seconds: +((performance.now() - started) / 1000).toFixed(1),
    };
    text("ood.json", JSON.stringify(report, null, 2) + "\n");
    try {
      await writeFilesAtomic(files);
    } catch (error) {
      throw new Error(
        `cannot write the evaluation into ${run.dir} (${
          (error as Error).message
        }); its previous files are unchanged`,
      );
    }
    printEvaluation(report, scored, names, cfg, log);
    return report;
  } finally {
    dispose(sets.map((s) => s.set.bytes));
  }
}
