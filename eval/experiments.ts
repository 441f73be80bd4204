/**
 * The paper's experiments as data (`deno task reproduce NAME`, scripts/reproduce.ts): which runs each
 * needs (loss x seed, on one preset and schedule), which OOD sets it scores, and how its table is
 * made from the runs' ood.json, our figure beside the paper's (docs/paper_values.json, with the
 * table numbers). Everything here is a function of the reports: the orchestration lives in the script.
 *   table2        the informative loss, every score against MNIST (paper Tables 2 and 10);
 *   table12       the ELBO (a vanilla HVAE), every score against MNIST (Table 12);
 *   table3        both losses, LLR^ada against every OOD set available (Table 3, MNIST from Table 2);
 *   table5        the informative loss over seeds, LLR^ada, mean and standard deviation (Table 5);
 *   table14       KL per layer of the Fashion-MNIST test set, both losses (Table 14, Fig. 6);
 *   bits-per-dim  bits per dimension of log p(x | z>k) per k, both losses (Table 15, and Table 4's L_x);
 *   table6        the remedies for posterior collapse side by side: the vanilla HVAE, KL warm-up,
 *                 OverSmooth, the LVAE and the informative loss, three scores against MNIST (Tables 6, 7);
 *   cifar-table2, cifar-table7, cifar-table3: the same on CIFAR-10 (in) against SVHN and the colour
 *                 sets (Table 2's right half, Table 7, Table 3's right half).
 */

import { DATASET_IMAGES, type DatasetName, pairedOodSet } from "../data/dataset_names.ts";
import type { Diagnostics, OodReport } from "./evaluate.ts";
import type { WaicReport } from "./ensemble.ts";

/**
 * The model a run trains, beside its loss: the experiment's preset as it is ("hvae"), its `-lvae`,
 * `-biva` or `-oversmooth` variant (models/presets.ts), or the preset with KL warm-up over the first
 * 20% of the epochs (the paper's 200 of 1000, Appendix F).
 */
export type Variant = "hvae" | "lvae" | "biva" | "oversmooth" | "warmup";

/** One training run of an experiment. */
export interface RunSpec {
  /** The objective. */
  loss: "elbo" | "informative";
  /** The seed. */
  seed: number;
  /** The model ("hvae" when absent). */
  variant?: Variant;
}

/** The preset a run of `spec` trains, from the experiment's preset. */
export function runPreset(preset: string, spec: RunSpec): string {
  const v = spec.variant ?? "hvae";
  return v === "lvae" || v === "biva" || v === "oversmooth" ? `${preset}-${v}` : preset;
}

/** A run's directory name in the experiment's directory: <preset>[-warmup]-<loss>-seed<seed>. */
export function runDirName(preset: string, spec: RunSpec): string {
  return `${runPreset(preset, spec)}${
    spec.variant === "warmup" ? "-warmup" : ""
  }-${spec.loss}-seed${spec.seed}`;
}

/** How a run is named in tables and figures: "[variant ]loss seed s". */
export function runLabel(r: RunSpec): string {
  return `${r.variant && r.variant !== "hvae" ? `${r.variant} ` : ""}${r.loss} seed ${r.seed}`;
}

/** A trained and evaluated run, as the tables see it. */
export interface RunOutcome extends RunSpec {
  /** Its directory. */
  dir: string;
  /** Epochs it completed. */
  epochs: number;
  /** Its ood.json. */
  report: OodReport;
}

/** A table: a title, column names and rows of cells (our figures beside the paper's). */
export interface ResultTable {
  /** What it shows, the paper's table it reproduces. */
  title: string;
  /** Column headers. */
  columns: string[];
  /** Rows of cells. */
  rows: string[][];
  /** A line under the table (what differs from the paper's setting). */
  note?: string;
}

/** An experiment's definition. */
export interface Experiment {
  /** Its name on the command line. */
  name: string;
  /** One line for --help. */
  about: string;
  /** The runs it needs, for `seeds` seeds (experiments that need several use their own default). */
  runs(seeds: number): RunSpec[];
  /** Default number of seeds. */
  seeds: number;
  /** The OOD sets each run is evaluated on. */
  ood: string[];
  /** The training set (Fashion-MNIST when absent; CIFAR-10 for the paper's colour tables). */
  dataset?: DatasetName;
  /** The loss whose runs (its seeds) also form a WAIC ensemble (eval/ensemble.ts), if any. */
  ensemble?: RunSpec["loss"];
  /** The table, from the evaluated runs, the paper's values and the ensemble's WAIC where it ran. */
  table(runs: RunOutcome[], paper: PaperValues, waic?: WaicReport): ResultTable;
}

/** docs/paper_values.json. */
export interface PaperValues {
  /** Where the values are from. */
  source: string;
  /** By table number. */
  tables: Record<string, { caption: string; rows: Record<string, unknown> }>;
}

type Metric = "auroc" | "auprc" | "fpr80";
const METRICS: Metric[] = ["auroc", "auprc", "fpr80"];

/** Mean and (sample) standard deviation; the deviation is NaN for one value. */
export function meanStd(xs: readonly number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : NaN;
  return { mean, std };
}

/** A percentage cell: the mean over runs, with "± std" when there are several. */
export function pctCell(values: readonly number[]): string {
  if (values.length === 0) return "–";
  const { mean, std } = meanStd(values.map((v) => 100 * v));
  return Number.isNaN(std) ? mean.toFixed(1) : `${mean.toFixed(1)} ± ${std.toFixed(1)}`;
}

function metricOf(run: RunOutcome, ood: string, score: string, metric: Metric): number | undefined {
  return run.report.results.find((r) => r.ood === ood && r.score === score)?.[metric];
}

const num = (v: number) => (Number.isInteger(v) ? v.toFixed(1) : String(v));
const paperCell = (v: unknown) =>
  Array.isArray(v) ? `${num(v[0])} ± ${num(v[1])}` : typeof v === "number" ? num(v) : "–";

/** Rows = scores: ours (mean ± std over the runs) beside the paper's, one OOD set. */
function scoresTable(
  runs: RunOutcome[],
  paper: PaperValues,
  table: string,
  ood: string,
  title: string,
): ResultTable {
  const rows = (paper.tables[table]?.rows ?? {}) as Record<string, Record<Metric, number>>;
  const scores = [
    ...new Set(runs.flatMap((r) => r.report.results.filter((x) => x.ood === ood).map((x) => x.score))),
  ];
  for (const s of Object.keys(rows)) if (!scores.includes(s)) scores.push(s);
  return {
    title,
    columns: ["score", ...METRICS.flatMap((m) => [`${m} % (ours)`, `${m} % (paper)`])],
    rows: scores.map((score) => [
      score,
      ...METRICS.flatMap((m) => [
        pctCell(runs.map((r) => metricOf(r, ood, score, m)).filter((v): v is number => v !== undefined)),
        paperCell(rows[score]?.[m]),
      ]),
    ]),
  };
}

/** The plain HVAE runs of a loss (the variants have experiments of their own). */
const ofLoss = (runs: RunOutcome[], loss: string) =>
  runs.filter((r) => r.loss === loss && (r.variant ?? "hvae") === "hvae");
const seedsOf = (loss: RunSpec["loss"], n: number): RunSpec[] =>
  Array.from({ length: n }, (_, i) => ({ loss, seed: i + 1 }));

/**
 * An experiment of both losses (one seed each by default) whose table is per-layer (or per-k) values
 * of the in-distribution diagnostics, mean over runs, beside the paper's table `table`.
 */
function layersExperiment(
  name: string,
  about: string,
  table: string,
  title: string,
  label: string,
  of: (d: Diagnostics, pixels: number) => number[],
  digits: (v: number) => string,
): Experiment {
  return {
    name,
    about,
    seeds: 1,
    runs: (n) => [...seedsOf("elbo", n), ...seedsOf("informative", n)],
    ood: ["mnist"],
    table: (runs, paper) => {
      const rows = (paper.tables[table]?.rows ?? {}) as Record<string, number[]>;
      const valuesOf = (loss: string) => {
        const mine = ofLoss(runs, loss).map((r) => {
          const { height, width, channels } = DATASET_IMAGES[r.report.in];
          return of(r.report.diagnostics[r.report.in], height * width * channels);
        });
        const n = Math.max(0, ...mine.map((v) => v.length));
        return Array.from({ length: n }, (_, k) => meanStd(mine.map((v) => v[k])).mean);
      };
      const [elbo, informative] = [valuesOf("elbo"), valuesOf("informative")];
      const n = Math.max(
        elbo.length,
        informative.length,
        rows.elbo?.length ?? 0,
        rows.informative?.length ?? 0,
      );
      const cell = (xs: number[] | undefined, i: number) => xs?.[i] === undefined ? "–" : digits(xs[i]);
      return {
        title,
        columns: [label, "ELBO (ours)", "ELBO (paper)", "informative (ours)", "informative (paper)"],
        rows: Array.from({ length: n }, (_, i) => [
          String(label === "layer" ? i + 1 : i),
          cell(elbo, i),
          cell(rows.elbo, i),
          cell(informative, i),
          cell(rows.informative, i),
        ]),
      };
    },
  };
}

const sci = (
  v: number,
) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(2) : v.toFixed(2));

/**
 * An experiment of one loss over seeds, trained on `dataset`: every score against its paper OOD set
 * (MNIST, or SVHN for CIFAR-10) beside the paper's table `table`.
 */
function scoresExperiment(
  name: string,
  loss: RunSpec["loss"],
  table: string,
  about: string,
  title: string,
  dataset: DatasetName = "fashion-mnist",
): Experiment {
  const ood = pairedOodSet(dataset);
  return {
    name,
    about,
    seeds: 1,
    runs: (n) => seedsOf(loss, n),
    ood: [ood],
    dataset,
    table: (runs, paper) => scoresTable(ofLoss(runs, loss), paper, table, ood, title),
  };
}

/** Table 6's rows: the remedies for posterior collapse, each a (variant, loss), with its paper name. */
const REMEDIES: { variant: Variant; loss: RunSpec["loss"]; name: string; paper: string }[] = [
  { variant: "hvae", loss: "elbo", name: "vanilla HVAE (ELBO)", paper: "vanilla" },
  { variant: "warmup", loss: "elbo", name: "KL warm-up (20% of the epochs)", paper: "warmup" },
  {
    variant: "oversmooth",
    loss: "elbo",
    name: "OverSmooth (Gaussian, learned sigma_x)",
    paper: "oversmooth",
  },
  { variant: "lvae", loss: "elbo", name: "LVAE (top-down inference)", paper: "lvae" },
  { variant: "biva", loss: "elbo", name: "BIVA (bidirectional inference)", paper: "biva" },
  { variant: "hvae", loss: "informative", name: "informative loss (ours)", paper: "informative" },
];

/**
 * An experiment of the remedies for posterior collapse (`remedies`: variant and loss per row), trained
 * on `dataset`, against its paper OOD set: L_x, LLR>L-1 and LLR^ada beside the paper's table `table`
 * (Tables 6 and 7).
 */
function remediesExperiment(
  name: string,
  about: string,
  table: string,
  dataset: DatasetName,
  remedies: typeof REMEDIES,
  title: string,
  note: string,
): Experiment {
  const ood = pairedOodSet(dataset);
  return {
    name,
    about,
    seeds: 1,
    runs: (n) =>
      remedies.flatMap(({ variant, loss }) =>
        Array.from({ length: n }, (_, i) => ({ loss, seed: i + 1, variant }))
      ),
    ood: [ood],
    dataset,
    table: (runs, paper) => {
      const rows = (paper.tables[table]?.rows ?? {}) as Record<
        string,
        Record<string, Record<Metric, number>>
      >;
      const L = Math.max(1, ...runs.map((r) => r.report.diagnostics[r.report.in]?.kl.length ?? 1));
      const scores: [string, string, string][] = [
        ["elbo", "L_x", "elbo"],
        [`llr>${L - 1}`, `LLR>${L - 1}`, "llr>L-1"],
        ["llr_ada", "LLR^ada", "llr_ada"],
      ];
      return {
        title,
        columns: ["model", ...scores.map(([, label]) => label)],
        rows: remedies.map(({ variant, loss, name, paper: key }) => [
          name,
          ...scores.map(([score, , paperScore]) => {
            const mine = runs.filter((r) => (r.variant ?? "hvae") === variant && r.loss === loss)
              .map((r) => metricOf(r, ood, score, "auroc")).filter((v): v is number => v !== undefined);
            return `${pctCell(mine)} / ${paperCell(rows[key]?.[paperScore]?.auroc)}`;
          }),
        ]),
        note,
      };
    },
  };
}

/**
 * The OOD-set columns of a Table 3: the sets our runs were scored on, then the paper's that are not
 * available here (columns of its figures only).
 */
function setColumns(runs: RunOutcome[], paperRows: Record<string, Record<string, unknown>>): string[] {
  return [
    ...new Set([
      ...runs.flatMap((r) => r.report.results.map((x) => x.ood)),
      ...Object.values(paperRows).flatMap((r) => Object.keys(r)),
    ]),
  ];
}

/** Table 3's CIFAR-10 rows: the model, its loss and variant, and its key in the paper's table. */
const CIFAR_MODELS: { variant: Variant; loss: RunSpec["loss"]; name: string; paper: string }[] = [
  { variant: "hvae", loss: "elbo", name: "HVAE (ELBO)", paper: "hvae" },
  { variant: "lvae", loss: "elbo", name: "LVAE (ELBO)", paper: "lvae" },
  { variant: "biva", loss: "elbo", name: "BIVA (ELBO)", paper: "biva" },
  { variant: "hvae", loss: "informative", name: "ours (informative)", paper: "informative" },
];

/** Every experiment, by name. */
export const EXPERIMENTS: Record<string, Experiment> = {
  table2: scoresExperiment(
    "table2",
    "informative",
    "2",
    "informative loss, every score vs MNIST (paper Tables 2, 10)",
    "Fashion-MNIST (in) vs MNIST (OOD), informative loss",
  ),
  table12: scoresExperiment(
    "table12",
    "elbo",
    "12",
    "ELBO (vanilla HVAE), every score vs MNIST (paper Table 12, a 5-layer model there)",
    "Fashion-MNIST (in) vs MNIST (OOD), ELBO (vanilla HVAE)",
  ),
  table3: {
    name: "table3",
    about: "both losses, LLR^ada vs every OOD set available here (paper Table 3)",
    seeds: 1,
    runs: (n) => [...seedsOf("elbo", n), ...seedsOf("informative", n)],
    ood: ["all"],
    ensemble: "elbo",
    table: (runs, paper, waic) => {
      const rows = (paper.tables["3"]?.rows ?? {}) as Record<string, Record<string, Record<Metric, number>>>;
      const others = (paper.tables["1"]?.rows ?? {}) as Record<
        string,
        Record<string, Record<Metric, number>>
      >;
      const sets = setColumns(runs, rows);
      return {
        title: "LLR^ada by OOD set (AUROC %, ours / paper), Fashion-MNIST (in)",
        columns: ["model", ...sets],
        rows: (["elbo", "informative"] as const).map((loss) => [
          loss === "elbo" ? "HVAE (ELBO)" : "ours (informative)",
          ...sets.map((set) =>
            `${
              pctCell(
                ofLoss(runs, loss).map((r) => metricOf(r, set, "llr_ada", "auroc")).filter((v): v is number =>
                  v !== undefined
                ),
              )
            } / ${paperCell(rows[loss]?.[set]?.auroc)}`
          ),
        ]).concat(
          waic
            ? [[
              `WAIC (${waic.runs.length} ELBO runs)`,
              ...sets.map((set) => {
                const r = waic.results.find((x) => x.ood === set && x.score === "waic");
                return `${r ? pctCell([r.auroc]) : "–"} / ${paperCell(others.waic?.[set]?.auroc)}`;
              }),
            ]]
            : [],
        ),
        note: "AUPRC and FPR80 of every cell are in results.json and each run's ood.json" +
          (waic
            ? `; WAIC: the ELBO runs of the seeds as one ensemble (Choi et al. 2018; the paper's 76.6 is WAIC(5VAE), Table 1), waic.json`
            : ""),
      };
    },
  },
  table5: {
    name: "table5",
    about: "informative loss over seeds (5 by default), LLR^ada, mean ± std (paper Table 5)",
    seeds: 5,
    runs: (n) => seedsOf("informative", n),
    ood: ["all"],
    table: (runs, paper) => {
      const rows = (paper.tables["5"]?.rows ?? {}) as Record<string, Record<Metric, [number, number]>>;
      const sets = [
        ...new Set([...runs.flatMap((r) => r.report.results.map((x) => x.ood)), ...Object.keys(rows)]),
      ];
      return {
        title: `LLR^ada over ${runs.length} seed(s), informative loss, Fashion-MNIST (in)`,
        columns: ["OOD set", ...METRICS.flatMap((m) => [`${m} % (ours)`, `${m} % (paper)`])],
        rows: sets.map((set) => [
          set,
          ...METRICS.flatMap((m) => [
            pctCell(
              runs.map((r) => metricOf(r, set, "llr_ada", m)).filter((v): v is number => v !== undefined),
            ),
            paperCell(rows[set]?.[m]),
          ]),
        ]),
      };
    },
  },
  table6: remediesExperiment(
    "table6",
    "vanilla, warm-up, OverSmooth, LVAE, BIVA, informative: L_x, LLR>L-1, LLR^ada vs MNIST (paper Tables 6, 7)",
    "6",
    "fashion-mnist",
    REMEDIES,
    "Remedies for posterior collapse, Fashion-MNIST (in) vs MNIST (OOD), AUROC % (ours / paper)",
    "The paper's Table 6 uses a 5-layer HVAE trained for 1000 epochs (warm-up over 200); its LLR>L-1 " +
      "is LLR>4 there. The LVAE is not in the paper's Table 6 (it is in its Tables 1 and 4).",
  ),
  table14: layersExperiment(
    "table14",
    "KL per layer on the Fashion-MNIST test set, both losses (paper Table 14, 5 layers there)",
    "14",
    "KL divergence per layer (nats), Fashion-MNIST test",
    "layer",
    (d) => d.kl,
    sci,
  ),
  "bits-per-dim": layersExperiment(
    "bits-per-dim",
    "bits per dimension of log p(x | z>k) per k, both losses (paper Table 15)",
    "15",
    "bits per dimension of -log p(x | z>k), Fashion-MNIST test",
    "k",
    (d, pixels) => d.reconstructionNll.map((v) => v / (pixels * Math.LN2)),
    (v) => v.toFixed(3),
  ),
  "cifar-table2": scoresExperiment(
    "cifar-table2",
    "informative",
    "2c",
    "CIFAR-10 (in): informative loss, every score vs SVHN (paper Table 2, right)",
    "CIFAR-10 (in) vs SVHN (OOD), informative loss",
    "cifar10",
  ),
  "cifar-table7": remediesExperiment(
    "cifar-table7",
    "CIFAR-10 (in): vanilla, warm-up, OverSmooth, BIVA, informative: L_x, LLR>L-1, LLR^ada vs SVHN (paper Table 7)",
    "7",
    "cifar10",
    REMEDIES.filter((r) => r.variant !== "lvae"),
    "Remedies for posterior collapse, CIFAR-10 (in) vs SVHN (OOD), AUROC % (ours / paper)",
    "The paper's Table 7 uses a 3-layer HVAE trained for 1000 epochs (warm-up over 200); its LLR>L-1 is LLR>2.",
  ),
  "cifar-table3": {
    name: "cifar-table3",
    about:
      "CIFAR-10 (in): HVAE, LVAE, BIVA, informative, LLR^ada vs every colour OOD set here (paper Table 3, right)",
    seeds: 1,
    runs: (n) =>
      CIFAR_MODELS.flatMap(({ variant, loss }) =>
        Array.from({ length: n }, (_, i) => ({ loss, seed: i + 1, variant }))
      ),
    ood: ["all"],
    dataset: "cifar10",
    table: (runs, paper) => {
      const rows = (paper.tables["3c"]?.rows ?? {}) as Record<string, Record<string, Record<Metric, number>>>;
      const sets = setColumns(runs, rows);
      return {
        title: "LLR^ada by OOD set (AUROC %, ours / paper), CIFAR-10 (in)",
        columns: ["model", ...sets],
        rows: CIFAR_MODELS.map(({ variant, loss, name, paper: key }) => [
          name,
          ...sets.map((set) => {
            const mine = runs.filter((r) => (r.variant ?? "hvae") === variant && r.loss === loss)
              .map((r) => metricOf(r, set, "llr_ada", "auroc")).filter((v): v is number => v !== undefined);
            return `${pctCell(mine)} / ${paperCell(rows[key]?.[set]?.auroc)}`;
          }),
        ]),
        note: "CelebA, Places365, Flower102 and LFWPeople (the paper's columns) have no loader here: their " +
          "cells are the paper's alone. SVHN's paper figure is Table 2's; AUPRC and FPR80 are in results.json.",
      };
    },
  },
};

/** A table as Markdown. */
export function markdownTable(t: ResultTable): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [
    `**${t.title}**`,
    "",
    line(t.columns),
    line(t.columns.map(() => "---")),
    ...t.rows.map(line),
    ...(t.note ? ["", t.note] : []),
  ].join("\n");
}
