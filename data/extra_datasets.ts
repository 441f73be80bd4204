/**
 * The paper's other Fashion-MNIST-side OOD sets (its Table 3), read from their official distribution
 * files and prepared as Havtorn et al.'s hvae-oodd prepares them (its `oodd/datasets/`):
 *   notmnist   notMNIST_small.tar.gz (Bulatov, 2011): folders A..J of 28x28 gray PNGs; files that do
 *              not decode (the archive has a few) are skipped and counted. Label: the letter.
 *   omniglot   images_evaluation.zip (Lake et al., 2015): 13180 binary 105x105 PNGs, black strokes on
 *              white as distributed, resized to 28x28 by nearest neighbour. Label: the character.
 *   smallnorb  smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat}.mat[.gz] (LeCun et al., 2004): 24300
 *              stereo pairs of 96x96, both images of each pair, resized to 28x28 by Pillow's antialiased
 *              bilinear (data/resample.ts). Label: the category (0 if the -cat file is absent).
 * Each is looked for like the IDX datasets (data/datasets.ts): `--data-dir` (only it, when given), then
 * the per-user cache, then a download into the cache, checked against the MD5 torchvision and
 * hvae-oodd verify (notMNIST publishes none: its size is checked, as hvae-oodd does).
 */

import type { DataOptions } from "./datasets.ts";
import { locateOfficialFiles, type OfficialFile } from "./official_files.ts";
import { concatBytes, readRegularFile } from "./files.ts";
import { gunzipIfNeeded, type IdxArray } from "./idx.ts";
import { readTar, readZip } from "./archives.ts";
import { resizeBilinear, resizeNearest } from "./resample.ts";
import { decodePng } from "./png.ts";

export type { OfficialFile } from "./official_files.ts";

/** The OOD sets read from their own formats. */
export type ExtraDatasetName = "notmnist" | "omniglot" | "smallnorb";

/** Every `ExtraDatasetName`. */
export const EXTRA_DATASET_NAMES: readonly ExtraDatasetName[] = ["notmnist", "omniglot", "smallnorb"];

const NORB = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small";
const NORB_TEST = "smallnorb-5x01235x9x18x6x2x96x96-testing";

/** The official files of each set (overridable for tests: `ExtraDataOptions.official`). */
export const EXTRA_OFFICIAL: Record<ExtraDatasetName, OfficialFile[]> = {
  notmnist: [{
    filename: "notMNIST_small.tar.gz",
    url: "http://yaroslavvb.com/upload/notMNIST/notMNIST_small.tar.gz",
    expected: { bytes: 8458043 },
  }],
  omniglot: [{
    filename: "images_evaluation.zip",
    url: "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/images_evaluation.zip",
    expected: { md5: "6b91aef0f799c5bb55b94e3f2daec811" },
  }],
  smallnorb: [
    {
      filename: `${NORB_TEST}-dat.mat.gz`,
      url: `${NORB}/${NORB_TEST}-dat.mat.gz`,
      expected: { md5: "e4ad715691ed5a3a5f138751a4ceb071" },
    },
    {
      filename: `${NORB_TEST}-cat.mat.gz`,
      url: `${NORB}/${NORB_TEST}-cat.mat.gz`,
      expected: { md5: "5aa791cd7e6016cf957ce9bdb93b8603" },
      optional: true,
    },
  ],
};

/** Where `loadExtraDataset` looks, and the official files to fetch (tests serve them on 127.0.0.1). */
export interface ExtraDataOptions extends DataOptions {
  /** Replaces the official files' addresses and checks. */
  extraOfficial?: Partial<Record<ExtraDatasetName, OfficialFile[]>>;
}

/** The largest archive read (notMNIST's small set inflates to about 30 MB, SmallNORB's test data to 448 MB). */
const MAX_ARCHIVE_BYTES = 2 ** 30;

const idx = (dims: number[], data: Uint8Array): IdxArray => ({ dims, data });

/** An extra set's images at 28x28, its labels, and where it came from (with how it was prepared). */
export interface ExtraDataset {
  /** Images: dims [N, 28, 28], bytes. */
  images: IdxArray;
  /** Labels: dims [N]. */
  labels: IdxArray;
  /** The directory or download it came from, and how it was prepared. */
  source: string;
}

/** Loads one of the extra OOD sets' test images at 28x28 (see the module comment). */
export async function loadExtraDataset(
  name: ExtraDatasetName,
  o: ExtraDataOptions = {},
): Promise<ExtraDataset> {
  const { paths, source } = await locateOfficialFiles(
    name,
    o.extraOfficial?.[name] ?? EXTRA_OFFICIAL[name],
    o,
  );
  const read = async (path: string) =>
    await gunzipIfNeeded(
      await readRegularFile(path, MAX_ARCHIVE_BYTES, `${name} file`),
      path,
      MAX_ARCHIVE_BYTES,
    );
  const made = name === "notmnist"
    ? await notMnist(await read(paths[0]!), paths[0]!)
    : name === "omniglot"
    ? await omniglot(await read(paths[0]!), paths[0]!)
    : smallNorb(await read(paths[0]!), paths[0]!, paths[1] ? await read(paths[1]) : null, paths[1] ?? "");
  const [count] = made.images.dims;
  if (count < 1) throw new Error(`${paths[0]}: no images in it`);
  return { images: made.images, labels: made.labels, source: `${source}${made.note}` };
}

async function notMnist(tar: Uint8Array, path: string) {
  const pixels: Uint8Array[] = [], labels: number[] = [];
  let skipped = 0;
  for (const entry of readTar(tar, path)) {
    const letter = entry.name.match(/(?:^|\/)([A-J])\/[^/]+\.png$/i);
    if (!letter) continue;
    try {
      pixels.push((await decodePng(entry.data, entry.name, { expect: { width: 28, height: 28 } })).pixels);
      labels.push(letter[1].toUpperCase().charCodeAt(0) - 65);
    } catch {
      skipped++; // notMNIST ships a few empty or truncated files; hvae-oodd skips them too
    }
  }
  return {
    images: idx([pixels.length, 28, 28], concatBytes(pixels)),
    labels: idx([labels.length], Uint8Array.from(labels)),
    note: skipped ? ` (${skipped} unreadable files skipped)` : "",
  };
}

async function omniglot(zip: Uint8Array, path: string) {
  const entries = (await readZip(zip, path)).filter((e) => e.name.endsWith(".png")).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0
  );
  const characters = [...new Set(entries.map((e) => e.name.split("/").slice(-3, -1).join("/")))];
  const full: Uint8Array[] = [];
  let size = 0;
  for (const e of entries) {
    const png = await decodePng(e.data, `${path}: ${e.name}`);
    if (png.width !== png.height || (size && png.width !== size)) {
      throw new Error(
        `${path}: ${e.name} is ${png.width}x${png.height}; Omniglot's images are square, all alike`,
      );
    }
    size = png.width;
    full.push(png.pixels);
  }
  const labels = entries.map((e) => characters.indexOf(e.name.split("/").slice(-3, -1).join("/")) % 256);
  return {
    images: idx([full.length, 28, 28], resizeNearest(concatBytes(full), full.length, [size, size], [28, 28])),
    labels: idx([labels.length], Uint8Array.from(labels)),
    note: `, ${size}x${size} resized to 28x28 (nearest)`,
  };
}

/** A SmallNORB binary matrix (its "-dat.mat"/"-cat.mat" format): magic, rank, dims (at least 3), data. */
export function parseNorbMatrix(
  bytes: Uint8Array,
  name: string,
): { kind: "byte" | "int"; dims: number[]; data: Uint8Array } {
  if (bytes.length < 20) throw new Error(`${name}: too short for a SmallNORB matrix`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  const kind = magic === 0x1e3d4c55 ? "byte" : magic === 0x1e3d4c54 ? "int" : null;
  if (!kind) throw new Error(`${name}: not a SmallNORB matrix (magic 0x${magic.toString(16)})`);
  const rank = view.getInt32(4, true);
  if (rank < 1 || rank > 8) throw new Error(`${name}: a matrix of rank ${rank}`);
  const stored = Math.max(3, rank);
  const header = 8 + 4 * stored;
  const dims = Array.from({ length: rank }, (_, i) => view.getInt32(8 + 4 * i, true));
  const size = dims.reduce((a, b) => a * b, 1) * (kind === "int" ? 4 : 1);
  if (dims.some((d) => d < 0) || bytes.length !== header + size) {
    throw new Error(
      `${name}: the header says [${dims}] (${size} bytes of data), the file has ${bytes.length - header}`,
    );
  }
  return { kind, dims, data: bytes.subarray(header) };
}

function smallNorb(dat: Uint8Array, datPath: string, cat: Uint8Array | null, catPath: string) {
  const m = parseNorbMatrix(dat, datPath);
  if (m.kind !== "byte" || m.dims.length !== 4 || m.dims[1] !== 2) {
    throw new Error(`${datPath}: expected stereo pairs [N, 2, H, W] of bytes, got ${m.kind} [${m.dims}]`);
  }
  const [pairs, , h, w] = m.dims;
  const labels = new Uint8Array(2 * pairs);
  if (cat) {
    const c = parseNorbMatrix(cat, catPath);
    if (c.kind !== "int" || c.dims[0] !== pairs) {
      throw new Error(`${catPath}: expected ${pairs} int labels, got ${c.kind} [${c.dims}]`);
    }
    const view = new DataView(c.data.buffer, c.data.byteOffset, c.data.byteLength);
    for (let i = 0; i < 2 * pairs; i++) labels[i] = view.getInt32(4 * Math.floor(i / 2), true);
  }
  return {
    images: idx([2 * pairs, 28, 28], resizeBilinear(m.data, 2 * pairs, [h, w], [28, 28])),
    labels: idx([2 * pairs], labels),
    note: `, ${pairs} stereo pairs of ${h}x${w} resized to 28x28 (antialiased bilinear)${
      cat ? "" : ", no labels"
    }`,
  };
}
