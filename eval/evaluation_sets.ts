/**
 * The test sets an evaluation can score, by name (README, "OOD test sets"):
 *   fashion-mnist, mnist, kmnist   the datasets' test splits (data/datasets.ts);
 *   notmnist, omniglot, smallnorb  the paper's other OOD sets, from their official files, prepared as
 *                                  hvae-oodd prepares them (data/extra_datasets.ts);
 *   cifar10, svhn                  the colour pair's test sets (data/colour_datasets.ts), 32x32 RGB;
 *   fashion-mnist-hflip, -vflip    Fashion-MNIST's test images mirrored left-right, upside down
 *   (cifar10-hflip, -vflip)        (CIFAR-10's, for a colour model);
 *   fashion-mnist-inverted         255 - pixel: light clothes on black become dark on white
 *   (cifar10-inverted)             (CIFAR-10's colours inverted);
 *   noise                          Bernoulli noise: each value 255 with probability m, else 0, where m is
 *                                  the in-distribution set's mean test intensity (10000 images, a fixed
 *                                  seed; Fashion-MNIST's for a grayscale model, CIFAR-10's for RGB);
 *   blank                          10000 all-black images;
 *   a directory                    the PNG and IDX image files in it and below it, at the model's size
 *                                  (a user's own set, data/image_inputs.ts), read a batch at a time.
 * The transformed and synthetic sets are the usual sanity checks of likelihood-based detectors:
 * they cost nothing and need no download, and they are the same on every machine.
 */

import { type DatasetName, loadSplit } from "../data/datasets.ts";
import { DATASET_DISPLAY, DATASET_IMAGES, IDX_DATASET_NAMES, pairedOodSet } from "../data/dataset_names.ts";

export { pairedOodSet } from "../data/dataset_names.ts";
import { type ColourDataOptions, loadColourSplit } from "../data/colour_datasets.ts";
import {
  EXTRA_DATASET_NAMES,
  type ExtraDataOptions,
  type ExtraDatasetName,
  loadExtraDataset,
} from "../data/extra_datasets.ts";
import type { IdxArray } from "../data/idx.ts";
import { collectImages, type ImageInputs, openImageInputs, shapeName } from "../data/image_inputs.ts";
import { type ImageSet, imageSetFromPixels } from "../data/loader.ts";
import { createRng } from "../models/rng.ts";

/** A test set's images and labels, and where they came from. */
export interface TestSet {
  /** The name it was asked for (a built-in name, or the directory). */
  name: string;
  /** A name for tables and figures. */
  display: string;
  /** Images: dims [N, rows, cols] (grayscale) or [N, rows, cols, 3] (RGB), bytes. */
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
  ...IDX_DATASET_NAMES.filter((n) => n !== "fashion-mnist"),
  ...EXTRA_DATASET_NAMES,
  ...DERIVED_SETS,
];

/** Every built-in OOD set for a CIFAR-10 model (32x32 RGB), in the order `--ood all` scores them. */
export const COLOUR_BUILT_IN_SETS: readonly string[] = [
  "svhn",
  "cifar10-hflip",
  "cifar10-vflip",
  "cifar10-inverted",
  "noise",
  "blank",
];

/** The OOD sets asked for, or (none asked for) the paper's pair of the training data. */
export function oodSetsAskedFor(ood: readonly string[], inName: DatasetName): readonly string[] {
  return ood.length > 0 ? ood : [pairedOodSet(inName)];
}

/** The built-in OOD sets `--ood all` scores for a model trained on `inName`, its own set left out. */
export function builtInSetsFor(inName: DatasetName): readonly string[] {
  return DATASET_IMAGES[inName].channels === 3
    ? COLOUR_BUILT_IN_SETS
    : BUILT_IN_SETS.filter((n) => n !== inName);
}

/** The image shape a test set is loaded at: the model's (channels 1 when absent). */
export interface TestImageShape {
  /** Rows. */
  height: number;
  /** Columns. */
  width: number;
  /** Values per pixel: 1 (grayscale, the default) or 3 (RGB). */
  channels?: number;
}

/** Where test sets come from, and which set the model was trained on (the noise set's mean). */
export interface TestSetOptions extends ExtraDataOptions, ColourDataOptions {
  /** The in-distribution dataset (default: Fashion-MNIST for grayscale, CIFAR-10 for RGB). */
  inDistribution?: DatasetName;
}

const DISPLAY: Record<string, string> = {
  ...DATASET_DISPLAY,
  notmnist: "notMNIST",
  omniglot: "Omniglot",
  smallnorb: "SmallNORB",
  svhn: "SVHN",
  "cifar10-hflip": "CIFAR-10 h-flip",
  "cifar10-vflip": "CIFAR-10 v-flip",
  "cifar10-inverted": "CIFAR-10 inverted",
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
  return name === "fashion-mnist" || name === "cifar10" || BUILT_IN_SETS.includes(name) ||
    COLOUR_BUILT_IN_SETS.includes(name);
}

/** The display name of a set (a directory's last path component). */
export function displayName(name: string): string {
  return DISPLAY[name] ?? (name.replace(/\/+$/, "").split("/").pop() || name);
}

const idx = (dims: number[], data: Uint8Array): IdxArray => ({ dims, data });

/** Applies `f(row, col) -> source pixel index` to every image of a split (every channel of a pixel). */
function remapped(
  images: IdxArray,
  f: (r: number, c: number, rows: number, cols: number) => number,
): IdxArray {
  const [n, rows, cols] = images.dims;
  const channels = images.dims[3] ?? 1;
  const out = new Uint8Array(images.data.length);
  for (let i = 0; i < n; i++) {
    const base = i * rows * cols * channels;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const to = base + (r * cols + c) * channels, from = base + f(r, c, rows, cols) * channels;
        out.set(images.data.subarray(from, from + channels), to);
      }
    }
  }
  return idx(images.dims, out);
}

/**
 * Loads a test set by name (see the module comment) at the model's image shape; errors name the set
 * and, for datasets, every place looked at.
 */
export async function loadTestSet(
  name: string,
  image: TestImageShape,
  options: TestSetOptions = {},
): Promise<TestSet> {
  const { height, width } = image, channels = image.channels ?? 1;
  const display = displayName(name);
  if ((EXTRA_DATASET_NAMES as readonly string[]).includes(name)) {
    const set = await loadExtraDataset(name as ExtraDatasetName, options);
    return { name, display, ...set };
  }
  if (name === "svhn") {
    const split = await loadColourSplit("svhn", "test", options);
    return { name, display, images: split.images, labels: split.labels, source: split.source };
  }
  if (Object.hasOwn(DATASET_IMAGES, name)) {
    const split = await loadSplit(name as DatasetName, "test", options);
    return { name, display, images: split.images, labels: split.labels, source: split.source };
  }
  const derived = name.match(/^(fashion-mnist|cifar10)-(hflip|vflip|inverted)$/);
  if (derived) {
    const base = derived[1] as DatasetName;
    const split = await loadSplit(base, "test", options);
    const images = derived[2] === "hflip"
      ? remapped(split.images, (r, c, _, cols) => r * cols + (cols - 1 - c))
      : derived[2] === "vflip"
      ? remapped(split.images, (r, c, rows, cols) => (rows - 1 - r) * cols + c)
      : idx(split.images.dims, split.images.data.map((v) => 255 - v));
    const how = { hflip: "mirrored left-right", vflip: "upside down" }[derived[2]] ??
      "inverted (255 - value)";
    return {
      name,
      display,
      images,
      labels: split.labels,
      source: `${displayName(base)} test (${split.source}), ${how}`,
    };
  }
  const dims = channels === 1 ? [SYNTHETIC_COUNT, height, width] : [SYNTHETIC_COUNT, height, width, channels];
  const values = SYNTHETIC_COUNT * height * width * channels;
  const none = idx([SYNTHETIC_COUNT], new Uint8Array(SYNTHETIC_COUNT));
  if (name === "blank") {
    return {
      name,
      display,
      images: idx(dims, new Uint8Array(values)),
      labels: none,
      source: "all-black images",
    };
  }
  if (name === "noise") {
    const inName = options.inDistribution ?? (channels === 3 ? "cifar10" : "fashion-mnist");
    const test = await loadSplit(inName, "test", options);
    let sum = 0;
    for (const v of test.images.data) sum += v;
    const mean = sum / test.images.data.length / 255;
    const rng = createRng(NOISE_SEED);
    const data = new Uint8Array(values);
    for (let i = 0; i < data.length; i++) data[i] = rng.uniform() < mean ? 255 : 0;
    return {
      name,
      display,
      images: idx(dims, data),
      labels: none,
      source: `Bernoulli(${mean.toFixed(4)}) noise, ${
        displayName(inName)
      }'s mean test intensity, seed ${NOISE_SEED}`,
    };
  }
  const dir = await directorySet(name, image);
  const read = await collectImages(dir.inputs, height * width * channels);
  const count = read.names.length;
  return {
    name,
    display,
    images: idx(dims.with(0, count), read.pixels),
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
  image: TestImageShape,
  options: TestSetOptions = {},
): Promise<TestSet | DirectorySet> {
  if (isBuiltInSet(name)) return await loadTestSet(name, image, options);
  return await directorySet(name, image);
}

/** A user's directory of PNG and IDX image files (recursively, in name order) as a test set. */
async function directorySet(dir: string, image: TestImageShape): Promise<DirectorySet> {
  let info: Deno.FileInfo | null = null;
  try {
    info = await Deno.stat(dir);
  } catch (error) {
    const sets = (image.channels ?? 1) === 3
      ? ["cifar10", ...COLOUR_BUILT_IN_SETS]
      : ["fashion-mnist", ...BUILT_IN_SETS];
    throw new Error(
      `--ood ${dir}: not a built-in set (${sets.join(", ")}) nor a readable ` +
        `directory (${(error as Error).message})`,
    );
  }
  if (!info.isDirectory) throw new Error(`--ood ${dir}: not a built-in set nor a directory`);
  const inputs = await openImageInputs([dir], image.height, image.width, image.channels ?? 1);
  return {
    name: dir,
    display: displayName(dir),
    inputs,
    source: `${inputs.count} image(s) in ${inputs.files} file(s) under ${dir}`,
  };
}

/**
 * Uploads the first `limit` images (all by default) of a test set (a directory's are read first);
 * images of another shape than `expect` are an error naming the set, its source and both shapes.
 */
export async function testSetOnGpu(
  t: TestSet | DirectorySet,
  limit: number | undefined,
  expect: TestImageShape,
): Promise<ImageSet> {
  const channels = expect.channels ?? 1;
  if ("inputs" in t) {
    const { pixels, names } = await collectImages(t.inputs, expect.height * expect.width * channels, limit);
    return imageSetFromPixels(
      t.display,
      pixels,
      expect.height,
      expect.width,
      new Uint8Array(names.length),
      channels,
    );
  }
  const [count, height, width] = t.images.dims;
  const have = t.images.dims[3] ?? 1;
  if (height !== expect.height || width !== expect.width || have !== channels) {
    throw new Error(
      `${t.display} (from ${t.source}): the images are ${shapeName(height, width, have)}; the model takes ${
        shapeName(expect.height, expect.width, channels)
      }`,
    );
  }
  if (count < 1) throw new Error(`${t.display} (from ${t.source}): the set holds no images`);
  const n = Math.min(count, limit ?? count);
  return imageSetFromPixels(
    t.display,
    t.images.data.subarray(0, n * height * width * channels),
    height,
    width,
    t.labels.data.slice(0, n),
    channels,
  );
}

/** A name for files and CSV cells: the built-in name, or `dir-<last path component>`, in [a-z0-9-]. */
export function fileKey(name: string): string {
  if (isBuiltInSet(name)) return name;
  return `dir-${displayName(name).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "set"}`;
}
