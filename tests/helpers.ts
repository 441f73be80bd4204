/**
 * Test helpers: GPU availability (tests skip loudly without an adapter), seeded random data,
 * closeness assertions that report the worst element, and `checkOp`, the one path every op test
 * goes through: forward against the float64 reference, and the gradient of a random projection of
 * the output against central finite differences of that reference.
 */

import { GpuUnavailableError, initGpu } from "../kernels/runtime/device.ts";
import { sync } from "../kernels/engine.ts";
import { read, scope, type Tensor, tensor } from "../kernels/tensor.ts";
import { mul, sum } from "../autograd/ops.ts";
import { valueAndGrad } from "../autograd/tape.ts";
import { createRng, type Rng } from "../models/rng.ts";
import type { RandomKey } from "../kernels/philox.ts";
import { type Nd, nd } from "./reference.ts";

/** Whether a WebGPU adapter exists here; without one, GPU tests are reported as ignored. */
export const GPU_OK: boolean = await initGpu().then(
  () => true,
  (error) => {
    if (!(error instanceof GpuUnavailableError)) throw error;
    console.warn(`\n*** GPU tests SKIPPED: ${error.message}\n`);
    return false;
  },
);

/**
 * Registers a test that needs the GPU. WebGPU keeps internal async ops alive, so the op sanitizer is
 * off. Each test ends with the GPU idle (`sync`), so no test's work runs into the next one and none
 * is still executing on the adapter's threads when the process exits (the test process was seen to
 * abort at exit, "corrupted size vs. prev_size", after every test had passed).
 */
export function gpuTest(name: string, fn: () => void | Promise<void>): void {
  Deno.test({
    name,
    ignore: !GPU_OK,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      let failed = true;
      try {
        await fn();
        failed = false;
      } finally {
        // After a failure, the test's own error is the one to report.
        await (failed ? sync().catch(() => {}) : sync());
      }
    },
  });
}

export { createRng, type Rng };

/** The random keys of one test file: stream `stream` of a fixed seed, at a fixed offset. */
export function keysOf(seed: number, offset: number): (stream: number) => RandomKey {
  return (stream) => ({ seed, stream, offset });
}

export interface RandomOptions {
  low?: number;
  high?: number;
  /** Integers in [low, high] (exact in f32, so index mistakes cannot hide in a tolerance). */
  integer?: boolean;
  /** Keep |x| >= this (away from kinks of abs/relu, and from 0 for log/div). */
  awayFromZero?: number;
}

/** A float64 array of `shape`, already rounded to float32 so GPU and reference see equal inputs. */
export function randomNd(rng: Rng, shape: readonly number[], options: RandomOptions = {}): Nd {
  const { low = -1, high = 1, integer = false, awayFromZero = 0 } = options;
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    let v: number;
    do {
      v = integer ? low + Math.floor(rng.uniform() * (high - low + 1)) : low + (high - low) * rng.uniform();
    } while (Math.abs(v) < awayFromZero);
    data[i] = Math.fround(v);
  }
  return nd(shape, data);
}

export function toTensor(x: Nd): Tensor {
  return tensor(Float32Array.from(x.data), x.shape);
}

export interface Tolerance {
  rtol: number;
  atol: number;
}

/**
 * Asserts |actual - expected| <= atol + rtol * |expected| elementwise, and equal shapes. The message
 * names the worst element.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
  label: string,
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length} != expected ${expected.length}`);
  }
  let worst = -1, worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a === e) continue; // equal infinities included
    const excess = Math.abs(a - e) - (tol.atol + tol.rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    throw new Error(
      `${label}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
        `(rtol ${tol.rtol}, atol ${tol.atol})`,
    );
  }
}

export function assertShape(t: Tensor, shape: readonly number[], label: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${label}: shape [${t.shape}] != expected [${shape}]`);
  }
}

export interface OpCase {
  name: string;
  inputs: Nd[];
  gpu: (...xs: Tensor[]) => Tensor;
  ref: (...xs: Nd[]) => Nd;
  /** Forward tolerance (default rtol 1e-5, atol 1e-6). */
  tol?: Tolerance;
  /** Gradient check: false to skip; tolerance defaults to rtol 1e-3, atol 1e-4 * max(max|grad|, 0.01). */
  grad?: false | Partial<Tolerance> & { wrt?: number[] };
}

/** Forward value against the reference; then gradients against central finite differences. */
export async function checkOp(c: OpCase, rng: Rng = createRng(7)): Promise<void> {
  const tol = c.tol ?? { rtol: 1e-5, atol: 1e-6 };
  const expected = c.ref(...c.inputs);
  const inputs = c.inputs.map(toTensor);
  try {
    const out = scope(() => c.gpu(...inputs));
    assertShape(out, expected.shape, `${c.name} forward shape`);
    assertClose(await read(out), expected.data, tol, `${c.name} forward`);
    out.dispose();
    if (c.grad === false) return;

    // L(x) = sum(op(x) * W) for a fixed random W: its gradient exercises every output element.
    const w = randomNd(rng, expected.shape, { low: -1, high: 1 });
    const wt = toTensor(w);
    const loss = (xs: Nd[]): number => {
      const y = c.ref(...xs);
      let s = 0;
      for (let i = 0; i < y.data.length; i++) s += y.data[i] * w.data[i];
      return s;
    };
    const { value, grads } = scope(() => valueAndGrad((ps: Tensor[]) => sum(mul(c.gpu(...ps), wt)))(inputs));
    value.dispose();
    const wrt = c.grad?.wrt ?? c.inputs.map((_, i) => i);
    for (const i of wrt) {
      const fd = new Float64Array(c.inputs[i].data.length);
      for (let j = 0; j < fd.length; j++) {
        const x = c.inputs[i].data[j];
        const h = 1e-6 * Math.max(1, Math.abs(x));
        const plus = c.inputs.map((t) => ({ shape: t.shape, data: t.data.slice() }));
        const minus = c.inputs.map((t) => ({ shape: t.shape, data: t.data.slice() }));
        plus[i].data[j] = x + h;
        minus[i].data[j] = x - h;
        fd[j] = (loss(plus) - loss(minus)) / (2 * h);
      }
      // atol relative to the gradient's scale, floored at 1e-6 for gradients that are exactly zero
      // (float32 rounding leaves ~1e-7 there).
      const scale = fd.reduce((m, v) => Math.max(m, Math.abs(v)), 0.01);
      const gtol = { rtol: c.grad?.rtol ?? 1e-3, atol: c.grad?.atol ?? 1e-4 * scale };
      assertClose(await read(grads[i]), fd, gtol, `${c.name} gradient wrt input ${i} vs finite differences`);
    }
    for (const g of grads) g.dispose();
    wt.dispose();
  } finally {
    for (const t of inputs) t.dispose();
  }
}
