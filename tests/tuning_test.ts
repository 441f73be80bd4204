/**
 * Kernel tuning: the tuner picks a valid tuning from measured candidates, records the shapes a
 * workload runs, leaves the tuning in force as it was, and its pick computes the same convolutions
 * as the naive oracle (exact on integers); the per-adapter cache round-trips, keeps other adapters'
 * entries, and ignores corrupt files, invalid entries and unknown CPUs with a warning.
 */

import assert from "node:assert/strict";
import {
  convBackwardFilter,
  convBackwardInput,
  convForward,
  setConvImplementation,
} from "../kernels/conv.ts";
import { conv2dGeometry } from "../kernels/conv_geometry.ts";
import { recordConvShapes, tuneKernels } from "../kernels/tuner.ts";
import { defaultTuning, setTuning, type Tuning, tuning, validateTuning } from "../kernels/tuning_choices.ts";
import { read } from "../kernels/tensor.ts";
import { adapterInfo } from "../kernels/engine.ts";
import {
  type AdapterIdentity,
  loadCachedTuning,
  saveTuning,
  type TuningEntry,
} from "../store/tuning_cache.ts";
import { assertClose, createRng, gpuTest, randomNd, toTensor } from "./helpers.ts";

const identity = (cpu: string | null = "Test CPU family 1 model 2, avx2, 2 CPUs"): AdapterIdentity => ({
  description: "llvmpipe (LLVM 15.0.6, 256 bits)",
  vendor: "65541",
  architecture: "",
  software: true,
  cpu,
});

const entry = (id: AdapterIdentity, t: Tuning): TuningEntry => ({
  identity: id,
  tuning: t,
  createdAt: "2026-12-04T00:00:00.000Z",
  workload: "test",
});

Deno.test("tuning cache: round trip, one entry per adapter, other adapters kept", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/nested/tuning.json`;
  const warnings: string[] = [];
  const warn = (line: string) => warnings.push(line);
  const mine = { ...defaultTuning(true), directColumns: 64 };
  assert.equal((await loadCachedTuning(identity(), warn, path)).entry, null);
  await saveTuning(entry(identity(), mine), warn, path);
  const other = identity("Other CPU family 9 model 9, avx512f, 64 CPUs");
  await saveTuning(entry(other, defaultTuning(true)), warn, path);
  assert.deepEqual((await loadCachedTuning(identity(), warn, path)).entry?.tuning, mine);
  // A new tuning for the same adapter replaces its entry, and leaves the other adapter's alone.
  const again = { ...mine, direct: { ...mine.direct, pixels: 8 } };
  await saveTuning(entry(identity(), again), warn, path);
  const file = JSON.parse(await Deno.readTextFile(path));
  assert.equal(file.entries.length, 2);
  assert.deepEqual((await loadCachedTuning(identity(), warn, path)).entry?.tuning, again);
  assert.deepEqual((await loadCachedTuning(other, warn, path)).entry?.tuning, defaultTuning(true));
  // Another adapter with no entry: nothing, and the reason says so.
  const gpu = { ...identity(null), description: "NVIDIA H200", software: false };
  const missing = await loadCachedTuning(gpu, warn, path);
  assert.equal(missing.entry, null);
  assert.match(missing.why, /2 entries, none for this adapter/);
  assert.deepEqual(warnings, []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tuning cache: one entry per adapter and preset; an old entry counts for its workload's preset", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/tuning.json`;
  const warnings: string[] = [];
  const warn = (line: string) => warnings.push(line);
  const forSmall = { ...defaultTuning(true), directColumns: 32 };
  const forHavtorn = {
    ...defaultTuning(true),
    directColumns: 64,
    direct: { ...defaultTuning(true).direct, rows: 4 },
  };
  // Written before entries named their preset: it counts for the first word of its workload.
  await saveTuning({ ...entry(identity(), forSmall), workload: "small informative, batch 128" }, warn, path);
  await saveTuning(
    { ...entry(identity(), forHavtorn), preset: "havtorn3", createdAt: "2026-12-05T00:00:00.000Z" },
    warn,
    path,
  );
  assert.deepEqual((await loadCachedTuning(identity(), warn, path, "small")).entry?.tuning, forSmall);
  assert.deepEqual((await loadCachedTuning(identity(), warn, path, "havtorn3")).entry?.tuning, forHavtorn);
  // A preset never tuned here: nothing (the caller tunes it or keeps the defaults), and why.
  const none = await loadCachedTuning(identity(), warn, path, "paper5");
  assert.equal(none.entry, null);
  assert.match(none.why, /no tuning for paper5 on this adapter \(only for small, havtorn3\)/);
  // No preset asked: the adapter's newest entry.
  assert.deepEqual((await loadCachedTuning(identity(), warn, path)).entry?.tuning, forHavtorn);
  // Retuning one preset replaces only its own entry.
  const again = { ...forSmall, direct: { ...forSmall.direct, pixels: 4 } };
  await saveTuning({ ...entry(identity(), again), preset: "small" }, warn, path);
  assert.equal(JSON.parse(await Deno.readTextFile(path)).entries.length, 2);
  assert.deepEqual((await loadCachedTuning(identity(), warn, path, "small")).entry?.tuning, again);
  assert.deepEqual((await loadCachedTuning(identity(), warn, path, "havtorn3")).entry?.tuning, forHavtorn);
  assert.deepEqual(warnings, []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tuning cache: corrupt files and invalid entries are ignored with a warning, then rewritten", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/tuning.json`;
  const warnings: string[] = [];
  const warn = (line: string) => warnings.push(line);
  await Deno.writeTextFile(path, "{ not json");
  assert.equal((await loadCachedTuning(identity(), warn, path)).entry, null);
  assert.match(warnings.pop()!, /not valid JSON; ignored/);
  await Deno.writeTextFile(path, JSON.stringify({ version: 99, entries: [] }));
  assert.equal((await loadCachedTuning(identity(), warn, path)).entry, null);
  assert.match(warnings.pop()!, /not a version-1 tuning cache/);
  const broken = { ...defaultTuning(true), gemmWide: { WM: 8, WN: 8, TM: 8, TN: 6, TK: 16 } };
  await Deno.writeTextFile(path, JSON.stringify({ version: 1, entries: [entry(identity(), broken)] }));
  assert.equal((await loadCachedTuning(identity(), warn, path)).entry, null);
  assert.match(warnings.pop()!, /gemmWide must have .* TN \(a multiple of 4\).*that entry is ignored/);
  // Saving over a broken file leaves a valid one.
  await saveTuning(entry(identity(), defaultTuning(true)), () => {}, path);
  assert.deepEqual((await loadCachedTuning(identity(), warn, path)).entry?.tuning, defaultTuning(true));
  // A software adapter whose CPU is unknown could be any machine: no cached choice is trusted.
  const unknown = await loadCachedTuning(identity(null), warn, path);
  assert.equal(unknown.entry, null);
  assert.match(unknown.why, /CPU behind the software adapter is unknown/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tuning: setTuning refuses incomplete records and names the field", () => {
  assert.throws(
    () => setTuning({ ...defaultTuning(true), directColumns: 0 }),
    /setTuning: directColumns must be a positive integer/,
  );
  assert.throws(() => validateTuning({ gemmWide: {} }, "here"), /here: gemmWide must have/);
});

gpuTest(
  "tuner: records the shapes a workload runs, picks a valid tuning, restores the one in force",
  async () => {
    const rng = createRng(5);
    const int = { low: -2, high: 2, integer: true };
    const cases = [
      { x: [2, 6, 6, 8], w: [3, 3, 8, 8], options: { padding: 1 } },
      { x: [2, 8, 8, 4], w: [3, 3, 4, 40], options: { stride: 2, padding: "same" as const } },
    ].map((c) => {
      const x = toTensor(randomNd(rng, c.x, int)), w = toTensor(randomNd(rng, c.w, int));
      const g = conv2dGeometry(x.shape, w.shape, null, c.options);
      return { x, w, g, dy: toTensor(randomNd(rng, [g.B, g.oH, g.oW, g.Co], int)) };
    });
    const shapes = recordConvShapes(() => {
      for (const c of cases) {
        convForward(c.x, c.w, null, c.g);
        convForward(c.x, c.w, null, c.g);
        convBackwardInput(c.dy, c.w, null, c.g);
        convBackwardFilter(c.x, c.dy, c.g);
      }
    });
    assert.equal(shapes.length, 6);
    assert.deepEqual(shapes.map((s) => s.count), [2, 1, 1, 2, 1, 1]);

    const before = setTuning({ ...defaultTuning(true), directColumns: 16 });
    const inForce = tuning();
    const { tuning: picked, rows } = await tuneKernels(shapes, { reps: 1 });
    assert.deepEqual(tuning(), inForce, "the tuner left another tuning in force");
    setTuning(before);
    validateTuning(picked, "picked");
    const families = new Set(rows.map((r) => r.family));
    for (const family of families) {
      assert.equal(rows.filter((r) => r.family === family && r.chosen).length, 1, `${family}: one winner`);
    }
    assert.ok(
      families.has("direct fwd/dX pixels") && families.has("direct/GEMM split"),
      [...families].join(),
    );
    assert.ok(rows.every((r) => r.ms > 0));
    // On a CPU adapter the weight gradient's K split keeps its default: the tuner's batch cannot show it.
    if (adapterInfo().isFallbackAdapter) {
      assert.ok(!families.has("direct dW threads"), [...families].join());
      assert.equal(picked.direct.dwThreads, defaultTuning(true).direct.dwThreads);
    } else assert.ok(families.has("direct dW threads"), [...families].join());
    // The 40-column shapes split one way at 32 and another at every larger threshold: two candidates.
    assert.deepEqual(rows.filter((r) => r.family === "direct/GEMM split").map((r) => r.candidate), [
      "direct up to 32 channels",
      "direct up to 64 channels",
    ]);

    // The pick computes what the oracle computes, exactly.
    const expected = [];
    const previous = setConvImplementation("naive");
    for (const c of cases) {
      expected.push(
        await read(convForward(c.x, c.w, null, c.g)),
        await read(convBackwardInput(c.dy, c.w, null, c.g)),
        await read(convBackwardFilter(c.x, c.dy, c.g)),
      );
    }
    setConvImplementation(previous);
    const prior = setTuning(picked);
    try {
      let i = 0;
      for (const c of cases) {
        assertClose(await read(convForward(c.x, c.w, null, c.g)), expected[i++], { rtol: 0, atol: 0 }, "fwd");
        assertClose(
          await read(convBackwardInput(c.dy, c.w, null, c.g)),
          expected[i++],
          { rtol: 0, atol: 0 },
          "dx",
        );
        assertClose(
          await read(convBackwardFilter(c.x, c.dy, c.g)),
          expected[i++],
          { rtol: 0, atol: 0 },
          "dw",
        );
      }
    } finally {
      setTuning(prior);
    }
  },
);
