/**
 * The hierarchical VAE and its training on the `tiny` preset: the informative loss against a naive
 * recomputation of its L terms with the same noise, both losses' gradients against directional
 * finite differences, free bits and warm-up, loss going down, checkpoints round-tripping exactly,
 * flat memory, and `deno task train` (its flags, --profile, Ctrl-C, --time-limit, --resume) as a
 * command. The library training loop has its own tests in training_test.ts.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { valueAndGrad } from "../autograd/tape.ts";
import { loadCheckpoint, saveCheckpoint } from "../store/checkpoint.ts";
import { readSafetensors } from "../store/checkpoint.ts";
import { engineStats } from "../kernels/engine.ts";
import { isTensor, keep, read, readAll, readScalar, scope, type Tensor } from "../kernels/tensor.ts";
import { flatten, type Tree } from "../kernels/tree.ts";
import { adamInit } from "../models/adam.ts";
import {
  encode,
  flattenParams,
  hvaeObjective,
  type HvaeParams,
  initHvae,
  initHvaeFromData,
  posteriorTopDown,
} from "../models/hvae.ts";
import { headOutput } from "../models/likelihood.ts";
import { unitScaleU } from "../kernels/distributions.ts";
import { presetConfig } from "../models/presets.ts";
import { createRng } from "../models/rng.ts";
import { priorStream } from "../models/streams.ts";
import { command, interruptAfter } from "./commands.ts";
import { assertClose, gpuTest, keysOf } from "./helpers.ts";
import { directionalCheck, trainingLosses } from "./gradient_check.ts";
import { syntheticBatch } from "./synthetic.ts";

const cfg = presetConfig("tiny");
const keyOf = keysOf(5, 3);

const batchOf = syntheticBatch;

gpuTest("hvae: the informative loss equals a naive recomputation of its L reconstructions", async () => {
  const params = initHvae(cfg, createRng(11));
  const x = batchOf(6);
  const o = hvaeObjective(params, cfg, x, { loss: "informative", beta: 1, freeBits: 0, keyOf });
  const metrics = await read(o.metrics);
  // metrics: [loss, elbo, kl1, kl2, kl3, ll0, ll1, ll2]
  const L = cfg.layers.length;
  // Naive: for each k, the full top-down pass from scratch, with the same keys for the same draws.
  const q = encode(params, cfg, x, keyOf);
  const decodeFrom = (l: number, z: Tensor): Tensor => {
    const layer = cfg.layers[l];
    const p = params.dec[`stage${l + 1}`];
    const act = (t: Tensor) => ops.mul(t, ops.sigmoid(t));
    const conv = (
      lp: { weight: Tensor; bias: Tensor },
      t: Tensor,
      stride = 1,
      pad: "same" | number = "same",
    ) => ops.conv2d(t, lp.weight, lp.bias, { stride, padding: pad });
    let h = layer.latent.kind === "conv"
      ? conv(p.proj!, z)
      : ops.reshape(ops.add(ops.matmul(z, p.proj!.weight), p.proj!.bias), [z.shape[0], 7, 7, cfg.channels]);
    layer.decoder.forEach((b, i) => {
      const bp = p[`block${i}`];
      const a = act(conv(bp.conv1, act(h)));
      if (b.kind === "res") h = ops.add(h, conv(bp.conv2, a));
      else {
        const up = ops.conv2dTranspose(a, bp.conv2.weight, bp.conv2.bias, {
          stride: 2,
          padding: [[1, 0], [1, 0]],
        });
        const [B, H, W, C] = h.shape;
        const nearest = ops.reshape(ops.broadcastTo(ops.reshape(h, [B, H, 1, W, 1, C]), [B, H, 2, W, 2, C]), [
          B,
          2 * H,
          2 * W,
          C,
        ]);
        h = ops.add(nearest, up);
      }
    });
    return h;
  };
  const headOf = (lp: { weight: Tensor; bias: Tensor }, l: number, d: Tensor) => {
    const a = ops.mul(d, ops.sigmoid(d));
    const latent = cfg.layers[l].latent;
    const raw = latent.kind === "conv"
      ? ops.conv2d(a, lp.weight, lp.bias, { padding: "same" })
      : ops.add(ops.matmul(ops.reshape(a, [a.shape[0], -1]), lp.weight), lp.bias);
    const n = latent.kind === "conv" ? latent.channels : latent.size;
    const last = raw.rank - 1;
    const end = [...raw.shape];
    end[last] = n;
    const begin = raw.shape.map((_, i) => i === last ? n : 0);
    return { mu: ops.slice(raw, raw.shape.map(() => 0), end), u: ops.slice(raw, begin) };
  };
  const llOf = (d: Tensor) => {
    const a = ops.mul(d, ops.sigmoid(d));
    const logits = ops.conv2d(a, params.out.weight, params.out.bias, { padding: "same" });
    return ops.mean(ops.sum(ops.bernoulliLogLik(logits, x), [1, 2, 3]));
  };
  const expected: number[] = [];
  for (let k = 0; k < L; k++) {
    let d = x;
    for (let l = L - 1; l >= k; l--) d = decodeFrom(l, q[l].z);
    for (let l = k - 1; l >= 0; l--) {
      const g = headOf(params.p[`z${l + 1}`], l, d);
      const z = ops.reparameterize(g.mu, g.u, keyOf(priorStream(k, l)), cfg.sigma);
      d = decodeFrom(l, z);
    }
    expected.push(await readScalar(llOf(d)));
  }
  assertClose(metrics.subarray(2 + L), expected, { rtol: 1e-5, atol: 1e-3 }, "ll_k against the naive passes");
  // The loss is -(mean_k ll_k - sum_l KL_l), the ELBO ll_0 - sum_l KL_l.
  const kl = metrics.subarray(2, 2 + L).reduce((a, b) => a + b, 0);
  assertClose(
    [metrics[0]],
    [-(expected.reduce((a, b) => a + b, 0) / L - kl)],
    { rtol: 1e-5, atol: 1e-3 },
    "loss",
  );
  assertClose([metrics[1]], [expected[0] - kl], { rtol: 1e-5, atol: 1e-3 }, "elbo");
  // The top layer's KL is against N(0, I): sigma(unitScaleU) = 1.
  assertClose(await read(ops.sigma(ops.full([1], unitScaleU(cfg.sigma)), cfg.sigma)), [1], {
    rtol: 1e-6,
    atol: 0,
  }, "unit scale");
});

gpuTest(
  "hvae: ELBO and informative loss gradients match finite differences (with free bits and beta)",
  async () => {
    await directionalCheck(cfg, "elbo", 0, 1);
    await directionalCheck(cfg, "informative", 0, 1);
    await directionalCheck(cfg, "elbo", 2, 0.5);
  },
);

gpuTest(
  "hvae: training steps lower the loss, keep memory flat, and checkpoints round-trip exactly",
  async () => {
    const params = keep(initHvae(cfg, createRng(19)));
    const adam = adamInit(params);
    const x = keep(batchOf(16));
    let inUse = -1;
    const losses = await trainingLosses(cfg, params, adam, x, {
      loss: "informative",
      lr: 3e-3,
      steps: 12,
      afterStep: (step) => {
        if (step === 1) inUse = engineStats().bytesInUse;
        if (step > 1) assert.equal(engineStats().bytesInUse, inUse, `memory grew at step ${step}`);
      },
    });
    assert.ok(losses[11] < losses[0] - 5, `loss ${losses[0]} -> ${losses[11]}`);
    const dir = await Deno.makeTempDir();
    await saveCheckpoint(dir, params, adam, { epoch: 3, stepInEpoch: 0, step: 12 });
    const fresh = keep(initHvae(cfg, createRng(99)));
    const loaded = await loadCheckpoint(dir, fresh, adamInit(fresh));
    assert.deepEqual(loaded.progress, { epoch: 3, stepInEpoch: 0, step: 12 });
    assert.equal(loaded.adam.step, 12);
    const leaves = (t: unknown) => flatten(t as Tree<Tensor>, isTensor).leaves;
    for (const [a, b] of [[params, loaded.params], [adam.m, loaded.adam.m], [adam.v, loaded.adam.v]]) {
      const [av, bv] = [await readAll(leaves(a)), await readAll(leaves(b))];
      av.forEach((v, i) => assert.deepEqual(bv[i], v));
    }
    const other = keep(initHvae(presetConfig("small"), createRng(1)));
    await assert.rejects(
      () => loadCheckpoint(dir, other, adamInit(other)),
      /model\.safetensors: '.*' has shape \[.*\], the model expects/,
    );
  },
);

gpuTest(
  "deno task train: flags, --profile, Ctrl-C and --time-limit save after a step, and the resumed run ends where an uninterrupted one does",
  async () => {
    const root = await Deno.makeTempDir();
    const common = [
      "--preset",
      "tiny",
      "--train-limit",
      "512",
      "--batch-size",
      "32",
      "--no-eval",
      "--epochs",
      "1",
    ];
    const run = (args: string[]) => command("train", args);
    // The uninterrupted run is also profiled: --profile must not change what is trained.
    const full = await run([...common, "--out", `${root}/full`, "--profile"]).output();
    const fullText = new TextDecoder().decode(full.stdout) + new TextDecoder().decode(full.stderr);
    assert.equal(full.code, 0, fullText);
    const profile = JSON.parse(await Deno.readTextFile(`${root}/full/profile.json`));
    assert.equal(profile.step, 1);
    assert.ok(profile.rows.some((r: { label: string }) => r.label === "conv2d-dw"), fullText);
    assert.match(fullText, /profile \((timestamp-query|submit-per-dispatch)\)/);
    const config = JSON.parse(await Deno.readTextFile(`${root}/full/config.json`));
    assert.equal(config.model.preset, "tiny");
    assert.equal(config.training.seed, 1);
    assert.ok(config.adapter.description);
    // Interrupt after the first progress line (step 1 of 16).
    const cut = await interruptAfter("train", [...common, "--out", `${root}/cut`], /step 1\/16/, "SIGINT");
    assert.equal(cut.code, 130, cut.out);
    const progress = (await readSafetensors(`${root}/cut/optimizer.safetensors`)).metadata;
    assert.ok(
      Number(progress.stepInEpoch) > 0 && Number(progress.stepInEpoch) < 16,
      JSON.stringify(progress),
    );
    const resumed = await run(["--resume", `${root}/cut`, "--no-eval"]).output();
    assert.equal(resumed.code, 0, new TextDecoder().decode(resumed.stderr));
    assert.deepEqual(
      await Deno.readFile(`${root}/cut/model.safetensors`),
      await Deno.readFile(`${root}/full/model.safetensors`),
    );
    // --time-limit: stops after the step that reaches it, saves a resumable checkpoint, still
    // evaluates what was trained; resumed, it ends where the uninterrupted run does.
    const timedArgs = [
      ...common.filter((a) => a !== "--no-eval"),
      "--eval-limit",
      "40",
      "--time-limit",
      "0.001s",
    ];
    const timed = await run([...timedArgs, "--out", `${root}/timed`]).output();
    const timedText = new TextDecoder().decode(timed.stdout);
    assert.equal(timed.code, 0, new TextDecoder().decode(timed.stderr));
    assert.match(timedText, /time limit 0m00s reached after 1 steps \(epoch 1, 1 of 16 steps\)/);
    assert.ok(await Deno.stat(`${root}/timed/ood.json`), "no evaluation after the time limit");
    const line = JSON.parse(await Deno.readTextFile(`${root}/timed/metrics.jsonl`));
    assert.equal(line.stoppedBy, "time limit");
    assert.equal(line.complete, false);
    const finished = await run(["--resume", `${root}/timed`, "--no-eval"]).output();
    assert.equal(finished.code, 0, new TextDecoder().decode(finished.stderr));
    assert.deepEqual(
      await Deno.readFile(`${root}/timed/model.safetensors`),
      await Deno.readFile(`${root}/full/model.safetensors`),
    );
    const bad = await run([...common, "--time-limit", "soon"]).output();
    assert.equal(bad.code, 2);
    assert.match(new TextDecoder().decode(bad.stderr), /--time-limit must be a positive duration/);
    // Bad flags: usage errors with exit code 2; an existing run is never overwritten.
    const code = async (args: string[]) => (await run(args).output()).code;
    assert.equal(await code(["--epochs", "zero"]), 2);
    assert.equal(await code(["--bogus"]), 2);
    const period = await run(["--free-bits-epochs", "-1"]).output();
    assert.equal(period.code, 2);
    assert.match(new TextDecoder().decode(period.stderr), /--free-bits-epochs/);
    const again = await run([...common, "--out", `${root}/full`]).output();
    assert.equal(again.code, 1);
    assert.match(new TextDecoder().decode(again.stderr), /already holds a run; continue it with --resume/);
  },
);

gpuTest(
  "havtorn3: the reference backbone's size and wiring; both losses give finite values and gradients",
  async () => {
    const h = presetConfig("havtorn3");
    const params = keep(initHvae(h, createRng(23)));
    const flat = flattenParams(params);
    // 2.59 M parameters including the weight-norm gains (docs/design.md section 1).
    assert.equal(flat.leaves.reduce((n, t) => n + t.size, 0), 2588898);
    // Skips reach decoder blocks 1 and 2 of the lower stages; block 0's would be same-size (inert).
    assert.deepEqual(
      flat.paths.filter((p) => p.endsWith("skip.weight")),
      [
        "dec.stage1.block1.skip.weight",
        "dec.stage1.block2.skip.weight",
        "dec.stage2.block1.skip.weight",
        "dec.stage2.block2.skip.weight",
      ],
    );
    const x = keep(batchOf(2));
    const q = scope(() => encode(params, h, x, keyOf).map((g) => g.z));
    assert.deepEqual(q.map((z) => z.shape), [[2, 14, 14, 8], [2, 16], [2, 8]]);
    for (const loss of ["elbo", "informative"] as const) {
      const { value, grads } = scope(() =>
        valueAndGrad((p: HvaeParams) => hvaeObjective(p, h, x, { loss, beta: 1, freeBits: 0, keyOf }).loss)(
          params,
        )
      );
      const v = await readScalar(value);
      assert.ok(Number.isFinite(v) && v > 100, `${loss}: loss ${v}`);
      const g = await readAll(flattenParams(grads).leaves);
      assert.ok(g.every((a) => a.every(Number.isFinite)), `${loss}: non-finite gradient`);
      assert.ok(
        g.filter((a) => a.some((v) => v !== 0)).length > 0.9 * g.length,
        `${loss}: most gradients are zero`,
      );
    }
  },
);

gpuTest(
  "havtorn presets: data-dependent weight-norm init over the whole model, in the order of the pass",
  async () => {
    const narrow = { ...presetConfig("havtorn3"), preset: "havtorn3-narrow", channels: 8 };
    const params = keep(initHvae(narrow, createRng(31)));
    const x = keep(batchOf(6));
    const gainsOf = () => flattenParams(params).paths.filter((p) => p.endsWith(".gain"));
    // deno-lint-ignore no-explicit-any
    const leaf = (path: string) => path.split(".").reduce((t: any, k) => t[k], params) as Tensor;
    const before = await readAll(gainsOf().map(leaf));
    const bytes = engineStats().bytesInUse;
    initHvaeFromData(params, narrow, x, keyOf);
    assert.equal(engineStats().bytesInUse, bytes, "old gains and biases released");
    const after = await readAll(gainsOf().map(leaf));
    after.forEach((g, i) =>
      assert.notDeepEqual(Array.from(g), Array.from(before[i]), `${gainsOf()[i]} unchanged`)
    );
    // The logits head came last: on the same batch and noise, the logits have zero mean and unit
    // variance, which holds only if every layer before it kept the initialisation it got in this pass.
    const logits = await read(scope(() => {
      const td = posteriorTopDown(params, narrow, encode(params, narrow, x, keyOf));
      return headOutput(params, narrow, td.stages[0][td.stages[0].length - 1]);
    }));
    const n = logits.length;
    const m = logits.reduce((a, v) => a + v, 0) / n;
    const variance = logits.reduce((a, v) => a + (v - m) ** 2, 0) / (n - 1);
    assert.ok(Math.abs(m) < 1e-3 && Math.abs(variance - 1) < 1e-2, `logits mean ${m}, variance ${variance}`);
    // A preset without weight norm is left alone.
    const plain = initHvae(cfg, createRng(31));
    const q = plain.q.z1.weight;
    assert.equal(initHvaeFromData(plain, cfg, x, keyOf).q.z1.weight, q);
  },
);

gpuTest(
  "hvae: small5, five latent layers at CPU scale, builds, validates and gives a finite objective",
  async () => {
    const cfg = presetConfig("small5");
    assert.deepEqual(
      cfg.layers.map((l) => l.latent.kind === "conv" ? `${l.latent.channels}ch` : l.latent.size),
      ["8ch", 24, 16, 8, 4],
    );
    const params = initHvae(cfg, createRng(1));
    const x = syntheticBatch(2);
    const { metrics } = hvaeObjective(params, cfg, x, {
      loss: "informative",
      beta: 1,
      freeBits: 0,
      keyOf: (stream) => ({ seed: 1, stream, offset: 0 }),
    });
    // [loss, elbo, KL_1..KL_5, ll_0..ll_4]
    const m = await read(metrics);
    assert.equal(m.length, 2 + 5 + 5);
    assert.ok(m.every(Number.isFinite), `finite metrics ${m}`);
  },
);
