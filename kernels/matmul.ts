/**
 * Batched matrix multiply C[b] = op(A[b]) @ op(B[b]), in two kernel families: the shared GEMM
 * template (kernels/gemm.ts) and a direct kernel (`matmulDirectSpec`, software adapters).
 *
 * `transA` / `transB` read A as [K, M] / B as [N, K] without materialising a transpose: the
 * backward pass of a matmul needs exactly these (dA = dC B^T, dB = A^T dC). Batch broadcasting:
 * a batch stride of 0 reuses one matrix across the batch; any other broadcast is materialised
 * first. Shapes are uniforms; the pipeline key is the transpose flags plus the tiling.
 */

import { gemmGrid, gemmSpec, type GemmTiling, tilingFor } from "./gemm.ts";
import { elementwiseGrid, elementwiseMain, launch } from "./launch.ts";
import { sumSlices } from "./reduce.ts";
import { gpu } from "./runtime/device.ts";
import { type KernelBody, type KernelSpec, memoSpec, type Variant } from "./runtime/program.ts";
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

/** Rows and columns of C per thread of the direct kernel. */
const DIRECT_BLOCK = 4;
/** Threads per workgroup of the direct kernel: small, so that a few hundred threads still reach both cores of a CPU. */
const DIRECT_WORKGROUP = 64;
/** The direct kernel splits K until about this many threads run (each K slice at least `MIN_SLICE` long). */
const DIRECT_THREADS = 1024;
const MIN_SLICE = 64;

/** A direct matmul variant: transposes, and whether K is taken 4 at a time with vec4 loads. */
interface DirectVariant extends Variant {
  transA: boolean;
  transB: boolean;
  /** K is a multiple of 4: each step takes 4 k, and A and B are read as vec4s along their contiguous axis. */
  vec4: boolean;
}

/**
 * The direct matmul: each thread sums a 4 x 4 block of C over one slice of K in registers, with no
 * workgroup memory and no barrier; with several slices it writes partial sums [batch, slices, M, N]
 * that a reduction adds up. Why: the dense layers of the models are skinny ([128 x 784] @ [784 x 32]
 * and its gradients), where the GEMM tile makes one or two workgroups that run the whole K loop on
 * one core of a CPU adapter, paying a workgroup barrier (a coroutine switch on llvmpipe) per K step.
 * With `vec4`, a step reads 4 k of each operand as 4 vec4s along the axis that is contiguous in
 * memory (k for a plain A, m for a transposed one; n for a plain B, k for a transposed one): a
 * quarter of the load instructions, which llvmpipe runs lane by lane (kernels/launch.ts).
 * Rows and columns past the edge read a clamped index and are not stored.
 */
function matmulDirectSpec({ transA, transB, vec4 }: DirectVariant): KernelBody {
  const T = DIRECT_BLOCK;
  const ix = Array.from({ length: T }, (_, r) => r);
  const lines = (f: (i: number) => string, sep = " ") => ix.map(f).join(sep);
  // a(r, j), b(j, c): the values of row r / column c at the step's j-th k.
  let loads: string, a: (r: number, j: number) => string, b: (j: number, c: number) => string;
  if (vec4) {
    // A4[v] is A's vec4 v; a plain A is read along k per row, a transposed A along m per k (4 | M).
    loads = (transA
      ? lines((j) =>
        `let va${j} = A[(aBase + (k + ${j}u) * P.M + mFirst) / 4u];`
      )
      : lines((r) => `let va${r} = A[(aBase + m${r} * P.K + k) / 4u];`)) +
      "\n    " +
      (transB
        ? lines((c) => `let vb${c} = B[(bBase + n${c} * P.K + k) / 4u];`)
        : lines((j) => `let vb${j} = B[(bBase + (k + ${j}u) * P.N + nFirst) / 4u];`));
    a = (r, j) => transA ? `va${j}[${r}]` : `va${r}[${j}]`;
    b = (j, c) => transB ? `vb${c}[${j}]` : `vb${j}[${c}]`;
  } else {
    loads = lines((r) =>
      `let va${r} = ${transA ? `A[aBase + k * P.M + m${r}]` : `A[aBase + m${r} * P.K + k]`};`
    ) +
      "\n    " +
      lines((c) => `let vb${c} = ${transB ? `B[bBase + n${c} * P.K + k]` : `B[bBase + k * P.N + n${c}]`};`);
    a = (r) => `va${r}`;
    b = (_, c) => `vb${c}`;
  }
  const steps = vec4 ? T : 1;
  const fmas = Array.from(
    { length: steps },
    (_, j) => lines((r) => lines((c) => `c${r}_${c} = fma(${a(r, j)}, ${b(j, c)}, c${r}_${c});`)),
    "\n    ",
  ).join(
    "\n    ",
  );
  // vec4 operands: a transposed A is read 4 rows at a time and a plain B 4 columns at a time, so
  // their blocks must not be clamped (4 | M, 4 | N hold there); elsewhere the clamp keeps loads in range.
  const vecType = vec4 ? "vec4<f32>" : "f32";
  return {
    uniforms: ["n", "M", "N", "K", "kChunk", "slices", "sA", "sB"].map((u) => [u, "u32"] as const),
    inputs: [["A", vecType], ["B", vecType]],
    outputs: [["C", "f32"]],
    body: `
${elementwiseMain(1, DIRECT_WORKGROUP)}
  let colBlocks = (P.N + ${T - 1}u) / ${T}u;
  let rowBlocks = (P.M + ${T - 1}u) / ${T}u;
  let nFirst = (i % colBlocks) * ${T}u;
  let mFirst = ((i / colBlocks) % rowBlocks) * ${T}u;
  let zs = i / (colBlocks * rowBlocks);
  let slice = zs % P.slices;
  let z = zs / P.slices;
  let aBase = z * P.sA;
  let bBase = z * P.sB;
  ${
      lines(
        (r) => `let m${r} = min(mFirst + ${r}u, P.M - 1u); let n${r} = min(nFirst + ${r}u, P.N - 1u);`,
        "\n  ",
      )
    }
  ${lines((r) => lines((c) => `var c${r}_${c} = 0.0;`), "\n  ")}
  let kEnd = min(P.K, (slice + 1u) * P.kChunk);
  for (var k = slice * P.kChunk; k < kEnd; k += ${steps}u) {
    ${loads}
    ${fmas}
  }
  let out = (zs * P.M + mFirst) * P.N + nFirst;
  ${
      lines((r) =>
        lines(
          (c) =>
            `if (mFirst + ${r}u < P.M && nFirst + ${c}u < P.N) { C[out + ${r}u * P.N + ${c}u] = c${r}_${c}; }`,
          "\n  ",
        ), "\n  ")
    }
}`,
  };
}

const directSpec = (variant: DirectVariant): KernelSpec =>
  memoSpec("matmul-direct", variant, matmulDirectSpec);

/** Which matmul kernel runs: the GEMM tile, or the direct kernel (see `matmulDirectSpec`). */
export type MatmulKernel = "gemm" | "direct";

/** Options of `matmul`: transposed operands, and (for tests) the GEMM tile. */
export interface MatmulOptions {
  /** Read A as its last two axes swapped ([..., K, M]). */
  transA?: boolean;
  /** Read B as its last two axes swapped ([..., N, K]). */
  transB?: boolean;
  /** Tile configuration (benchmarks and tests); by default chosen from N (`tilingFor`). */
  tiling?: GemmTiling;
  /** The kernel family (tests and benchmarks); by default the direct kernel on a CPU adapter, else the GEMM. */
  kernel?: MatmulKernel;
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
  const kernel = options.kernel ?? (options.tiling || !gpu().adapter.isFallbackAdapter ? "gemm" : "direct");
  let out: Tensor;
  if (kernel === "direct") {
    const blocks = nBatch * Math.ceil(M / DIRECT_BLOCK) * Math.ceil(N / DIRECT_BLOCK);
    const splits = Math.max(1, Math.min(Math.floor(K / MIN_SLICE), Math.ceil(DIRECT_THREADS / blocks)));
    // vec4: every operand's vec4s must start on a multiple of 4 (rows of K floats, batches of M x K or
    // K x N, slices of K, and the 4 rows / columns a transposed A / plain B reads at once).
    const vec4 = K % 4 === 0 && (!transA || M % 4 === 0) && (transB || N % 4 === 0);
    const step = vec4 ? 4 : 1;
    const kChunk = Math.max(step, Math.ceil(K / splits / step) * step);
    const slices = Math.max(1, Math.ceil(K / kChunk));
    const partial = emptyTensor(slices === 1 ? [...batch, M, N] : [nBatch, slices, M, N], "f32", "matmul");
    const threads = blocks * slices;
    launch(
      directSpec({ transA, transB, vec4 }),
      [ta, tb],
      [partial],
      { n: threads, M, N, K, kChunk, slices, sA, sB },
      elementwiseGrid(threads, 1, DIRECT_WORKGROUP),
      "matmul",
      2 * nBatch * M * N * K,
    );
    out = slices === 1 ? partial : sumSlices(partial, 1, [...batch, M, N]);
  } else {
    out = emptyTensor([...batch, M, N], "f32", "matmul");
    launch(
      spec(transA, transB, tiling),
      [ta, tb],
      [out],
      { M, N, K, kChunk: 0, sA, sB },
      workgroups,
      "matmul",
      2 * nBatch * M * N * K,
    );
  }
  if (ta !== a) ta.dispose();
  if (tb !== b) tb.dispose();
  return out;
}
