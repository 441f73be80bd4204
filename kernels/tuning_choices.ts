/**
 * The kernel choices that depend on the adapter, in one record: the GEMM tiles (matmul and the
 * implicit-GEMM convolutions), the direct convolutions' register blocks, and the channel count up to
 * which a convolution takes the direct kernels. kernels/conv.ts and kernels/gemm.ts read them here;
 * kernels/tuner.ts measures candidates and picks; store/tuning_cache.ts keeps a pick per adapter.
 *
 * Why per adapter: the same tiling ran a 512^3 matmul (`deno task bench`) at 7.2 GFLOP/s on one
 * 2-core EPYC of ours and 1.1 on another (AVX-512 against AVX2-only: llvmpipe compiles each
 * invocation into SIMD lanes, so register pressure, spills and gathers differ), and a real GPU wants
 * many more threads and fewer registers per thread than two CPU cores. The defaults below are sound
 * everywhere; tuning makes them right for the machine at hand.
 */

import { gpu } from "./runtime/device.ts";

/** A tile of the GEMM template (kernels/gemm.ts): WM x WN threads, TM x TN outputs each, K steps of TK. */
export interface GemmTiling {
  /** Threads per workgroup along M. */
  WM: number;
  /** Threads per workgroup along N. */
  WN: number;
  /** Outputs per thread along M. */
  TM: number;
  /** Outputs per thread along N (a multiple of 4). */
  TN: number;
  /** K step staged through workgroup memory. */
  TK: number;
}

/**
 * Register blocks of the direct convolutions (kernels/conv.ts `directSpec`, `directFilterSpec`):
 * `pixels` output pixels per thread (forward, input gradient), `rows` input channels per thread
 * (weight gradient), at most `cols` output columns per thread (all three; the largest divisor of the
 * channel count is taken); `dwThreads` is the number of threads the weight gradient's K split aims for.
 */
export interface DirectBlocks {
  /** Output pixels per thread (forward, input gradient). */
  pixels: number;
  /** Input channels per thread (weight gradient). */
  rows: number;
  /** At most this many output columns per thread. */
  cols: number;
  /** Threads the weight gradient's K split aims for. */
  dwThreads: number;
}

/** The kernel choices that depend on the adapter, in one record. */
export interface Tuning {
  /** The GEMM tile for outputs with more than 32 columns. */
  gemmWide: GemmTiling;
  /** The GEMM tile for outputs with at most 32 columns (a 64-wide tile would be mostly padding). */
  gemmNarrow: GemmTiling;
  /** Register blocks of the direct convolutions. */
  direct: DirectBlocks;
  /** Output columns up to which a convolution takes the direct kernels rather than the GEMM. */
  directColumns: number;
}

/**
 * 8x8 threads, 8x8 outputs each: 64x64 tiles, K steps of 16. 8x8 outputs per thread reached
 * 5.4 GFLOP/s at 512^3 against 3.7 for 4x4 (`deno task bench`, an EPYC of ours: docs/design.md
 * section 8.1).
 */
export const WIDE_TILING: GemmTiling = { WM: 8, WN: 8, TM: 8, TN: 8, TK: 16 };

/**
 * 16x4 threads, 8x4 outputs each: 128x16 tiles. It ran [25088 x 144] @ [144 x 16] at 2.5 GFLOP/s
 * against 1.65 for the 64x64 tile, and N = 4 at 0.86 against 0.52 (`deno task bench`, an EPYC of
 * ours: docs/design.md section 8.1).
 */
export const NARROW_TILING: GemmTiling = { WM: 16, WN: 4, TM: 8, TN: 4, TK: 16 };

/**
 * Channel count up to which a software adapter runs the direct kernels: all of them in practice. The
 * GEMM tile lost at every width measured on Zen 5 (docs/design.md section 8.1), batch 32, each direction
 * fwd / dX / dW in ms, direct against GEMM: 3x3 128 -> 128 at 8x8, 36 / 34 / 34 against 142 / 160 /
 * 138; 3x3 128 -> 256 at 8x8, 54 / 49 / 58 against 258 / 302 / 268 (Havtorn et al.'s CIFAR widths); and
 * at batch 128 the RGB mixture's 1x1 head 16 -> 100 at 32x32, 349 / 62 / 50 against 460 / 504 / 476.
 * `deno task tune` still measures the split on the shapes of the preset in use.
 */
export const SOFTWARE_DIRECT_COLUMNS = 1024;

/**
 * The defaults. On a CPU adapter (llvmpipe) each invocation is a SIMD lane and spills to L1 are cheap,
 * so the biggest direct block wins: 16 pixels x 16 columns ran the 16-channel 14x14 k3 forward at 8.1
 * GFLOP/s against 1.6 with one pixel (Zen 4 of docs/design.md section 8.1, `deno task bench`), and its
 * 2 cores need few threads: the weight gradient's K split aims for 256 (16-thread workgroups, 8 per
 * core), since every slice adds partial sums for the reduction (kernels/tuner.ts, "direct dW threads").
 * Direct beats the GEMM tile at 64 channels too: havtorn3's 64-channel 28x28 k5 convolution ran at
 * 27-29 GFLOP/s direct against 4.4-5.2 as a GEMM in all three directions (batch 32, Zen 5, `deno task
 * tune`; the GEMM's workgroup barriers are coroutine switches there), and its ELBO step went from 157 s
 * to 35 s on the same machine (`deno task bench:compare`). On a real GPU: 4 x 4 blocks, many threads
 * and GEMMs above 32 channels, defaults that no GPU measurement backs yet (`deno task tune` measures
 * them).
 */
export function defaultTuning(softwareAdapter: boolean): Tuning {
  return {
    gemmWide: WIDE_TILING,
    gemmNarrow: NARROW_TILING,
    direct: softwareAdapter
      ? { pixels: 16, rows: 16, cols: 16, dwThreads: 256 }
      : { pixels: 4, rows: 4, cols: 4, dwThreads: 65536 },
    directColumns: softwareAdapter ? SOFTWARE_DIRECT_COLUMNS : 32,
  };
}

let current: Tuning | null = null;

/** The tuning in force: the one set last, else the defaults for the current adapter. */
export function tuning(): Tuning {
  return current ?? defaultTuning(gpu().adapter.isFallbackAdapter);
}

/** Puts `t` in force (null: the defaults); returns the previous one (null if the defaults were in force). */
export function setTuning(t: Tuning | null): Tuning | null {
  const previous = current;
  if (t) validateTuning(t, "setTuning");
  current = t;
  return previous;
}

const positiveInt = (v: unknown) => Number.isInteger(v) && (v as number) >= 1;

/** Throws unless `t` is a complete, usable tuning; `where` names the source in the message. */
export function validateTuning(t: unknown, where: string): asserts t is Tuning {
  const bad = (what: string) => new Error(`${where}: ${what}`);
  if (typeof t !== "object" || t === null) throw bad("not a tuning record");
  const r = t as Record<string, unknown>;
  for (const name of ["gemmWide", "gemmNarrow"] as const) {
    const g = r[name] as Record<string, unknown> | undefined;
    if (!g || !["WM", "WN", "TM", "TN", "TK"].every((k) => positiveInt(g[k])) || (g.TN as number) % 4 !== 0) {
      throw bad(`${name} must have positive integers WM, WN, TM, TN (a multiple of 4), TK`);
    }
  }
  const d = r.direct as Record<string, unknown> | undefined;
  if (!d || !["pixels", "rows", "cols", "dwThreads"].every((k) => positiveInt(d[k]))) {
    throw bad("direct must have positive integers pixels, rows, cols, dwThreads");
  }
  if (!positiveInt(r.directColumns)) throw bad("directColumns must be a positive integer");
}

/** A short text for logs: "gemm 8x8x8x8x16 / 16x4x8x4x16, direct 16px x 16col (dW 16 x 16, 1024 thr) <= 32 ch". */
export function describeTuning(t: Tuning): string {
  const tile = (g: GemmTiling) => `${g.WM}x${g.WN}x${g.TM}x${g.TN}x${g.TK}`;
  const d = t.direct;
  return `gemm ${tile(t.gemmWide)} / ${tile(t.gemmNarrow)}, direct ${d.pixels} px x ${d.cols} col ` +
    `(dW ${d.rows} x ${d.cols}, ${d.dwThreads} threads) up to ${t.directColumns} channels`;
}
