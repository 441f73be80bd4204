/**
 * The evaluation's test sets (eval/evaluation_sets.ts): the transformed Fashion-MNIST sets pixel by pixel
 * against their definitions, the synthetic sets (blank; noise at the in-distribution mean, the same
 * every time), a user's directory of PNG and IDX files, KMNIST's download with its checksums on a
 * loopback server, and the errors: a missing or empty directory, a missing dataset.
 */

import assert from "node:assert/strict";
import { encodeIdx } from "../data/idx.ts";
import { loadSplit } from "../data/datasets.ts";
import { encodePng } from "../data/png.ts";
import { BUILT_IN_SETS, displayName, fileKey, isBuiltInSet, loadTestSet } from "../eval/evaluation_sets.ts";
import { withTestSplitServer } from "./loopback.ts";

const N = 4, H = 3, W = 5;
const pixels = Uint8Array.from({ length: N * H * W }, (_, i) => (i * 37) % 256);

/** A data directory holding a tiny Fashion-MNIST test split (N images of H x W). */
async function fashionDir(): Promise<string> {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/t10k-images-idx3-ubyte`, encodeIdx([N, H, W], pixels));
  await Deno.writeFile(`${dir}/t10k-labels-idx1-ubyte`, encodeIdx([N], Uint8Array.from([3, 1, 4, 1])));
  return dir;
}

const options = (dataDir: string) => ({ dataDir, system: false, download: false });
const at = (data: Uint8Array, i: number, r: number, c: number) => data[i * H * W + r * W + c];

Deno.test("test sets: flipped and inverted Fashion-MNIST, pixel by pixel, with their labels", async () => {
  const dir = await fashionDir();
  const h = await loadTestSet("fashion-mnist-hflip", { height: H, width: W }, options(dir));
  const v = await loadTestSet("fashion-mnist-vflip", { height: H, width: W }, options(dir));
  const inv = await loadTestSet("fashion-mnist-inverted", { height: H, width: W }, options(dir));
  for (const set of [h, v, inv]) {
    assert.deepEqual(set.images.dims, [N, H, W]);
    assert.deepEqual([...set.labels.data], [3, 1, 4, 1]);
    assert.match(set.source, new RegExp(`Fashion-MNIST test \\(${dir}\\)`));
  }
  for (let i = 0; i < N; i++) {
    for (let r = 0; r < H; r++) {
      for (let c = 0; c < W; c++) {
        assert.equal(at(h.images.data, i, r, c), at(pixels, i, r, W - 1 - c));
        assert.equal(at(v.images.data, i, r, c), at(pixels, i, H - 1 - r, c));
        assert.equal(at(inv.images.data, i, r, c), 255 - at(pixels, i, r, c));
      }
    }
  }
});

Deno.test("test sets: blank is black; noise is Bernoulli at the in-distribution mean, the same every time", async () => {
  const dir = await fashionDir();
  const blank = await loadTestSet("blank", { height: H, width: W }, options(dir));
  assert.deepEqual(blank.images.dims, [10000, H, W]);
  assert.ok(blank.images.data.every((p) => p === 0));
  const noise = await loadTestSet("noise", { height: H, width: W }, options(dir));
  const again = await loadTestSet("noise", { height: H, width: W }, options(dir));
  assert.deepEqual(noise.images.data, again.images.data);
  assert.ok(noise.images.data.every((p) => p === 0 || p === 255));
  const mean = pixels.reduce((a, b) => a + b, 0) / pixels.length / 255;
  const rate = noise.images.data.reduce((a, p) => a + (p ? 1 : 0), 0) / noise.images.data.length;
  // 150000 draws: the standard error is below 0.0013; 5 of them.
  assert.ok(
    Math.abs(rate - mean) < 5 * Math.sqrt(mean * (1 - mean) / noise.images.data.length),
    `${rate} vs ${mean}`,
  );
  assert.match(noise.source, new RegExp(`Bernoulli\\(${mean.toFixed(4)}\\) noise`));
});

Deno.test("test sets: a directory of PNG and IDX files; names, keys and errors", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/b.png`, await encodePng(pixels.subarray(0, H * W), W, H));
  await Deno.writeFile(`${dir}/a.idx`, encodeIdx([2, H, W], pixels.subarray(H * W, 3 * H * W)));
  await Deno.writeTextFile(`${dir}/notes.txt`, "not an image");
  const set = await loadTestSet(dir, { height: H, width: W });
  // Files in name order (a.idx's two images, then b.png); other files ignored.
  assert.deepEqual(set.images.dims, [3, H, W]);
  assert.deepEqual(set.images.data.subarray(0, 2 * H * W), pixels.subarray(H * W, 3 * H * W));
  assert.deepEqual(set.images.data.subarray(2 * H * W), pixels.subarray(0, H * W));
  assert.equal(set.source, `3 image(s) in 2 file(s) under ${dir}`);
  assert.equal(displayName(`/data/My Set/`), "My Set");
  assert.equal(fileKey(`/data/My Set/`), "dir-my-set");
  assert.equal(fileKey("noise"), "noise");
  assert.ok(BUILT_IN_SETS.every(isBuiltInSet) && !isBuiltInSet(dir));
  await assert.rejects(
    loadTestSet(`${dir}/nothing`, { height: H, width: W }),
    /--ood .*nothing: not a built-in set .* nor a readable directory/,
  );
  const empty = await Deno.makeTempDir();
  await assert.rejects(loadTestSet(empty, { height: H, width: W }), /holds no \.png or IDX image files/);
  await Deno.writeFile(`${empty}/wrong.png`, await encodePng(new Uint8Array(4), 2, 2));
  await assert.rejects(
    loadTestSet(empty, { height: H, width: W }),
    /wrong\.png: the image is 2x2; the model takes 5x3/,
  );
});

Deno.test("test sets: KMNIST downloads from its official address with its checksums (on 127.0.0.1)", async () => {
  await withTestSplitServer(
    encodeIdx([N, H, W], pixels),
    encodeIdx([N], new Uint8Array(N)),
    async ({ baseUrl, md5 }) => {
      const cacheDir = await Deno.makeTempDir();
      const set = await loadTestSet("kmnist", { height: H, width: W }, {
        cacheDir,
        official: { kmnist: { baseUrl, md5 } },
      });
      assert.equal(set.display, "KMNIST");
      assert.equal(set.source, `download into ${cacheDir}/kmnist`);
      assert.deepEqual(set.images.data, pixels);
      const bad = { ...md5, "t10k-labels-idx1-ubyte": "f".repeat(32) };
      await assert.rejects(
        loadSplit("kmnist", "test", {
          cacheDir: await Deno.makeTempDir(),
          official: { kmnist: { baseUrl, md5: bad } },
        }),
        /checksum mismatch \(MD5 [0-9a-f]{32}, expected f{32}\)/,
      );
    },
  );
  // Nowhere to be found: the error says where KMNIST comes from.
  await assert.rejects(
    loadSplit("kmnist", "test", { cacheDir: await Deno.makeTempDir(), download: false }),
    /kmnist test split not found.*To provide it: download the official files \(http:\/\/codh\.rois\.ac\.jp/s,
  );
});
