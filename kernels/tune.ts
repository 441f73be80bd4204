/**
 * The kernel tuner: times candidate tunings (kernels/tuning.ts) on the convolution shapes a workload
 * actually records, family by family, and keeps the fastest of each. Like ATLAS or cuDNN's
 * benchmark mode: measure on the machine at hand rather than guess from a model of it.
 *
 * Families, in order (each starts from the choices made before it):
 *   direct/GEMM split  directColumns 32 or 64, on the shapes with 33-64 output columns (havtorn3's);
 *   direct forward     output pixels per thread (1..16), then columns per thread (4, 8, 16), on the
 *                      forward and input-gradient shapes that run direct;
 *   direct dW          input channels per thread (1..16), then the threads the K split aims for;
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
import { defaultTuning, type GemmTiling, setTuning, type Tuning } from "./tuning.ts";

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
  const inputs = new Map<ConvShape, Tensor[]>();
  const rows: TuneRow[] = [];
  const saved = setTuning(null);
  let best = defaultTuning(software);
  const random = (shape: number[]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    let s = 12345;
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      data[i] = s / 2 ** 31 - 1;
    }
    return tensor(data, shape);
  };
  const argsOf = (s: ConvShape): Tensor[] => {
    let t = inputs.get(s);
    if (!t) {
      const g = s.g;
      t = [random([g.B, g.H, g.W, g.Ci]), random([g.B, g.oH, g.oW, g.Co]), random([g.kh, g.kw, g.Ci, g.Co])];
      inputs.set(s, t);
    }
    return t;
  };
  const run = (s: ConvShape, [x, dy, w]: Tensor[]): Tensor => {
    return s.direction === "fwd"
      ? convForward(x, w, null, s.g)
      : s.direction === "dx"
      ? convBackwardInput(dy, w, null, s.g)
      : convBackwardFilter(x, dy, s.g);
  };
  const pass = async (subset: ConvShape[]): Promise<number> => {
    const t0 = performance.now();
    let last: Tensor | null = null;
    for (const s of subset) {
      const args = argsOf(s); // made outside the scope: they live until the tuner ends
      for (let c = 0; c < s.count; c++) {
        last?.dispose();
        last = scope(() => run(s, args));
      }
    }
    if (last) {
      await readAll([last]);
      last.dispose();
    }
    return performance.now() - t0;
  };
  /**
   * Times each candidate on the shapes `select` picks under the current best; keeps the fastest.
   * Candidates take turns, one pass each per round, and each keeps its median over the rounds: the
   * speed of a shared machine drifts within seconds (by 10-20% on our 2-core machines), and timing
   * the candidates one after another let that drift choose.
   */
  const family = async (
    name: string,
    candidates: Tuning[],
    describe: (t: Tuning) => string,
    select: (s: ConvShape) => boolean,
  ) => {
    setTuning(best);
    const subset = timedShapes.filter(select);
    if (subset.length === 0) {
      log(`${name}: no shapes in use, default kept`);
      return;
    }
    const times: number[][] = candidates.map(() => []);
    for (const candidate of candidates) {
      setTuning(candidate);
      await pass(subset); // compiles its pipelines
    }
    for (let r = 0; r < reps; r++) {
      for (const [k, candidate] of candidates.entries()) {
        setTuning(candidate);
        times[k].push(await pass(subset));
      }
    }
    const medians = times.map((t) => t.sort((a, b) => a - b)[Math.floor(t.length / 2)]);
    const fastest = Math.min(...medians);
    const winner = candidates[medians.indexOf(fastest)];
    rows.push(...candidates.map((c, k) => ({
      family: name,
      candidate: describe(c),
      ms: medians[k],
      chosen: c === winner,
    })));
    best = winner;
    setTuning(best);
    log(`${name}: ${describe(winner)} (${fastest.toFixed(1)} ms on ${subset.length} shapes)`);
  };
  const columnsOf = (s: ConvShape) => s.direction === "dx" ? s.g.Ci : s.g.Co;
  const plannedAs = (kind: string, directions: ConvDirection[]) => (s: ConvShape) =>
    directions.includes(s.direction) && convPlan(s.direction, s.g).kernel === kind;
  try {
    await family(
      "direct/GEMM split",
      [32, 64].map((directColumns) => ({ ...best, directColumns })),
      (t) => `direct up to ${t.directColumns} channels`,
      (s) => columnsOf(s) > 32 && columnsOf(s) <= 64,
    );
    await family(
      "direct fwd/dX pixels",
      [1, 2, 4, 8, 16].map((pixels) => ({ ...best, direct: { ...best.direct, pixels } })),
      (t) => `${t.direct.pixels} pixels x ${t.direct.cols} columns per thread`,
      plannedAs("direct", ["fwd", "dx"]),
    );
    await family(
      "direct fwd/dX columns",
      [4, 8, 16].map((cols) => ({ ...best, direct: { ...best.direct, cols } })),
      (t) => `${t.direct.pixels} pixels x ${t.direct.cols} columns per thread`,
      plannedAs("direct", ["fwd", "dx"]),
    );
    await family(
      "direct dW rows",
      [1, 2, 4, 8, 16].map((rows) => ({ ...best, direct: { ...best.direct, rows } })),
      (t) => `${t.direct.rows} input x ${t.direct.cols} output channels per thread`,
      plannedAs("direct", ["dw"]),
    );
    await family(
      "direct dW threads",
      [1024, 8192, 65536].map((dwThreads) => ({ ...best, direct: { ...best.direct, dwThreads } })),
      (t) => `K split for ~${t.direct.dwThreads} threads`,
      plannedAs("direct", ["dw"]),
    );
    await family(
      "GEMM wide tile",
      WIDE_CANDIDATES.map((gemmWide) => ({ ...best, gemmWide })),
      (t) => tile(t.gemmWide),
      (s) => convPlan(s.direction, s.g).kernel === "gemm" && columnsOf(s) > 32,
    );
    await family(
      "GEMM narrow tile",
      NARROW_CANDIDATES.map((gemmNarrow) => ({ ...best, gemmNarrow })),
      (t) => tile(t.gemmNarrow),
      (s) => convPlan(s.direction, s.g).kernel === "gemm" && columnsOf(s) <= 32,
    );
  } finally {
    setTuning(saved);
    for (const t of inputs.values()) dispose(t);
    await sync();
  }
  return { tuning: best, rows };
}
