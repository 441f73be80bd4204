/**
 * Faults, bad input and hostile files, tried on the command lines as a careless or hostile user
 * would (README, "When things go wrong"): every failure is a clear message and a clean exit, nothing
 * written before is lost, and every stopped run can go on with one documented command. Each case
 * runs the real CLI in a subprocess on the `tiny` preset.
 */

import assert from "node:assert/strict";
import { encodeIdx } from "../data/idx.ts";
import { decodeSafetensors, encodeSafetensors } from "../data/safetensors.ts";
import { encodePng } from "../data/png.ts";
import { type CommandResult, interruptAfter, permissionsOf, runTask } from "./commands.ts";
import { gpuTest } from "./helpers.ts";
import { syntheticPixels } from "./synthetic.ts";

type Result = CommandResult;
const task = (script: string, args: string[], o: { env?: Record<string, string> } = {}) =>
  runTask(script, args, o.env);

const TINY = ["--preset", "tiny", "--train-limit", "128", "--batch-size", "64", "--no-eval"];
const root = await Deno.makeTempDir({ prefix: "hvae-faults-" });
let base: Promise<string> | null = null;

/** A trained one-epoch `tiny` run, made once and copied by the tests that change it. */
function trainedRun(): Promise<string> {
  base ??= (async () => {
    const dir = `${root}/base`;
    const r = await task("train", [...TINY, "--out", dir]);
    assert.equal(r.code, 0, r.out + r.err);
    return dir;
  })();
  return base;
}

async function copyRun(name: string): Promise<string> {
  const src = await trainedRun(), dst = `${root}/${name}`;
  await Deno.mkdir(dst);
  for await (const e of Deno.readDir(src)) {
    if (e.isFile) await Deno.copyFile(`${src}/${e.name}`, `${dst}/${e.name}`);
  }
  return dst;
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);
const lines = async (path: string) =>
  (await Deno.readTextFile(path)).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
const both = (r: Result) => r.out + r.err;

gpuTest(
  "faults: flags are read from their parsed values; empty paths and huge seeds are usage errors",
  async () => {
    // --epochs=N (the '=' form) extends a resumed run exactly as --epochs N does.
    const run = await copyRun("equals");
    const r = await task("train", ["--resume", run, "--epochs=2", "--no-eval"]);
    assert.equal(r.code, 0, both(r));
    assert.deepEqual((await lines(`${run}/metrics.jsonl`)).map((l) => [l.epoch, l.step]), [[1, 2], [2, 4]]);
    assert.match((await task("train", ["--resume", run, "--epochs=2", "--no-eval"])).out, /nothing to train/);
    for (const flag of ["--resume", "--out", "--data-dir"]) {
      const empty = await task("train", [...TINY, flag, ""]);
      assert.equal(empty.code, 2, both(empty));
      assert.match(empty.err, new RegExp(`${flag} needs a path, got an empty string`));
    }
    // An unknown likelihood lists the choices; --components belongs to the mixture; the -oversmooth
    // presets are the Gaussian likelihood's.
    for (
      const [args, message] of [
        [
          ["--likelihood", "poisson"],
          /--likelihood must be one of bernoulli, gaussian, logistic-mixture, got 'poisson'/,
        ],
        [
          ["--likelihood", "bernoulli", "--components", "5"],
          /--components is for --likelihood logistic-mixture/,
        ],
        [["--likelihood", "logistic-mixture", "--components", "0"], /--components must be/],
        [
          ["--preset", "tiny-oversmooth", "--likelihood", "logistic-mixture"],
          /preset 'tiny-oversmooth' is the gaussian likelihood's/,
        ],
      ] as [string[], RegExp][]
    ) {
      const bad = await task("train", [...TINY, ...args, "--out", `${root}/bad`]);
      assert.equal(bad.code, 2, both(bad));
      assert.match(bad.err, message);
      assert.equal(await exists(`${root}/bad`), false);
    }
    const seed = await task("train", [...TINY, "--seed", String(2 ** 32), "--out", `${root}/seed`]);
    assert.equal(seed.code, 2);
    assert.match(seed.err, /--seed must be a non-negative integer up to 4294967295, got '4294967296'/);
    assert.equal(await exists(`${root}/seed`), false);
  },
);

gpuTest("faults: --resume refuses conflicting settings, lets --lr change and records it", async () => {
  const run = await copyRun("conflicts");
  for (
    const [flag, value] of [
      ["--loss", "elbo"],
      ["--preset", "small"],
      ["--batch-size", "32"],
      ["--seed", "7"],
      ["--likelihood", "gaussian"],
    ]
  ) {
    const r = await task("train", ["--resume", run, flag, value]);
    assert.equal(r.code, 2, both(r));
    assert.match(r.err, new RegExp(`${flag} ${value} conflicts with the run being resumed`));
  }
  const elsewhere = await task("train", ["--resume", run, "--out", `${root}/other`]);
  assert.equal(elsewhere.code, 2);
  assert.match(elsewhere.err, /a resumed run stays in its directory/);
  // The same value is no conflict; a new --lr wins from the resume on and is recorded.
  const r = await task("train", [
    "--resume",
    run,
    "--loss",
    "informative",
    "--lr",
    "1e-4",
    "--epochs",
    "2",
    "--no-eval",
  ]);
  assert.equal(r.code, 0, both(r));
  assert.match(r.out, /--lr 0.0001 replaces 0.0003 from step 2 on \(recorded in config.json\)/);
  const config = JSON.parse(await Deno.readTextFile(`${run}/config.json`));
  assert.equal(config.training.lr, 1e-4);
  assert.deepEqual(config.resumes.map((c: { step: number; lr: unknown }) => [c.step, c.lr]), [
    [2, { from: 3e-4, to: 1e-4 }],
  ]);
  assert.deepEqual((await lines(`${run}/metrics.jsonl`)).map((l) => l.lr), [3e-4, 1e-4]);
});

gpuTest(
  "faults: --out that is a file, unwritable, or holds someone else's files; runs never overwritten",
  async () => {
    await Deno.writeTextFile(`${root}/a-file`, "mine\n");
    const file = await task("train", [...TINY, "--out", `${root}/a-file`]);
    assert.equal(file.code, 1, both(file));
    assert.match(file.err, /a-file is a file, not a directory/);
    // A directory that cannot be created (its parent is a file; root may write anywhere else).
    const under = await task("train", [...TINY, "--out", `${root}/a-file/run`]);
    assert.equal(under.code, 1, both(under));
    assert.match(under.err, /cannot use .*a-file\/run \(Not a directory/);
    assert.doesNotMatch(both(under), /\n\s+at /, "no stack trace");
    const foreign = `${root}/foreign`;
    await Deno.mkdir(foreign);
    await Deno.writeTextFile(`${foreign}/model.safetensors`, "someone's model");
    await Deno.writeTextFile(`${foreign}/notes.txt`, "notes");
    const r = await task("train", [...TINY, "--out", foreign]);
    assert.equal(r.code, 1, both(r));
    assert.match(r.err, /foreign exists and holds files that are not a run \(model.safetensors, notes.txt\)/);
    assert.equal(await Deno.readTextFile(`${foreign}/model.safetensors`), "someone's model");
    assert.equal(await exists(`${foreign}/config.json`), false);
    const again = await task("train", [...TINY, "--out", await trainedRun()]);
    assert.equal(again.code, 1);
    assert.match(again.err, /already holds a run; continue it with --resume/);
  },
);

gpuTest("faults: a run stopped before its first checkpoint starts over with --resume", async () => {
  const base = await trainedRun();
  const early = `${root}/early`;
  await Deno.mkdir(early);
  await Deno.copyFile(`${base}/config.json`, `${early}/config.json`);
  const refused = await task("train", [...TINY, "--out", early]);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /stopped before its first checkpoint; --resume .*early starts it over/);
  const scored = await task("ood", ["--run", early]);
  assert.equal(scored.code, 1);
  assert.match(scored.err, /has no checkpoint yet .*--resume .*early' starts it over/);
  const r = await task("train", ["--resume", early, "--no-eval"]);
  assert.equal(r.code, 0, both(r));
  assert.match(r.out, /has no checkpoint yet .*: starting it over/);
  // The same seed and settings: the very model the uninterrupted run made.
  assert.deepEqual(
    await Deno.readFile(`${early}/model.safetensors`),
    await Deno.readFile(`${base}/model.safetensors`),
  );
  // A non-finite loss at step 2 leaves the same state; the advised command starts it over with a
  // lower learning rate, recorded.
  const diverged = `${root}/diverged`;
  const nan = await task("train", [...TINY, "--lr", "1e30", "--out", diverged]);
  assert.equal(nan.code, 1, both(nan));
  assert.match(
    nan.err,
    /non-finite loss at epoch 1, step 2 .*no checkpoint was written yet; start the run over with: deno task train --resume .*diverged --lr 1e\+29/,
  );
  const again = await task("train", ["--resume", diverged, "--lr", "3e-4", "--no-eval"]);
  assert.equal(again.code, 0, both(again));
  assert.equal(JSON.parse(await Deno.readTextFile(`${diverged}/config.json`)).resumes[0].lr.to, 3e-4);
});

gpuTest(
  "faults: a full disk while checkpointing is a plain message, no .tmp, metrics consistent",
  async () => {
    const mnt = `${root}/small-disk`;
    await Deno.mkdir(mnt);
    const mount = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt],
      stderr: "null",
    })
      .output().catch(() => ({ code: 1 }));
    if (mount.code !== 0) {
      console.warn(
        "faults: cannot mount a small tmpfs here (not root?); the full-disk case is tested on /dev/full",
      );
    }
    const run = `${mnt}/run`;
    try {
      if (mount.code === 0) {
        // 64 KiB holds config.json but not the checkpoint's two files.
        const full = await task("train", [...TINY, "--out", run]);
        assert.equal(full.code, 1, both(full));
        assert.match(
          full.err,
          /cannot write the checkpoint into .*No space left on device.*no checkpoint was written yet/,
        );
        assert.match(full.err, /start the run over with: deno task train --resume/);
        assert.doesNotMatch(full.err, /\n\s+at /, "no stack trace");
        const left = [];
        for await (const e of Deno.readDir(run)) left.push(e.name);
        assert.deepEqual(
          left.sort(),
          ["config.json"],
          "no .tmp, no metrics line without its checkpoint, no lock",
        );
        // Space freed: the documented command starts it over.
        await new Deno.Command("mount", { args: ["-o", "remount,size=8m", mnt] }).output();
        const resumed = await task("train", ["--resume", run, "--no-eval"]);
        assert.equal(resumed.code, 0, both(resumed));
        assert.deepEqual((await lines(`${run}/metrics.jsonl`)).map((l) => l.epoch), [1]);
      } else {
        const { saveCheckpoint } = await import("../store/checkpoint.ts");
        await Deno.mkdir(run);
        await Deno.symlink("/dev/full", `${run}/optimizer.safetensors.tmp`);
        await assert.rejects(
          saveCheckpoint(run, {}, { step: 0, m: {}, v: {} }, { epoch: 0, stepInEpoch: 0, step: 0 }),
          /cannot write the checkpoint into .*optimizer\.safetensors: No space left on device/,
        );
        assert.equal(await exists(`${run}/optimizer.safetensors.tmp`), false);
      }
    } finally {
      if (mount.code === 0) await new Deno.Command("umount", { args: [mnt] }).output();
    }
  },
);

gpuTest(
  "faults: a crash's leftovers: metrics lines past the checkpoint dropped, a half-renamed pair completed or refused",
  async () => {
    const base = await trainedRun();
    // A line no checkpoint holds (an older version wrote it before its checkpoint): dropped on resume.
    const run = await copyRun("truncate");
    const [first] = await lines(`${run}/metrics.jsonl`);
    await Deno.writeTextFile(`${run}/metrics.jsonl`, JSON.stringify({ ...first, epoch: 2, step: 4 }) + "\n", {
      append: true,
    });
    const r = await task("train", ["--resume", run, "--epochs", "2", "--no-eval"]);
    assert.equal(r.code, 0, both(r));
    assert.match(r.out, /dropped 1 line\(s\) of metrics.jsonl/);
    assert.deepEqual((await lines(`${run}/metrics.jsonl`)).map((l) => l.epoch), [1, 2]);
    // A crash between the two renames: the optimizer of step 4 with the model of step 2, and the
    // model of step 4 complete in its .tmp: the checkpoint is completed.
    const torn = await copyRun("torn");
    await Deno.copyFile(`${run}/optimizer.safetensors`, `${torn}/optimizer.safetensors`);
    await Deno.copyFile(`${run}/model.safetensors`, `${torn}/model.safetensors.tmp`);
    const healed = await task("train", ["--resume", torn, "--epochs", "2", "--no-eval"]);
    assert.equal(healed.code, 0, both(healed));
    assert.match(healed.out, /completed the checkpoint of step 4/);
    assert.deepEqual(
      await Deno.readFile(`${torn}/model.safetensors`),
      await Deno.readFile(`${run}/model.safetensors`),
    );
    // Without the .tmp, the pair is refused by name.
    const mixed = await copyRun("mixed");
    await Deno.copyFile(`${run}/optimizer.safetensors`, `${mixed}/optimizer.safetensors`);
    const refused = await task("train", ["--resume", mixed, "--epochs", "3", "--no-eval"]);
    assert.equal(refused.code, 1, both(refused));
    assert.match(refused.err, /model.safetensors is from step 2 but optimizer.safetensors from step 4/);
    assert.deepEqual(
      await Deno.readFile(`${mixed}/model.safetensors`),
      await Deno.readFile(`${base}/model.safetensors`),
    );
  },
);

gpuTest("faults: the run directory's lock: held, stale, and two trainings started at once", async () => {
  const run = await copyRun("locked");
  // A lock held by a running process (this test's): training and evaluation both refuse.
  const held = await Deno.open(`${run}/.lock`, { read: true, write: true, create: true });
  assert.ok(await held.tryLock(true));
  await held.write(new TextEncoder().encode(JSON.stringify({ pid: Deno.pid, tool: "test", since: "now" })));
  for (
    const [script, args] of [["train", ["--resume", run, "--epochs", "2"]], ["ood", ["--run", run]]] as const
  ) {
    const r = await task(script, [...args]);
    assert.equal(r.code, 1, both(r));
    assert.match(r.err, new RegExp(`locked is in use by test \\(process ${Deno.pid}, since now\\); wait`));
  }
  held.close();
  // A lock file whose process ended without releasing it (kill -9): the kernel dropped the lock;
  // the next command takes it over, with a word, and releases it at exit.
  await Deno.writeTextFile(`${run}/.lock`, JSON.stringify({ pid: 4242, tool: "deno task train" }));
  const r = await task("train", ["--resume", run, "--epochs", "2", "--no-eval"]);
  assert.equal(r.code, 0, both(r));
  assert.match(
    r.err,
    /took over the lock of process 4242 \(deno task train\), which ended without releasing it/,
  );
  assert.equal(await exists(`${run}/.lock`), false, "released at exit");
  // Two trainings on one new directory: one trains, the other is refused; metrics has one line.
  const out = `${root}/race`;
  const [a, b] = await Promise.all([
    task("train", [...TINY, "--out", out]),
    task("train", [...TINY, "--out", out]),
  ]);
  assert.deepEqual([a.code, b.code].sort(), [0, 1], both(a) + both(b));
  assert.match(both(a.code ? a : b), /is in use by deno task train|already holds a run/);
  assert.equal((await lines(`${out}/metrics.jsonl`)).length, 1);
});

gpuTest("faults: SIGTERM stops like Ctrl-C: the step finishes, a resumable checkpoint is saved", async () => {
  const out = `${root}/term`;
  const stopped = await interruptAfter(
    "train",
    ["--preset", "tiny", "--train-limit", "512", "--batch-size", "32", "--out", out],
    /step 1\/16/,
    "SIGTERM",
  );
  const seen = stopped.out;
  assert.equal(stopped.code, 130, seen);
  assert.match(seen, /SIGTERM: finishing this step, saving/);
  const meta = decodeSafetensors(await Deno.readFile(`${out}/optimizer.safetensors`)).metadata;
  assert.ok(Number(meta.step) >= 1 && Number(meta.step) < 16, JSON.stringify(meta));
  assert.equal(await exists(`${out}/.lock`), false);
});

gpuTest(
  "faults: data: a wrong --data-dir, images of another size, no images: errors before anything is written",
  async () => {
    const empty = `${root}/no-data`;
    await Deno.mkdir(empty);
    const missing = await task("train", [...TINY, "--data-dir", empty, "--out", `${root}/d1`]);
    assert.equal(missing.code, 1, both(missing));
    assert.match(missing.err, /--data-dir .*no-data does not hold the fashion-mnist train split/);
    assert.equal(await exists(`${root}/d1`), false);
    const wrong = `${root}/data32`;
    await Deno.mkdir(wrong);
    await Deno.writeFile(
      `${wrong}/train-images-idx3-ubyte`,
      encodeIdx([4, 32, 32], new Uint8Array(4 * 1024)),
    );
    await Deno.writeFile(`${wrong}/train-labels-idx1-ubyte`, encodeIdx([4], new Uint8Array(4)));
    const size = await task("train", [...TINY, "--data-dir", wrong, "--out", `${root}/d2`]);
    assert.equal(size.code, 1, both(size));
    assert.match(
      size.err,
      /fashion-mnist train \(from .*data32\): the images are 32x32; the model takes 28x28/,
    );
    assert.equal(await exists(`${root}/d2`), false);
    const none = `${root}/data0`;
    await Deno.mkdir(none);
    await Deno.writeFile(`${none}/train-images-idx3-ubyte`, encodeIdx([0, 28, 28], new Uint8Array(0)));
    await Deno.writeFile(`${none}/train-labels-idx1-ubyte`, encodeIdx([0], new Uint8Array(0)));
    const zero = await task("train", [...TINY, "--data-dir", none, "--out", `${root}/d3`]);
    assert.equal(zero.code, 1, both(zero));
    assert.match(zero.err, /the split holds no images/);
    assert.equal(await exists(`${root}/d3`), false);
    // The source of every split is said.
    const r = await task("ood", ["--run", await trainedRun(), "--limit", "8", "--eval-batch-size", "8"]);
    assert.equal(r.code, 0, both(r));
    assert.match(r.out, /^ood: Fashion-MNIST: \//m);
    assert.match(r.out, /^ood: MNIST: \//m);
  },
);

gpuTest(
  "faults: a batch too large for the device is the engine's message before any GPU work, no panic",
  async () => {
    const out = `${root}/huge`;
    const r = await task("train", [...TINY, "--train-limit", "20000", "--batch-size", "20000", "--out", out]);
    assert.equal(r.code, 1, both(r));
    assert.match(
      r.err,
      /a training step of 20000 images does not fit this device \(use a smaller --batch-size\)/,
    );
    assert.match(r.err, /more than this device binds/);
    assert.doesNotMatch(both(r), /panicked/);
    assert.equal(await exists(out), false);
    // Scoring: 50000 user images in one batch of 50000.
    await Deno.writeFile(`${root}/many.idx`, encodeIdx([50000, 28, 28], new Uint8Array(50000 * 784)));
    const scoring = await task("score", [
      ...["--run", await trainedRun(), "--input", `${root}/many.idx`],
      ...["--calibration-limit", "8", "--eval-batch-size", "50000"],
    ]);
    assert.equal(scoring.code, 1, both(scoring));
    assert.match(
      scoring.err,
      /scoring batches of 50000 images do not fit this device \(use a smaller --eval-batch-size\)/,
    );
    assert.doesNotMatch(both(scoring), /panicked/);
  },
);

gpuTest("faults: non-finite weights and scores are errors naming the run, never a verdict", async () => {
  const run = await copyRun("nan");
  const model = decodeSafetensors(await Deno.readFile(`${run}/model.safetensors`));
  for (const t of Object.values(model.tensors)) (t.data as Float32Array).fill(NaN);
  await Deno.writeFile(`${run}/model.safetensors`, encodeSafetensors(model.tensors, model.metadata));
  await Deno.writeFile(`${root}/blob.png`, await encodePng(syntheticPixels(1), 28, 28));
  const score = await task("score", ["--run", run, "--input", `${root}/blob.png`, "--json"]);
  assert.equal(score.code, 1, both(score));
  assert.match(score.err, /nan\/model.safetensors: '.*' holds \d+ non-finite values/);
  assert.equal(score.out, "", "no verdict");
  const ood = await task("ood", ["--run", run, "--limit", "8"]);
  assert.equal(ood.code, 1);
  assert.match(ood.err, /non-finite values/);
});

gpuTest("faults: a user image's score depends on the image, never on the other --input files", async () => {
  const run = await trainedRun();
  const pixels = syntheticPixels(3);
  await Deno.writeFile(`${root}/one.png`, await encodePng(pixels.subarray(0, 784), 28, 28));
  await Deno.writeFile(`${root}/blank.png`, await encodePng(new Uint8Array(784), 28, 28));
  await Deno.writeFile(`${root}/three.idx`, encodeIdx([3, 28, 28], pixels));
  const score = async (...inputs: string[]) => {
    const r = await task("score", [
      "--run",
      run,
      "--calibration-limit",
      "16",
      "--json",
      ...inputs.flatMap((i) => ["--input", `${root}/${i}`]),
    ]);
    assert.equal(r.code, 0, both(r));
    return r.out.trim().split("\n").map((l) => JSON.parse(l));
  };
  const [alone] = await score("one.png");
  const mixed = await score("blank.png", "three.idx", "one.png", "one.png");
  const byName = Object.fromEntries(mixed.map((l) => [l.image.slice(root.length + 1), l.value]));
  assert.equal(byName["one.png"], alone.value);
  assert.equal(mixed[4].value, mixed[5].value, "the same file twice");
  assert.equal(byName["three.idx#0"], alone.value, "the same pixels inside an IDX file");
  const [blankAlone] = await score("blank.png");
  assert.equal(byName["blank.png"], blankAlone.value);
});

gpuTest("faults: hostile files: safetensors headers, configs, huge PNGs, gzip bombs, devices", async () => {
  const header = (json: string) => {
    const body = new TextEncoder().encode(json);
    const out = new Uint8Array(8 + body.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(body.length), true);
    out.set(body, 8);
    return out;
  };
  for (
    const [json, message] of [
      ["null", /the header is not a JSON object/],
      ['{"w": {"dtype": "F32", "shape": [1]}}', /tensor 'w' has data_offsets undefined/],
      ['{"w": {"dtype": "F32", "shape": "4", "data_offsets": [0, 16]}}', /tensor 'w' has shape "4"/],
      [
        '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}',
        /tensor 'w' has data_offsets \[-4,0\]/,
      ],
      ['{"w": null}', /tensor 'w' is not an object/],
      ['{"__metadata__": {"a": 1}}', /__metadata__ must be an object of strings/],
    ] as const
  ) {
    assert.throws(
      () => decodeSafetensors(header(json), "evil.safetensors"),
      (e: Error) => e.message.startsWith("evil.safetensors: ") && message.test(e.message),
    );
  }

  const run = await copyRun("absurd");
  const config = JSON.parse(await Deno.readTextFile(`${run}/config.json`));
  config.model.channels = 1e9;
  await Deno.writeTextFile(`${run}/config.json`, JSON.stringify(config));
  const absurd = await task("ood", ["--run", run]);
  assert.equal(absurd.code, 1, both(absurd));
  assert.match(
    absurd.err,
    /absurd\/config.json: preset 'tiny': channels must be an integer in \[1, 1024\], got 1000000000/,
  );

  // A PNG whose header claims 20000x20000 pixels: refused on the header, before inflating.
  const big = await encodePng(new Uint8Array(4), 2, 2);
  const ihdr = new DataView(big.buffer, 16, 8);
  ihdr.setUint32(0, 20000);
  ihdr.setUint32(4, 20000);
  const { crc32 } = await import("../data/png.ts");
  new DataView(big.buffer).setUint32(29, crc32(big.subarray(12, 29)));
  await Deno.writeFile(`${root}/huge.png`, big);
  const trained = await trainedRun();
  const png = await task("score", ["--run", trained, "--input", `${root}/huge.png`]);
  assert.equal(png.code, 1, both(png));
  assert.match(png.err, /huge.png: the image is 20000x20000; the model takes 28x28/);
  const { decodePng } = await import("../data/png.ts");
  await assert.rejects(decodePng(big, "huge.png"), /a PNG of 20000x20000 pixels is refused/);

  // 64 MB of zeros gzipped to 64 KB behind a header announcing one image: stopped early.
  const bomb = new Uint8Array(64 * 2 ** 20);
  bomb.set(encodeIdx([1, 28, 28], new Uint8Array(0)));
  const gz = new Uint8Array(
    await new Response(new Blob([bomb]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
  );
  await Deno.writeFile(`${root}/bomb.idx.gz`, gz);
  const inflated = await task("score", ["--run", trained, "--input", `${root}/bomb.idx.gz`]);
  assert.equal(inflated.code, 1, both(inflated));
  assert.match(
    inflated.err,
    /bomb.idx.gz: the gzip data inflates past 800 bytes, more than its header announces/,
  );
  const zero = await task("score", ["--run", trained, "--input", "/dev/zero"]);
  assert.equal(zero.code, 1);
  assert.match(zero.err, /\/dev\/zero: not a regular file/);
  // A directory is searched for images; one without any is an error naming it.
  await Deno.mkdir(`${root}/no-images/sub`, { recursive: true });
  await Deno.writeTextFile(`${root}/no-images/sub/notes.txt`, "not an image");
  const dir = await task("score", ["--run", trained, "--input", `${root}/no-images`]);
  assert.equal(dir.code, 1, both(dir));
  assert.match(dir.err, /no-images: the directory holds no \.png or IDX image files/);
});

gpuTest("faults: an evaluation that cannot write leaves the previous one as it was", async () => {
  const run = await copyRun("eval");
  const args = ["--run", run, "--limit", "16", "--eval-batch-size", "8"];
  const first = await task("ood", args);
  assert.equal(first.code, 0, both(first));
  const before = await Deno.readFile(`${run}/roc-mnist.svg`);
  const report = await Deno.readTextFile(`${run}/ood.json`);
  // ood.json's temporary name taken by a directory: the last of the writes fails.
  await Deno.mkdir(`${run}/ood.json.tmp/blocker`, { recursive: true });
  const failed = await task("ood", [...args.slice(0, 2), "--limit", "24", "--eval-batch-size", "8"]);
  assert.equal(failed.code, 1, both(failed));
  assert.match(failed.err, /cannot write the evaluation into .*; its previous files are unchanged/);
  assert.deepEqual(await Deno.readFile(`${run}/roc-mnist.svg`), before);
  assert.equal(await Deno.readTextFile(`${run}/ood.json`), report);
  const tmps = [];
  for await (const e of Deno.readDir(run)) {
    if (e.name.endsWith(".tmp") && e.name !== "ood.json.tmp") tmps.push(e.name);
  }
  assert.deepEqual(tmps, []);
});

gpuTest(
  "faults: task permissions are narrow (score has no network); info names the backend, warns on OpenGL",
  async () => {
    // Every task() above ran with its task's permissions; score writes (its --csv) but never reaches
    // the network.
    assert.ok(!permissionsOf("score").some((f) => f.startsWith("--allow-net")));
    assert.ok(permissionsOf("ood").every((f) => f !== "--allow-net"), "ood reaches the dataset hosts only");
    const info = await task("info", []);
    assert.equal(info.code, 0, both(info));
    assert.equal(JSON.parse(info.out).backend, "Vulkan");
    const gl = await task("info", [], { env: { VK_ICD_FILENAMES: "/nonexistent.json" } });
    assert.equal(gl.code, 0, both(gl));
    assert.equal(JSON.parse(gl.out).backend, "OpenGL");
    assert.match(gl.err, /no Vulkan driver found .*apt-get install mesa-vulkan-drivers/);
  },
);

globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
