/**
 * notMNIST, Omniglot and SmallNORB (data/extra_datasets.ts) read from small files made here in each
 * set's official format (a gzipped ustar archive of per-letter PNG folders; a zip of 1-bit PNGs,
 * stored and deflated; SmallNORB's binary matrices), their resizing (data/resample.ts) against values
 * worked out by hand from its definition, the download path with checksums on 127.0.0.1, and
 * corrupt archives and matrices rejected by name.
 */

import assert from "node:assert/strict";
import { readTar, readZip } from "../data/archives.ts";
import { loadExtraDataset, parseNorbMatrix } from "../data/extra_datasets.ts";
import { crc32, encodePng } from "../data/png.ts";
import { bilinearTaps, resizeBilinear, resizeNearest } from "../data/resample.ts";
import { loadTestSet } from "../eval/evaluation_sets.ts";
import { gzip, md5, withFileServer } from "./loopback.ts";
import { tar } from "./official_formats.ts";
import { filteredPng } from "./synthetic.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

/** A zip archive of `files`, the odd ones deflated, the others stored (APPNOTE 4.3). */
async function zip(files: [string, Uint8Array][]): Promise<Uint8Array> {
  const locals: Uint8Array[] = [], central: Uint8Array[] = [];
  let offset = 0;
  for (const [i, [name, data]] of files.entries()) {
    const deflate = i % 2 === 1;
    const body = deflate
      ? new Uint8Array(
        await new Response(
          new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
            new CompressionStream("deflate-raw"),
          ),
        )
          .arrayBuffer(),
      )
      : data;
    const n = ascii(name);
    // The fields the local header (at 4) and the central directory entry (at 6) share, in one order:
    // version needed, flags, method, time, date, CRC-32, compressed and full size, name length.
    const common = (v: DataView, at: number) => {
      v.setUint16(at, 20, true);
      v.setUint16(at + 4, deflate ? 8 : 0, true);
      v.setUint32(at + 10, crc32(data), true);
      v.setUint32(at + 14, body.length, true);
      v.setUint32(at + 18, data.length, true);
      v.setUint16(at + 22, n.length, true);
    };
    const local = new Uint8Array(30 + n.length), lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    common(lv, 4);
    local.set(n, 30);
    const dir = new Uint8Array(46 + n.length), dv = new DataView(dir.buffer);
    dv.setUint32(0, 0x02014b50, true);
    common(dv, 6);
    dv.setUint32(42, offset, true);
    dir.set(n, 46);
    locals.push(local, body);
    central.push(dir);
    offset += local.length + body.length;
  }
  const dirBytes = concat(central);
  const end = new Uint8Array(22), ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, files.length, true);
  ev.setUint16(10, files.length, true);
  ev.setUint32(12, dirBytes.length, true);
  ev.setUint32(16, offset, true);
  return concat([...locals, dirBytes, end]);
}

/** A SmallNORB binary matrix: magic, rank, at least three dims, little-endian data. */
function norbMatrix(kind: "byte" | "int", dims: number[], data: Uint8Array): Uint8Array {
  const stored = Math.max(3, dims.length);
  const out = new Uint8Array(8 + 4 * stored + data.length), v = new DataView(out.buffer);
  v.setUint32(0, kind === "byte" ? 0x1e3d4c55 : 0x1e3d4c54, true);
  v.setInt32(4, dims.length, true);
  for (let i = 0; i < stored; i++) v.setInt32(8 + 4 * i, dims[i] ?? 1, true);
  out.set(data, 8 + 4 * stored);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) [out.set(p, at), at += p.length];
  return out;
}

/** A 1-bit PNG of `size` x `size` whose pixel (r, c) is white where `on(r, c)`. */
function bitPng(size: number, on: (r: number, c: number) => boolean): Promise<Uint8Array> {
  const stride = Math.ceil(size / 8);
  const rows = Array.from({ length: size }, (_, r) => {
    const row = new Uint8Array(stride);
    for (let c = 0; c < size; c++) if (on(r, c)) row[c >> 3] |= 0x80 >> (c & 7);
    return row;
  });
  return filteredPng(size, rows, 1, 0, [0, 2], 1);
}

const glyph = (k: number) => Uint8Array.from({ length: 784 }, (_, i) => (i * (k + 3)) % 256);

Deno.test("resample: nearest and antialiased bilinear by their definitions", () => {
  // 4 -> 2: centres 1 and 3, triangle of radius 2: weights [3, 3, 1]/7 and [1, 3, 3]/7.
  assert.deepEqual(
    bilinearTaps(4, 2).map((t) => [t.first, ...Array.from(t.weights, (w) => Math.round(w * 7))]),
    [[0, 3, 3, 1], [1, 1, 3, 3]],
  );
  const ramp = Uint8Array.from([0, 70, 140, 210]);
  assert.deepEqual([...resizeBilinear(ramp, 1, [1, 4], [1, 2])], [50, 160]);
  for (const [n, m] of [[96, 28], [105, 28], [28, 28], [7, 28]]) {
    for (const t of bilinearTaps(n, m)) assert.ok(Math.abs(t.weights.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  }
  const flat = new Uint8Array(2 * 96 * 96).fill(77);
  assert.ok(resizeBilinear(flat, 2, [96, 96], [28, 28]).every((v) => v === 77));
  // Nearest 105 -> 28 takes source rows and columns floor((x + 0.5) * 105 / 28).
  const src = Uint8Array.from({ length: 105 * 105 }, (_, i) => (Math.floor(i / 105) * 7 + (i % 105)) % 256);
  const out = resizeNearest(src, 1, [105, 105], [28, 28]);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const [r, c] = [Math.floor(((y + 0.5) * 105) / 28), Math.floor(((x + 0.5) * 105) / 28)];
      assert.equal(out[y * 28 + x], src[r * 105 + c]);
    }
  }
});

Deno.test("notMNIST: per-letter folders of PNGs in a gzipped tar; unreadable files skipped and counted", async () => {
  const dir = await Deno.makeTempDir();
  const archive = tar([
    ["notMNIST_small/A/Zm9udDE=.png", await encodePng(glyph(0), 28, 28)],
    ["notMNIST_small/A/broken.png", new Uint8Array(0)],
    ["notMNIST_small/J/Zm9udDI=.png", await encodePng(glyph(1), 28, 28)],
    ["notMNIST_small/README", ascii("not an image")],
  ]);
  await Deno.writeFile(`${dir}/notMNIST_small.tar.gz`, await gzip(archive));
  const set = await loadExtraDataset("notmnist", { dataDir: dir });
  assert.deepEqual(set.images.dims, [2, 28, 28]);
  assert.deepEqual(set.images.data, concat([glyph(0), glyph(1)]));
  assert.deepEqual([...set.labels.data], [0, 9]);
  assert.equal(set.source, `${dir} (1 unreadable files skipped)`);
  assert.equal(readTar(archive, "t").length, 4);
  const cut = archive.slice(0, 700);
  assert.throws(() => readTar(cut, "cut.tar"), /cut\.tar: corrupt tar archive \(entry at byte 0 has size/);
});

Deno.test("Omniglot: a zip of 105x105 1-bit PNGs, stored and deflated, resized by nearest neighbour", async () => {
  const dir = await Deno.makeTempDir();
  const strokes = [(r: number, c: number) => r === c || r < 3, (r: number, c: number) => (r + c) % 9 === 0];
  const archive = await zip([
    ["images_evaluation/Angelic/character01/0965_01.png", await bitPng(105, strokes[0])],
    ["images_evaluation/Angelic/character02/0966_01.png", await bitPng(105, strokes[1])],
    ["images_evaluation/Angelic/character01/0965_02.png", await bitPng(105, strokes[1])],
  ]);
  await Deno.writeFile(`${dir}/images_evaluation.zip`, archive);
  const set = await loadTestSet("omniglot", { height: 28, width: 28 }, { dataDir: dir });
  assert.equal(set.display, "Omniglot");
  assert.deepEqual(set.images.dims, [3, 28, 28]);
  // Entries in name order: character01's two drawings, then character02's.
  assert.deepEqual([...set.labels.data], [0, 0, 1]);
  const full = (f: (r: number, c: number) => boolean) =>
    Uint8Array.from({ length: 105 * 105 }, (_, i) => f(Math.floor(i / 105), i % 105) ? 255 : 0);
  const expected = resizeNearest(
    concat([full(strokes[0]), full(strokes[1]), full(strokes[1])]),
    3,
    [105, 105],
    [28, 28],
  );
  assert.deepEqual(set.images.data, expected);
  assert.match(set.source, /105x105 resized to 28x28 \(nearest\)/);
  const entries = await readZip(archive, "z");
  assert.deepEqual(entries.map((e) => e.name.split("/").pop()), [
    "0965_01.png",
    "0966_01.png",
    "0965_02.png",
  ]);
  assert.deepEqual(entries[1].data, await bitPng(105, strokes[1]), "the deflated entry inflates to its PNG");
  await assert.rejects(
    readZip(archive.subarray(0, archive.length - 30), "cut.zip"),
    /cut\.zip: not a zip archive/,
  );
  // The second directory entry claims 1 GiB uncompressed: refused before inflating.
  const lying = archive.slice(), lv = new DataView(lying.buffer);
  const directory = lv.getUint32(lying.length - 22 + 16, true);
  const second = directory + 46 + lv.getUint16(directory + 28, true);
  lv.setUint32(second + 24, 2 ** 30, true);
  await assert.rejects(
    readZip(lying, "lying.zip"),
    /lying\.zip: corrupt zip archive \(.*0966_01\.png claims 1073741824 bytes\)/,
  );
});

Deno.test("SmallNORB: stereo pairs of 96x96 in its binary matrix format, both images, bilinear to 28x28", async () => {
  const dir = await Deno.makeTempDir();
  const pixels = Uint8Array.from({ length: 2 * 2 * 96 * 96 }, (_, i) => (i * 13 + (i >> 9)) % 256);
  const prefix = "smallnorb-5x01235x9x18x6x2x96x96-testing";
  await Deno.writeFile(`${dir}/${prefix}-dat.mat.gz`, await gzip(norbMatrix("byte", [2, 2, 96, 96], pixels)));
  const unlabelled = await loadExtraDataset("smallnorb", { dataDir: dir });
  assert.deepEqual([...unlabelled.labels.data], [0, 0, 0, 0]);
  assert.match(unlabelled.source, /no labels/);
  const cats = new Uint8Array(8);
  new DataView(cats.buffer).setInt32(0, 3, true);
  new DataView(cats.buffer).setInt32(4, 1, true);
  await Deno.writeFile(`${dir}/${prefix}-cat.mat`, norbMatrix("int", [2], cats));
  const set = await loadExtraDataset("smallnorb", { dataDir: dir });
  assert.deepEqual(set.images.dims, [4, 28, 28]);
  assert.deepEqual([...set.labels.data], [3, 3, 1, 1]);
  assert.deepEqual(set.images.data, resizeBilinear(pixels, 4, [96, 96], [28, 28]));
  assert.match(set.source, /2 stereo pairs of 96x96 resized to 28x28 \(antialiased bilinear\)/);
  assert.throws(
    () => parseNorbMatrix(norbMatrix("byte", [2, 2, 96, 96], pixels.subarray(1)), "short.mat"),
    /short\.mat: the header says \[2,2,96,96\]/,
  );
  assert.throws(() => parseNorbMatrix(new Uint8Array(24), "zero.mat"), /zero\.mat: not a SmallNORB matrix/);
});

Deno.test("extra datasets: downloaded into the cache, checked by MD5 (or size, for notMNIST); clear errors", async () => {
  const archive = await zip([["images_evaluation/A/character01/x.png", await bitPng(105, (r) => r === 50)]]);
  const small = await gzip(tar([["notMNIST_small/B/x.png", await encodePng(glyph(2), 28, 28)]]));
  await withFileServer(
    { "/images_evaluation.zip": archive, "/notMNIST_small.tar.gz": small },
    async (base) => {
      const cacheDir = await Deno.makeTempDir();
      const omniglot = (md5sum: string) => ({
        cacheDir,
        extraOfficial: {
          omniglot: [{
            filename: "images_evaluation.zip",
            url: `${base}/images_evaluation.zip`,
            expected: { md5: md5sum },
          }],
        },
      });
      await assert.rejects(
        loadExtraDataset("omniglot", omniglot("0".repeat(32))),
        /omniglot not found in .* and not downloaded \(.*checksum mismatch \(MD5 [0-9a-f]{32}, expected 0{32}\)\)\. To provide it: put images_evaluation\.zip/,
      );
      const set = await loadExtraDataset("omniglot", omniglot(md5(archive)));
      assert.equal(set.source.split(",")[0], `download into ${cacheDir}/omniglot`);
      assert.ok(await Deno.stat(`${cacheDir}/omniglot/images_evaluation.zip`));
      // The second time it comes from the cache (no server needed: the wrong checksum is not consulted).
      assert.equal(
        (await loadExtraDataset("omniglot", omniglot("f".repeat(32)))).source.split(",")[0],
        `${cacheDir}/omniglot`,
      );
      const notmnist = (bytes: number) => ({
        cacheDir,
        extraOfficial: {
          notmnist: [{
            filename: "notMNIST_small.tar.gz",
            url: `${base}/notMNIST_small.tar.gz`,
            expected: { bytes },
          }],
        },
      });
      await assert.rejects(
        loadExtraDataset("notmnist", notmnist(8458043)),
        new RegExp(`${small.length} bytes, the official file has 8458043`),
      );
      assert.deepEqual([...(await loadExtraDataset("notmnist", notmnist(small.length))).labels.data], [1]);
    },
  );
  const empty = await Deno.makeTempDir();
  await assert.rejects(
    loadExtraDataset("smallnorb", { dataDir: empty }),
    /--data-dir .* does not hold smallnorb's smallnorb-5x01235x9x18x6x2x96x96-testing-dat\.mat\.gz/,
  );
  await assert.rejects(
    loadExtraDataset("smallnorb", { cacheDir: empty, download: false }),
    /smallnorb not found in/,
  );
});
