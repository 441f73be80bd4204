/**
 * The IDX file format of MNIST and Fashion-MNIST (LeCun et al.), raw or gzipped.
 *
 * Layout: a big-endian header, magic 0x0000 0x08 D (two zero bytes, type 0x08 = unsigned byte,
 * D dimensions), then D big-endian u32 sizes, then the bytes, row-major. Images are D = 3
 * (0x00000803: count x rows x cols), labels D = 1 (0x00000801). Every check names the file and what
 * is wrong: not gzip-decodable, wrong magic, a wrong kind, or a length that disagrees with the header
 * (truncated or with trailing bytes).
 */

import { readRegularFile } from "./files.ts";
import { inflate } from "./inflate.ts";

/** What an IDX file holds: images (N x rows x cols) or labels (N). */
export type IdxKind = "images" | "labels";

/** The contents of an IDX file. */
export interface IdxArray {
  /** The dimensions from the header. */
  dims: number[];
  /** The bytes, row-major. */
  data: Uint8Array;
}

const DIMS: Record<IdxKind, number> = { images: 3, labels: 1 };

/**
 * Gunzips when the bytes start with the gzip signature; `name` goes into the error. Inflating stops
 * past `maxBytes`, or past the length the IDX header in the first bytes announces (data/inflate.ts).
 */
export async function gunzipIfNeeded(
  bytes: Uint8Array,
  name: string,
  maxBytes = MAX_IDX_BYTES,
): Promise<Uint8Array> {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  return await inflate(bytes, "gzip", name, maxBytes, idxLength);
}

/** The largest IDX file read, raw or inflated: 2^31 bytes (2.7 million 28x28 images). */
export const MAX_IDX_BYTES = 2 ** 31;

/** The length an IDX file must have, from its first bytes (null when they are too few or not IDX). */
function idxLength(head: Uint8Array): number | null {
  if (head.length < 4 || head[0] !== 0 || head[1] !== 0 || head[2] !== 0x08) return null;
  const rank = head[3], header = 4 + 4 * rank;
  if (head.length < header) return null;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let size = 1;
  for (let i = 0; i < rank; i++) size *= view.getUint32(4 + 4 * i);
  return header + size;
}

/**
 * Checks the header at the start of `bytes` (magic, rank against `expect`, all sizes present) and
 * returns the dimensions, the header's length and the data's length it announces.
 */
export function idxHeader(
  bytes: Uint8Array,
  name: string,
  expect?: IdxKind,
): { dims: number[]; header: number; size: number } {
  if (bytes.length < 4) throw new Error(`${name}: ${bytes.length} bytes is too short for an IDX header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== 0x08) {
    throw new Error(
      `${name}: not an IDX file of unsigned bytes (magic 0x${magic.toString(16).padStart(8, "0")}, ` +
        `expected 0x00000803 for images or 0x00000801 for labels)`,
    );
  }
  const rank = bytes[3];
  // Colour images are N x rows x cols x channels (RGB: 3).
  if (expect && rank !== DIMS[expect] && !(expect === "images" && rank === 4)) {
    throw new Error(
      `${name}: holds ${rank}-dimensional data (magic 0x${
        magic.toString(16).padStart(8, "0")
      }), expected ${expect} ` +
        `(0x0000080${DIMS[expect]})`,
    );
  }
  const header = 4 + 4 * rank;
  if (bytes.length < header) {
    throw new Error(`${name}: truncated header (${bytes.length} of ${header} bytes)`);
  }
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  return { dims, header, size: dims.reduce((a, b) => a * b, 1) };
}

/** The error for IDX data of `have` bytes where the header announced `size` (`dims`). */
export function idxLengthError(name: string, dims: readonly number[], size: number, have: number): Error {
  return have < size
    ? new Error(
      `${name}: truncated: the header says ${dims.join("x")} = ${size} bytes of data, the file has ${have}`,
    )
    : new Error(
      `${name}: ${have - size} unexpected bytes after the ${dims.join("x")} data the header announces`,
    );
}

/** Parses IDX bytes (already gunzipped) and checks them against the expected kind. */
export function parseIdx(bytes: Uint8Array, name: string, expect?: IdxKind): IdxArray {
  const { dims, header, size } = idxHeader(bytes, name, expect);
  const have = bytes.length - header;
  if (have !== size) throw idxLengthError(name, dims, size, have);
  return { dims, data: bytes.subarray(header) };
}

/** Reads an IDX file (raw or .gz) and validates it. */
export async function readIdx(path: string, expect?: IdxKind): Promise<IdxArray> {
  const bytes = await readRegularFile(path, MAX_IDX_BYTES, "IDX file");
  return parseIdx(await gunzipIfNeeded(bytes, path), path, expect);
}

/** Encodes an IDX file (for tests and for writing subsets). */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(data, 4 + 4 * dims.length);
  return out;
}
