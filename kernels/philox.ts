/**
 * Philox-4x32-10, the counter-based generator of Salmon et al., "Parallel random numbers: as easy
 * as 1, 2, 3" (SC 2011; the Random123 library), in WGSL and in TypeScript, side by side.
 *
 * A draw is a pure function of (key, counter): no state to store, carry or upload. The engine keys
 * every random tensor by (seed, stream) and counts with (element index, 64-bit offset), so:
 *   - a run is reproducible from its seed, and a resumed run continues the same sequence;
 *   - a backward pass regenerates the noise of its forward pass instead of saving it;
 *   - the same image gets the same bits whatever batch it sits in (the index is the image's own).
 *
 * WGSL has no 64-bit integers, so the 32x32 -> 64-bit products are built from 16-bit halves; the
 * TypeScript mirror uses the very same arithmetic, so the two agree bit for bit (tests/random_test.ts
 * checks that, and the Random123 known-answer vectors).
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** WGSL: `philox(counter, key) -> vec4<u32>` and the float maps used by every random kernel. */
export const PHILOX_WGSL = /* wgsl */ `
// (hi, lo) of the 64-bit product a * b, from 16-bit halves.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
  let a0 = a & 0xffffu; let a1 = a >> 16u;
  let b0 = b & 0xffffu; let b1 = b >> 16u;
  let p00 = a0 * b0; let p01 = a0 * b1; let p10 = a1 * b0; let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
  return vec2<u32>(hi, a * b);
}
fn philox(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = counter;
  var k = key;
  for (var round = 0u; round < 10u; round++) {
    if (round > 0u) { k = k + vec2<u32>(${W0}u, ${W1}u); }
    let p0 = mulhilo(${M0}u, c.x);
    let p1 = mulhilo(${M1}u, c.z);
    c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
  }
  return c;
}
// Uniform in [0, 1) from the top 24 bits: exact in f32.
fn uniform01(bits: u32) -> f32 { return f32(bits >> 8u) * 5.9604644775390625e-8; }
// Standard normal by Box-Muller from two words (the first mapped to (0, 1], so log is finite).
fn boxMuller(w0: u32, w1: u32) -> f32 {
  let u1 = (f32(w0 >> 8u) + 1.0) * 5.9604644775390625e-8;
  let u2 = uniform01(w1);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
`;

/** (hi, lo) of the 64-bit product, computed exactly as the WGSL does. */
function mulhilo(a: number, b: number): [number, number] {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const hi = (p11 + (p01 >>> 16) + (p10 >>> 16) + Math.floor(mid / 65536)) >>> 0;
  return [hi, Math.imul(a, b) >>> 0];
}

/** Philox-4x32-10 of a 4-word counter under a 2-word key (the TypeScript mirror of the WGSL). */
export function philox(counter: readonly number[], key: readonly number[]): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter.map((x) => x >>> 0);
  let [k0, k1] = key.map((x) => x >>> 0);
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const [hi0, lo0] = mulhilo(M0, c0);
    const [hi1, lo1] = mulhilo(M1, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

/** Where a random tensor's numbers come from: key (seed, stream) and a 64-bit offset (e.g. the step). */
export interface RandomKey {
  /** The run's seed. */
  seed: number;
  /** Distinguishes independent uses under one seed (a layer, a purpose). */
  stream: number;
  /** Advances between draws (training step, epoch); an integer below 2^53. */
  offset: number;
  /**
   * Every row (index along the first axis) draws the numbers of row 0, so what a row draws does not
   * depend on its position in the batch: an image scored among others gets exactly what it would
   * get alone (`deno task score`). Off by default: then every element draws its own numbers.
   */
  rowInvariant?: boolean;
}

/**
 * The Philox counter and key of element `index` of a draw: counter (index, offsetLo, offsetHi, 0);
 * with `key.rowInvariant`, the index within its row of `rowSize` elements.
 */
export function philoxInputs(
  key: RandomKey,
  index: number,
  rowSize = 0,
): { counter: number[]; key: number[] } {
  const lo = key.offset % 4294967296;
  const hi = Math.floor(key.offset / 4294967296);
  return { counter: [key.rowInvariant ? index % rowSize : index, lo, hi, 0], key: [key.seed, key.stream] };
}

/** The uniforms every keyed kernel declares, with `keyUniforms`' values. */
export const KEY_UNIFORMS: [string, "u32"][] = [
  ["seed", "u32"],
  ["stream", "u32"],
  ["offLo", "u32"],
  ["offHi", "u32"],
  ["period", "u32"],
];

/**
 * The uniforms a random kernel needs for `key` (validated: integers in range); `rowSize` is the
 * number of elements per row of the drawn tensor (the period of a `rowInvariant` key).
 */
export function keyUniforms(key: RandomKey, op: string, rowSize = 1): Record<string, number> {
  const ok = (v: number, max: number) => Number.isInteger(v) && v >= 0 && v <= max;
  if (!ok(key.seed, 0xffffffff) || !ok(key.stream, 0xffffffff) || !ok(key.offset, Number.MAX_SAFE_INTEGER)) {
    throw new Error(
      `${op}: random key ${
        JSON.stringify(key)
      } needs seed and stream in [0, 2^32) and an integer offset >= 0`,
    );
  }
  if (key.rowInvariant && !(Number.isInteger(rowSize) && rowSize >= 1 && rowSize <= 0xffffffff)) {
    throw new Error(`${op}: a row-invariant key needs rows of at least one element, got ${rowSize}`);
  }
  return {
    seed: key.seed >>> 0,
    stream: key.stream >>> 0,
    offLo: key.offset % 4294967296,
    offHi: Math.floor(key.offset / 4294967296),
    period: key.rowInvariant ? rowSize : 0,
  };
}

/**
 * WGSL: the Philox block of element `i` under the kernel's key uniforms (seed, stream, offLo, offHi);
 * the row-invariant variant counts `i` modulo the row size (`period`).
 */
export function keyedBlockWgsl(rowInvariant: boolean): string {
  return /* wgsl */ `
fn keyedBlock(i: u32) -> vec4<u32> {
  return philox(vec4<u32>(${
    rowInvariant ? "i % P.period" : "i"
  }, P.offLo, P.offHi, 0u), vec2<u32>(P.seed, P.stream));
}`;
}
