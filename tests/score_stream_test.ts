/**
 * `deno task score` as a data-quality gate, run as a user runs it (a subprocess with the task's own
 * permissions, tests/commands.ts): memory that does not grow with the input (a gzip announcing 1.3
 * million images, RSS read from /proc while it streams), results before the end, SIGTERM ending after
 * a batch with whole rows, `--resume` finishing a killed run into a file identical to an
 * uninterrupted one, the gate's exit statuses, `--csv` that never overwrites unless asked, and
 * `deno task ood --ood DIR` scoring a directory as `score` does, image for image.
 */

import assert from "node:assert/strict";
import { loadSplit } from "../data/datasets.ts";
import { encodeIdx } from "../data/idx.ts";
import { encodePng } from "../data/png.ts";
import { csvFields } from "../eval/verdict_csv.ts";
import { command, interruptAfter, runTask } from "./commands.ts";
import { gpuTest } from "./helpers.ts";

const root = await Deno.makeTempDir();
const both = (r: { out: string; err: string }) => r.out + r.err;
let trained: Promise<string> | null = null;

/** A `tiny` run trained on 128 images (shared by the tests of this file). */
function run(): Promise<string> {
  trained ??= (async () => {
    const dir = `${root}/run`;
    const r = await runTask("train", [
      ...["--preset", "tiny", "--train-limit", "128", "--batch-size", "64", "--no-eval", "--out", dir],
    ]);
    assert.equal(r.code, 0, both(r));
    return dir;
  })();
  return trained;
}

/** The first `n` Fashion-MNIST test images (the in-distribution set: some fall either side of a threshold). */
async function fashion(n: number): Promise<Uint8Array> {
  return (await loadSplit("fashion-mnist", "test")).images.data.slice(0, n * 784);
}

/**
 * A line of /proc/<pid>/status in bytes (VmRSS: resident now, VmHWM: the peak so far), read by `cat`
 * (Deno grants /proc only with every permission; the test task may run commands).
 */
async function procBytes(pid: number, key: string): Promise<number> {
  const read = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stdout: "piped" }).output();
  const status = new TextDecoder().decode(read.stdout);
  const kb = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
  assert.ok(kb, `/proc/${pid}/status has ${key}`);
  return Number(kb[1]) * 1024;
}

gpuTest(
  "score: a 1.3-million-image gzip streams in flat memory, results first, SIGTERM after a batch",
  async () => {
    // 1 GB of zeros behind a header announcing 1.3 million 28x28 images, gzipped to about 1 MB.
    const count = 1_300_000, inflated = 16 + count * 784;
    const path = `${root}/bomb.idx.gz`;
    let sent = 0;
    const zeros = new Uint8Array(1 << 20);
    const body = new ReadableStream<BufferSource>({
      start: (c) => c.enqueue(encodeIdx([count, 28, 28], new Uint8Array(0)) as Uint8Array<ArrayBuffer>),
      pull: (c) => {
        const n = Math.min(zeros.length, count * 784 - sent);
        if (n === 0) return c.close();
        sent += n;
        c.enqueue(zeros.subarray(0, n));
      },
    });
    const file = await Deno.open(path, { write: true, create: true });
    await body.pipeThrough(new CompressionStream("gzip")).pipeTo(file.writable);
    const batch = 250;
    const child = command("score", [
      ...["--run", await run(), "--input", path, "--json"],
      ...["--calibration-limit", "16", "--eval-batch-size", String(batch)],
    ]).spawn();
    const errText = new Response(child.stderr).text();
    // Holding the input would pass its inflated size before printing anything: stop it there.
    let grew = 0;
    const watch = setInterval(async () => {
      const rss = await procBytes(child.pid, "VmRSS").catch(() => 0);
      if (rss > inflated && !grew) [grew] = [rss, child.kill("SIGKILL")];
    }, 500);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "", lines = 0, afterFirst = 0, peak = 0;
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
      lines = out.split("\n").length - 1;
      // Results before the end: the first batch's lines while 1.3 million images remain.
      if (!afterFirst && lines >= batch) afterFirst = await procBytes(child.pid, "VmRSS");
      if (!peak && lines >= 40 * batch) {
        peak = await procBytes(child.pid, "VmHWM");
        child.kill("SIGTERM");
      }
    }
    const status = await child.status;
    clearInterval(watch);
    const err = await errText;
    assert.equal(grew, 0, `RSS reached ${grew} bytes, more than the input inflates to: it was held whole`);
    assert.equal(status.code, 143, err);
    assert.match(err, /score: SIGTERM: stopping after the current batch/);
    assert.match(err, new RegExp(`score: ${lines} of ${count} image\\(s\\) scored`));
    // Whole batches, every line a whole JSON object, in order.
    assert.equal(lines % batch, 0);
    const parsed = out.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(parsed.map((p) => p.image), parsed.map((_, i) => `${path}#${i}`));
    // Memory: 39 more batches (9750 images) cost less than 96 MB more than the first, and the peak
    // stays far below the 1 GB the file inflates to (holding it, as before, peaked at 2.2 GB).
    assert.ok(peak - afterFirst < 96 * 2 ** 20, `RSS ${afterFirst} after one batch, peak ${peak} after 40`);
    assert.ok(peak < inflated, `peak RSS ${peak} >= the input's ${inflated} bytes`);
  },
);

gpuTest(
  "score: the gate's exit statuses (0 passed, 1 failed, 2 an error) and a summary on stderr",
  async () => {
    const input = `${root}/fashion64.idx`;
    await Deno.writeFile(input, encodeIdx([64, 28, 28], await fashion(64)));
    const base = [
      "--run",
      await run(),
      "--input",
      input,
      "--calibration-limit",
      "64",
      "--fpr",
      "0.5",
      "--json",
    ];
    const plain = await runTask("score", base);
    assert.equal(plain.code, 0, both(plain));
    const verdicts = plain.out.trim().split("\n").map((l) => JSON.parse(l).ood as boolean);
    assert.equal(verdicts.length, 64, "stdout holds the results only");
    const flagged = verdicts.filter(Boolean).length;
    assert.ok(flagged > 0 && flagged < 64, `${flagged} of 64 in-distribution images flagged at fpr 0.5`);
    assert.match(plain.err, new RegExp(`${flagged} flagged OOD`));
    const gated = async (flags: string[], code: number, summary: RegExp) => {
      const r = await runTask("score", [...base, ...flags]);
      assert.equal(r.code, code, `${flags.join(" ")}: ${both(r)}`);
      assert.match(r.err, summary);
    };
    await gated(["--fail-on-ood"], 1, new RegExp(`gate FAILED: ${flagged} of 64 image\\(s\\) flagged OOD`));
    await gated(["--max-ood-fraction", String(flagged / 64)], 0, /gate passed/);
    await gated(["--max-ood-fraction", String((flagged - 1) / 64)], 1, /gate FAILED/);
    await gated(["--max-ood-fraction", "1"], 0, /gate passed/);
    await gated(["--max-ood-fraction", "1.5"], 2, /--max-ood-fraction must be at most 1/);
    // An error is not a verdict: 2 with a gate (a pipeline tells it from foreign data), 1 without.
    const missing = ["--run", await run(), "--input", `${root}/nothing.png`];
    await gated([...missing.slice(2), "--fail-on-ood"], 2, /nothing\.png: cannot read/);
    const ungated = await runTask("score", missing);
    assert.equal(ungated.code, 1, both(ungated));
  },
);

gpuTest(
  "score: a killed run leaves whole rows; --resume finishes them as if uninterrupted; --csv never overwrites",
  async () => {
    // 1001 images: an IDX file, a PNG in a subdirectory and a gzipped IDX file, found in name order.
    const dir = `${root}/screen`;
    await Deno.mkdir(`${dir}/b`, { recursive: true });
    const pixels = await fashion(1001);
    await Deno.writeFile(`${dir}/a.idx`, encodeIdx([600, 28, 28], pixels.subarray(0, 600 * 784)));
    await Deno.writeFile(`${dir}/b/c.png`, await encodePng(pixels.subarray(600 * 784, 601 * 784), 28, 28));
    const gz = new Blob([encodeIdx([400, 28, 28], pixels.subarray(601 * 784)) as Uint8Array<ArrayBuffer>]);
    await Deno.writeFile(
      `${dir}/d.idx.gz`,
      new Uint8Array(
        await new Response(gz.stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
      ),
    );
    const model = await run();
    const args = (csv: string, ...more: string[]) => [
      ...["--run", model, "--input", dir, "--csv", csv, "--calibration-limit", "64"],
      ...["--fpr", "0.5", "--eval-batch-size", "25", ...more],
    ];
    const full = `${root}/full.csv`;
    const whole = await runTask("score", args(full));
    assert.equal(whole.code, 0, both(whole));
    assert.equal(whole.out, "", "with --csv, nothing on stdout unless --json");
    const expected = await Deno.readTextFile(full);
    const rows = expected.trim().split("\n");
    assert.equal(rows.length, 1 + 1001);
    assert.equal(csvFields(rows[601])[0], `${dir}/b/c.png`);
    assert.equal(csvFields(rows[602])[0], `${dir}/d.idx.gz#0`);

    // An existing file is never replaced unless asked.
    const again = await runTask("score", args(full));
    assert.equal(again.code, 2);
    assert.match(again.err, /full\.csv exists; --resume continues it, --overwrite replaces it/);
    assert.equal(await Deno.readTextFile(full), expected);

    // SIGTERM once the first results are out: whole rows, a prefix of the uninterrupted file.
    const part = `${root}/part.csv`;
    const stopped = await interruptAfter("score", args(part, "--json"), /\n/, "SIGTERM");
    assert.equal(stopped.code, 143);
    const partial = await Deno.readTextFile(part);
    const done = partial.split("\n").length - 2;
    assert.ok(partial.endsWith("\n") && expected.startsWith(partial), "whole rows of the same results");
    assert.ok(done >= 25 && done < 1001 && done % 25 === 0, `${done} rows`);
    // A kill in the middle of a write (SIGKILL) leaves half a row: --resume drops it, then continues.
    await Deno.writeTextFile(part, expected.slice(partial.length, partial.length + 40), { append: true });
    const resumed = await runTask("score", args(part, "--resume", "--json"));
    assert.equal(resumed.code, 0, both(resumed));
    assert.match(resumed.err, /dropped a partial last row/);
    assert.match(resumed.err, new RegExp(`resuming after ${done} whole row\\(s\\)`));
    assert.equal(resumed.out.trim().split("\n").length, 1001 - done, "only the remaining images");
    assert.equal(await Deno.readTextFile(part), expected, "resumed = uninterrupted, byte for byte");
    // Resuming under another calibration is refused; --overwrite starts over.
    const other = await runTask("score", [...args(part, "--resume"), "--fpr", "0.2"]);
    assert.equal(other.code, 1);
    assert.match(other.err, /its rows were judged against threshold .*resume with the same command/);
    await Deno.writeTextFile(part, "something else\n");
    const replaced = await runTask("score", args(part, "--overwrite"));
    assert.equal(replaced.code, 0, both(replaced));
    assert.equal(await Deno.readTextFile(part), expected);

    // deno task ood --ood DIR streams the directory and scores it as `score` does, image for image.
    const ood = await runTask("ood", [
      "--run",
      await run(),
      "--ood",
      dir,
      "--limit",
      "300",
      "--eval-batch-size",
      "25",
    ]);
    assert.equal(ood.code, 0, both(ood));
    const [head, ...csv] = (await Deno.readTextFile(`${await run()}/scores.csv`)).trim().split("\n");
    const column = head.split(",").indexOf("llr_ada");
    const mine = csv.map((r) => r.split(",")).filter((r) => r[0] === "dir-screen");
    assert.equal(mine.length, 300);
    const scoreColumn = rows[0].split(",").indexOf("llr_ada");
    mine.forEach((r, i) =>
      assert.equal(Number(r[column]), Math.fround(Number(csvFields(rows[1 + i])[scoreColumn])))
    );
  },
);
