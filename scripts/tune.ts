/**
 * `deno task tune`: measures the kernel candidates (kernels/tuner.ts) on the convolutions of one
 * training step of a preset on this adapter, prints every measurement, and caches the winners for
 * this adapter (store/tuning_cache.ts), where `deno task train`, `ood`, `score` and `bench` find them.
 * `--show` prints the cached choice instead.
 */

import { adapterInfo } from "../kernels/engine.ts";
import { describeTuning } from "../kernels/tuning_choices.ts";
import type { TuneRow } from "../kernels/tuner.ts";
import { adapterIdentity, loadCachedTuning, tuningCachePath } from "../store/tuning_cache.ts";
import { presetConfig, PRESETS } from "../models/presets.ts";
import { initGpuOrExit, intFlag, parseFlags, usageError } from "./cli.ts";
import { useTunedKernels } from "./kernels_flag.ts";

const USAGE = `usage: deno task tune [--preset NAME] [--loss KIND] [--batch-size N] [--show]
  --preset NAME     the model whose convolutions are timed: ${Object.keys(PRESETS).join(", ")}
                    (default: small on a software adapter, havtorn3 on a GPU)
  --loss KIND       informative (default) or elbo
  --batch-size N    the training batch (default 128; a software adapter times a few images)
  --show            print the cached choice for this adapter (and --preset, if given) and exit
Caches per adapter and preset in ${tuningCachePath()}.`;

const flags = parseFlags("tune", USAGE, {
  preset: { type: "string" },
  loss: { type: "string", default: "informative" },
  "batch-size": { type: "string", default: "128" },
  show: { type: "boolean", default: false },
});
if (flags.loss !== "informative" && flags.loss !== "elbo") {
  usageError("tune", USAGE, `--loss must be informative or elbo, got '${flags.loss}'`);
}
const batch = intFlag("tune", USAGE, "batch-size", flags["batch-size"], 1);
await initGpuOrExit("tune");
const adapter = adapterInfo();
const identity = await adapterIdentity(adapter);
console.log(`tune: adapter ${adapter.description}${identity.cpu ? ` on ${identity.cpu}` : ""}`);

/** The measurements, the chosen candidate of each family starred. */
function printRows(rows: TuneRow[]): void {
  for (const r of rows) {
    console.log(
      `  ${r.chosen ? "*" : " "} ${r.family.padEnd(22)} ${r.candidate.padEnd(50)} ${r.ms.toFixed(1)} ms`,
    );
  }
}

if (flags.show) {
  const { entry, why } = await loadCachedTuning(
    identity,
    (line) => console.error(`tune: warning: ${line}`),
    undefined,
    flags.preset,
  );
  if (!entry) {
    console.log(`tune: nothing cached (${why})`);
    Deno.exit(0);
  }
  console.log(`tune: cached ${entry.createdAt} on ${entry.workload ?? "?"}: ${describeTuning(entry.tuning)}`);
  printRows(entry.rows ?? []);
  Deno.exit(0);
}

let cfg;
try {
  cfg = presetConfig(flags.preset ?? (adapter.isFallbackAdapter ? "small" : "havtorn3"));
} catch (error) {
  usageError("tune", USAGE, `--preset: ${(error as Error).message}`);
}
const { rows } = await useTunedKernels("tune", {
  retune: { cfg, batch, loss: flags.loss as "elbo" | "informative" },
});
console.log("tune: every candidate (family, candidate, ms for the family's shapes; * = chosen):");
printRows(rows);
