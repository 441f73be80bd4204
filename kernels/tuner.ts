/**
 * The kernel tuner: times candidate tunings (kernels/tuning_choices.ts) on the convolution shapes a workload
 * actually records, family by family, and keeps the fastest of each. Like ATLAS or cuDNN's
 * benchmark mode: measure on the machine at hand rather than guess from a model of it.
 *
 * Families, in order (each starts from the choices made before it):
 *   direct/GEMM split  directColumns 32, 64, 128, 256 or 1024, on the shapes with more than 32 output
 *                      columns (havtorn3's 64, the CIFAR backbone's up to 256, the RGB mixture's head's
 *                      100);
 *   direct forward     output pixels per thread (1..16), then columns per thread (4, 8, 16), on the
 *                      forward and input-gradient shapes that run direct;
 *   direct dW          input channels per thread (1..16), then the threads the K split aims for (GPUs
 *                      only: see the family);
 *   GEMM tiles         wide (> 32 columns) and narrow tiles, on the shapes that run as GEMMs.
 * A family with no shape in use keeps its default. Every candidate gives the same results (the conv
 * tests run the direct kernels with several blocks); only time differs. Reductions and elementwise
 * kernels are not tuned: they are memory-bound and a few percent of a training step's profile.
 *
 * Timing: inputs are random and uploaded once per shape; per candidate, one untimed pass (compiles
 * its pipelines), then `reps` rounds in which the candidates take turns, each timing one pass over
 * all shapes of the family (each shape run as often as the workload ran it, ending in one
 * readback); a candidate's median pass counts. On a software adapter shapes are
 * timed at batch <= `cpuBatch`: two cores are saturated by a few images, and per-image cost is what
 * the choice depends on there.
 */

import { adapterInfo, sync } from "./engine.ts";
import {
  convBackwardFilter,
  convBackwardInput,
  type ConvDirection,
  convForward,
  convPlan,
  observeConvolutions,
} from "./conv.ts";
import type { ConvGeometry } from "./conv_geometry.ts";
import { dispose, readAll, scope, type Tensor, tensor } from "./tensor.ts";
import { defaultTuning, type GemmTiling, setTuning, type Tuning } from "./tuning_choices.ts";

/** A convolution direction at one geometry, and how many times the workload ran it. */
export interface ConvShape {
  direction: ConvDirection;
  g: ConvGeometry;
  count: number;
}

/** Runs `workload` (inside a scope) and returns every distinct convolution it recorded, with counts. */
export function recordConvShapes(workload: () => unknown): ConvShape[] {
  const seen = new Map<string, ConvShape>();
  const previous = observeConvolutions((direction, g) => {
    const key = `${direction}:${JSON.stringify(g)}`;
    const entry = seen.get(key);
    if (entry) entry.count++;
    else seen.set(key, { direction, g: { ...g }, count: 1 });
  });
  try {
    scope(() => {
      workload();
    });
  } finally {
    observeConvolutions(previous);
  }
  return [...seen.values()];
}

/** One timed candidate. */
export interface TuneRow {
  family: string;
  candidate: string;
  ms: number;
  chosen: boolean;
}

export interface TuneOptions {
  /** Timed passes per candidate (median taken). Default 3. */
  reps?: number;
  /** On a software adapter, the batch the shapes are timed at (at most their own). Default 16. */
  cpuBatch?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

const tile = (t: GemmTiling) => `${t.WM}x${t.WN} threads x ${t.TM}x${t.TN} outputs, K step ${t.TK}`;

/** Candidate GEMM tiles: the default and variations of threads, outputs per thread and K step. */
const WIDE_CANDIDATES: GemmTiling[] = [
  { WM: 8, WN: 8, TM: 8, TN: 8, TK: 16 },
  { WM: 8, WN: 8, TM: 4, TN: 8, TK: 16 },
  { WM: 16, WN: 16, TM: 4, TN: 4, TK: 16 },
  { WM: 16, WN: 16, TM: 8, TN: 8, TK: 8 },
  { WM: 8, WN: 8, TM: 8, TN: 8, TK: 8 },
  { WM: 16, WN: 8, TM: 4, TN: 8, TK: 16 },
];
const NARROW_CANDIDATES: GemmTiling[] = [
  { WM: 16, WN: 4, TM: 8, TN: 4, TK: 16 },
  { WM: 32, WN: 4, TM: 4, TN: 4, TK: 16 },
  { WM: 16, WN: 4, TM: 4, TN: 4, TK: 16 },
  { WM: 64, WN: 2, TM: 2, TN: 8, TK: 16 },
];

/** A tensor of `shape` with fixed pseudo-random values in [-1, 1) (a linear congruential sequence). */
function seededTensor(shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  let s = 12345;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s / 2 ** 31 - 1;
  }
  return tensor(data, shape);
}

/** Times passes over convolution shapes: each shape's inputs made once, kept until `dispose`. */
class ShapeTimer {
  #inputs = new Map<ConvShape, Tensor[]>();

  #argsOf(s: ConvShape): Tensor[] {
    let t = this.#inputs.get(s);
    if (!t) {
      const g = s.g;
      t = [
        seededTensor([g.B, g.H, g.W, g.Ci]),
        seededTensor([g.B, g.oH, g.oW, g.Co]),
        seededTensor([g.kh, g.kw, g.Ci, g.Co]),
      ];
      this.#inputs.set(s, t);
    }
    return t;
  }

  /** Milliseconds to run every shape of `subset` `count` times under the tuning in force, read back once. */
  async pass(subset: readonly ConvShape[]): Promise<number> {
    const t0 = performance.now();
    let last: Tensor | null = null;
    for (const s of subset) {
      const [x, dy, w] = this.#argsOf(s); // made outside the scope: they live until `dispose`
      for (let c = 0; c < s.count; c++) {
        last?.dispose();
        last = scope(() =>
          s.direction === "fwd"
            ? convForward(x, w, null, s.g)
            : s.direction === "dx"
            ? convBackwardInput(dy, w, null, s.g)
            : convBackwardFilter(x, dy, s.g)
        );
      }
    }
    if (last) {
      await readAll([last]);
      last.dispose();
    }
    return performance.now() - t0;
  }

  dispose(): void {
    for (const t of this.#inputs.values()) dispose(t);
  }
}

/** One family of candidates the tuner times, in order, each from the best tuning so far. */
interface Family {
  name: string;
  /** The candidates, from the best tuning so far and the shapes they will be timed on. */
  candidates: (best: Tuning, shapes: readonly ConvShape[]) => Tuning[];
  describe: (t: Tuning) => string;
  /** The shapes it is timed on (under the best tuning so far). */
  select: (s: ConvShape) => boolean;
  /** false: not timed on a software adapter, whose timing batch cannot show the difference. */
  cpu?: boolean;
}

const columnsOf = (s: ConvShape) => s.direction === "dx" ? s.g.Ci : s.g.Co;
const plannedAs = (kind: string, directions: ConvDirection[]) => (s: ConvShape) =>
  directions.includes(s.direction) && convPlan(s.direction, s.g).kernel === kind;
const directShape = (t: Tuning) => `${t.direct.pixels} pixels x ${t.direct.cols} columns per thread`;

/** The families, in the order they are tuned (each keeps the winners of those before it). */
const FAMILIES: Family[] = [
  {
    name: "direct/GEMM split",
    // A threshold that sends the same shapes direct as a smaller one would be timed twice for
    // nothing (64 through 1024 are one candidate for havtorn3's 64 columns): one per distinct split.
    candidates: (best, shapes) => {
      const seen = new Set<string>();
      return [32, 64, 128, 256, 1024].filter((c) => {
        const split = shapes.map((s) => columnsOf(s) <= c).join();
        return !seen.has(split) && seen.add(split);
      }).map((directColumns) => ({ ...best, directColumns }));
    },
    describe: (t) => `direct up to ${t.directColumns} channels`,
    select: (s) => columnsOf(s) > 32,
  },
  {
    name: "direct fwd/dX pixels",
    candidates: (best) => [1, 2, 4, 8, 16].map((pixels) => ({ ...best, direct: { ...best.direct, pixels } })),
    describe: directShape,
    select: plannedAs("direct", ["fwd", "dx"]),
  },
  {
    name: "direct fwd/dX columns",
    candidates: (best) => [4, 8, 16].map((cols) => ({ ...best, direct: { ...best.direct, cols } })),
    describe: directShape,
    select: plannedAs("direct", ["fwd", "dx"]),
  },
  {
    name: "direct dW rows",
    candidates: (best) => [1, 2, 4, 8, 16].map((rows) => ({ ...best, direct: { ...best.direct, rows } })),
    describe: (t) => `${t.direct.rows} input x ${t.direct.cols} output channels per thread`,
    select: plannedAs("direct", ["dw"]),
  },
  // Not timed on a CPU adapter: at the batch the tuner times there (16) the K split is capped by the
  // slice length and fewer threads starve a core, while at the workload's batch fewer threads mean
  // fewer partial sums for the reduction (16 -> 16 k3 at 14x14, batch 128, Zen 5: 4.8 ms with ~256
  // threads, 5.4 with ~1024; at batch 16 ~1024 won, 29.6 against 32.7 ms over small's shapes). The
  // default stands there (kernels/tuning_choices.ts).
  {
    name: "direct dW threads",
    cpu: false,
    candidates: (best) =>
      [256, 1024, 8192, 65536].map((dwThreads) => ({ ...best, direct: { ...best.direct, dwThreads } })),
    describe: (t) => `K split for ~${t.direct.dwThreads} threads`,
    select: plannedAs("direct", ["dw"]),
  },
  {
    name: "GEMM wide tile",
    candidates: (best) => WIDE_CANDIDATES.map((gemmWide) => ({ ...best, gemmWide })),
    describe: (t) => tile(t.gemmWide),
    select: (s) => convPlan(s.direction, s.g).kernel === "gemm" && columnsOf(s) > 32,
  },
  {
    name: "GEMM narrow tile",
    candidates: (best) => NARROW_CANDIDATES.map((gemmNarrow) => ({ ...best, gemmNarrow })),
    describe: (t) => tile(t.gemmNarrow),
    select: (s) => convPlan(s.direction, s.g).kernel === "gemm" && columnsOf(s) <= 32,
  },
];

/**
 * Candidates within this fraction of the fastest median tie, and the first of them wins: a difference
 * that small is the noise of a shared machine, and families list first the candidate that costs least
 * in what the timing cannot see.
 */
const TIE = 0.03;

/**
 * Times each candidate of a family on `subset` and returns the fastest (the first of those that tie),
 * with a row per candidate.
 * Candidates take turns, one pass each per round, and each keeps its median over the rounds: the
 * speed of a shared machine drifts within seconds (by 10-20% on our 2-core machines), and timing
 * the candidates one after another let that drift choose.
 */
async function timeFamily(
  timer: ShapeTimer,
  family: Family,
  candidates: Tuning[],
  subset: readonly ConvShape[],
  reps: number,
): Promise<{ winner: Tuning; ms: number; rows: TuneRow[] }> {
  const times: number[][] = candidates.map(() => []);
  for (const candidate of candidates) {
    setTuning(candidate);
    await timer.pass(subset); // compiles its pipelines
  }
  for (let r = 0; r < reps; r++) {
    for (const [k, candidate] of candidates.entries()) {
      setTuning(candidate);
      times[k].push(await timer.pass(subset));
    }
  }
  const medians = times.map((t) => t.sort((a, b) => a - b)[Math.floor(t.length / 2)]);
  const fastest = Math.min(...medians);
  const k = medians.findIndex((m) => m <= fastest * (1 + TIE));
  const winner = candidates[k];
  const ms = medians[k];
  const rows = candidates.map((c, k) => ({
    family: family.name,
    candidate: family.describe(c),
    ms: medians[k],
    chosen: c === winner,
  }));
  return { winner, ms, rows };
}

/**
 * Measures the candidates on `shapes` and returns the tuning made of the winners (starting from the
 * defaults for this adapter) and every measurement. Leaves the tuning in force unchanged.
 */
export async function tuneKernels(
  shapes: readonly ConvShape[],
  options: TuneOptions = {},
): Promise<{ tuning: Tuning; rows: TuneRow[] }> {
  const reps = options.reps ?? 5;
  const log = options.log ?? (() => {});
  const software = adapterInfo().isFallbackAdapter;
  const cap = software ? (options.cpuBatch ?? 16) : Infinity;
  const timedShapes = shapes.map((s) => ({ ...s, g: { ...s.g, B: Math.min(s.g.B, cap) } }));
  const rows: TuneRow[] = [];
  const saved = setTuning(null);
  const timer = new ShapeTimer();
  let best = defaultTuning(software);
  try {
    for (const family of FAMILIES) {
      setTuning(best);
      if (software && family.cpu === false) {
        log(`${family.name}: not timed on a CPU adapter, default kept`);
        continue;
      }
      const subset = timedShapes.filter(family.select);
      if (subset.length === 0) {
        log(`${family.name}: no shapes in use, default kept`);
        continue;
      }
      const timed = await timeFamily(timer, family, family.candidates(best, subset), subset, reps);
      rows.push(...timed.rows);
      best = timed.winner;
      setTuning(best);
      log(`${family.name}: ${family.describe(best)} (${timed.ms.toFixed(1)} ms on ${subset.length} shapes)`);
    }
  } finally {
    setTuning(saved);
    timer.dispose();
    await sync();
  }
  return { tuning: best, rows };
}
