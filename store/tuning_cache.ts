/**
 * Tuned kernel choices kept per adapter (kernels/tuner.ts measures them, kernels/tuning_choices.ts applies
 * them), in `tuning.json` of the per-user cache directory (data/datasets.ts `defaultCacheDir`):
 *   {"version": 1, "entries": [{"identity": {...}, "tuning": {...}, "createdAt": "...", "rows": [...]}]}
 *
 * An adapter's identity is what the WebGPU adapter reports (description, vendor, architecture,
 * device, driver) and, for a software adapter, the CPU running it (lscpu's model name, family, model
 * and the vector extensions that change llvmpipe's code): two machines of the same kind can differ
 * 6x there (AVX-512 against AVX2 only). Without lscpu (no permission to run it) a software adapter
 * cannot be told apart from another one, so no cached choice is trusted for it.
 *
 * Entries are kept per adapter and per model preset: the tuner times the convolutions of one
 * preset's training step, and the best blocks for `small`'s 16 channels are not those for
 * `havtorn3`'s 64 (kernels/tuner.ts). An entry written before presets were recorded counts for the
 * preset its `workload` names.
 *
 * A corrupt file, an entry that is not a valid tuning, or a file of another version is ignored with
 * a warning, and is replaced on the next save: it never stops a run.
 */

import { defaultCacheDir } from "../data/datasets.ts";
import { writeFileAtomic } from "../data/files.ts";
import { type Tuning, validateTuning } from "../kernels/tuning_choices.ts";
import type { TuneRow } from "../kernels/tuner.ts";
import type { AdapterDescription } from "../kernels/runtime/device.ts";

export interface AdapterIdentity {
  description: string;
  vendor: string;
  architecture: string;
  software: boolean;
  /** For a software adapter: the CPU, or null when it could not be read. */
  cpu: string | null;
}

export interface TuningEntry {
  identity: AdapterIdentity;
  tuning: Tuning;
  createdAt: string;
  /** What was measured (kernels/tuner.ts rows), for the record. */
  rows?: TuneRow[];
  /** The workload the shapes came from, e.g. "small informative, batch 128". */
  workload?: string;
  /** The model preset whose shapes were timed (absent in older entries: see `presetOf`). */
  preset?: string;
}

/** The preset an entry was tuned for: its own field, else the first word of its workload. */
export function presetOf(entry: TuningEntry): string | null {
  return entry.preset ?? entry.workload?.split(" ")[0] ?? null;
}

const VERSION = 1;

/** The file holding the entries. */
export function tuningCachePath(dir = defaultCacheDir()): string {
  return `${dir}/tuning.json`;
}

/**
 * lscpu's fields by name ("Model name", "CPU\\(s\\)", "Flags"; a regex-escaped name), or null when
 * lscpu may not run or is missing. The one reader of lscpu: the tuning cache, `bench` and
 * `bench:compare` name the CPU from it (Deno reads /proc only with --allow-all).
 */
export async function lscpu(): Promise<((name: string) => string | undefined) | null> {
  try {
    const allowed = await Deno.permissions.query({ name: "run", command: "lscpu" });
    if (allowed.state !== "granted") return null;
    const out = await new Deno.Command("lscpu", { stdout: "piped", stderr: "null", env: { LC_ALL: "C" } })
      .output();
    if (!out.success) return null;
    const text = new TextDecoder().decode(out.stdout);
    return (name) => text.match(new RegExp(`^${name}:\\s*(.*)$`, "m"))?.[1]?.trim();
  } catch {
    return null;
  }
}

/** The CPU as lscpu describes it (model, family, model number, widest vector extension); null if unavailable. */
async function cpuDescription(): Promise<string | null> {
  const info = await lscpu();
  if (!info) return null;
  const field = (name: string) => info(name) ?? "";
  const flags = new Set(field("Flags").split(/\s+/));
  const vector = ["avx512f", "avx2", "avx", "sse4_2"].find((f) => flags.has(f)) ?? "none";
  return `${field("Model name")} family ${field("CPU family")} model ${field("Model")}, ${vector}, ${
    field("CPU\\(s\\)")
  } CPUs`;
}

/** The identity of `adapter` (and of the CPU behind it when it is a software adapter). */
export async function adapterIdentity(adapter: AdapterDescription): Promise<AdapterIdentity> {
  return {
    description: adapter.description,
    vendor: adapter.vendor,
    architecture: adapter.architecture,
    software: adapter.isFallbackAdapter,
    cpu: adapter.isFallbackAdapter ? await cpuDescription() : null,
  };
}

const sameIdentity = (a: AdapterIdentity, b: AdapterIdentity) =>
  a.description === b.description && a.vendor === b.vendor && a.architecture === b.architecture &&
  a.software === b.software && a.cpu === b.cpu;

/** The entries of the cache file; problems become warnings and an empty list. */
async function readEntries(path: string, warn: (line: string) => void): Promise<TuningEntry[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) warn(`${path}: ${(error as Error).message}; ignored`);
    return [];
  }
  let parsed: { version?: unknown; entries?: unknown };
  try {
    parsed = JSON.parse(text);
  } catch {
    warn(`${path}: not valid JSON; ignored (it will be rewritten by the next tuning)`);
    return [];
  }
  if (parsed?.version !== VERSION || !Array.isArray(parsed.entries)) {
    warn(`${path}: not a version-${VERSION} tuning cache; ignored`);
    return [];
  }
  const entries: TuningEntry[] = [];
  parsed.entries.forEach((entry: TuningEntry, i: number) => {
    try {
      if (typeof entry?.identity?.description !== "string") throw new Error("no adapter identity");
      validateTuning(entry.tuning, `entry ${i}`);
      entries.push(entry);
    } catch (error) {
      warn(`${path}: ${(error as Error).message}; that entry is ignored`);
    }
  });
  return entries;
}

/**
 * The cached tuning for `identity` and `preset`, or null (with the reason in `why`). Without a
 * preset, the newest entry for the adapter. `warn` receives problems with the file.
 */
export async function loadCachedTuning(
  identity: AdapterIdentity,
  warn: (line: string) => void,
  path = tuningCachePath(),
  preset?: string,
): Promise<{ entry: TuningEntry | null; why: string }> {
  if (identity.software && identity.cpu === null) {
    return {
      entry: null,
      why: "the CPU behind the software adapter is unknown (lscpu not allowed or missing)",
    };
  }
  const entries = await readEntries(path, warn);
  const mine = entries.filter((e) => sameIdentity(e.identity, identity));
  const entry = preset === undefined
    ? mine.sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0] ?? null
    : mine.find((e) => presetOf(e) === preset) ?? null;
  if (entry) return { entry, why: "" };
  return {
    entry: null,
    why: !entries.length
      ? `no tuning in ${path}`
      : mine.length
      ? `${path} has no tuning for ${preset} on this adapter (only for ${mine.map(presetOf).join(", ")})`
      : `${path} has ${entries.length} entries, none for this adapter`,
  };
}

/**
 * Adds (or replaces) the entry for its identity and preset and writes the file atomically; returns
 * the path.
 */
export async function saveTuning(
  entry: TuningEntry,
  warn: (line: string) => void,
  path = tuningCachePath(),
): Promise<string> {
  const others = (await readEntries(path, warn)).filter((e) =>
    !sameIdentity(e.identity, entry.identity) || presetOf(e) !== presetOf(entry)
  );
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")) || ".", { recursive: true });
  const text = JSON.stringify({ version: VERSION, entries: [...others, entry] }, null, 2) + "\n";
  await writeFileAtomic(path, new TextEncoder().encode(text));
  return path;
}
