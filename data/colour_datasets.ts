/**
 * The paper's colour pair, CIFAR-10 (in-distribution) and SVHN (OOD), read from their official files
 * into 32x32 RGB images, bytes in height x width x channel order (NHWC, as the model reads them):
 *   cifar10  cifar-10-binary.tar.gz (Krizhevsky 2009, www.cs.toronto.edu/~kriz/cifar.html): the tar
 *            holds cifar-10-batches-bin/data_batch_1..5.bin (the training split, 50000 images) and
 *            test_batch.bin (10000); each record is one label byte and 3072 pixel bytes, channel-planar
 *            (the 1024 reds row by row, then the greens, then the blues).
 *   svhn     test_32x32.mat (Netzer et al. 2011, ufldl.stanford.edu/housenumbers): a MATLAB 5 file
 *            (data/matlab.ts) whose X is uint8 [32, 32, 3, N] column-major and y the labels 1..10
 *            (10 is the digit 0, made 0 here). Only its test split is an OOD set in the paper.
 * Each is looked for like the extra OOD sets (data/official_files.ts): `--data-dir` (only it, when
 * given), then the per-user cache, then a download checked against the MD5 torchvision verifies.
 * No package on npm or Debian ships either, so our machines test all of this on files the tests make
 * in these formats and serve on 127.0.0.1.
 */

import type { DataOptions, Split } from "./datasets.ts";
import { readRegularFile } from "./files.ts";
import { gunzipIfNeeded, type IdxArray } from "./idx.ts";
import { readTar } from "./archives.ts";
import { readMat } from "./matlab.ts";
import { locateOfficialFiles, type OfficialFile } from "./official_files.ts";

/** The colour datasets. */
export type ColourDatasetName = "cifar10" | "svhn";
/** Every `ColourDatasetName`. */
export const COLOUR_DATASET_NAMES: readonly ColourDatasetName[] = ["cifar10", "svhn"];

/** The official files (overridable for tests: `ColourDataOptions.colourOfficial`). */
export const COLOUR_OFFICIAL: Record<ColourDatasetName, OfficialFile[]> = {
  cifar10: [{
    filename: "cifar-10-binary.tar.gz",
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    expected: { md5: "c32a1d4ab5d03f1284b67883e8d87530" },
  }],
  svhn: [{
    filename: "test_32x32.mat",
    url: "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
    expected: { md5: "eb5a983be6a315427106f1b164d9cef3" },
  }],
};

/** Where `loadColourSplit` looks, and the official files to fetch (tests serve them on 127.0.0.1). */
export interface ColourDataOptions extends DataOptions {
  /** Replaces the official files' addresses and checks. */
  colourOfficial?: Partial<Record<ColourDatasetName, OfficialFile[]>>;
}

/** A colour split: images [N, 32, 32, 3] (bytes, NHWC), labels [N], and where they came from. */
export interface ColourSplit {
  /** The dataset. */
  dataset: ColourDatasetName;
  /** The split. */
  split: Split;
  /** Images: dims [N, 32, 32, 3], bytes. */
  images: IdxArray;
  /** Labels: dims [N]. */
  labels: IdxArray;
  /** The directory or download it came from. */
  source: string;
}

/** CIFAR-10's record: a label byte, then 32x32 pixels of each of R, G and B. */
const CIFAR_RECORD = 1 + 3 * 32 * 32;
/** The largest file read: CIFAR-10's archive inflates to 185 MB, SVHN's test file is 64 MB. */
const MAX_FILE_BYTES = 2 ** 30;
const CIFAR_MEMBERS: Record<Split, string[]> = {
  train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`),
  test: ["test_batch.bin"],
};

/** Loads a split of CIFAR-10 (train or test) or SVHN (test only); see the module comment. */
export async function loadColourSplit(
  dataset: ColourDatasetName,
  split: Split,
  o: ColourDataOptions = {},
): Promise<ColourSplit> {
  if (dataset === "svhn" && split !== "test") {
    throw new Error(`svhn: only its test split is read (test_32x32.mat), not '${split}'`);
  }
  const files = o.colourOfficial?.[dataset] ?? COLOUR_OFFICIAL[dataset];
  const { paths, source } = await locateOfficialFiles(dataset, files, o);
  const path = paths[0]!;
  const bytes = await gunzipIfNeeded(
    await readRegularFile(path, MAX_FILE_BYTES, `${dataset} file`),
    path,
    MAX_FILE_BYTES,
  );
  const made = dataset === "cifar10" ? cifarSplit(bytes, path, split) : await svhnTestSet(bytes, path);
  return { dataset, split, ...made, source };
}

/** The images and labels of CIFAR-10 binary batches (records one after another). */
export function parseCifarRecords(bytes: Uint8Array, name: string): { images: IdxArray; labels: IdxArray } {
  if (bytes.length === 0 || bytes.length % CIFAR_RECORD !== 0) {
    throw new Error(
      `${name}: ${bytes.length} bytes is not a whole number of CIFAR-10 records (${CIFAR_RECORD} bytes each: a label and 32x32x3 pixels)`,
    );
  }
  const n = bytes.length / CIFAR_RECORD;
  const images = new Uint8Array(n * 3072), labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const record = bytes.subarray(i * CIFAR_RECORD, (i + 1) * CIFAR_RECORD);
    if (record[0] > 9) throw new Error(`${name}: record ${i} has label ${record[0]}; CIFAR-10's are 0..9`);
    labels[i] = record[0];
    // Channel-planar to interleaved: pixel p of channel c is at 1 + c * 1024 + p.
    for (let p = 0; p < 1024; p++) {
      for (let c = 0; c < 3; c++) images[i * 3072 + 3 * p + c] = record[1 + c * 1024 + p];
    }
  }
  return { images: { dims: [n, 32, 32, 3], data: images }, labels: { dims: [n], data: labels } };
}

/** A CIFAR-10 split from the binary archive (a tar, already gunzipped). */
function cifarSplit(tar: Uint8Array, path: string, split: Split) {
  const entries = new Map(readTar(tar, path).map((e) => [e.name.split("/").pop()!, e]));
  const parts = CIFAR_MEMBERS[split].map((member) => {
    const entry = entries.get(member);
    if (!entry) {
      throw new Error(
        `${path}: no ${member} in the archive; not CIFAR-10's binary version (cifar-10-binary.tar.gz, cifar-10-batches-bin/)`,
      );
    }
    return parseCifarRecords(entry.data, `${path}: ${entry.name}`);
  });
  const n = parts.reduce((a, p) => a + p.labels.dims[0], 0);
  const images = new Uint8Array(n * 3072), labels = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    images.set(p.images.data, at * 3072);
    labels.set(p.labels.data, at);
    at += p.labels.dims[0];
  }
  return { images: { dims: [n, 32, 32, 3], data: images }, labels: { dims: [n], data: labels } };
}

/** SVHN's test set from its MAT-file: X [32, 32, 3, N] column-major to [N, 32, 32, 3]; y 1..10 to 0..9. */
export async function svhnTestSet(
  bytes: Uint8Array,
  name: string,
): Promise<{ images: IdxArray; labels: IdxArray }> {
  const vars = await readMat(bytes, name);
  const X = vars.get("X"), y = vars.get("y");
  if (!X || !y) throw new Error(`${name}: no ${X ? "y" : "X"} variable; not an SVHN *_32x32.mat file`);
  const [h, w, c, n] = X.dims;
  if (X.className !== "uint8" || X.dims.length !== 4 || h !== 32 || w !== 32 || c !== 3 || n < 1) {
    throw new Error(`${name}: X is ${X.className} [${X.dims}]; SVHN's is uint8 [32, 32, 3, N]`);
  }
  if (y.dims.reduce((a, b) => a * b, 1) !== n) {
    throw new Error(`${name}: y has [${y.dims}] labels for ${n} images`);
  }
  const images = new Uint8Array(n * 3072), labels = new Uint8Array(n);
  const src = X.data as Uint8Array;
  for (let i = 0; i < n; i++) {
    const label = y.data[i];
    if (!Number.isInteger(label) || label < 1 || label > 10) {
      throw new Error(`${name}: image ${i} has label ${label}; SVHN's are 1..10`);
    }
    labels[i] = label % 10;
    // MATLAB's column-major X(r, col, ch, i) is at r + 32 col + 1024 ch + 3072 i.
    for (let r = 0; r < 32; r++) {
      for (let col = 0; col < 32; col++) {
        for (let ch = 0; ch < 3; ch++) {
          images[i * 3072 + (r * 32 + col) * 3 + ch] = src[r + 32 * col + 1024 * ch + 3072 * i];
        }
      }
    }
  }
  return { images: { dims: [n, 32, 32, 3], data: images }, labels: { dims: [n], data: labels } };
}
