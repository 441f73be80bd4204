/**
 * A user's images as named on a command line (`deno task score --input`, `deno task ood --ood DIR`):
 * PNG files, IDX image files (raw or gzipped) and directories of them, searched recursively in name
 * order. They are read a batch at a time (data/idx_stream.ts), so memory holds one batch of pixels
 * and one directory's listing, never the whole input: a million images cost what a thousand do.
 *
 * Which files count: every file named directly (a PNG by its `.png` name or its signature, else IDX);
 * in a directory, the files named `*.png`, `*.idx`, `*.gz` or `*-ubyte` (MNIST's names), without
 * dot-files, symbolic links to directories or anything else. A file named `.png` must be a PNG.
 */

import { readRegularFile } from "./files.ts";
import { openIdxImages } from "./idx_stream.ts";
import { decodePng, pngHeader } from "./png.ts";
import { shapeName } from "./dataset_names.ts";

export { shapeName } from "./dataset_names.ts";

/** Consecutive images of the inputs. */
export interface ImageBatch {
  /** "file" for a PNG, "file#i" for image i of an IDX file. */
  names: string[];
  /** Pixel bytes, image after image, height x width x channels each (gray levels, or RGB triples). */
  pixels: Uint8Array;
  /** The index of the first image among all the inputs' images. */
  first: number;
}

/** The inputs, counted and checked (every IDX header read), ready to be read in batches. */
export interface ImageInputs {
  /** Images in all. */
  count: number;
  /** Image files in all. */
  files: number;
  /**
   * The images `size` at a time, in order, after the first `skip` (a resumed run: a raw IDX file
   * seeks, a PNG is not opened), and no further than `limit` images in all.
   */
  batches(size: number, options?: { skip?: number; limit?: number }): AsyncGenerator<ImageBatch>;
}

/** The largest PNG file read (a 28x28 or 32x32 image takes a few kilobytes). */
const MAX_PNG_BYTES = 2 ** 26;
/** The file names a directory search takes. */
const IMAGE_FILE_NAME = /\.(png|idx|gz)$|-ubyte$/i;

const isPngName = (path: string) => /\.png$/i.test(path);

/** Whether a file is read as a PNG: its name says so, or its first bytes are PNG's signature. */
async function isPng(path: string): Promise<boolean> {
  if (isPngName(path)) return true;
  try {
    using file = await Deno.open(path, { read: true });
    const head = new Uint8Array(2);
    return (await file.read(head)) === 2 && head[0] === 0x89 && head[1] === 0x50;
  } catch {
    return false; // Not readable: opening it as IDX names the file and the reason.
  }
}

/**
 * The image files of `path`: the file itself, or a directory's image files, recursively, each
 * directory's entries in name order. A directory's listing is held while it is searched.
 */
async function* imageFiles(path: string): AsyncGenerator<string> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    throw new Error(`${path}: cannot read (${(error as Error).message})`);
  }
  if (!info.isDirectory) {
    yield path;
    return;
  }
  const entries: { name: string; dir: boolean }[] = [];
  try {
    for await (const e of Deno.readDir(path)) {
      if (e.name.startsWith(".")) continue;
      if (e.isDirectory) entries.push({ name: e.name, dir: true });
      else if (IMAGE_FILE_NAME.test(e.name)) entries.push({ name: e.name, dir: false });
    }
  } catch (error) {
    throw new Error(`${path}: cannot list the directory (${(error as Error).message})`);
  }
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const e of entries) {
    const child = `${path.replace(/\/+$/, "")}/${e.name}`;
    if (e.dir) yield* imageFiles(child);
    else yield child;
  }
}

/**
 * How many images a file holds: 1 for a PNG (its header checked against the model's size and, for an
 * RGB model, colour), the header's count for IDX (checked against the size).
 */
async function imagesIn(path: string, height: number, width: number, channels: number): Promise<number> {
  if (await isPng(path)) {
    const head = new Uint8Array(33);
    try {
      using file = await Deno.open(path, { read: true });
      let got = 0;
      while (got < head.length) {
        const n = await file.read(head.subarray(got));
        if (n === null) break;
        got += n;
      }
    } catch (error) {
      throw new Error(`${path}: cannot read (${(error as Error).message})`);
    }
    const png = pngHeader(head);
    // Not a PNG after all (or cut short): decoding it says what is wrong, by name.
    if (!png) return 1;
    if (png.width !== width || png.height !== height) {
      throw new Error(
        `${path}: the image is ${png.width}x${png.height}; the model takes ${width}x${height} ` +
          `(resize it yourself: no silent resizing)`,
      );
    }
    if (channels === 3 && !png.rgb) {
      throw new Error(
        `${path}: a grayscale PNG; the model takes RGB images (save it as RGB: no silent conversion)`,
      );
    }
    return 1;
  }
  const idx = await openIdxImages(path);
  idx.close();
  if (idx.rows !== height || idx.cols !== width || idx.channels !== channels) {
    throw new Error(
      `${path}: IDX images are ${shapeName(idx.rows, idx.cols, idx.channels)}; the model takes ${
        shapeName(height, width, channels)
      }`,
    );
  }
  return idx.count;
}

/**
 * Opens `paths` (files and directories) as `height` x `width` images of `channels` (1 gray, 3 RGB):
 * every file is found and counted, and every IDX header checked, before any image is read. Errors
 * name the file; a directory without image files is an error.
 */
export async function openImageInputs(
  paths: readonly string[],
  height: number,
  width: number,
  channels = 1,
): Promise<ImageInputs> {
  let count = 0, files = 0;
  for (const path of paths) {
    let found = 0;
    for await (const file of imageFiles(path)) {
      count += await imagesIn(file, height, width, channels);
      found++;
    }
    if (found === 0) throw new Error(`${path}: the directory holds no .png or IDX image files`);
    files += found;
  }
  return {
    count,
    files,
    async *batches(size, { skip = 0, limit = Infinity } = {}) {
      const end = Math.min(count, limit);
      let at = 0, names: string[] = [], parts: Uint8Array[] = [], first = skip;
      const flush = (): ImageBatch => {
        const pixels = new Uint8Array(names.length * height * width * channels);
        let offset = 0;
        for (const part of parts) [pixels.set(part, offset), offset += part.length];
        const batch = { names, pixels, first };
        first += names.length;
        [names, parts] = [[], []];
        return batch;
      };
      for (const path of paths) {
        for await (const file of imageFiles(path)) {
          if (at >= end) break;
          if (await isPng(file)) {
            if (at++ < skip) continue;
            const bytes = await readRegularFile(file, MAX_PNG_BYTES, "PNG file");
            const png = await decodePng(bytes, file, {
              expect: { width, height },
              channels: channels === 3 ? 3 : 1,
            });
            parts.push(png.pixels);
            names.push(file);
            if (names.length === size) yield flush();
            continue;
          }
          const idx = await openIdxImages(file);
          try {
            const dropped = Math.min(idx.count, Math.max(0, skip - at));
            await idx.skip(dropped);
            let i = dropped;
            at += dropped;
            if (dropped > 0 && i === idx.count) await idx.finish();
            while (i < idx.count && at < end) {
              const n = Math.min(size - names.length, idx.count - i, end - at);
              parts.push(await idx.next(n));
              for (let j = 0; j < n; j++) names.push(`${file}#${i + j}`);
              [i, at] = [i + n, at + n];
              // The file's end is checked before its last images are given out.
              if (i === idx.count) await idx.finish();
              if (names.length === size) yield flush();
            }
          } finally {
            idx.close();
          }
        }
      }
      if (names.length > 0) yield flush();
    },
  };
}

/** The first `limit` images (all by default) of `inputs` in memory at once, with their names. */
export async function collectImages(
  inputs: ImageInputs,
  pixelsPerImage: number,
  limit = Infinity,
): Promise<{ names: string[]; pixels: Uint8Array }> {
  const names: string[] = [], pixels = new Uint8Array(Math.min(inputs.count, limit) * pixelsPerImage);
  for await (const batch of inputs.batches(1024, { limit })) {
    if ((batch.first + batch.names.length) * pixelsPerImage > pixels.length) {
      throw new Error(
        `${batch.names[0]}: the inputs changed while they were read (more images than counted)`,
      );
    }
    pixels.set(batch.pixels, batch.first * pixelsPerImage);
    names.push(...batch.names);
  }
  return { names, pixels: pixels.subarray(0, names.length * pixelsPerImage) };
}

/** Every image of `paths` in memory at once (for a few images; `openImageInputs` streams any number). */
export async function readImageInputs(
  paths: readonly string[],
  height: number,
  width: number,
  channels = 1,
): Promise<{ names: string[]; pixels: Uint8Array }> {
  return await collectImages(
    await openImageInputs(paths, height, width, channels),
    height * width * channels,
  );
}
