/** Pure shape arithmetic, parameter trees, the pool's size classes and the CPU generator (no GPU needed). */

import assert from "node:assert/strict";
import {
  broadcastAxes,
  broadcastShapes,
  broadcastStrides,
  checkShape,
  normalizeAxes,
  stridesOf,
} from "../kernels/shape.ts";
import { flatten } from "../kernels/tree.ts";
import { sizeClass } from "../kernels/runtime/pool.ts";
import { createRng } from "../models/rng.ts";

Deno.test("shape: strides, broadcasting and its axes", () => {
  assert.deepEqual(stridesOf([2, 3, 4]), [12, 4, 1]);
  assert.deepEqual(stridesOf([]), []);
  assert.deepEqual(broadcastShapes("t", [3, 1, 5], [4, 1]), [3, 4, 5]);
  assert.deepEqual(broadcastShapes("t", [], [2, 2]), [2, 2]);
  assert.deepEqual(broadcastStrides([4, 1], [3, 4, 5]), [0, 1, 0]);
  assert.deepEqual(broadcastAxes([4, 1], [3, 4, 5]), [0, 2]);
  assert.deepEqual(broadcastAxes([3, 4, 5], [3, 4, 5]), []);
  assert.throws(
    () => broadcastShapes("add", [2, 3], [4, 3]),
    /add: shapes \[2, 3\] and \[4, 3\] cannot be broadcast \(axis 0\)/,
  );
});

Deno.test("shape: axes and shapes are validated with the op's name", () => {
  assert.deepEqual(normalizeAxes(undefined, 3, "sum"), [0, 1, 2]);
  assert.deepEqual(normalizeAxes([-1, 0], 3, "sum"), [0, 2]);
  assert.throws(() => normalizeAxes(3, 3, "sum"), /sum: axis 3 is out of range for rank 3/);
  assert.throws(
    () => checkShape([2, -1], "zeros"),
    /zeros: shape \[2,-1\] must be a list of non-negative integers/,
  );
  assert.throws(() => checkShape([1, 1, 1, 1, 1, 1, 1, 1, 1], "zeros"), /exceeds the maximum 8/);
});

Deno.test("tree: stable paths, rebuild with new leaves, clear errors on foreign values", () => {
  const isNum = (x: unknown): x is number => typeof x === "number";
  const tree = { b: [1, { c: 2 }], a: 3 };
  const flat = flatten(tree, isNum);
  assert.deepEqual(flat.paths, ["a", "b.0", "b.1.c"]);
  assert.deepEqual(flat.leaves, [3, 1, 2]);
  assert.deepEqual(flat.rebuild(flat.leaves.map((x) => x * 10)), { a: 30, b: [10, { c: 20 }] });
  assert.throws(() => flat.rebuild([1]), /1 leaves given for a tree of 3/);
  assert.throws(() => flatten({ a: "x" } as never, isNum), /unexpected string at 'a'/);
});

Deno.test("pool size classes: 256 B steps below 64 KiB, at most 12.5% waste above", () => {
  assert.equal(sizeClass(1), 256);
  assert.equal(sizeClass(257), 512);
  assert.equal(sizeClass(65536), 65536);
  for (const bytes of [65537, 100_000, 3_000_000, 123_456_789]) {
    const c = sizeClass(bytes);
    assert.ok(c >= bytes && c <= bytes * 1.125 + 1, `${bytes} -> ${c}`);
  }
});

Deno.test("cpu rng: seeded, reproducible, sane moments", () => {
  const a = createRng(42), b = createRng(42), c = createRng(43);
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b.nextU32()));
  assert.notDeepEqual(xs, Array.from({ length: 5 }, () => c.nextU32()));
  const r = createRng(7);
  const n = 100_000;
  let s = 0, s2 = 0;
  for (let i = 0; i < n; i++) {
    const z = r.normal();
    s += z;
    s2 += z * z;
  }
  // 5 standard errors: |mean| < 5 / sqrt(n); variance within 2%.
  assert.ok(Math.abs(s / n) < 5 / Math.sqrt(n), `mean ${s / n}`);
  assert.ok(Math.abs(s2 / n - 1) < 0.02, `variance ${s2 / n}`);
});
