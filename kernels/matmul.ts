/**
 * Batched matrix multiply C[b] = op(A[b]) @ op(B[b]) on the shared GEMM template (kernels/gemm.ts).
 *
 * `transA` / `transB` read A as [K, M] / B as [N, K] without materialising a transpose: the
 * backward pass of a matmul needs exactly these (dA = dC B^T, dB = A^T dC). Batch broadcasting:
 * a batch stride of 0 reuses one matrix across the batch; any other broadcast is materialised
 * first. Shapes are uniforms; the pipeline key is the transpose flags plus the tiling.
 */

import { gemmGrid, gemmSpec, type GemmTiling, tilingFor } from "./gemm.ts";
import { launch } from "./launch.ts";
import { gpu } from "./runtime/device.ts";
import { type KernelBody, type KernelSpec, memoSpec } from "./runtime/program.ts";
import { broadcastShapes, shapeString, sizeOf } from "./shape.ts";
import { emptyTensor, type Tensor } from "./tensor.ts";
import { broadcastTo } from "./movement.ts";

function matmulSpec(
  { transA, transB, ...tiling }: { transA: boolean; transB: boolean } & GemmTiling,
): KernelBody {
  return gemmSpec({
    uniforms: [["sA", "u32"], ["sB", "u32"]],
    inputs: [["A", "f32"], ["B", "f32"]],
    outputs: [["C", "f32"]],
    functions: `
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  return A[z * P.sA + ${transA ? "k * P.M + m" : "m * P.K + k"}];
}
fn loadB(z: u32, k: u32, n: u32) -> f32 {
  return B[z * P.sB + ${transB ? "n * P.K + k" : "k * P.N + n"}];
}
fn storeC(z: u32, m: u32, n: u32, v: f32) {
  C[(z * P.M + m) * P.N + n] = v;
}`,
    aContiguous: transA ? "m" : "k",
    bContiguous: transB ? "k" : "n",
    tiling,
  });
}

const spec = (transA: boolean, transB: boolean, t: GemmTiling): KernelSpec =>
  memoSpec("matmul", { transA, transB, ...t }, matmulSpec);

/** Options of `matmul`: transposed operands, and (for tests) the GEMM tile. */
export interface MatmulOptions {
  /** Read A as its last two axes swapped ([..., K, M]). */
  transA?: boolean;
  /** Read B as its last two axes swapped ([..., N, K]). */
  transB?: boolean;
  /** Tile configuration (benchmarks and tests); by default chosen from N (`tilingFor`). */
  tiling?: GemmTiling;
}

/**
 * C = op(A) @ op(B) over the last two axes, broadcasting leading (batch) axes.
 * A is [..., M, K] (or [..., K, M] with transA), B is [..., K, N] (or [..., N, K] with transB).
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const { transA = false, transB = false } = options;
  if (a.rank < 2 || b.rank < 2) {
    throw new Error(`matmul: operands need rank >= 2, got ${a} and ${b}`);
  }
  if (a.dtype !== "f32" || b.dtype !== "f32") {
    throw new Error(`matmul: expected f32 operands, got ${a} and ${b}`);
  }
  const [M, Ka] = transA
    ? [a.shape[a.rank - 1], a.shape[a.rank - 2]]
    : [a.shape[a.rank - 2], a.shape[a.rank - 1]];
  const [Kb, N] = transB
    ? [b.shape[b.rank - 1], b.shape[b.rank - 2]]
    : [b.shape[b.rank - 2], b.shape[b.rank - 1]];
  if (Ka !== Kb) {
    throw new Error(
      `matmul: inner dimensions differ: ${a}${transA ? "^T" : ""} @ ${b}${
        transB ? "^T" : ""
      } (K = ${Ka} vs ${Kb})`,
    );
  }
  const K = Ka;
  const tiling = options.tiling ?? tilingFor(N);
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const batch = broadcastShapes("matmul (batch axes)", batchA, batchB);
  const nBatch = sizeOf(batch);
  // Checked before anything is allocated: a throw must leave nothing behind.
  const workgroups = gemmGrid(M, N, nBatch, tiling);
  const limit = gpu().maxWorkgroupsPerDimension;
  if (workgroups.some((w) => w > limit)) {
    throw new Error(
      `matmul: ${a}${transA ? "^T" : ""} @ ${b}${transB ? "^T" : ""} needs ${
        workgroups.join(" x ")
      } workgroups ` +
        `(${shapeString(batch)} batch); this device allows ${limit} per dimension`,
    );
  }
  // Each operand's batch is either the full broadcast batch (stride one matrix) or a single matrix
  // (stride 0); other broadcasts are materialised first.
  const prepare = (x: Tensor, xBatch: readonly number[]): [Tensor, number] => {
    if (sizeOf(xBatch) === 1) return [x, 0];
    if (xBatch.length === batch.length && xBatch.every((d, i) => d === batch[i])) {
      return [x, x.shape[x.rank - 1] * x.shape[x.rank - 2]];
    }
    const full = broadcastTo(x, [...batch, ...x.shape.slice(-2)]);
    return [full, x.shape[x.rank - 1] * x.shape[x.rank - 2]];
  };
  const [ta, sA] = prepare(a, batchA);
  const [tb, sB] = prepare(b, batchB);
  const out = emptyTensor([...batch, M, N], "f32", "matmul");
  launch(
    spec(transA, transB, tiling),
    [ta, tb],
    [out],
    { M, N, K, kChunk: 0, sA, sB },
    workgroups,
    "matmul",
    2 * nBatch * M * N * K,
  );
  if (ta !== a) ta.dispose();
  if (tb !== b) tb.dispose();
  return out;
}
