/**
 * A dataset published as files of its own format (the extra OOD sets, CIFAR-10, SVHN): where each
 * file is published, how to recognise it, and how `locateOfficialFiles` finds it locally or
 * downloads it into the per-user cache (docs/design.md section 6).
 */

import { type DataOptions, defaultCacheDir, downloadChecked, type Expected, isFile } from "./datasets.ts";

/** A file of a dataset: its name, where it is published, and how to recognise it. */
export interface OfficialFile {
  /** The file's name, as published and as looked for locally. */
  filename: string;
  /** Where it is published. */
  url: string;
  /** Its MD5, or its size where no checksum is published. */
  expected: Expected;
  /** The set can be read without it (SmallNORB's labels). */
  optional?: boolean;
}

/** A file found locally (raw, or with `.gz` removed or added), or null. */
async function findLocal(dirs: string[], filename: string): Promise<string | null> {
  const bare = filename.replace(/\.gz$/, "");
  for (const dir of dirs) {
    for (const name of [filename, bare, `${bare}.gz`]) {
      if (await isFile(`${dir}/${name}`)) return `${dir}/${name}`;
    }
  }
  return null;
}

/**
 * Finds a set's official files locally (`--data-dir` only, when given: directly or in `<name>/`;
 * else the per-user cache), or downloads the missing ones into the cache, each checked against its
 * MD5 or size. Returns their paths (null for a missing optional one) and the source, in words.
 */
export async function locateOfficialFiles(
  name: string,
  files: readonly OfficialFile[],
  o: DataOptions,
): Promise<{ paths: (string | null)[]; source: string }> {
  const cache = `${o.cacheDir ?? defaultCacheDir()}/${name}`;
  const dirs = o.dataDir ? [o.dataDir, `${o.dataDir}/${name}`] : [cache];
  const paths = await Promise.all(files.map((f) => findLocal(dirs, f.filename)));
  const required = files.map((f, i) => f.optional || paths[i] !== null);
  if (required.every(Boolean)) {
    return {
      paths,
      source: paths.find((p) => p !== null)!.replace(/\/[^/]*$/, ""),
    };
  }
  const missing = files.filter((_, i) => !required[i]).map((f) => f.filename);
  if (o.dataDir) {
    throw new Error(
      `--data-dir ${o.dataDir} does not hold ${name}'s ${missing.join(", ")} (directly or in ${name}/)`,
    );
  }
  if (o.download === false) throw new Error(`${name} not found in ${cache} (${missing.join(", ")})`);
  const fetched: (string | null)[] = [];
  for (const [i, f] of files.entries()) {
    if (paths[i] !== null) {
      fetched.push(paths[i]);
      continue;
    }
    try {
      fetched.push(await downloadChecked(f.url, f.expected, cache, f.filename));
    } catch (error) {
      if (f.optional) fetched.push(null);
      else {
        throw new Error(
          `${name} not found in ${cache} and not downloaded (${
            (error as Error).message
          }). To provide it: put ` +
            `${f.filename} (from ${f.url}) there, or pass --data-dir DIR holding it`,
        );
      }
    }
  }
  return { paths: fetched, source: `download into ${cache}` };
}
