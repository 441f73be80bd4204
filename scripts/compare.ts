/**
 * `deno task bench:compare`: one training step of a preset timed side by side, in one run on one
 * machine, by this engine, by jax-js on the same WebGPU adapter and by PyTorch on the same CPU (and
 * its GPU when there is one), printed as ratios: machines of the same kind differ by 2-6x, so an
 * absolute time is not a result; the ratio measured in one run is.
 *
 * Before timing, it checks that the PyTorch model computes our function: a model of the preset (a
 * fresh one, or `--run DIR`) goes to a run directory, our per-image reconstruction terms ll_k and
 * KL_l on a fixed binarised batch (posterior and prior means in place of samples) to a safetensors
 * file, and bench/torch/hvae.py rebuilds the model from config.json and model.safetensors and
 * compares. Then, per loss: `deno task bench --filter train-step-<preset>-<loss>` in its own process;
 * bench/jaxjs/jaxjs_hvae.ts (the `small` preset only; it fetches npm:@jax-js/jax on first use);
 * bench/torch/hvae.py --time with 1 thread and all threads (and CUDA).
 *
 * Needs: Python 3 with PyTorch and NumPy for the PyTorch columns (Debian: python3-torch
 * python3-numpy); whatever is missing is skipped with the reason, never faked.
 */

import { noGrad } from "../autograd/tape.ts";
import { adapterInfo } from "../kernels/engine.ts";
import { dispose, keep, readAll, scope, type Tensor } from "../kernels/tensor.ts";
import { saveModel } from "../store/checkpoint.ts";
import { encodeSafetensors } from "../data/safetensors.ts";
import { writeFileAtomic } from "../data/files.ts";
import { lscpu } from "../store/tuning_cache.ts";
import { loadRun, type RunConfig } from "../store/load_run.ts";
import {
  encode,
  type HvaeConfig,
  type HvaeParams,
  initHvae,
  initHvaeFromData,
  klElementwise,
  perImage,
  posteriorTopDown,
  priorTopDown,
} from "../models/hvae.ts";
import { likelihoodOf, reconstruction, runTag, withLikelihood } from "../models/likelihood.ts";
import { imageSetFromPixels, inputBatch } from "../data/loader.ts";
import { TEST_BINARIZATION, weightNormInitKeys } from "../models/streams.ts";
import { presetConfig } from "../models/presets.ts";
import { createRng } from "../models/rng.ts";
import { initGpuOrExit, intFlag, parseFlags, usageError } from "./cli.ts";

const USAGE =
  `usage: deno task bench:compare [--preset small] [--likelihood NAME] [--loss elbo,informative] [--runs N]
                               [--rounds N] [--run DIR] [--skip torch,jaxjs] [--python PATH]
                               [--torch-devices LIST] [--json FILE]
  --preset NAME   the model to time (small; havtorn3 works for ours and PyTorch, jax-js has small only)
  --likelihood NAME  the preset's (default: Bernoulli; -oversmooth: Gaussian) or logistic-mixture (the
                  8-bit model: small only for our step; jax-js has the Bernoulli only); models/likelihood.ts
  --loss LIST     losses to time, comma-separated (elbo,informative)
  --runs N        timed steps per engine (3), after one warm-up step
  --rounds N      repeat everything N times (1): the spread of the ratios across rounds is the noise
  --run DIR       check PyTorch against this trained run (default: a fresh model of the preset, seed 1)
  --skip LIST     engines to leave out: torch, jaxjs
  --python PATH   the Python with PyTorch (default: the first of python3, /usr/bin/python3 that has it)
  --torch-devices cpu and/or cuda for PyTorch's steps (cpu,cuda; cuda only where there is one)
  --json FILE     also write every record as JSON lines to FILE
  --check-only    the PyTorch check only, no timing (exit status 1 on a mismatch)`;

const args = parseFlags("bench:compare", USAGE, {
  preset: { type: "string", default: "small" },
  likelihood: { type: "string" },
  loss: { type: "string", default: "elbo,informative" },
  runs: { type: "string", default: "3" },
  rounds: { type: "string", default: "1" },
  run: { type: "string" },
  skip: { type: "string", default: "" },
  python: { type: "string" },
  "torch-devices": { type: "string", default: "cpu,cuda" },
  json: { type: "string" },
  "check-only": { type: "boolean", default: false },
});
const runs = intFlag("bench:compare", USAGE, "runs", args.runs, 1);
/** The model timed (and checked against PyTorch unless --run names a trained one). */
let modelConfig: HvaeConfig;
try {
  const preset = presetConfig(args.preset);
  modelConfig = args.likelihood === undefined ? preset : withLikelihood(preset, args.likelihood);
} catch (error) {
  usageError("bench:compare", USAGE, (error as Error).message);
}
const rounds = intFlag("bench:compare", USAGE, "rounds", args.rounds, 1);
const losses = args.loss.split(",");
for (const loss of losses) {
  if (loss !== "elbo" && loss !== "informative") {
    usageError("bench:compare", USAGE, `--loss takes elbo and/or informative, got '${loss}'`);
  }
}
const skip = new Set(args.skip.split(",").filter((s) => s));
for (const s of skip) {
  if (s !== "torch" && s !== "jaxjs") {
    usageError("bench:compare", USAGE, `--skip takes torch and/or jaxjs, got '${s}'`);
  }
}
const root = new URL("..", import.meta.url).pathname;
const records: Record<string, unknown>[] = [];
const say = (line: string) => console.log(line);

// ---------------------------------------------------------------- the machine

/** The CPU as lscpu names it, with the vector extensions that change llvmpipe's code. */
async function cpuName(): Promise<string> {
  const info = await lscpu();
  if (!info) return `${Deno.build.arch} (lscpu not found)`;
  const field = (name: string) => info(name) ?? "?";
  const flags = field("Flags").split(" ");
  const vector = flags.includes("avx512f")
    ? "AVX-512"
    : flags.includes("avx2")
    ? "AVX2, no AVX-512"
    : "no AVX2";
  return `${field("Model name")} (family ${field("CPU family")} model ${field("Model")}, ${vector}), ${
    field("CPU\\(s\\)")
  } CPUs`;
}

// ---------------------------------------------------------------- the reference for PyTorch's check

/**
 * Per-image ll_k (k = 0..L-1) and KL_l of `params` on x with every latent at its mean: posterior
 * means going up, prior means when z_k .. z_1 are regenerated (the informative loss's passes).
 */
function meanPasses(params: HvaeParams, cfg: HvaeConfig, x: Tensor): { ll: Tensor[]; kl: Tensor[] } {
  const L = cfg.layers.length;
  const noKey = () => ({ seed: 0, stream: 0, offset: 0 });
  const q = encode(params, cfg, x, noKey, L);
  const td = posteriorTopDown(params, cfg, q);
  const stage0 = td.stages[0];
  const ll = [reconstruction(params, cfg, stage0[stage0.length - 1], x).ll];
  for (let k = 1; k < L; k++) {
    const d = priorTopDown(params, cfg, td, k, (g) => g.mu);
    ll.push(reconstruction(params, cfg, d, x).ll);
  }
  const kl = q.map((ql, l) => perImage(klElementwise(cfg, ql, td.priors[l])));
  return { ll, kl };
}

/**
 * 32 images as the model's likelihood reads them (binarised, dequantised or 8-bit levels), from
 * random bytes of generator `seed`: 35% of the pixels lit at a random level.
 */
function referenceInput(cfg: HvaeConfig, seed: number): { x: Tensor; bytes: Tensor } {
  const B = 32, H = cfg.image.height, W = cfg.image.width;
  const rng = createRng(seed);
  const bytes = Uint8Array.from(
    { length: B * H * W },
    () => rng.uniform() < 0.35 ? 1 + Math.floor(rng.uniform() * 255) : 0,
  );
  const set = imageSetFromPixels("reference", bytes, H, W);
  const x = inputBatch(
    set,
    Uint32Array.from({ length: B }, (_, i) => i),
    TEST_BINARIZATION,
    likelihoodOf(cfg).input,
  );
  return { x, bytes: set.bytes };
}

/** Writes the model (when fresh) and the reference file; returns the run directory and the file. */
async function writeReference(work: string): Promise<{ run: string; file: string }> {
  let run: string, cfg: HvaeConfig, params: HvaeParams;
  if (args.run) {
    const loaded = await loadRun(args.run);
    run = args.run;
    cfg = loaded.config.model;
    params = loaded.params;
  } else {
    run = `${work}/model`;
    cfg = modelConfig;
    params = keep(initHvae(cfg, createRng(1)));
    // A fresh weight-normalised model (havtorn3) has astronomic KLs (~1e7 nats) until the
    // data-dependent initialisation sets its gains, and a relative tolerance on them would hide any
    // real difference; so it is checked as training starts it: after that initialisation, on other
    // images than the reference batch's.
    if (cfg.weightNorm) {
      const init = referenceInput(cfg, 11);
      scope(() => initHvaeFromData(params, cfg, init.x, weightNormInitKeys(1)));
      dispose([init.x, init.bytes]);
    }
    await Deno.mkdir(run, { recursive: true });
    const config: Partial<RunConfig> = { model: cfg, createdAt: new Date().toISOString() };
    await Deno.writeTextFile(`${run}/config.json`, JSON.stringify(config, null, 2));
    await saveModel(`${run}/model.safetensors`, params);
  }
  const B = 32, H = cfg.image.height, W = cfg.image.width;
  const { x, bytes: setBytes } = referenceInput(cfg, 7);
  const [pixels] = await readAll([x]);
  const out = noGrad(() => scope(() => meanPasses(params, cfg, x)));
  const values = await readAll([...out.ll, ...out.kl]);
  const L = cfg.layers.length;
  const stack = (parts: (Float32Array | Uint32Array)[]) => {
    const flat = new Float32Array(parts.length * B);
    parts.forEach((p, i) => flat.set(p as Float32Array, i * B));
    return flat;
  };
  const file = `${work}/reference.safetensors`;
  await writeFileAtomic(
    file,
    encodeSafetensors({
      x: { dtype: "F32", shape: [B, H, W, 1], data: pixels as Float32Array },
      ll: { dtype: "F32", shape: [L, B], data: stack(values.slice(0, L)) },
      kl: { dtype: "F32", shape: [L, B], data: stack(values.slice(L)) },
    }),
  );
  dispose([x, setBytes, out.ll, out.kl, params]);
  return { run, file };
}

// ---------------------------------------------------------------- the engines

/** Runs a command; its stdout lines that parse as JSON objects, or the reason it failed. */
async function jsonLines(
  command: string,
  commandArgs: string[],
  cwd = root,
): Promise<{ records: Record<string, unknown>[]; error?: string }> {
  let output;
  try {
    output = await new Deno.Command(command, {
      args: commandArgs,
      cwd,
      stdout: "piped",
      stderr: "piped",
      env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    }).output();
  } catch (error) {
    return { records: [], error: `${command}: ${(error as Error).message}` };
  }
  const text = new TextDecoder().decode(output.stdout);
  const found = text.split("\n").flatMap((line) => {
    const at = line.indexOf("{");
    if (at < 0) return [];
    try {
      return [JSON.parse(line.slice(at))];
    } catch {
      return [];
    }
  });
  const stderr = new TextDecoder().decode(output.stderr).trim().split("\n").slice(-3).join(" | ");
  return { records: found, error: output.success ? undefined : `exit ${output.code}: ${stderr}` };
}

/** The first Python that imports torch, or null with the reason. */
async function findPython(): Promise<{ python: string | null; why: string }> {
  const candidates = args.python ? [args.python] : ["python3", "/usr/bin/python3"];
  for (const python of candidates) {
    const probe = await jsonLines(python, [
      "-c",
      "import json, torch, numpy; print(json.dumps({'torch': torch.__version__}))",
    ]);
    if (!probe.error && probe.records.length) return { python, why: "" };
  }
  return {
    python: null,
    why: `no Python with PyTorch and NumPy among ${
      candidates.join(", ")
    } (Debian: apt-get install python3-torch python3-numpy)`,
  };
}

// ---------------------------------------------------------------- run

await initGpuOrExit("bench:compare");
const machine = { cpu: await cpuName(), adapter: adapterInfo().description, deno: Deno.version.deno };
say(`machine: ${machine.cpu}`);
say(`adapter: ${machine.adapter}; Deno ${machine.deno}`);
records.push({ name: "machine", ...machine });

const work = await Deno.makeTempDir({ prefix: "hvae-compare-" });
const { python, why: noPython } = skip.has("torch")
  ? { python: null, why: "--skip torch" }
  : await findPython();
let run = "";
/** Whether the PyTorch check ran and agreed (a mismatch exits above). */
let checked = false;
if (python) {
  const reference = await writeReference(work);
  run = reference.run;
  const check = await jsonLines(python, ["bench/torch/hvae.py", "--run", run, "--check", reference.file]);
  const result = check.records.find((r) => r.name === "torch-check");
  if (!result) {
    say(`PyTorch check: could not run (${check.error})`);
  } else {
    records.push(result);
    const model = args.run ??
      `fresh ${args.preset}, seed 1${
        modelConfig.weightNorm ? ", after its data-dependent initialisation" : ""
      }`;
    const n = (key: string) => Number(result[key]).toExponential(2);
    say(
      `PyTorch check (${model}; ${result.images} images, means for every z): compared per image ` +
        `log p(x | z) of the ${result.layers} reconstructions (ll_k) and the ${result.layers} KLs, ` +
        `|diff| <= ${result.atol} + ${result.rtol} |ours|: ${result.ok ? "same function" : "MISMATCH"}`,
    );
    say(
      `  ll: values ${n("min_ll")} to ${n("max_ll")} nats, max |diff| ${n("max_abs_diff_ll")}, ` +
        `max relative ${n("max_rel_diff_ll")}; KL: values ${n("min_kl")} to ${n("max_kl")} nats, ` +
        `max |diff| ${n("max_abs_diff_kl")}, max relative ${n("max_rel_diff_kl")}`,
    );
    if (!result.ok) {
      console.error(
        "bench:compare: PyTorch does not compute our function; its times would not be comparable",
      );
      Deno.exit(1);
    }
    checked = true;
  }
} else {
  say(`PyTorch: skipped (${noPython})`);
}
if (args["check-only"]) Deno.exit(checked ? 0 : 1);

interface Row {
  loss: string;
  round: number;
  ours?: number;
  jaxjs?: number;
  torch1?: number;
  torchAll?: number;
  torchAllThreads?: number;
  cuda?: number;
  notes: string[];
}
/** One round for one loss: our step, jax-js's, PyTorch's, one after another. */
async function measureRow(loss: string, round: number): Promise<Row> {
  const row: Row = { loss, round, notes: [] };
  const name = `train-step-${args.preset}${runTag(modelConfig)}-${loss}`;
  // --allow-write: a preset without cached kernel choices is tuned on first use and cached.
  const ours = await jsonLines(Deno.execPath(), [
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-run=lscpu",
    "scripts/bench.ts",
    "--filter",
    name,
    "--runs",
    String(runs),
  ]);
  const mine = ours.records.find((r) => r.name === name);
  if (mine) {
    row.ours = Number(mine.ms);
    records.push(mine);
    row.notes.push(`ours with ${mine.kernels} kernels ('deno task tune' caches this adapter's choices)`);
  } else row.notes.push(`ours failed: ${ours.error}`);

  if (skip.has("jaxjs")) row.notes.push("jax-js skipped (--skip)");
  else if (args.preset !== "small") row.notes.push("jax-js has the small preset only");
  else if (modelConfig.likelihood === "logistic-mixture") {
    row.notes.push("jax-js has the Bernoulli model only");
  } else {
    const peer = await jsonLines(
      Deno.execPath(),
      [
        "run",
        "-A",
        "jaxjs_hvae.ts",
        "--batch",
        "128",
        "--loss",
        loss,
        "--steps",
        String(runs),
        "--warmup",
        "1",
      ],
      `${root}bench/jaxjs`,
    );
    const summary = peer.records.find((r) => r.peer);
    if (summary) {
      row.jaxjs = Number(summary.median_ms);
      records.push({ name: `jaxjs-${name}`, ...summary });
    } else row.notes.push(`jax-js failed: ${peer.error}`);
  }

  if (python && run) {
    const timed = await jsonLines(python, [
      "bench/torch/hvae.py",
      "--run",
      run,
      "--time",
      "--loss",
      loss,
      "--batch",
      "128",
      "--steps",
      String(runs),
      "--devices",
      args["torch-devices"],
    ]);
    for (const r of timed.records) {
      records.push(r);
      if (r.device === "cuda") row.cuda = Number(r.ms);
      else if (r.threads === 1) row.torch1 = Number(r.ms);
      else {
        row.torchAll = Number(r.ms);
        row.torchAllThreads = Number(r.threads);
      }
    }
    if (timed.error) row.notes.push(`PyTorch failed: ${timed.error}`);
  }
  return row;
}

// Rounds of all engines, so that the machine's drift (the same step ran 1.6x slower an hour later on
// an EPYC of ours, docs/design.md section 8.1) reaches every engine alike; each round gives its own ratios.
const rows: Row[] = [];
for (let round = 1; round <= rounds; round++) {
  for (const loss of losses) rows.push(await measureRow(loss, round));
}

// ---------------------------------------------------------------- the table

const ms = (v?: number) =>
  v === undefined ? "-" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`;
const ratio = (a?: number, b?: number) => a === undefined || b === undefined ? "-" : `${(a / b).toFixed(2)}x`;
say("");
say(
  `one training step, preset ${args.preset}, batch 128 (median of ${runs} after a warm-up; ${rounds} round${
    rounds > 1 ? "s" : ""
  })`,
);
const header = [
  "loss",
  "round",
  "ours",
  "jax-js",
  "torch 1 thr",
  "torch all thr",
  "cuda",
  "jax-js / ours",
  "ours / torch 1",
];
const table = rows.map((r) => [
  r.loss,
  String(r.round),
  ms(r.ours),
  ms(r.jaxjs),
  ms(r.torch1),
  r.torchAll === undefined ? "-" : `${ms(r.torchAll)} (${r.torchAllThreads})`,
  ms(r.cuda),
  ratio(r.jaxjs, r.ours),
  ratio(r.ours, r.torch1),
]);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length
    ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2)
    : NaN;
};
const summaries = losses.map((loss) => {
  const mine = rows.filter((r) => r.loss === loss);
  const ratios = (f: (r: Row) => number | undefined) =>
    mine.map(f).filter((v): v is number => v !== undefined && Number.isFinite(v));
  const vsJax = ratios((r) => r.ours && r.jaxjs ? r.jaxjs / r.ours : undefined);
  const vsTorch = ratios((r) => r.ours && r.torch1 ? r.ours / r.torch1 : undefined);
  return { loss, vsJax, vsTorch };
});
if (rounds > 1) {
  const range = (xs: number[]) =>
    xs.length
      ? `${median(xs).toFixed(2)}x (${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)})`
      : "-";
  for (const s of summaries) {
    table.push([s.loss, "median", "", "", "", "", "", range(s.vsJax), range(s.vsTorch)]);
  }
}
const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
for (const line of [header, ...table]) say(line.map((c, i) => c.padEnd(widths[i])).join("  "));
const notes = new Set(rows.flatMap((r) => r.notes.map((n) => `${r.loss}: ${n}`)));
for (const note of notes) say(note);
say("jax-js / ours > 1: we are faster than jax-js on this adapter; ours / torch < 1: faster than PyTorch.");
for (const s of summaries) {
  records.push({
    name: `compare-${args.preset}-${s.loss}`,
    rounds,
    jaxjs_over_ours: s.vsJax,
    ours_over_torch_1thread: s.vsTorch,
    median_jaxjs_over_ours: median(s.vsJax),
    median_ours_over_torch_1thread: median(s.vsTorch),
  });
}
if (args.json) await Deno.writeTextFile(args.json, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
await Deno.remove(work, { recursive: true });
Deno.exit(0);
