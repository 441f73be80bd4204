/**
 * The counter-based generator: Random123's known-answer vectors for Philox-4x32-10, GPU and
 * TypeScript streams identical bit for bit, moments of 1e5 normals and uniforms, independence of
 * streams and offsets, determinism, Bernoulli rates, binarisation against its mirror, and row-invariant
 * keys (every row draws what row 0 would).
 */

import assert from "node:assert/strict";
import { philox, philoxInputs } from "../kernels/philox.ts";
import {
  bernoulli,
  binarize,
  dequantize,
  normal,
  packBytes,
  randomBits,
  uniform,
} from "../kernels/random.ts";
import { read, readAll, tensor } from "../kernels/tensor.ts";
import { reparameterize } from "../autograd/ops.ts";
import { SIGMA_LOG2 } from "../kernels/distributions.ts";
import { gpuTest } from "./helpers.ts";

Deno.test("philox: Random123 known-answer vectors for philox4x32_10", () => {
  assert.deepEqual(philox([0, 0, 0, 0], [0, 0]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
  assert.deepEqual(
    philox([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]),
    [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
  );
  assert.deepEqual(
    philox([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
    [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
  );
});

gpuTest("philox: GPU blocks equal the TypeScript mirror bit for bit, across a 64-bit offset", async () => {
  for (
    const key of [{ seed: 1, stream: 0, offset: 0 }, { seed: 0xdeadbeef, stream: 7, offset: 2 ** 40 + 3 }]
  ) {
    const n = 5000;
    const gpu = (await readAll([randomBits([n], key)]))[0];
    for (let i = 0; i < n; i++) {
      const { counter, key: k } = philoxInputs(key, i);
      const expected = philox(counter, k);
      for (let w = 0; w < 4; w++) {
        if (gpu[4 * i + w] !== expected[w]) {
          throw new Error(
            `key ${JSON.stringify(key)} element ${i} word ${w}: GPU ${gpu[4 * i + w]} != TS ${expected[w]}`,
          );
        }
      }
    }
  }
});

function moments(xs: Float32Array): { mean: number; variance: number } {
  let s = 0, s2 = 0;
  for (const x of xs) {
    s += x;
    s2 += x * x;
  }
  const mean = s / xs.length;
  return { mean, variance: s2 / xs.length - mean * mean };
}

gpuTest("random: 1e5 normals and uniforms have the right moments; draws are deterministic", async () => {
  const n = 100_000;
  const key = { seed: 42, stream: 1, offset: 0 };
  const z = await read(normal([n], key));
  const { mean, variance } = moments(z);
  // Bounds: 5 standard errors. sd(mean) = 1/sqrt(n) = 0.0032; sd(variance) = sqrt(2/n) = 0.0045.
  assert.ok(Math.abs(mean) < 5 / Math.sqrt(n), `normal mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 5 * Math.sqrt(2 / n), `normal variance ${variance}`);
  assert.ok(z.every(Number.isFinite), "normals are finite");
  let beyond3 = 0;
  for (const v of z) if (Math.abs(v) > 3) beyond3++;
  assert.ok(Math.abs(beyond3 / n - 0.0027) < 0.001, `tail mass beyond 3 sigma: ${beyond3 / n}`);
  const u = await read(uniform([n], key));
  const mu = moments(u);
  assert.ok(Math.abs(mu.mean - 0.5) < 5 * Math.sqrt(1 / 12 / n), `uniform mean ${mu.mean}`);
  assert.ok(Math.abs(mu.variance - 1 / 12) < 0.002, `uniform variance ${mu.variance}`);
  assert.ok(u.every((v) => v >= 0 && v < 1), "uniforms in [0, 1)");
  assert.deepEqual(await read(normal([n], key)), z, "same key, same numbers");
});

gpuTest("random: different streams and offsets are uncorrelated", async () => {
  const n = 100_000;
  const base = await read(normal([n], { seed: 3, stream: 0, offset: 0 }));
  for (
    const other of [{ seed: 3, stream: 1, offset: 0 }, { seed: 3, stream: 0, offset: 1 }, {
      seed: 4,
      stream: 0,
      offset: 0,
    }]
  ) {
    const z = await read(normal([n], other));
    let dot = 0;
    for (let i = 0; i < n; i++) dot += base[i] * z[i];
    const correlation = dot / n;
    assert.ok(
      Math.abs(correlation) < 5 / Math.sqrt(n),
      `correlation with ${JSON.stringify(other)}: ${correlation}`,
    );
    assert.notDeepEqual(z.subarray(0, 10), base.subarray(0, 10));
  }
});

gpuTest("bernoulli: empirical rates match the probabilities", async () => {
  const n = 40_000;
  const probs = [0, 0.1, 0.5, 0.93, 1];
  const p = tensor(Float32Array.from({ length: n * probs.length }, (_, i) => probs[i % probs.length]));
  const draws = await read(bernoulli(p, { seed: 9, stream: 2, offset: 5 }));
  probs.forEach((q, k) => {
    let ones = 0;
    for (let i = k; i < draws.length; i += probs.length) ones += draws[i];
    const rate = ones / n;
    assert.ok(Math.abs(rate - q) <= 5 * Math.sqrt(q * (1 - q) / n), `p = ${q}: rate ${rate}`);
  });
});

gpuTest(
  "binarize: bytes -> Bernoulli(pixel/255) bits equal the mirror; per-image keys; fresh bits per offset",
  async () => {
    const rowBytes = 28 * 28, images = 6;
    const pixels = Uint8Array.from({ length: rowBytes * images }, (_, i) => (i * 37) % 256);
    const bytes = tensor(packBytes(pixels), undefined, "u32");
    const key = { seed: 11, stream: 3, offset: 0 };
    const rows = [4, 0, 4];
    const out = await read(binarize(bytes, tensor(Uint32Array.from(rows)), rowBytes, key));
    rows.forEach((image, r) => {
      for (let j = 0; j < rowBytes; j++) {
        const pixel = image * rowBytes + j;
        const { counter, key: k } = philoxInputs(key, pixel);
        const u24 = philox(counter, k)[0] >>> 8;
        const expected = u24 * 255 < pixels[pixel] * 2 ** 24 ? 1 : 0;
        if (out[r * rowBytes + j] !== expected) {
          throw new Error(`row ${r} pixel ${j}: ${out[r * rowBytes + j]} != ${expected}`);
        }
      }
    });
    // Image 4 appears twice in the batch: identical bits. 0 and 255 are certain.
    assert.deepEqual(out.subarray(0, rowBytes), out.subarray(2 * rowBytes));
    const fresh = await read(
      binarize(bytes, tensor(Uint32Array.from(rows)), rowBytes, { ...key, offset: 1 }),
    );
    assert.notDeepEqual(fresh.subarray(0, rowBytes), out.subarray(0, rowBytes));
    const extremes = tensor(packBytes(Uint8Array.from([0, 255, 0, 255])), undefined, "u32");
    assert.deepEqual(
      await read(binarize(extremes, tensor(Uint32Array.from([0])), 4, key)),
      Float32Array.from([0, 1, 0, 1]),
    );
  },
);

gpuTest("dequantize: bytes -> (pixel + u) / 256 with the binarisation's u, equal to the mirror", async () => {
  const rowBytes = 28 * 28, images = 3;
  const pixels = Uint8Array.from({ length: rowBytes * images }, (_, i) => (i * 41) % 256);
  const bytes = tensor(packBytes(pixels), undefined, "u32");
  const key = { seed: 12, stream: 3, offset: 2 };
  const rows = [2, 0];
  const out = await read(dequantize(bytes, tensor(Uint32Array.from(rows)), rowBytes, key));
  rows.forEach((image, r) => {
    for (let j = 0; j < rowBytes; j++) {
      const pixel = image * rowBytes + j;
      const { counter, key: k } = philoxInputs(key, pixel);
      const u = (philox(counter, k)[0] >>> 8) * 2 ** -24;
      const expected = Math.fround((pixels[pixel] + u) / 256);
      const got = out[r * rowBytes + j];
      // Each value lies in its pixel's bin [p / 256, (p + 1) / 256).
      if (Math.abs(got - expected) > 1e-7 || got < pixels[pixel] / 256 || got >= (pixels[pixel] + 1) / 256) {
        throw new Error(`row ${r} pixel ${j}: ${got} != ${expected}`);
      }
    }
  });
});

gpuTest(
  "row-invariant keys: every row draws row 0's numbers (bits, normals, binarisation, reparameterisation)",
  async () => {
    const key = { seed: 5, stream: 9, offset: 3, rowInvariant: true };
    const [rows, n] = [3, 10];
    const bits = (await readAll([randomBits([rows, n], key)]))[0];
    for (let i = 0; i < rows * n; i++) {
      const { counter, key: k } = philoxInputs(key, i, n);
      assert.equal(counter[0], i % n);
      assert.deepEqual(Array.from(bits.subarray(4 * i, 4 * i + 4)), philox(counter, k), `element ${i}`);
    }
    // Without the flag the rows differ (the test above would catch a key that ignores it).
    const plain = (await readAll([randomBits([rows, n], { ...key, rowInvariant: false })]))[0];
    assert.notDeepEqual(plain.subarray(0, 4 * n), plain.subarray(4 * n, 8 * n));
    // Binarisation: image 2 gets the same bits in any row and as image 0 of another set.
    const rowBytes = 20;
    const pixels = Uint8Array.from({ length: rowBytes * 3 }, (_, i) => (i * 53) % 256);
    pixels.copyWithin(2 * rowBytes, 0, rowBytes); // image 2 = image 0
    const bytes = tensor(packBytes(pixels), undefined, "u32");
    const out = await read(binarize(bytes, tensor(Uint32Array.from([1, 2, 0])), rowBytes, key));
    assert.deepEqual(out.subarray(rowBytes, 2 * rowBytes), out.subarray(2 * rowBytes));
    // Reparameterisation: identical rows of (mu, u) give identical samples in every row.
    const mu = tensor(Float32Array.from({ length: rows * n }, (_, i) => (i % n) / n), [rows, n]);
    const z = await read(reparameterize(mu, mu, key, SIGMA_LOG2));
    for (let r = 1; r < rows; r++) assert.deepEqual(z.subarray(r * n, (r + 1) * n), z.subarray(0, n));
    const zPlain = await read(reparameterize(mu, mu, { ...key, rowInvariant: false }, SIGMA_LOG2));
    assert.notDeepEqual(zPlain.subarray(n, 2 * n), zPlain.subarray(0, n));
  },
);
