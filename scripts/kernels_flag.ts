/**
 * Kernel tuning as the command lines use it: put this adapter's cached choices in force
 * (store/tuning_cache.ts), or measure them (kernels/tuner.ts) on the convolutions of a model's training
 * step, on first use (`deno task train`) or on demand (`deno task tune`).
 */

import { valueAndGrad } from "../autograd/tape.ts";
import { greater } from "../autograd/ops.ts";
import { adapterInfo } from "../kernels/engine.ts";
import { dispose, keep, tensor } from "../kernels/tensor.ts";
import { recordConvShapes, tuneKernels, type TuneRow } from "../kernels/tuner.ts";
import { describeTuning, setTuning, type Tuning } from "../kernels/tuning_choices.ts";
import { adapterIdentity, loadCachedTuning, presetOf, saveTuning } from "../store/tuning_cache.ts";
import { type HvaeConfig, hvaeObjective, type HvaeParams, imageChannels, initHvae } from "../models/hvae.ts";
import { createRng } from "../models/rng.ts";
import { usageError } from "./cli.ts";

/** What a training step looks like: the model, its batch size and loss. */
export interface Workload {
  cfg: HvaeConfig;
  batch: number;
  loss: "elbo" | "informative";
}

/**
 * Measures the kernel candidates on the convolutions of one training step of `w` (recorded at batch
 * 2, timed at the real batch, or a few images on a software adapter) and returns the winners.
 */
export async function tuneForWorkload(
  w: Workload,
  log: (line: string) => void,
): Promise<{ tuning: Tuning; rows: TuneRow[] }> {
  const params = keep(initHvae(w.cfg, createRng(1)));
  const rng = createRng(2);
  const { height, width } = w.cfg.image, channels = imageChannels(w.cfg);
  const x = keep(greater(
    tensor(Float32Array.from({ length: 2 * height * width * channels }, () => rng.uniform()), [
      2,
      height,
      width,
      channels,
    ]),
    0.6,
  ));
  const shapes = recordConvShapes(() =>
    valueAndGrad((p: HvaeParams) =>
      hvaeObjective(p, w.cfg, x, {
        loss: w.loss,
        beta: 1,
        freeBits: 0,
        keyOf: (stream) => ({ seed: 1, stream, offset: 0 }),
      }).loss
    )(params)
  ).map((s) => ({ ...s, g: { ...s.g, B: w.batch } }));
  dispose([params, x]);
  return await tuneKernels(shapes, { log });
}

/** How the kernels of this process were chosen. */
export type TuningSource = "cached" | "tuned" | "default";

/**
 * Puts the cached tuning for this adapter and the model's preset in force (`preset`, or the
 * workload's; without either, the adapter's newest). Without one: with `tuneIfMissing`, measures it
 * on that workload and caches it ("first use"); else keeps the defaults. `retune` always measures.
 * Prints one line saying which; problems with the cache are warnings, never errors.
 */
export async function useTunedKernels(
  tool: string,
  o: { tuneIfMissing?: Workload; retune?: Workload; preset?: string; log?: (line: string) => void } = {},
): Promise<{ source: TuningSource; rows: TuneRow[] }> {
  const say = (line: string) => (o.log ?? console.log)(`${tool}: ${line}`);
  const warn = (line: string) => console.error(`${tool}: warning: ${line}`);
  const identity = await adapterIdentity(adapterInfo());
  const preset = o.preset ?? o.tuneIfMissing?.cfg.preset;
  const cached = o.retune
    ? { entry: null, why: "retuning" }
    : await loadCachedTuning(identity, warn, undefined, preset);
  if (cached.entry) {
    setTuning(cached.entry.tuning);
    say(
      `kernels tuned for this adapter on ${presetOf(cached.entry) ?? "?"} (${cached.entry.createdAt}): ${
        describeTuning(cached.entry.tuning)
      }`,
    );
    return { source: "cached", rows: cached.entry.rows ?? [] };
  }
  setTuning(null);
  const workload = o.retune ?? o.tuneIfMissing;
  if (!workload) {
    say(`default kernels (${cached.why}; 'deno task tune' measures them for this adapter)`);
    return { source: "default", rows: [] };
  }
  const what = `${workload.cfg.preset} ${workload.loss}, batch ${workload.batch}`;
  say(`tuning kernels for this adapter on the convolutions of a ${what} step (once; cached)`);
  const started = performance.now();
  const { tuning, rows } = await tuneForWorkload(workload, (line) => say(`  ${line}`));
  setTuning(tuning);
  if (identity.software && identity.cpu === null) {
    say(`tuned in ${((performance.now() - started) / 1000).toFixed(1)} s; not cached: ${cached.why}`);
    return { source: "tuned", rows };
  }
  try {
    const path = await saveTuning(
      {
        identity,
        tuning,
        createdAt: new Date().toISOString(),
        rows,
        workload: what,
        preset: workload.cfg.preset,
      },
      warn,
    );
    say(`tuned in ${((performance.now() - started) / 1000).toFixed(1)} s, saved to ${path}`);
  } catch (error) {
    warn(`could not save the tuning: ${(error as Error).message}`);
  }
  return { source: "tuned", rows };
}

/** How a command chooses its kernels (`--kernels`). */
export type KernelsMode = "auto" | "default" | "retune";

function kernelsDefault(): string {
  try {
    return Deno.env.get("HVAE_OOD_KERNELS") ?? "auto";
  } catch {
    return "auto";
  }
}

/** The `--kernels` flag; its default comes from $HVAE_OOD_KERNELS (the test task sets "default"). */
export const KERNELS_FLAG = { kernels: { type: "string", default: kernelsDefault() } } as const;

export const KERNELS_USAGE =
  `  --kernels MODE         auto: this adapter's tuned kernel choices when cached (default; $HVAE_OOD_KERNELS
                         overrides), default: the built-in choices, retune: measure them again`;

/** Reads `--kernels`, or exits with a usage error. */
export function kernelsMode(tool: string, usage: string, raw: unknown): KernelsMode {
  if (raw === "auto" || raw === "default" || raw === "retune") return raw;
  usageError(tool, usage, `--kernels must be auto, default or retune, got '${raw}'`);
}

/**
 * Applies `--kernels` for a command: "default" keeps the built-in choices; "auto" takes the cache
 * (and, given `workload`, measures on first use); "retune" measures on `workload` (or, without one,
 * behaves as "auto"). Returns how the kernels were chosen.
 */
export async function applyKernelsMode(
  tool: string,
  mode: KernelsMode,
  workload: Workload | null,
  log: (line: string) => void = console.log,
  preset?: string,
): Promise<TuningSource> {
  if (mode === "default") {
    log(`${tool}: default kernels (--kernels default)`);
    return "default";
  }
  if (mode === "retune" && workload) return (await useTunedKernels(tool, { retune: workload, log })).source;
  return (await useTunedKernels(tool, { tuneIfMissing: workload ?? undefined, preset, log })).source;
}
