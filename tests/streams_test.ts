/**
 * The registry of random streams (models/streams.ts): no two purposes share a stream number, so no
 * two draw the same numbers, whatever the seeds and offsets.
 */

import assert from "node:assert/strict";
import {
  MAX_LAYERS,
  PASS_BASE,
  PASS_END,
  PASS_FIRST,
  posteriorStream,
  priorSampleKey,
  priorStream,
  scoringKeys,
  STREAM,
  TEST_BINARIZATION,
  topDownPosteriorStream,
  trainingBinarization,
  trainingKeys,
  weightNormInitKeys,
} from "../models/streams.ts";

/** Every stream number a purpose can use, for models of up to MAX_LAYERS layers. */
function streamsOf(): Map<string, Set<number>> {
  const pass: number[] = [];
  for (let l = 0; l < MAX_LAYERS; l++) {
    pass.push(posteriorStream(l), topDownPosteriorStream(l));
    for (let k = 0; k < MAX_LAYERS; k++) pass.push(priorStream(k, l));
  }
  const through = (keyOf: (s: number) => { stream: number }) => new Set(pass.map((s) => keyOf(s).stream));
  return new Map([
    ["training passes", through(trainingKeys(1, 7))],
    ["scoring passes", through(scoringKeys(1, 3, 2, 1))],
    ["weight-norm initialisation", through(weightNormInitKeys(1))],
    ["training binarisation", new Set([trainingBinarization(1, 5).stream])],
    ["test binarisation", new Set([TEST_BINARIZATION.stream])],
    [
      "prior samples",
      new Set(Array.from({ length: MAX_LAYERS }, (_, l) => priorSampleKey(1, l).stream)),
    ],
  ]);
}

Deno.test("random streams: no two purposes share a stream number", () => {
  const all = [...streamsOf()];
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      const shared = [...all[i][1]].filter((s) => all[j][1].has(s));
      assert.deepEqual(shared, [], `${all[i][0]} and ${all[j][0]} share streams ${shared}`);
    }
  }
});

Deno.test("random streams: a pass's own numbers are distinct and inside its span", () => {
  const seen = new Set<number>();
  for (let l = 0; l < MAX_LAYERS; l++) {
    for (
      const s of [
        posteriorStream(l),
        topDownPosteriorStream(l),
        ...Array.from({ length: MAX_LAYERS }, (_, k) => priorStream(k, l)),
      ]
    ) {
      assert.ok(s >= PASS_FIRST && s < PASS_END, `stream ${s} outside [${PASS_FIRST}, ${PASS_END})`);
      assert.ok(!seen.has(s), `stream ${s} used twice within a pass`);
      seen.add(s);
    }
  }
  const bases = Object.values(PASS_BASE);
  assert.equal(new Set(bases).size, bases.length, "two purposes share a pass base");
  assert.ok(Object.values(STREAM).every((s) => bases.every((b) => s < b + PASS_FIRST || s >= b + PASS_END)));
  assert.throws(() => posteriorStream(MAX_LAYERS), /outside/);
  assert.throws(() => priorStream(-1, 0), /outside/);
});

Deno.test("random streams: offsets carry the step, the epoch, the batch and pass", () => {
  assert.equal(trainingKeys(4, 17)(posteriorStream(0)).offset, 17);
  assert.equal(trainingBinarization(4, 3).offset, 3);
  assert.equal(scoringKeys(4, 5, 3, 2)(posteriorStream(0)).offset, 5 * 3 + 2);
  assert.equal(trainingKeys(4, 17)(posteriorStream(0)).seed, 4);
});
