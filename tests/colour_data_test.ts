/**
 * CIFAR-10 and SVHN (data/colour_datasets.ts, data/matlab.ts) read from files made here in their
 * official formats (tests/official_formats.ts): the binary archive's channel-planar records become
 * NHWC images, SVHN's column-major MAT-file the same (compressed or not, labels 10 -> 0); downloads on
 * 127.0.0.1 checked by MD5; truncated, foreign and unsupported files refused by name.
 */

import assert from "node:assert/strict";
import { loadColourSplit, parseCifarRecords, svhnTestSet } from "../data/colour_datasets.ts";
import { readMat } from "../data/matlab.ts";
import { gzip, md5, withFileServer } from "./loopback.ts";
import {
  cifarArchive,
  cifarRecords,
  colourImages,
  compressed,
  matFile,
  matMatrix,
  svhnMat,
  tar,
} from "./official_formats.ts";

const train = [1, 2, 3, 4, 5].map((seed) => colourImages(3, seed));
const test = colourImages(4, 9);

Deno.test("CIFAR-10: the binary archive's planar records become NHWC images; all five batches in order", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/cifar-10-binary.tar.gz`, await cifarArchive(train, test));
  const t = await loadColourSplit("cifar10", "test", { dataDir: dir });
  assert.deepEqual(t.images.dims, [4, 32, 32, 3]);
  assert.deepEqual(t.images.data, test.images);
  assert.deepEqual(t.labels.data, test.labels);
  assert.equal(t.source, dir);
  // A pixel by hand: image 1, row 2, column 5, green is the record's byte 1 + 1024 + 2*32 + 5.
  const records = cifarRecords(test);
  assert.equal(t.images.data[3072 + (2 * 32 + 5) * 3 + 1], records[3073 + 1 + 1024 + 69]);
  const tr = await loadColourSplit("cifar10", "train", { dataDir: dir });
  assert.deepEqual(tr.images.dims, [15, 32, 32, 3]);
  assert.deepEqual([...tr.labels.data], train.flatMap((b) => [...b.labels]));
  assert.deepEqual(tr.images.data.subarray(6 * 3072, 9 * 3072), train[2].images);
});

Deno.test("CIFAR-10: truncated records, a bad label, a foreign archive and a missing batch are refused by name", async () => {
  const records = cifarRecords(test);
  assert.throws(
    () => parseCifarRecords(records.subarray(0, 3073 * 2 - 7), "cut.bin"),
    /cut\.bin: 6139 bytes is not a whole number of CIFAR-10 records \(3073 bytes each/,
  );
  const bad = records.slice();
  bad[3073] = 12;
  assert.throws(
    () => parseCifarRecords(bad, "bad.bin"),
    /bad\.bin: record 1 has label 12; CIFAR-10's are 0\.\.9/,
  );
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(
    `${dir}/cifar-10-binary.tar.gz`,
    await gzip(tar([["cifar-10-batches-py/data_batch_1", records]])),
  );
  await assert.rejects(
    loadColourSplit("cifar10", "test", { dataDir: dir }),
    /cifar-10-binary\.tar\.gz: no test_batch\.bin in the archive; not CIFAR-10's binary version/,
  );
  const some = await gzip(
    tar([["cifar-10-batches-bin/test_batch.bin", records], [
      "cifar-10-batches-bin/data_batch_1.bin",
      records,
    ]]),
  );
  await Deno.writeFile(`${dir}/cifar-10-binary.tar.gz`, some);
  assert.equal((await loadColourSplit("cifar10", "test", { dataDir: dir })).labels.dims[0], 4);
  await assert.rejects(
    loadColourSplit("cifar10", "train", { dataDir: dir }),
    /no data_batch_2\.bin in the archive/,
  );
  const full = await cifarArchive(train, test);
  await Deno.writeFile(`${dir}/cifar-10-binary.tar.gz`, full.subarray(0, full.length >> 1));
  await assert.rejects(loadColourSplit("cifar10", "test", { dataDir: dir }), /cifar-10-binary\.tar\.gz/);
  await Deno.writeFile(`${dir}/cifar-10-binary.tar.gz`, new TextEncoder().encode("<html>not found</html>"));
  await assert.rejects(loadColourSplit("cifar10", "test", { dataDir: dir }), /cifar-10-binary\.tar\.gz/);
  const empty = await Deno.makeTempDir();
  await assert.rejects(
    loadColourSplit("cifar10", "test", { dataDir: empty }),
    /--data-dir .* does not hold cifar10's cifar-10-binary\.tar\.gz/,
  );
});

Deno.test("SVHN: the MAT-file's column-major X becomes NHWC images, labels 1..10 become 0..9, compressed or not", async () => {
  for (const compress of [true, false]) {
    const set = await svhnTestSet(await svhnMat(test, compress), "test_32x32.mat");
    assert.deepEqual(set.images.dims, [4, 32, 32, 3]);
    assert.deepEqual(set.images.data, test.images, `compressed ${compress}`);
    assert.deepEqual(set.labels.data, test.labels);
  }
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/test_32x32.mat`, await svhnMat(test));
  const loaded = await loadColourSplit("svhn", "test", { dataDir: dir });
  assert.deepEqual(loaded.images.data, test.images);
  await assert.rejects(
    loadColourSplit("svhn", "train", { dataDir: dir }),
    /svhn: only its test split is read/,
  );
});

Deno.test("MAT-files: truncated, foreign, version 7.3 and non-numeric files are refused by name", async () => {
  const file = await svhnMat(test, false);
  await assert.rejects(
    readMat(file.subarray(0, file.length - 100), "cut.mat"),
    /cut\.mat: truncated \(an element at byte 128 announces/,
  );
  await assert.rejects(
    readMat(file.subarray(0, 100), "tiny.mat"),
    /tiny\.mat: too short for a MATLAB 5 MAT-file/,
  );
  const v73 = new Uint8Array(512);
  v73.set(new TextEncoder().encode("MATLAB 7.3 MAT-file, Platform: GLNXA64"));
  await assert.rejects(
    readMat(v73, "new.mat"),
    /new\.mat: not a MATLAB 5 MAT-file \(a version 7\.3 file is HDF5/,
  );
  await assert.rejects(readMat(new Uint8Array(256), "zeros.mat"), /zeros\.mat: not a MATLAB 5 MAT-file$/);
  const cell = matFile([matMatrix("c", 1, [1, 1], 2, new Uint8Array(1))]);
  await assert.rejects(
    readMat(cell, "cell.mat"),
    /cell\.mat: variable 'c' is a cell array; only numeric arrays are read/,
  );
  const short = matFile([matMatrix("X", 9, [32, 32, 3, 2], 2, new Uint8Array(3072))]);
  await assert.rejects(
    readMat(short, "short.mat"),
    /short\.mat: variable 'X' \[32,32,3,2\] needs 6144 bytes of uint8, has 3072/,
  );
  const wrongShape = matFile([
    matMatrix("X", 9, [28, 28, 1, 1], 2, new Uint8Array(784)),
    matMatrix("y", 6, [1, 1], 2, Uint8Array.of(3)),
  ]);
  await assert.rejects(
    svhnTestSet(wrongShape, "gray.mat"),
    /gray\.mat: X is uint8 \[28,28,1,1\]; SVHN's is uint8 \[32, 32, 3, N\]/,
  );
  const noLabels = matFile([await compressed(matMatrix("X", 9, [32, 32, 3, 1], 2, new Uint8Array(3072)))]);
  await assert.rejects(svhnTestSet(noLabels, "nolabels.mat"), /nolabels\.mat: no y variable/);
  const badLabel = matFile([
    matMatrix("X", 9, [32, 32, 3, 1], 2, new Uint8Array(3072)),
    matMatrix("y", 6, [1, 1], 2, Uint8Array.of(11)),
  ]);
  await assert.rejects(
    svhnTestSet(badLabel, "label.mat"),
    /label\.mat: image 0 has label 11; SVHN's are 1\.\.10/,
  );
  // A double array stored as doubles reads the same as one stored as bytes.
  const doubles = new Uint8Array(8);
  new DataView(doubles.buffer).setFloat64(0, 7, true);
  const asDouble = await readMat(matFile([matMatrix("y", 6, [1, 1], 9, doubles)]), "double.mat");
  assert.deepEqual(Array.from(asDouble.get("y")!.data), [7]);
});

Deno.test("CIFAR-10 and SVHN: downloaded into the cache on 127.0.0.1, checked by MD5", async () => {
  const archive = await cifarArchive(train, test), mat = await svhnMat(test);
  await withFileServer({ "/cifar-10-binary.tar.gz": archive, "/test_32x32.mat": mat }, async (base) => {
    const cacheDir = await Deno.makeTempDir();
    const official = (cifarMd5: string) => ({
      cacheDir,
      colourOfficial: {
        cifar10: [{
          filename: "cifar-10-binary.tar.gz",
          url: `${base}/cifar-10-binary.tar.gz`,
          expected: { md5: cifarMd5 },
        }],
        svhn: [{ filename: "test_32x32.mat", url: `${base}/test_32x32.mat`, expected: { md5: md5(mat) } }],
      },
    });
    await assert.rejects(
      loadColourSplit("cifar10", "test", official("0".repeat(32))),
      /cifar10 not found in .* and not downloaded \(.*checksum mismatch \(MD5 [0-9a-f]{32}, expected 0{32}\)\)\. To provide it: put cifar-10-binary\.tar\.gz/,
    );
    const cifar = await loadColourSplit("cifar10", "test", official(md5(archive)));
    assert.equal(cifar.source, `download into ${cacheDir}/cifar10`);
    assert.deepEqual(cifar.images.data, test.images);
    const svhn = await loadColourSplit("svhn", "test", official(md5(archive)));
    assert.deepEqual(svhn.labels.data, test.labels);
    assert.ok(await Deno.stat(`${cacheDir}/svhn/test_32x32.mat`));
    // The second time they come from the cache, with no server.
    const again = await loadColourSplit("cifar10", "train", { cacheDir, download: false });
    assert.equal(again.source, `${cacheDir}/cifar10`);
    assert.equal(again.labels.dims[0], 15);
  });
});
