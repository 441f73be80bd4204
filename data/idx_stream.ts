/**
 * An IDX image file (data/idx.ts), raw or gzipped, read a batch of images at a time: memory holds one
 * batch, whatever the file's length. A raw file's length is checked against its header when it is
 * opened; a gzipped one's as it inflates: data ending early is "truncated" (after the images before
 * it were read), data going on past what the header announces is refused before the last batch is
 * returned (a small file inflating to gigabytes costs one batch of memory, then an error).
 */

import { openByteSource } from "./byte_source.ts";
import { idxHeader, idxLengthError } from "./idx.ts";

/** An open IDX image file: its header, and its images read in order. */
export interface IdxImageStream {
  /** The file. */
  path: string;
  /** Images the header announces. */
  count: number;
  /** Rows, columns and channels of each image (1 for a rank-3 file, N x rows x cols). */
  rows: number;
  cols: number;
  channels: number;
  /** The next `n` images' bytes (rows x cols x channels each); an error names the file when fewer are left. */
  next(n: number): Promise<Uint8Array>;
  /** Drops the next `n` images (a raw file seeks; a gzipped one inflates them). */
  skip(n: number): Promise<void>;
  /** Checks that no data follows the last image (call after reading them all), then closes. */
  finish(): Promise<void>;
  /** Closes the file. */
  close(): void;
}

/** Opens an IDX image file (magic 0x00000803) and checks its header; errors name the file. */
export async function openIdxImages(path: string): Promise<IdxImageStream> {
  const { source, gzipped, size: fileSize } = await openByteSource(path, "IDX image file");
  try {
    const head = await source.read(4);
    const rank = head.length === 4 && head[0] === 0 && head[1] === 0 && head[2] === 0x08 ? head[3] : 0;
    const rest = await source.read(4 * rank);
    const bytes = new Uint8Array(head.length + rest.length);
    bytes.set(head);
    bytes.set(rest, head.length);
    const { dims, header, size } = idxHeader(bytes, path, "images");
    if (!gzipped && fileSize - header !== size) throw idxLengthError(path, dims, size, fileSize - header);
    const [count, rows, cols] = dims;
    const channels = dims[3] ?? 1;
    const pixels = rows * cols * channels;
    let read = 0;
    const images = async (n: number, keep: boolean): Promise<Uint8Array> => {
      const want = Math.min(n, count - read) * pixels;
      const got = keep ? await source.read(want) : new Uint8Array(0);
      const have = keep ? got.length : await source.skip(want);
      if (have < want) {
        source.close();
        throw idxLengthError(path, dims, size, read * pixels + have);
      }
      read += want / pixels;
      return got;
    };
    return {
      path,
      count,
      rows,
      cols,
      channels,
      next: (n) => images(n, true),
      skip: async (n) => void await images(n, false),
      async finish() {
        const extra = read === count && !(await source.atEnd());
        source.close();
        if (extra) {
          throw new Error(
            `${path}: the ${gzipped ? "gzip" : "IDX"} data ${gzipped ? "inflates" : "goes on"} past ${
              header + size
            } bytes, more than its header announces; refused`,
          );
        }
      },
      close: () => source.close(),
    };
  } catch (error) {
    source.close();
    throw error;
  }
}
