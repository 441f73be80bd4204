/**
 * A dataset published as files of its own format (the extra OOD sets, CIFAR-10, SVHN): where each
 * file is published, how to recognise it, and how `locateOfficialFiles` finds it locally or
 * downloads it into the per-user cache (docs/design.md section 6); the cache and the checked
 * download every dataset shares.
 */

import { createHash } from "node:crypto";
import type { DataOptions } from "./datasets.ts";
import { writeFileAtomic } from "./files.ts";

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** The per-user cache directory for downloaded datasets. */
export function defaultCacheDir(): string {
  const explicit = env("HVAE_OOD_CACHE");
  if (explicit) return explicit;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/hvae-ood`;
  return `${env("HOME") ?? "."}/.cache/hvae-ood`;
}

/** Whether `path` is a regular file. */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

function md5(bytes: Uint8Array): string {
  return createHash("md5").update(bytes).digest("hex");
}

/** How a downloaded file is recognised as the official one: its MD5, or (where none is published) its size. */
export type Expected = { md5: string } | { bytes: number };

/**
 * Downloads `url` into `dir/filename` after checking it against `expected` (an error names the URL
 * and both values); written to a temporary name, then renamed. Returns the path.
 */
export async function downloadChecked(
  url: string,
  expected: Expected,
  dir: string,
  filename: string,
): Promise<string> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if ("md5" in expected) {
    const got = md5(bytes);
    if (got !== expected.md5) {
      throw new Error(`${url}: checksum mismatch (MD5 ${got}, expected ${expected.md5})`);
    }
  } else if (bytes.length !== expected.bytes) {
    throw new Error(`${url}: ${bytes.length} bytes, the official file has ${expected.bytes}`);
  }
  await Deno.mkdir(dir, { recursive: true });
  await writeFileAtomic(`${dir}/${filename}`, bytes);
  return `${dir}/${filename}`;
}

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
