/**
 * `deno task reproduce NAME`: one of the paper's experiments end to end (eval/experiments.ts): the
 * trainings it needs (each a `deno task train` of its own, skipped when already done, resumed when
 * cut short), their evaluations (skipped when ood.json already holds them), then its table, our
 * figures beside the paper's, written as results.md and results.json with the preset, epochs, seeds,
 * commit and adapter that made them. Sized for the machine by default: `small` for 3 epochs on a
 * software adapter, the paper's backbone for its 1000 epochs on a GPU.
 */

import { adapterInfo } from "../kernels/engine.ts";
import { holdsEvaluation, type OodReport } from "../eval/evaluate.ts";
import { readEvaluation, waicEvaluation } from "../eval/ensemble.ts";
import {
  EXPERIMENTS,
  markdownTable,
  type PaperValues,
  runDirName,
  runLabel,
  type RunOutcome,
  runPreset,
  type RunSpec,
} from "../eval/experiments.ts";
import { presetConfig, PRESETS } from "../models/presets.ts";
import { type DatasetName, loadSplit } from "../data/datasets.ts";
import { loadColourSplit } from "../data/colour_datasets.ts";
import { datasetMismatch } from "../store/training_run.ts";
import {
  DEFAULT_COMPONENTS,
  DEFAULT_LIKELIHOOD,
  LIKELIHOOD_NAMES,
  LIKELIHOODS,
  runTag,
  withLikelihood,
} from "../models/likelihood.ts";
import { LIKELIHOOD_FLAGS, likelihoodChoice } from "./likelihood_flags.ts";
import { writeFilesAtomic } from "../data/files.ts";
import { loadRun } from "../store/load_run.ts";
import { completedEpochs } from "../store/run_lifecycle.ts";
import { dispose } from "../kernels/tensor.ts";
import { curvesFigure, klFigure, latentFigure, rocFigure } from "../eval/figures.ts";
import { fileKey, loadTestSet, testSetOnGpu } from "../eval/evaluation_sets.ts";
import {
  initGpuOrExit,
  intFlag,
  parseCommandLine,
  pathFlag,
  runCommand,
  taskPermissions,
  usageError,
} from "./cli.ts";

const USAGE = `usage: deno task reproduce NAME [flags]
  NAME                   ${
  Object.values(EXPERIMENTS).map((e) => `${e.name}: ${e.about}`).join("\n                         ")
}
  --preset NAME          model preset (default: small on a software adapter, havtorn3 on a GPU; for
                         the cifar- experiments small-cifar and cifar3)
  --likelihood NAME      p(x | z) of every run but OverSmooth's: ${LIKELIHOOD_NAMES.join(", ")} (default
                         ${DEFAULT_LIKELIHOOD}; models/likelihood.ts)
  --components K         the logistic mixture's components (default ${DEFAULT_COMPONENTS})
  --epochs N             epochs per run (default: 3 on a software adapter, 1000 on a GPU)
  --seeds K              seeds per loss (default: the experiment's, 5 for table5, else 1)
  --train-limit N        train on the first N images only (default: all: 60000, 50000 for CIFAR-10)
  --eval-limit N         evaluate on the first N images of each test set (default: all)
  --eval-batch-size N    images per scoring batch (default 250)
  --eval-every N         record AUROC curves every N epochs in each run (curves.svg; default 0: off)
  --data-dir DIR         read the dataset files from here (and only here)
  --out DIR              the experiment's directory (default runs/reproduce-<NAME>-<preset>[-8bit])
  --help                 this text
Each run is its own 'deno task train' in <out>/<preset>-<loss>-seed<seed>: an interrupted experiment
continues where it stopped when started again with the same flags.`;

const { values: flags, positionals } = parseCommandLine("reproduce", USAGE, {
  preset: { type: "string" },
  ...LIKELIHOOD_FLAGS,
  epochs: { type: "string" },
  seeds: { type: "string" },
  "train-limit": { type: "string" },
  "eval-limit": { type: "string" },
  "eval-batch-size": { type: "string", default: "250" },
  "eval-every": { type: "string" },
  "data-dir": { type: "string" },
  out: { type: "string" },
});
const name = positionals[0];
if (positionals.length !== 1 || !EXPERIMENTS[name]) {
  usageError(
    "reproduce",
    USAGE,
    `name one experiment (${Object.keys(EXPERIMENTS).join(", ")}), got '${positionals.join(" ")}'`,
  );
}
const experiment = EXPERIMENTS[name];
const int = (flag: string, min: number) =>
  flags[flag as keyof typeof flags] === undefined
    ? undefined
    : intFlag("reproduce", USAGE, flag, flags[flag as keyof typeof flags], min);
const seeds = int("seeds", 1) ?? experiment.seeds;
const chosen = likelihoodChoice("reproduce", USAGE, flags);
const likelihood = chosen.likelihood ?? DEFAULT_LIKELIHOOD;
const components = chosen.components;
/** The train flags of the likelihood, for every run but OverSmooth's (its preset is the Gaussian's). */
const likelihoodFlags = (spec: RunSpec) =>
  spec.variant === "oversmooth"
    ? []
    : ["--likelihood", likelihood, ...(components !== undefined ? ["--components", String(components)] : [])];
const trainLimit = int("train-limit", 1), evalLimit = int("eval-limit", 1), evalEvery = int("eval-every", 0);
const evalBatch = intFlag("reproduce", USAGE, "eval-batch-size", flags["eval-batch-size"], 1);
const dataDir = pathFlag("reproduce", USAGE, "data-dir", flags["data-dir"]);

/** Runs `scripts/<script>.ts` as its task would, its output shown; an error names the command. */
async function runScript(script: string, args: string[]): Promise<void> {
  const path = new URL(`./${script}.ts`, import.meta.url).pathname;
  const status = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...(await taskPermissions(script)), path, ...args],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (status.code !== 0) {
    throw new Error(`'deno task ${script} ${args.join(" ")}' failed (exit status ${status.code}); see above`);
  }
}

/** The commit of the checkout this runs from (read from .git, no git needed), or "unknown". */
async function commit(): Promise<string> {
  const git = new URL("../.git/", import.meta.url);
  try {
    const head = (await Deno.readTextFile(new URL("HEAD", git))).trim();
    if (!head.startsWith("ref: ")) return head;
    const ref = head.slice(5);
    try {
      return (await Deno.readTextFile(new URL(ref, git))).trim();
    } catch {
      const packed = await Deno.readTextFile(new URL("packed-refs", git));
      return packed.split("\n").find((l) => l.endsWith(` ${ref}`))?.split(" ")[0] ?? "unknown";
    }
  } catch {
    return "unknown";
  }
}

/**
 * The experiment's figures (eval/figures.ts): KL per layer of every run (Fig. 6), the ROC of LLR^ada
 * of every run per OOD set (Fig. 3), AUROC per epoch where runs recorded curves, and the latent
 * space of the first seed of each loss (Fig. 7), on the first 1000 in-distribution test images.
 */
async function makeFigures(runs: RunOutcome[]): Promise<Record<string, string>> {
  const figures: Record<string, string> = { "kl.svg": klFigure(runs) };
  const sets = [...new Set(runs.flatMap((r) => r.report.results.map((x) => x.ood)))];
  for (const set of sets) figures[`roc-${fileKey(set)}.svg`] = await rocFigure(runs, set, "llr_ada");
  const curves = await curvesFigure(runs, ["elbo", "llr>1", "llr_ada"]);
  if (curves) figures["curves.svg"] = curves;
  // The first seed of each model and loss.
  const firsts = runs.filter((r, i) =>
    runs.findIndex((o) => o.loss === r.loss && (o.variant ?? "hvae") === (r.variant ?? "hvae")) === i
  );
  for (const first of firsts) {
    const variant = first.variant && first.variant !== "hvae" ? `${first.variant}-` : "";
    const run = await loadRun(first.dir);
    const test = await loadTestSet(run.config.training.dataset, run.config.model.image, { dataDir });
    const set = await testSetOnGpu(test, 1000, run.config.model.image);
    try {
      figures[`latents-${variant}${first.loss}-seed${first.seed}.svg`] = await latentFigure(
        run.params,
        run.config.model,
        set,
        1000,
        `Posterior means per layer, PCA, ${runLabel(first)}, ${test.display} test (Fig. 7)`,
      );
    } finally {
      dispose([set.bytes, run.params]);
    }
  }
  return figures;
}

/**
 * Why the experiment's data cannot be had (its training set, or a paper OOD set it names), in one line,
 * or null: each set is looked for as training and evaluation would, a download included.
 */
async function missingData(
  dataset: DatasetName,
  ood: readonly string[],
  dataDir?: string,
): Promise<string | null> {
  const wanted = [dataset, ...ood.filter((s) => s === "svhn")];
  for (const set of wanted) {
    try {
      if (set === "svhn") await loadColourSplit("svhn", "test", { dataDir });
      else await loadSplit(set as DatasetName, "test", { dataDir });
    } catch (error) {
      return `${set}: ${(error as Error).message.split("\n")[0]}`;
    }
  }
  return null;
}

// The commit of the code that runs: read now, not at the end (a checkout may change meanwhile).
const startCommit = await commit();

/** What one experiment's runs share: the preset, the epochs, the output folder and the data flags. */
interface ExperimentContext {
  preset: string;
  epochs: number;
  out: string;
  common: string[];
}

/**
 * One run of the experiment, trained (or resumed, or skipped when it has its epochs) and evaluated
 * (or skipped when its ood.json holds this evaluation: the same epochs, sets, images and batch size),
 * each by its own `deno task` as a user would run it.
 */
async function trainedAndEvaluated(spec: RunSpec, c: ExperimentContext): Promise<RunOutcome> {
  const { preset, epochs, out, common } = c;
  const dir = `${out}/${runDirName(preset, spec)}`;
  // KL warm-up over the first 20% of the epochs, as the paper's 200 of 1000 (Appendix F).
  const warmup = spec.variant === "warmup" ? ["--warmup-epochs", String(0.2 * epochs)] : [];
  const done = await completedEpochs(dir);
  const exists = await Deno.stat(`${dir}/config.json`).then(() => true, () => false);
  if (exists && done >= epochs) {
    console.log(`reproduce: ${dir}: trained (${done} epochs), skipped`);
  } else {
    console.log(`reproduce: ${dir}: ${exists ? `resuming after ${done} epochs` : "training"}`);
    const curves = evalEvery ? ["--eval-every", String(evalEvery), "--ood", experiment.ood.join(",")] : [];
    const data = dataDir ? ["--data-dir", dataDir] : [];
    await runScript(
      "train",
      exists ? ["--resume", dir, "--epochs", String(epochs), "--no-eval", ...data, ...curves] : [
        ...["--preset", runPreset(preset, spec), "--loss", spec.loss, "--seed", String(spec.seed)],
        ...["--epochs", String(epochs), "--out", dir, "--no-eval", ...likelihoodFlags(spec), ...warmup],
        ...common,
        ...curves,
      ],
    );
  }
  const previous: OodReport | null = await Deno.readTextFile(`${dir}/ood.json`).then(JSON.parse, () => null);
  const evaluation = {
    ood: experiment.ood,
    samples: 1,
    iw: 1,
    generate: "mean" as const,
    batchSize: evalBatch,
  };
  if (holdsEvaluation(previous, { ...evaluation, limit: evalLimit }, epochs)) {
    console.log(`reproduce: ${dir}: evaluated, skipped`);
  } else {
    await runScript("ood", [
      ...["--run", dir, "--ood", experiment.ood.join(","), "--eval-batch-size", String(evalBatch)],
      ...(evalLimit ? ["--limit", String(evalLimit)] : []),
      ...(dataDir ? ["--data-dir", dataDir] : []),
    ]);
  }
  const report: OodReport = JSON.parse(await Deno.readTextFile(`${dir}/ood.json`));
  return { ...spec, dir, epochs: report.epochs, report };
}

/** results.md: the table, then what ours and the paper's figures are (settings, seeds, data), then the runs. */
function resultsMarkdown(
  table: Parameters<typeof markdownTable>[0],
  settings: {
    preset: string;
    likelihood: typeof likelihood;
    components: number | null;
    epochs: number;
    trainLimit: number | null;
    commit: string;
    adapter: string;
    date: string;
  },
  specs: readonly RunSpec[],
  outcomes: readonly RunOutcome[],
  paperSource: string,
): string {
  const { preset, likelihood, epochs, trainLimit } = settings;
  return [
    `# ${name}: ${experiment.about}`,
    "",
    markdownTable(table),
    "",
    `Ours: preset \`${preset}\` with the ${likelihood} likelihood (${LIKELIHOODS[likelihood].summary}${
      settings.components ? `, ${settings.components} components` : ""
    })${
      specs.some((s) => s.variant === "oversmooth") ? " (OverSmooth's runs: the Gaussian)" : ""
    }, ${epochs} epoch(s)${trainLimit ? ` on the first ${trainLimit} training images` : ""}, ` +
    `seeds ${[...new Set(specs.map((s) => s.seed))].join(", ")}, ` +
    `${evalLimit ? `the first ${evalLimit}` : "all"} test images per set, commit ${
      settings.commit.slice(0, 7)
    }, ` +
    `adapter ${settings.adapter}, ${settings.date}. Where several seeds ran, a cell is mean ± standard deviation.`,
    `Paper: ${paperSource}. The paper trains for 1000 epochs; an epoch's AUROC is a point on a moving curve.`,
    "",
    "Runs:",
    ...outcomes.map((o) => `- \`${o.dir}\`: ${runLabel(o)}, ${o.epochs} epoch(s)`),
    "",
  ].join("\n");
}

await runCommand("reproduce", async () => {
  await initGpuOrExit("reproduce");
  const adapter = adapterInfo();
  const software = adapter.isFallbackAdapter || /llvmpipe|swiftshader|software/i.test(adapter.description);
  const dataset = experiment.dataset ?? "fashion-mnist";
  const colour = dataset === "cifar10";
  const preset = flags.preset ??
    (software ? (colour ? "small-cifar" : "small") : (colour ? "cifar3" : "havtorn3"));
  if (!PRESETS[preset]) usageError("reproduce", USAGE, `--preset: unknown preset '${preset}'`);
  const mismatch = datasetMismatch(presetConfig(preset), dataset);
  if (mismatch) usageError("reproduce", USAGE, `${name} trains on ${dataset}: ${mismatch}`);
  // The data first: an experiment whose datasets cannot be had stops here, in one line, before any
  // training (CIFAR-10 and SVHN come from their official files: README, "CIFAR-10 and SVHN").
  const missing = await missingData(dataset, experiment.ood, dataDir);
  if (missing) {
    console.error(`reproduce: ${name} cannot run here: ${missing}`);
    Deno.exit(1);
  }
  const epochs = int("epochs", 1) ?? (software ? 3 : 1000);
  const tag = runTag(withLikelihood(presetConfig(preset), likelihood, components));
  const out = pathFlag("reproduce", USAGE, "out", flags.out) ?? `runs/reproduce-${name}-${preset}${tag}`;
  const specs = experiment.runs(seeds);
  for (const spec of specs) {
    if (!PRESETS[runPreset(preset, spec)]) {
      usageError("reproduce", USAGE, `${name} trains '${runPreset(preset, spec)}', which is not a preset`);
    }
  }
  console.log(
    `reproduce ${name}: ${specs.length} run(s) of '${preset}' for ${epochs} epoch(s) (${
      specs.map(runLabel).join(", ")
    }) with the ${likelihood} likelihood, evaluated on ${experiment.ood.join(", ")}${
      evalLimit ? ` (first ${evalLimit} images per set)` : ""
    }; in ${out}`,
  );
  await Deno.mkdir(out, { recursive: true });
  const common = [
    ...(trainLimit ? ["--train-limit", String(trainLimit)] : []),
    ...(dataDir ? ["--data-dir", dataDir] : []),
  ];
  const outcomes: RunOutcome[] = [];
  for (const spec of specs) outcomes.push(await trainedAndEvaluated(spec, { preset, epochs, out, common }));

  const paper: PaperValues = JSON.parse(
    await Deno.readTextFile(new URL("../docs/paper_values.json", import.meta.url)),
  );
  // The ensemble: the runs of one loss (its seeds) scored together by WAIC, where there are two or more.
  const members = outcomes.filter((o) => o.loss === experiment.ensemble);
  const waic = members.length >= 2
    ? waicEvaluation(await Promise.all(members.map((o) => readEvaluation(o.dir))))
    : undefined;
  const table = experiment.table(outcomes, paper, waic);
  const settings = {
    experiment: name,
    preset,
    likelihood,
    components: likelihood === "logistic-mixture" ? components ?? DEFAULT_COMPONENTS : null,
    epochs,
    seeds,
    trainLimit: trainLimit ?? null,
    evalLimit: evalLimit ?? null,
    evalBatchSize: evalBatch,
    commit: startCommit,
    adapter: adapter.description,
    date: new Date().toISOString(),
    paper: paper.source,
  };
  const md = resultsMarkdown(table, settings, specs, outcomes, paper.source);
  const json = {
    ...settings,
    table,
    runs: outcomes.map(({ report, ...rest }) => ({
      ...rest,
      results: report.results,
      diagnostics: report.diagnostics,
    })),
  };
  const figures = await makeFigures(outcomes);
  const withFigures = md + `\nFigures: ${Object.keys(figures).map((f) => `[${f}](${f})`).join(", ")}.\n`;
  await writeFilesAtomic([
    [`${out}/results.md`, new TextEncoder().encode(withFigures)],
    [
      `${out}/results.json`,
      new TextEncoder().encode(JSON.stringify({ ...json, figures: Object.keys(figures) }, null, 2) + "\n"),
    ],
    ...(waic
      ? [[`${out}/waic.json`, new TextEncoder().encode(JSON.stringify(waic, null, 2) + "\n")] as const]
      : []),
    ...Object.entries(figures).map(([f, svg]) =>
      [`${out}/${f}`, new TextEncoder().encode(svg)] as [string, Uint8Array]
    ),
  ]);
  console.log(`\n${withFigures}`);
  console.log(`reproduce: wrote ${out}/results.md and ${out}/results.json`);
});
