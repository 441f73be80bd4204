/**
 * The public API's shape: mod.ts documents every export (`deno doc --lint` is clean) and leaves the
 * test switches to the `./testing` entry (testing.ts); deno.json exports both.
 */

import assert from "node:assert/strict";
import * as api from "../mod.ts";
import * as testing from "../testing.ts";

Deno.test("api: deno doc --lint finds nothing to fix in mod.ts and testing.ts", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--lint", "mod.ts", "testing.ts"],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
});

Deno.test("api: test switches live in ./testing, not in mod.ts; one name per function", async () => {
  for (const name of ["setConvImplementation", "observeConvolutions", "philox", "setTuning"]) {
    assert.ok(!(name in api), `mod.ts exports the test switch ${name}`);
    assert.ok(name in testing, `testing.ts lacks ${name}`);
  }
  assert.ok(!("calibrateThreshold" in api), "calibrateThreshold duplicated thresholdAtFpr");
  const config = JSON.parse(await Deno.readTextFile("deno.json"));
  assert.deepEqual(config.exports, { ".": "./mod.ts", "./testing": "./testing.ts" });
});
