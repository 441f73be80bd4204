/**
 * The public API's shape: mod.ts is curated (a few dozen values and the namespaces `ops`, `random`,
 * `nn`, `optim`; internals stay off it), leaves the test switches to the `./testing` entry
 * (testing.ts), and deno.json exports both as a publishable package. The README's library snippet
 * runs here exactly as printed. That every export is documented is checked by `deno doc --lint mod.ts
 * testing.ts`, which `deno task test` runs before the suite (in its own process: a test that spawned
 * it was followed by aborts of the test process at exit).
 */

import assert from "node:assert/strict";
import * as api from "../mod.ts";
import * as testing from "../testing.ts";
import { gpuTest } from "./helpers.ts";

Deno.test("api: test switches live in ./testing, not in mod.ts; one name per function", async () => {
  for (const name of ["setConvImplementation", "observeConvolutions", "philox", "setTuning"]) {
    assert.ok(!(name in api), `mod.ts exports the test switch ${name}`);
    assert.ok(name in testing, `testing.ts lacks ${name}`);
  }
  assert.ok(!("calibrateThreshold" in api), "calibrateThreshold duplicated thresholdAtFpr");
  const config = JSON.parse(await Deno.readTextFile("deno.json"));
  assert.deepEqual(config.exports, { ".": "./mod.ts", "./testing": "./testing.ts" });
  assert.match(config.tasks.test, /^deno doc --lint mod\.ts testing\.ts && deno publish --dry-run /);
  assert.ok(config.name && config.version && config.license, "a package: name, version, license");
});

Deno.test("api: mod.ts is curated: internals are not public, ops live in their namespace", () => {
  for (
    const internal of ["encoderStage", "priorHead", "restoreTree", "binarizedBatch", "sgdStep", "flatten"]
  ) {
    assert.ok(!(internal in api), `mod.ts exports the internal ${internal}`);
  }
  assert.equal(typeof api.ops.conv2d, "function");
  assert.equal(typeof api.nn.dense, "function");
  assert.equal(typeof api.optim.adamUpdate, "function");
  assert.equal(typeof api.random.normal, "function");
  assert.ok(!("conv2d" in api), "ops are reached through `ops`, not also at the top level");
  const values = Object.keys(api).length;
  assert.ok(values <= 80, `${values} values exported: curate them`);
});

gpuTest("api: the README's library snippet trains and scores as printed", async () => {
  const readme = await Deno.readTextFile("README.md");
  const block = readme.split("<!-- library-snippet -->")[1]?.match(/```ts\n([\s\S]*?)```/)?.[1];
  assert.ok(block, "README.md has the library snippet");
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", block],
    env: { HVAE_OOD_KERNELS: "default", NO_COLOR: "1" },
  }).output();
  const out = new TextDecoder().decode(run.stdout), err = new TextDecoder().decode(run.stderr);
  assert.equal(run.code, 0, out + err);
  assert.match(out, /^epoch 1: loss \d+/m);
  const auroc = Number(out.match(/AUROC, LLR\^ada: (\S+)/)?.[1]);
  assert.ok(auroc >= 0 && auroc <= 1, out);
});
