/**
 * Reading a file's bytes a piece at a time, raw or through gunzip, so that a reader of a large file
 * (a million-image IDX file, data/idx_stream.ts) holds one piece in memory, never the file. A raw
 * file skips by seeking; a gzipped one can only inflate and drop.
 */

import { statRegularFile } from "./files.ts";

/** Bytes read in order, `read(n)` at a time. */
export interface ByteSource {
  /** The next `n` bytes, or fewer only at the end of the data. */
  read(n: number): Promise<Uint8Array>;
  /** Drops the next `n` bytes; returns how many there were (fewer only at the end). */
  skip(n: number): Promise<number>;
  /** Whether the data has ended (reads ahead at most one chunk, which the next read returns). */
  atEnd(): Promise<boolean>;
  /** Releases the file. */
  close(): void;
}

/** A regular file's bytes, read with `Deno.FsFile.read` (skip seeks). */
export function fileByteSource(file: Deno.FsFile): ByteSource {
  let closed = false, ended = false;
  const source: ByteSource = {
    async read(n) {
      const out = new Uint8Array(n);
      let at = 0;
      while (at < n && !ended) {
        const got = await file.read(out.subarray(at));
        if (got === null) ended = true;
        else at += got;
      }
      return at === n ? out : out.subarray(0, at);
    },
    async skip(n) {
      const here = await file.seek(0, Deno.SeekMode.Current);
      const size = (await file.stat()).size;
      const step = Math.max(0, Math.min(n, size - here));
      await file.seek(step, Deno.SeekMode.Current);
      return step;
    },
    async atEnd() {
      const here = await file.seek(0, Deno.SeekMode.Current);
      return here >= (await file.stat()).size;
    },
    close() {
      if (!closed) [closed] = [true, file.close()];
    },
  };
  return source;
}

/**
 * The bytes of a stream (a file inflated by `DecompressionStream`); `name` and `format` go into the
 * error a corrupt stream raises.
 */
export function streamByteSource(
  stream: ReadableStream<Uint8Array>,
  name: string,
  format: string,
  onClose: () => void = () => {},
): ByteSource {
  const reader = stream.getReader();
  let pending: Uint8Array | null = null, ended = false, closed = false;
  /** The next chunk of at most `max` bytes (null at the end), keeping the rest of it for later. */
  const chunk = async (max: number): Promise<Uint8Array | null> => {
    while (!pending?.length) {
      if (ended) return null;
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (error) {
        throw new Error(`${name}: corrupt ${format} data (${(error as Error).message})`);
      }
      if (result.done) ended = true;
      else pending = result.value;
    }
    const piece = pending.subarray(0, max);
    pending = pending.subarray(piece.length);
    return piece;
  };
  return {
    async read(n) {
      const out = new Uint8Array(n);
      let at = 0;
      while (at < n) {
        const piece = await chunk(n - at);
        if (piece === null) return out.subarray(0, at);
        out.set(piece, at);
        at += piece.length;
      }
      return out;
    },
    async skip(n) {
      let done = 0;
      while (done < n) {
        const piece = await chunk(n - done);
        if (piece === null) break;
        done += piece.length;
      }
      return done;
    },
    async atEnd() {
      if (pending?.length) return false;
      const piece = await chunk(Infinity);
      if (piece === null) return true;
      pending = piece;
      return false;
    },
    close() {
      if (closed) return;
      closed = true;
      reader.cancel().catch(() => {});
      onClose();
    },
  };
}

/**
 * Opens a regular file (errors name it and what is wrong: missing, a directory, a device or pipe)
 * as a byte source, gunzipped when its first two bytes are gzip's signature. Returns the source,
 * whether it was gzipped, and the file's size on disk.
 */
export async function openByteSource(
  path: string,
  what: string,
): Promise<{ source: ByteSource; gzipped: boolean; size: number }> {
  const info = await statRegularFile(path, what);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    throw new Error(`${path}: cannot read (${(error as Error).message})`);
  }
  const magic = new Uint8Array(2);
  const got = (await file.read(magic)) ?? 0;
  await file.seek(0, Deno.SeekMode.Start);
  if (got < 2 || magic[0] !== 0x1f || magic[1] !== 0x8b) {
    return { source: fileByteSource(file), gzipped: false, size: info.size };
  }
  // The file's stream closes the file when it ends or is cancelled.
  const inflated = file.readable.pipeThrough(new DecompressionStream("gzip"));
  return { source: streamByteSource(inflated, path, "gzip"), gzipped: true, size: info.size };
}
