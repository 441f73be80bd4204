/**
 * Reading and writing files safely: inputs are refused unless they are regular files of a sane size
 * (no `/dev/zero`, no FIFO, no multi-gigabyte surprise), and outputs are written to a `.tmp` name and
 * renamed into place, so a crash or a full disk never leaves a half-written file under the real name.
 */

/**
 * Reads a whole regular file of at most `maxBytes`; errors name the file and say what is wrong
 * (missing, a directory, a device or pipe, too large) before reading anything.
 */
export async function readRegularFile(path: string, maxBytes: number, what = "file"): Promise<Uint8Array> {
  const info = await statRegularFile(path, what);
  if (info.size > maxBytes) {
    throw new Error(`${path}: ${info.size} bytes, more than any ${what} this program reads (${maxBytes})`);
  }
  try {
    return await Deno.readFile(path);
  } catch (error) {
    throw new Error(`${path}: cannot read (${(error as Error).message})`);
  }
}

/**
 * The file's information when it is a regular file; else an error naming it and what it is (missing,
 * a directory, a device or pipe: never read, since /dev/zero or a FIFO has no end).
 */
export async function statRegularFile(path: string, what = "file"): Promise<Deno.FileInfo> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    throw new Error(`${path}: cannot read (${(error as Error).message})`);
  }
  if (info.isDirectory) throw new Error(`${path}: is a directory, not a ${what}`);
  if (!info.isFile) throw new Error(`${path}: not a regular file (a device or a pipe?), not a ${what}`);
  return info;
}

/** Writes atomically: `<path>.tmp`, then rename; a failed write removes the `.tmp`. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await writeFilesAtomic([[path, bytes]]);
}

/**
 * Writes several files all or nothing, as far as a file system allows: every `<path>.tmp` in full
 * first (when one fails, for a full disk or a permission, all are removed and no file changes), then
 * the renames, in order. Errors name the file.
 */
export async function writeFilesAtomic(files: readonly (readonly [string, Uint8Array])[]): Promise<void> {
  const written: string[] = [];
  try {
    for (const [path, bytes] of files) {
      written.push(`${path}.tmp`);
      try {
        await Deno.writeFile(`${path}.tmp`, bytes);
      } catch (error) {
        throw new Error(`${path}: ${(error as Error).message}`);
      }
    }
  } catch (error) {
    for (const tmp of written) await Deno.remove(tmp).catch(() => {});
    throw error;
  }
  for (const [path] of files) await Deno.rename(`${path}.tmp`, path);
}

/** The bytes of `parts` one after another, cut at `length` (default: all of them). */
export function concatBytes(parts: readonly Uint8Array[], length?: number): Uint8Array {
  const out = new Uint8Array(length ?? parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    if (at >= out.length) break;
    const part = p.subarray(0, out.length - at);
    out.set(part, at);
    at += part.length;
  }
  return out;
}
