/**
 * Reading a user's images a batch at a time (data/image_inputs.ts, data/idx_stream.ts): directories
 * searched recursively in name order, batches that span files, skipping (a resumed run) and limits,
 * gzipped and raw IDX files checked against their headers as they stream (truncated, trailing data),
 * a gzip bomb whose header announces 1.3 million images counted without being inflated; and the
 * verdict CSV read back for `--resume` (eval/verdict_csv.ts), partial last row and quoting included.
 */

import assert from "node:assert/strict";
import { encodeIdx } from "../data/idx.ts";
import { openIdxImages } from "../data/idx_stream.ts";
import { collectImages, openImageInputs } from "../data/image_inputs.ts";
import { encodePng } from "../data/png.ts";
import { csvFields, readVerdictCsv, verdictColumns, verdictRows } from "../eval/verdict_csv.ts";

const H = 4, W = 3, HW = H * W;
/** Image i: every pixel i (mod 256), so an image says which it is. */
const image = (i: number) => new Uint8Array(HW).fill(i % 256);
const images = (from: number, n: number) => {
  const out = new Uint8Array(n * HW);
  for (let i = 0; i < n; i++) out.set(image(from + i), i * HW);
  return out;
};
const gzip = async (bytes: Uint8Array) =>
  new Uint8Array(
    await new Response(
      new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip")),
    )
      .arrayBuffer(),
  );

/** A tree: d/a.idx (images 0-4), d/b/c.png (5), d/b/d.idx.gz (6-12), d/e.png (13), d/.hidden.png, d/notes.txt. */
async function tree(): Promise<string> {
  const d = await Deno.makeTempDir();
  await Deno.mkdir(`${d}/b`);
  await Deno.writeFile(`${d}/a.idx`, encodeIdx([5, H, W], images(0, 5)));
  await Deno.writeFile(`${d}/b/c.png`, await encodePng(image(5), W, H));
  await Deno.writeFile(`${d}/b/d.idx.gz`, await gzip(encodeIdx([7, H, W], images(6, 7))));
  await Deno.writeFile(`${d}/e.png`, await encodePng(image(13), W, H));
  await Deno.writeFile(`${d}/.hidden.png`, await encodePng(image(99), W, H));
  await Deno.writeTextFile(`${d}/notes.txt`, "not an image");
  return d;
}

Deno.test("image inputs: a directory tree in name order, in batches across files, with skip and limit", async () => {
  const d = await tree();
  const inputs = await openImageInputs([d], H, W);
  assert.equal(inputs.count, 14);
  assert.equal(inputs.files, 4);
  const names = [
    ...Array.from({ length: 5 }, (_, i) => `${d}/a.idx#${i}`),
    `${d}/b/c.png`,
    ...Array.from({ length: 7 }, (_, i) => `${d}/b/d.idx.gz#${i}`),
    `${d}/e.png`,
  ];
  for (const size of [1, 3, 4, 14, 100]) {
    const batches = await Array.fromAsync(inputs.batches(size));
    assert.deepEqual(batches.map((b) => b.names.length), [
      ...Array(Math.floor(14 / size)).fill(size),
      ...(14 % size ? [14 % size] : []),
    ]);
    assert.deepEqual(batches.flatMap((b) => b.names), names, `batches of ${size}`);
    for (const b of batches) assert.deepEqual(b.pixels, images(b.first, b.names.length));
  }
  // Skipping (a resumed run) and a limit: the same images as the whole, from there on.
  for (const [skip, limit] of [[0, 5], [2, 14], [5, 6], [6, 9], [13, 14], [14, 14], [3, 100]]) {
    const batches = await Array.fromAsync(inputs.batches(4, { skip, limit }));
    const end = Math.min(limit, 14);
    assert.deepEqual(batches.flatMap((b) => b.names), names.slice(skip, end), `skip ${skip} limit ${limit}`);
    if (batches.length) assert.equal(batches[0].first, skip);
    for (const b of batches) assert.deepEqual(b.pixels, images(b.first, b.names.length));
  }
  // Several inputs, a file named directly among them; collectImages gathers them.
  const both = await openImageInputs([`${d}/e.png`, `${d}/b`], H, W);
  const all = await collectImages(both, HW);
  assert.deepEqual(all.names, [`${d}/e.png`, `${d}/b/c.png`, ...names.slice(6, 13)]);
  assert.deepEqual(all.pixels, new Uint8Array([...image(13), ...images(5, 8)]));
});

Deno.test("image inputs: bad files are errors naming them, as they are met", async () => {
  const d = await Deno.makeTempDir();
  await assert.rejects(openImageInputs([d], H, W), /the directory holds no \.png or IDX image files/);
  await assert.rejects(openImageInputs([`${d}/missing.idx`], H, W), /missing\.idx: cannot read/);
  await Deno.writeFile(`${d}/wide.idx`, encodeIdx([2, H, W + 1], new Uint8Array(2 * H * (W + 1))));
  await assert.rejects(
    openImageInputs([`${d}/wide.idx`], H, W),
    /wide\.idx: IDX images are 4x4; the model takes 4x3/,
  );
  // A raw file is checked against its header when opened: truncated, or with bytes after the data.
  await Deno.writeFile(`${d}/cut.idx`, encodeIdx([3, H, W], images(0, 3)).subarray(0, 16 + 2 * HW + 5));
  await assert.rejects(
    openImageInputs([`${d}/cut.idx`], H, W),
    /cut\.idx: truncated: the header says 3x4x3 = 36 bytes of data, the file has 29/,
  );
  await Deno.writeFile(`${d}/long.idx`, new Uint8Array([...encodeIdx([1, H, W], image(0)), 7, 7]));
  await assert.rejects(
    openImageInputs([`${d}/long.idx`], H, W),
    /long\.idx: 2 unexpected bytes after the 1x4x3 data/,
  );
  await Deno.writeFile(`${d}/labels.idx`, encodeIdx([3], new Uint8Array(3)));
  await assert.rejects(openImageInputs([`${d}/labels.idx`], H, W), /labels\.idx: holds 1-dimensional data/);
  // A gzipped file is checked as it inflates: the images before the cut are given out, then the error.
  await Deno.writeFile(
    `${d}/cut.gz`,
    await gzip(encodeIdx([5, H, W], images(0, 5)).subarray(0, 16 + 4 * HW)),
  );
  const cut = await openImageInputs([`${d}/cut.gz`], H, W);
  const seen: string[] = [];
  await assert.rejects(async () => {
    for await (const b of cut.batches(2)) seen.push(...b.names);
  }, /cut\.gz: truncated: the header says 5x4x3 = 60 bytes of data, the file has 48/);
  assert.deepEqual(seen, [0, 1, 2, 3].map((i) => `${d}/cut.gz#${i}`));
  // Data after the announced images is refused before the last batch is given out.
  await Deno.writeFile(
    `${d}/long.gz`,
    await gzip(new Uint8Array([...encodeIdx([3, H, W], images(0, 3)), 1])),
  );
  const long = await openImageInputs([`${d}/long.gz`], H, W);
  const got: number[] = [];
  await assert.rejects(async () => {
    for await (const b of long.batches(2)) got.push(b.names.length);
  }, /long\.gz: the gzip data inflates past 52 bytes, more than its header announces; refused/);
  assert.deepEqual(got, [2]);
  await Deno.writeFile(`${d}/corrupt.gz`, new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff]));
  await assert.rejects(
    openImageInputs([`${d}/corrupt.gz`], H, W),
    /corrupt\.gz: (corrupt gzip data|.*too short)/,
  );
  await Deno.writeFile(`${d}/fake.png`, encodeIdx([1, H, W], image(0)));
  const fake = await openImageInputs([`${d}/fake.png`], H, W);
  await assert.rejects(Array.fromAsync(fake.batches(1)), /fake\.png: not a PNG file \(bad signature\)/);
});

Deno.test("image inputs: a 1 MB gzip announcing 1.3 million images is counted from its header, read a batch at a time", async () => {
  const d = await Deno.makeTempDir();
  const count = 1_300_000;
  const header = encodeIdx([count, 28, 28], new Uint8Array(0));
  let sent = 0;
  const zeros = new Uint8Array(1 << 20);
  const stream = new ReadableStream<BufferSource>({
    start: (c) => c.enqueue(header as Uint8Array<ArrayBuffer>),
    pull: (c) => {
      const n = Math.min(zeros.length, count * 784 - sent);
      if (n === 0) return c.close();
      sent += n;
      c.enqueue(zeros.subarray(0, n));
    },
  });
  const file = await Deno.open(`${d}/bomb.idx.gz`, { write: true, create: true });
  await stream.pipeThrough(new CompressionStream("gzip")).pipeTo(file.writable);
  assert.ok((await Deno.stat(`${d}/bomb.idx.gz`)).size < 2 ** 21);
  const idx = await openIdxImages(`${d}/bomb.idx.gz`);
  assert.equal(idx.count, count);
  idx.close();
  const inputs = await openImageInputs([`${d}/bomb.idx.gz`], 28, 28);
  assert.equal(inputs.count, count);
  // A batch far into the file: the ones before it inflated and dropped, never held.
  const [far] = await Array.fromAsync(inputs.batches(8, { skip: 1_000_000, limit: 1_000_008 }));
  assert.deepEqual(far.names, Array.from({ length: 8 }, (_, i) => `${d}/bomb.idx.gz#${1_000_000 + i}`));
  assert.equal(far.pixels.length, 8 * 784);
});

Deno.test("verdict CSV: rows read back whole, a partial last row dropped, names quoted", async () => {
  const d = await Deno.makeTempDir();
  const scores = ["elbo", "llr_ada"];
  const header = verdictColumns(scores).join(",");
  assert.equal(header, "image,elbo,llr_ada,score,value,threshold,verdict");
  const names = ["plain.png", 'a,"quoted"\nname.png', "c.idx#2"];
  const values = { elbo: [1.5, -2, 3.25], llr_ada: [0.1, 7, -1 / 3] };
  const rows = verdictRows(names, values, scores, "llr_ada", 0.5);
  const path = `${d}/v.csv`;
  await Deno.writeTextFile(path, header + "\n" + rows);
  const whole = await readVerdictCsv(path, header);
  assert.deepEqual(whole, {
    rows: 3,
    ood: 1,
    threshold: 0.5,
    lastImage: "c.idx#2",
    end: new TextEncoder().encode(header + "\n" + rows).length,
    partial: false,
  });
  // Every number reads back to the same float64; a quoted name to itself.
  const second = rows.split("\n").slice(1, 3).join("\n");
  assert.deepEqual(csvFields(second), [names[1], "-2", "7", "llr_ada", "7", "0.5", "OOD"]);
  assert.equal(Number(csvFields(rows.split("\n")[3])[2]), -1 / 3);
  // A kill in the middle of a write: the partial row is reported and not counted.
  await Deno.writeTextFile(path, header + "\n" + rows + "d.png,1,2,llr_");
  const cut = await readVerdictCsv(path, header);
  assert.equal(cut.rows, 3);
  assert.equal(cut.partial, true);
  assert.equal(cut.end, whole.end);
  // Another command's file is refused by its columns.
  await assert.rejects(
    readVerdictCsv(path, verdictColumns(["elbo"]).join(",")),
    /its columns .* are not this command's/,
  );
  // A file stopped while its header was written: nothing whole, the header to be written again.
  await Deno.writeTextFile(path, "image,el");
  assert.equal((await readVerdictCsv(path, header)).end, 0);
});
