/**
 * The tiled, register-blocked GEMM template behind matmul and every convolution direction.
 *
 * C[z][m, n] = sum_k A(z, m, k) * B(z, k, n) where A and B are not arrays but WGSL functions
 * `loadA(z, m, k)` / `loadB(z, k, n)` supplied by the variant, and the result goes through
 * `storeC(z, m, n, value)`. A plain matmul loads from row-major buffers; a convolution computes
 * image coordinates from (m, k) on the fly (an implicit GEMM: no im2col buffer); a bias add or a
 * split-K partial write happens in `storeC`. One template, so a tiling fix reaches every user.
 *
 * Tiling: a workgroup of WM x WN threads owns a BM x BN tile of C (BM = WM * TM, BN = WN * TN);
 * each thread accumulates TM x TN outputs in registers. K advances in steps of TK: the workgroup
 * stages a BM x TK slice of A and a TK x BN slice of B in workgroup memory, then each thread does
 * TM * TN fused multiply-adds per k from TM + TN loads. The inner block is emitted unrolled
 * (TM scalars of A, TN/4 vec4s of B, TM * TN/4 vec4 accumulators) so performance does not hinge on
 * the shader compiler's loop unrolling. 8x8 outputs per thread reached 5.4 GFLOP/s at 512^3
 * against 3.7 for 4x4 (`deno task bench`, an EPYC of ours: docs/design.md section 8.1).
 *
 * Split-K (`splitK`): workgroup z handles k in [z * kChunk, min(K, (z + 1) * kChunk)); the variant's
 * storeC writes a partial sum per z, which a second kernel adds up. Used where K is huge and M x N
 * small, e.g. a convolution's weight gradient (K = batch x pixels).
 */

import { wgsl } from "wgsl-preprocessor";
import type { ElementType, KernelBody, UniformType } from "./runtime/program.ts";
import { type GemmTiling, tuning, WIDE_TILING } from "./tuning_choices.ts";

export type { GemmTiling };

/**
 * The tiling for an output with N columns: the tuning's narrow tile up to 32 columns (a 64-wide
 * tile would compute mostly padding there), else its wide tile (kernels/tuning_choices.ts).
 */
export function tilingFor(N: number): GemmTiling {
  const t = tuning();
  return N <= 32 ? t.gemmNarrow : t.gemmWide;
}

export interface GemmVariant {
  /** Uniforms beyond M, N, K (and kChunk for split-K). */
  uniforms?: ReadonlyArray<readonly [string, UniformType]>;
  inputs: ReadonlyArray<readonly [string, ElementType]>;
  outputs: ReadonlyArray<readonly [string, ElementType]>;
  /** WGSL defining loadA(z, m, k) -> f32, loadB(z, k, n) -> f32 and storeC(z, m, n, v); called in bounds only. */
  functions: string;
  /** Which index of A is contiguous in memory ("k": row-major [M, K]); loads are ordered to match. */
  aContiguous: "m" | "k";
  /** Which index of B is contiguous in memory ("n": row-major [K, N]). */
  bContiguous: "k" | "n";
  splitK?: boolean;
  tiling?: GemmTiling;
}

/**
 * The kernel body of a GEMM variant; the caller's `memoSpec` variant names the tiling and whatever
 * else changes `v` (kernels/runtime/program.ts makes the key).
 */
export function gemmSpec(v: GemmVariant): KernelBody {
  const t = v.tiling ?? WIDE_TILING;
  const { WM, WN, TM, TN, TK } = t;
  if (TN % 4 !== 0) throw new Error(`gemm: TN = ${TN} must be a multiple of 4`);
  const BM = WM * TM, BN = WN * TN, NT = WM * WN, TN4 = TN / 4;
  const inner: string[] = [];
  for (let i = 0; i < TM; i++) inner.push(`      let a${i} = As[k * ${BM}u + tm + ${i}u];`);
  for (let j = 0; j < TN4; j++) {
    const lanes = [0, 1, 2, 3].map((q) => `Bs[k * ${BN}u + tn + ${4 * j + q}u]`).join(", ");
    inner.push(`      let b${j} = vec4<f32>(${lanes});`);
  }
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN4; j++) {
      inner.push(`      acc${i}_${j} = fma(vec4<f32>(a${i}), b${j}, acc${i}_${j});`);
    }
  }
  const decls: string[] = [];
  const stores: string[] = [];
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN4; j++) {
      decls.push(`  var acc${i}_${j} = vec4<f32>(0.0);`);
      for (let q = 0; q < 4; q++) stores.push(`  put(z, m + ${i}u, n + ${4 * j + q}u, acc${i}_${j}[${q}]);`);
    }
  }
  const aByM = v.aContiguous === "m";
  const bByK = v.bContiguous === "k";
  const splitK = v.splitK ?? false;
  return {
    uniforms: [["M", "u32"], ["N", "u32"], ["K", "u32"], ["kChunk", "u32"], ...(v.uniforms ?? [])],
    inputs: v.inputs,
    outputs: v.outputs,
    body: wgsl`
${v.functions}

var<workgroup> As: array<f32, ${TK * BM}>;
var<workgroup> Bs: array<f32, ${TK * BN}>;

fn put(z: u32, m: u32, n: u32, value: f32) {
  if (m < P.M && n < P.N) { storeC(z, m, n, value); }
}

@compute @workgroup_size(${WN}, ${WM})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let z = wid.z;
#if ${splitK}
  let kBegin = z * P.kChunk;
  let kEnd = min(P.K, kBegin + P.kChunk);
#else
  let kBegin = 0u;
  let kEnd = P.K;
#endif
  let m0 = wid.y * ${BM}u;
  let n0 = wid.x * ${BN}u;
  let tm = lid.y * ${TM}u;
  let tn = lid.x * ${TN}u;
${decls.join("\n")}
  for (var k0 = kBegin; k0 < kEnd; k0 += ${TK}u) {
    for (var e = li; e < ${BM * TK}u; e += ${NT}u) {
#if ${aByM}
      let kk = e / ${BM}u;
      let mm = e % ${BM}u;
#else
      let mm = e / ${TK}u;
      let kk = e % ${TK}u;
#endif
      var a = 0.0;
      if (m0 + mm < P.M && k0 + kk < kEnd) { a = loadA(z, m0 + mm, k0 + kk); }
      As[kk * ${BM}u + mm] = a;
    }
    for (var e = li; e < ${BN * TK}u; e += ${NT}u) {
#if ${bByK}
      let nn = e / ${TK}u;
      let kk = e % ${TK}u;
#else
      let kk = e / ${BN}u;
      let nn = e % ${BN}u;
#endif
      var b = 0.0;
      if (k0 + kk < kEnd && n0 + nn < P.N) { b = loadB(z, k0 + kk, n0 + nn); }
      Bs[kk * ${BN}u + nn] = b;
    }
    workgroupBarrier();
    for (var k = 0u; k < ${TK}u; k++) {
${inner.join("\n")}
    }
    workgroupBarrier();
  }
  let m = m0 + tm;
  let n = n0 + tn;
${stores.join("\n")}
}
`,
  };
}

/** Workgroups for an M x N output with `z` slices (batch or split-K). */
export function gemmGrid(
  M: number,
  N: number,
  z: number,
  t: GemmTiling = WIDE_TILING,
): [number, number, number] {
  return [Math.ceil(N / (t.WN * t.TN)), Math.ceil(M / (t.WM * t.TM)), z];
}
