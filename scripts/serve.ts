/**
 * `deno task serve [--run DIR]`: the browser page (web/) on 127.0.0.1. It bundles web/app.ts for the
 * browser with `deno bundle` (the project's own modules: no second copy of the engine), then serves
 *   /                         web/index.html
 *   /app.js                   the bundle
 *   /run/config.json          the run's configuration
 *   /run/model.safetensors    its parameters
 *   /run/calibration.json     every score of the in-distribution test images: from the run's scores.csv
 *                             (written by 'deno task ood'), else scored once here and cached in the run
 *   /run/info.json            its directory and epochs
 * The run defaults to the newest run directory under runs/.
 */

import { completedEpochs } from "../store/run_lifecycle.ts";
import { loadRun, readRunConfig, type RunConfig } from "../store/load_run.ts";
import { readRegularFile, writeFileAtomic } from "../data/files.ts";
import { decodeSafetensors, MAX_FILE_BYTES } from "../data/safetensors.ts";
import { loadSplit } from "../data/datasets.ts";
import { imageSetOnGpu } from "../data/loader.ts";
import { scoresCsvColumn } from "../eval/evaluate.ts";
import { scoreSet } from "../eval/score_set.ts";
import { fileKey } from "../eval/evaluation_sets.ts";
import { dispose } from "../kernels/tensor.ts";
import { scoreNames } from "../models/scores.ts";
import type { Calibration, RunInfo } from "../web/page_parts.ts";
import { initGpuOrExit, intFlag, parseFlags, pathFlag, runCommand, usageError } from "./cli.ts";

const USAGE = `usage: deno task serve [flags]
  --run DIR              a run directory written by 'deno task train' (default: the newest under runs/)
  --port N               the port on 127.0.0.1 (default 8000; 0: any free port)
  --calibration-limit N  with no scores.csv in the run: score the first N test images once (default 2000)
  --data-dir DIR         read the dataset files from here (and only here)
  --help                 this text
Open the printed address in a browser with WebGPU (Chrome, Edge).`;

const flags = parseFlags("serve", USAGE, {
  run: { type: "string" },
  port: { type: "string", default: "8000" },
  "calibration-limit": { type: "string", default: "2000" },
  "data-dir": { type: "string" },
});
const port = intFlag("serve", USAGE, "port", flags.port, 0, 65535);
const calibrationLimit = intFlag("serve", USAGE, "calibration-limit", flags["calibration-limit"], 1);
const dataDir = pathFlag("serve", USAGE, "data-dir", flags["data-dir"]);

/** The newest directory under runs/ that holds a trained model. */
async function newestRun(): Promise<string> {
  let best: { dir: string; time: number } | null = null;
  try {
    for await (const entry of Deno.readDir("runs")) {
      if (!entry.isDirectory) continue;
      const stat = await Deno.stat(`runs/${entry.name}/model.safetensors`).catch(() => null);
      const time = stat?.mtime?.getTime() ?? -1;
      if (stat && (!best || time > best.time)) best = { dir: `runs/${entry.name}`, time };
    }
  } catch {
    // No runs/ directory: the usage error below.
  }
  if (!best) {
    usageError("serve", USAGE, "no trained run under runs/: train one (deno task train) or give --run DIR");
  }
  return best.dir;
}

/** The page's bundle: web/app.ts and what it imports, for the browser, by `deno bundle`. */
async function bundle(): Promise<Uint8Array<ArrayBuffer>> {
  const out = await Deno.makeTempFile({ suffix: ".js" });
  try {
    const entry = new URL("../web/app.ts", import.meta.url).pathname;
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--platform", "browser", "--quiet", "-o", out, entry],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!result.success) {
      throw new Error(`deno bundle web/app.ts failed: ${new TextDecoder().decode(result.stderr)}`);
    }
    return await Deno.readFile(out);
  } finally {
    await Deno.remove(out).catch(() => {});
  }
}

/**
 * Every score of the in-distribution test images: the run's scores.csv when 'deno task ood' wrote
 * one, else the first `calibrationLimit` images scored once (as 'deno task score' calibrates) and
 * cached in DIR/calibration.json for the next start. Only that scoring needs the GPU.
 */
async function calibration(dir: string, config: RunConfig): Promise<Calibration> {
  const inName = config.training.dataset;
  const names = scoreNames(config.model.layers.length);
  try {
    const csv = await Deno.readTextFile(`${dir}/scores.csv`);
    const scores = Object.fromEntries(
      names.map((n) => [n, Array.from(scoresCsvColumn(csv, fileKey(inName), n))]),
    );
    if (scores[names[0]].length > 0) {
      return { source: `${dir}/scores.csv`, images: scores[names[0]].length, limit: null, scores };
    }
  } catch {
    // No evaluation in the run: a cached calibration, or score now.
  }
  const cached: Calibration | null = await Deno.readTextFile(`${dir}/calibration.json`).then(JSON.parse)
    .catch(() => null);
  if (cached?.limit === calibrationLimit) return cached;
  await initGpuOrExit("serve");
  const run = await loadRun(dir);
  const split = await loadSplit(inName, "test", { dataDir });
  const set = imageSetOnGpu(split, calibrationLimit, run.config.model.image);
  try {
    console.log(`serve: scoring ${set.count} ${inName} test images once for the thresholds`);
    const s = await scoreSet(run.params, run.config.model, set, {
      seed: run.config.training.seed,
      samples: 1,
      iw: 1,
      generate: "mean",
      batchSize: 250,
    });
    const out: Calibration = {
      source: `${set.count} ${inName} test images scored by deno task serve`,
      images: set.count,
      limit: calibrationLimit,
      scores: Object.fromEntries(names.map((n) => [n, Array.from(s.scores[n])])),
    };
    await writeFileAtomic(`${dir}/calibration.json`, new TextEncoder().encode(JSON.stringify(out)));
    return out;
  } finally {
    dispose([set.bytes, run.params]);
  }
}

await runCommand("serve", async () => {
  const dir = pathFlag("serve", USAGE, "run", flags.run) ?? await newestRun();
  // The run is checked here (its config field by field, the model's safetensors header) so that a bad
  // --run is a message naming the file now, not an error in the page later.
  const runConfig = await readRunConfig(dir);
  const modelPath = `${dir}/model.safetensors`;
  const model = await readRegularFile(modelPath, MAX_FILE_BYTES, "safetensors file");
  decodeSafetensors(model, modelPath);
  const [app, calib, config] = await Promise.all([
    bundle(),
    calibration(dir, runConfig),
    Deno.readFile(`${dir}/config.json`),
  ]);
  const page = await Deno.readFile(new URL("../web/index.html", import.meta.url));
  const info: RunInfo = { dir, epochs: await completedEpochs(dir) };
  const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)) as Uint8Array<ArrayBuffer>;
  const routes: Record<string, [Uint8Array<ArrayBuffer>, string]> = {
    "/": [page, "text/html; charset=utf-8"],
    "/app.js": [app, "text/javascript; charset=utf-8"],
    "/run/config.json": [config, "application/json"],
    "/run/model.safetensors": [model as Uint8Array<ArrayBuffer>, "application/octet-stream"],
    "/run/calibration.json": [json(calib), "application/json"],
    "/run/info.json": [json(info), "application/json"],
  };
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: ({ port }) => console.log(`serve: ${dir} at http://127.0.0.1:${port}/ (Ctrl-C stops)`),
  }, (request) => {
    const route = routes[new URL(request.url).pathname];
    if (!route) return new Response("not found", { status: 404 });
    return new Response(route[0], { headers: { "content-type": route[1], "cache-control": "no-store" } });
  });
  await server.finished;
});
