/**
 * Inflating compressed data (gzip for IDX files, zlib for PNG image data) with a ceiling: the output
 * is streamed and refused as soon as it passes the most a valid file could hold, so a small file
 * that inflates to gigabytes (a "decompression bomb") costs a few megabytes and a clear error.
 */

import { concatBytes } from "./files.ts";

/**
 * Inflates `bytes` (format as `DecompressionStream` names it). Stops with an error naming `name` once
 * the output passes `maxBytes`; `limitOf`, given the first bytes of output, may lower that ceiling
 * (a header that announces the file's length).
 */
export async function inflate(
  bytes: Uint8Array,
  format: "gzip" | "deflate" | "deflate-raw",
  name: string,
  maxBytes: number,
  limitOf: (head: Uint8Array) => number | null = () => null,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0, limit = maxBytes, announced = false;
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream(format),
  );
  const reader = stream.getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
      if (!announced) {
        const head = limitOf(concatBytes(chunks, Math.min(total, 64)));
        if (head !== null) [limit, announced] = [Math.min(limit, head), true];
      }
      if (total > limit) {
        await reader.cancel().catch(() => {});
        throw new RangeError(
          `${name}: the ${format} data inflates past ${limit} bytes, more than ${
            announced ? "its header announces" : "any valid file holds"
          }; refused`,
        );
      }
    }
  } catch (error) {
    if (error instanceof RangeError) throw new Error(error.message);
    throw new Error(`${name}: corrupt ${format} data (${(error as Error).message})`);
  }
  return concatBytes(chunks, total);
}
