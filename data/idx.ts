/**
 * The IDX file format of MNIST and Fashion-MNIST (LeCun et al.), raw or gzipped.
 *
 * Layout: a big-endian header, magic 0x0000 0x08 D (two zero bytes, type 0x08 = unsigned byte,
 * D dimensions), then D big-endian u32 sizes, then the bytes, row-major. Images are D = 3
 * (0x00000803: count x rows x cols), labels D = 1 (0x00000801). Every check names the file and what
 * is wrong: not gzip-decodable, wrong magic, a wrong kind, or a length that disagrees with the header
 * (truncated or with trailing bytes).
 */

export type IdxKind = "images" | "labels";

/** The contents of an IDX file. */
export interface IdxArray {
  /** The dimensions from the header. */
  dims: number[];
  /** The bytes, row-major. */
  data: Uint8Array;
}

const DIMS: Record<IdxKind, number> = { images: 3, labels: 1 };

/** Gunzips when the bytes start with the gzip signature; `name` goes into the error. */
export async function gunzipIfNeeded(bytes: Uint8Array, name: string): Promise<Uint8Array> {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
      new DecompressionStream("gzip"),
    );
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (error) {
    throw new Error(`${name}: corrupt gzip data (${(error as Error).message})`);
  }
}

/** Parses IDX bytes (already gunzipped) and checks them against the expected kind. */
export function parseIdx(bytes: Uint8Array, name: string, expect?: IdxKind): IdxArray {
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
  if (expect && rank !== DIMS[expect]) {
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
  const size = dims.reduce((a, b) => a * b, 1);
  const have = bytes.length - header;
  if (have < size) {
    throw new Error(
      `${name}: truncated: the header says ${dims.join("x")} = ${size} bytes of data, the file has ${have}`,
    );
  }
  if (have > size) {
    throw new Error(
      `${name}: ${have - size} unexpected bytes after the ${dims.join("x")} data the header announces`,
    );
  }
  return { dims, data: bytes.subarray(header) };
}

/** Reads an IDX file (raw or .gz) and validates it. */
export async function readIdx(path: string, expect?: IdxKind): Promise<IdxArray> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`${path}: cannot read (${(error as Error).message})`);
  }
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
