/**
 * The test sets an evaluation can score, by name (README, "OOD test sets"):
 *   fashion-mnist, mnist, kmnist   the datasets' test splits (data/datasets.ts);
 *   notmnist, omniglot, smallnorb  the paper's other OOD sets, from their official files, prepared as
 *                                  hvae-oodd prepares them (data/extra_datasets.ts);
 *   fashion-mnist-hflip, -vflip    Fashion-MNIST's test images mirrored left-right, upside down;
 *   fashion-mnist-inverted         255 - pixel: light clothes on black become dark on white;
 *   noise                          Bernoulli noise: each pixel 255 with probability m, else 0, where m is
 *                                  Fashion-MNIST's mean test intensity (10000 images, a fixed seed);
 *   blank                          10000 all-black images;
 *   a directory                    the PNG and IDX image files in it and below it, at the model's size
 *                                  (a user's own set, data/image_inputs.ts), read a batch at a time.
 * The transformed and synthetic sets are the usual sanity checks of likelihood-based detectors:
 * they cost nothing and need no download, and they are the same on every machine.
 */

import { DATASET_NAMES, type DatasetName, loadSplit } from "../data/datasets.ts";
import {
  EXTRA_DATASET_NAMES,
  type ExtraDataOptions,
  type ExtraDatasetName,
  loadExtraDataset,
} from "../data/extra_datasets.ts";
import type { IdxArray } from "../data/idx.ts";
import { collectImages, type ImageInputs, openImageInputs } from "../data/image_inputs.ts";
import { type ImageSet, imageSetFromPixels } from "../data/loader.ts";
import { createRng } from "../models/rng.ts";

/** A test set's images and labels, and where they came from. */
export interface TestSet {
  /** The name it was asked for (a built-in name, or the directory). */
  name: string;
  /** A name for tables and figures. */
  display: string;
  /** Images: dims [N, rows, cols], bytes. */
  images: IdxArray;
  /** Labels: dims [N] (0 where a set has none). */
  labels: IdxArray;
  /** Where the images came from, in words. */
  source: string;
}

/**
 * A user's directory as a test set: its images are counted, not loaded; they are read a batch at a
 * time when scored (eval/user_images.ts, `scoreAllInputs`), so a set of any size fits in memory.
 */
export interface DirectorySet {
  /** The directory. */
  name: string;
  /** Its last path component. */
  display: string;
  /** The images. */
  inputs: ImageInputs;
  /** Where the images came from, in words. */
  source: string;
}

/** The built-in test sets that are not plain datasets. */
export const DERIVED_SETS = [
  "fashion-mnist-hflip",
  "fashion-mnist-vflip",
  "fashion-mnist-inverted",
  "noise",
  "blank",
] as const;

/** Every built-in OOD set for a Fashion-MNIST model, in the order `--ood all` scores them. */
export const BUILT_IN_SETS: readonly string[] = [
  ...DATASET_NAMES.filter((n) => n !== "fashion-mnist"),
  ...EXTRA_DATASET_NAMES,
  ...DERIVED_SETS,
];

const DISPLAY: Record<string, string> = {
  "fashion-mnist": "Fashion-MNIST",
  mnist: "MNIST",
  kmnist: "KMNIST",
  notmnist: "notMNIST",
  omniglot: "Omniglot",
  smallnorb: "SmallNORB",
  "fashion-mnist-hflip": "FMNIST h-flip",
  "fashion-mnist-vflip": "FMNIST v-flip",
  "fashion-mnist-inverted": "FMNIST inverted",
  noise: "Noise",
  blank: "Blank",
};

/** The seed of the noise set (any fixed number: the set is the same in every run and on every machine). */
const NOISE_SEED = 2022;
/** Images in each synthetic set: as many as a test split. */
const SYNTHETIC_COUNT = 10000;

/** Whether `name` is a built-in set (else it is taken for a directory). */
export function isBuiltInSet(name: string): boolean {
  return name === "fashion-mnist" || BUILT_IN_SETS.includes(name);
}

/** The display name of a set (a directory's last path component). */
export function displayName(name: string): string {
  return DISPLAY[name] ?? (name.replace(/\/+$/, "").split("/").pop() || name);
}

const idx = (dims: number[], data: Uint8Array): IdxArray => ({ dims, data });

/** Applies `f(image, row, col) -> source pixel index` to every image of a split. */
function remapped(
  images: IdxArray,
  f: (r: number, c: number, rows: number, cols: number) => number,
): IdxArray {
  const [n, rows, cols] = images.dims;
  const out = new Uint8Array(images.data.length);
  for (let i = 0; i < n; i++) {
    const base = i * rows * cols;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) out[base + r * cols + c] = images.data[base + f(r, c, rows, cols)];
    }
  }
  return idx(images.dims, out);
}

/**
 * Loads a test set by name (see the module comment) at `height` x `width`; errors name the set and,
 * for datasets, every place looked at.
 */
export async function loadTestSet(
  name: string,
  height: number,
  width: number,
  options: ExtraDataOptions = {},
): Promise<TestSet> {
  const display = displayName(name);
  if ((EXTRA_DATASET_NAMES as readonly string[]).includes(name)) {
    const set = await loadExtraDataset(name as ExtraDatasetName, options);
    return { name, display, ...set };
  }
  if ((DATASET_NAMES as readonly string[]).includes(name)) {
    const split = await loadSplit(name as DatasetName, "test", options);
    return { name, display, images: split.images, labels: split.labels, source: split.source };
  }
  if (name.startsWith("fashion-mnist-")) {
    const split = await loadSplit("fashion-mnist", "test", options);
    const images = name === "fashion-mnist-hflip"
      ? remapped(split.images, (r, c, _, cols) => r * cols + (cols - 1 - c))
      : name === "fashion-mnist-vflip"
      ? remapped(split.images, (r, c, rows, cols) => (rows - 1 - r) * cols + c)
      : idx(split.images.dims, split.images.data.map((v) => 255 - v));
    const how =
      { "fashion-mnist-hflip": "mirrored left-right", "fashion-mnist-vflip": "upside down" }[name] ??
        "inverted (255 - pixel)";
    return {
      name,
      display,
      images,
      labels: split.labels,
      source: `Fashion-MNIST test (${split.source}), ${how}`,
    };
  }
  const dims = [SYNTHETIC_COUNT, height, width];
  const none = idx([SYNTHETIC_COUNT], new Uint8Array(SYNTHETIC_COUNT));
  if (name === "blank") {
    return {
      name,
      display,
      images: idx(dims, new Uint8Array(SYNTHETIC_COUNT * height * width)),
      labels: none,
      source: "all-black images",
    };
  }
  if (name === "noise") {
    const fashion = await loadSplit("fashion-mnist", "test", options);
    let sum = 0;
    for (const v of fashion.images.data) sum += v;
    const mean = sum / fashion.images.data.length / 255;
    const rng = createRng(NOISE_SEED);
    const data = new Uint8Array(SYNTHETIC_COUNT * height * width);
    for (let i = 0; i < data.length; i++) data[i] = rng.uniform() < mean ? 255 : 0;
    return {
      name,
      display,
      images: idx(dims, data),
      labels: none,
      source: `Bernoulli(${mean.toFixed(4)}) noise, Fashion-MNIST's mean test intensity, seed ${NOISE_SEED}`,
    };
  }
  const dir = await directorySet(name, height, width);
  const read = await collectImages(dir.inputs, height * width);
  const count = read.names.length;
  return {
    name,
    display,
    images: idx([count, height, width], read.pixels),
    labels: idx([count], new Uint8Array(count)),
    source: dir.source,
  };
}

/**
 * A set by name as `loadTestSet` loads it, except a directory, which is opened (its images counted
 * and checked, not read: `DirectorySet`).
 */
export async function openTestSet(
  name: string,
  height: number,
  width: number,
  options: ExtraDataOptions = {},
): Promise<TestSet | DirectorySet> {
  if (isBuiltInSet(name)) return await loadTestSet(name, height, width, options);
  return await directorySet(name, height, width);
}

/** A user's directory of PNG and IDX image files (recursively, in name order) as a test set. */
async function directorySet(dir: string, height: number, width: number): Promise<DirectorySet> {
  let info: Deno.FileInfo | null = null;
  try {
    info = await Deno.stat(dir);
  } catch (error) {
    throw new Error(
      `--ood ${dir}: not a built-in set (${["fashion-mnist", ...BUILT_IN_SETS].join(", ")}) nor a readable ` +
        `directory (${(error as Error).message})`,
    );
  }
  if (!info.isDirectory) throw new Error(`--ood ${dir}: not a built-in set nor a directory`);
  const inputs = await openImageInputs([dir], height, width);
  return {
    name: dir,
    display: displayName(dir),
    inputs,
    source: `${inputs.count} image(s) in ${inputs.files} file(s) under ${dir}`,
  };
}

/**
 * Uploads the first `limit` images (all by default) of a test set (a directory's are read first);
 * images of another size than `expect` are an error naming the set, its source and both sizes.
 */
export async function testSetOnGpu(
  t: TestSet | DirectorySet,
  limit: number | undefined,
  expect: { height: number; width: number },
): Promise<ImageSet> {
  if ("inputs" in t) {
    const { pixels, names } = await collectImages(t.inputs, expect.height * expect.width, limit);
    return imageSetFromPixels(t.display, pixels, expect.height, expect.width, new Uint8Array(names.length));
  }
  const [count, height, width] = t.images.dims;
  if (height !== expect.height || width !== expect.width) {
    throw new Error(
      `${t.display} (from ${t.source}): the images are ${height}x${width}; the model takes ${expect.height}x${expect.width}`,
    );
  }
  if (count < 1) throw new Error(`${t.display} (from ${t.source}): the set holds no images`);
  const n = Math.min(count, limit ?? count);
  return imageSetFromPixels(
    t.display,
    t.images.data.subarray(0, n * height * width),
    height,
    width,
    t.labels.data.slice(0, n),
  );
}

/** A name for files and CSV cells: the built-in name, or `dir-<last path component>`, in [a-z0-9-]. */
export function fileKey(name: string): string {
  if (isBuiltInSet(name)) return name;
  return `dir-${displayName(name).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "set"}`;
}
