/**
 * The public API's shape: mod.ts leaves the test switches to the `./testing` entry (testing.ts), and
 * deno.json exports both. That every export is documented is checked by `deno doc --lint mod.ts
 * testing.ts`, which `deno task test` runs before the suite (in its own process: a test that spawned
 * it was followed by aborts of the test process at exit).
 */

import assert from "node:assert/strict";
import * as api from "../mod.ts";
import * as testing from "../testing.ts";

Deno.test("api: test switches live in ./testing, not in mod.ts; one name per function", async () => {
  for (const name of ["setConvImplementation", "observeConvolutions", "philox", "setTuning"]) {
    assert.ok(!(name in api), `mod.ts exports the test switch ${name}`);
    assert.ok(name in testing, `testing.ts lacks ${name}`);
  }
  assert.ok(!("calibrateThreshold" in api), "calibrateThreshold duplicated thresholdAtFpr");
  const config = JSON.parse(await Deno.readTextFile("deno.json"));
  assert.deepEqual(config.exports, { ".": "./mod.ts", "./testing": "./testing.ts" });
  assert.match(config.tasks.test, /^deno doc --lint mod\.ts testing\.ts && /);
});
