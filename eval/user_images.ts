/**
 * Scoring a user's own images (`deno task score`, and the library API in mod.ts): read IDX image
 * files and PNGs at the model's size (no silent resizing), score them like the test sets
 * (eval/score_set.ts: the same binarisation and passes). `thresholdAtFpr` (eval/metrics.ts) turns
 * in-distribution scores into an OOD threshold for a target false-positive rate.
 */

import { gunzipIfNeeded, MAX_IDX_BYTES, parseIdx } from "../data/idx.ts";
import { concatBytes, readRegularFile } from "../data/files.ts";
import { imageSetFromPixels } from "../data/loader.ts";
import type { LoadedRun } from "../data/run.ts";
import { dispose } from "../kernels/tensor.ts";
import type { ImageScores } from "../models/scores.ts";
import { decodePng } from "../data/png.ts";
import { regretSet, scoreSet, type ScoreSetOptions } from "./score_set.ts";
import { REGRET_SCORE, type RegretSettings } from "./evaluate.ts";

/** Images read from users' files (`readUserImages`). */
export interface UserImages {
  /** "file" for a PNG, "file#i" for image i of an IDX file. */
  names: string[];
  /** Gray levels, image after image, height x width each, 0 = black background. */
  pixels: Uint8Array;
}

/** Reads PNG and IDX files (by content: PNG signature, else IDX, gzipped or raw) of `height` x `width` images. */
export async function readUserImages(
  paths: readonly string[],
  height: number,
  width: number,
): Promise<UserImages> {
  const names: string[] = [];
  const chunks: Uint8Array[] = [];
  for (const path of paths) {
    // Regular files only, of at most an IDX file's size: no /dev/zero, no pipe read without end.
    const bytes = await readRegularFile(path, MAX_IDX_BYTES, "PNG or IDX image file");
    if (bytes[0] === 0x89 && bytes[1] === 0x50) {
      const png = await decodePng(bytes, path, { expect: { width, height } });
      names.push(path);
      chunks.push(png.pixels);
    } else {
      const idx = parseIdx(await gunzipIfNeeded(bytes, path), path, "images");
      const [count, rows, cols] = idx.dims;
      if (idx.dims.length !== 3 || rows !== height || cols !== width) {
        throw new Error(
          `${path}: IDX images are ${idx.dims.slice(1).join("x")}; the model takes ${height}x${width}`,
        );
      }
      for (let i = 0; i < count; i++) names.push(`${path}#${i}`);
      chunks.push(idx.data);
    }
  }
  return { names, pixels: concatBytes(chunks) };
}

/**
 * Scores images given as gray levels (`count` x height x width) with every score, and with
 * Likelihood Regret (`regret`, models/regret.ts) when its settings are given.
 */
export async function scoreImages(
  run: LoadedRun,
  pixels: Uint8Array,
  o: Omit<ScoreSetOptions, "seed"> & { regret?: RegretSettings | null },
): Promise<ImageScores> {
  const { height, width } = run.config.model.image;
  const set = imageSetFromPixels("scoreImages: user images", pixels, height, width);
  try {
    // Each image scored as if alone: its scores depend on it, the run and the options, never on
    // which other images were given with it or in what order.
    const seed = run.config.training.seed;
    const scored = await scoreSet(run.params, run.config.model, set, { ...o, seed, eachImageAlone: true });
    if (o.regret) {
      scored.scores[REGRET_SCORE] = await regretSet(run.params, run.config.model, set, {
        ...o.regret,
        seed,
        batchSize: o.batchSize,
        eachImageAlone: true,
      });
    }
    return scored;
  } finally {
    dispose(set.bytes);
  }
}
