/**
 * The safetensors format (Hugging Face), so checkpoints load in other tools:
 *   8 bytes: little-endian u64 N, the length of the header;
 *   N bytes: a UTF-8 JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
 *            padded with spaces to a multiple of 8;
 *   the raw little-endian tensor data, data_offsets relative to the end of the header.
 * Only F32 (and U32 for generator state) are written or read here. Reading validates every part of
 * the header (a hostile file is an error naming the file and the tensor, never a TypeError).
 */

/** A named tensor of a safetensors file, on the CPU. */
export interface NamedArray {
  /** The element type. */
  dtype: "F32" | "U32";
  /** The shape. */
  shape: number[];
  /** The elements, row-major. */
  data: Float32Array | Uint32Array;
}

/** Encodes named arrays (and string metadata) as a safetensors file's bytes. */
export function encodeSafetensors(
  tensors: Record<string, NamedArray>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) {
      throw new Error(`safetensors: '${name}' has ${t.data.length} values for shape [${t.shape}]`);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const t = tensors[name];
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/** The largest header the format allows (the reference implementation's limit). */
const MAX_HEADER_BYTES = 100_000_000;
/** The largest file `readSafetensors` reads: far above any checkpoint here, far below a machine's memory. */
export const MAX_FILE_BYTES = 4 * 2 ** 30;

const isPlainRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** Decodes a safetensors file's bytes; every malformed part is an error naming `name` and the tensor. */
export function decodeSafetensors(
  bytes: Uint8Array,
  name = "safetensors",
): { tensors: Record<string, NamedArray>; metadata: Record<string, string> } {
  if (bytes.length < 8) throw new Error(`${name}: ${bytes.length} bytes is too short for a safetensors file`);
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (n > MAX_HEADER_BYTES || 8 + n > bytes.length) {
    throw new Error(`${name}: header length ${n} runs past the end of the file (${bytes.length} bytes)`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (error) {
    throw new Error(`${name}: the header is not JSON (${(error as Error).message})`);
  }
  if (!isPlainRecord(header)) throw new Error(`${name}: the header is not a JSON object`);
  const { __metadata__: rawMetadata = {}, ...entries } = header;
  if (!isPlainRecord(rawMetadata) || !Object.values(rawMetadata).every((v) => typeof v === "string")) {
    throw new Error(`${name}: __metadata__ must be an object of strings`);
  }
  const metadata = rawMetadata as Record<string, string>;
  const body = bytes.subarray(8 + n);
  const tensors: Record<string, NamedArray> = {};
  for (const [key, info] of Object.entries(entries)) {
    const bad = (what: string) => new Error(`${name}: tensor '${key}' ${what}`);
    if (!isPlainRecord(info)) throw bad("is not an object {dtype, shape, data_offsets}");
    const { dtype, shape, data_offsets: offsets } = info;
    if (dtype !== "F32" && dtype !== "U32") {
      throw bad(`has dtype ${JSON.stringify(dtype)}; only F32 and U32 are supported`);
    }
    if (!Array.isArray(shape) || shape.length > 8 || !shape.every(isCount)) {
      throw bad(`has shape ${JSON.stringify(shape)}; expected a list of at most 8 sizes`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]
    ) {
      throw bad(`has data_offsets ${JSON.stringify(offsets)}; expected [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = offsets as number[];
    const size = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== 4 * size || end > body.length) {
      throw bad(`offsets [${begin}, ${end}) do not hold shape [${shape}] within ${body.length} data bytes`);
    }
    const copy = body.slice(begin, end);
    const data = dtype === "F32" ? new Float32Array(copy.buffer) : new Uint32Array(copy.buffer);
    tensors[key] = { dtype, shape: shape as number[], data };
  }
  return { tensors, metadata };
}
