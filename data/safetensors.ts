/**
 * The safetensors format (Hugging Face), so checkpoints load in other tools:
 *   8 bytes: little-endian u64 N, the length of the header;
 *   N bytes: a UTF-8 JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
 *            padded with spaces to a multiple of 8;
 *   the raw little-endian tensor data, data_offsets relative to the end of the header.
 * Only F32 (and U32 for generator state) are written or read here. Writes go to `<path>.tmp` and are
 * renamed into place, so a crash never leaves a half-written checkpoint under the real name.
 */

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

/** Decodes a safetensors file's bytes; errors name `file` and what is wrong. */
export function decodeSafetensors(
  bytes: Uint8Array,
  name = "safetensors",
): { tensors: Record<string, NamedArray>; metadata: Record<string, string> } {
  if (bytes.length < 8) throw new Error(`${name}: ${bytes.length} bytes is too short for a safetensors file`);
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (8 + n > bytes.length) {
    throw new Error(`${name}: header length ${n} runs past the end of the file (${bytes.length} bytes)`);
  }
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  } catch (error) {
    throw new Error(`${name}: the header is not JSON (${(error as Error).message})`);
  }
  const { __metadata__: metadata = {}, ...entries } = header as Record<string, never>;
  const body = bytes.subarray(8 + n);
  const tensors: Record<string, NamedArray> = {};
  for (
    const [key, info] of Object.entries(entries) as [
      string,
      { dtype: string; shape: number[]; data_offsets: [number, number] },
    ][]
  ) {
    if (info.dtype !== "F32" && info.dtype !== "U32") {
      throw new Error(`${name}: '${key}' has dtype ${info.dtype}; only F32 and U32 are supported`);
    }
    const [begin, end] = info.data_offsets;
    const size = info.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== 4 * size || end > body.length) {
      throw new Error(
        `${name}: '${key}' offsets [${begin}, ${end}) do not hold shape [${info.shape}] within ${body.length} data bytes`,
      );
    }
    const copy = body.slice(begin, end);
    const data = info.dtype === "F32" ? new Float32Array(copy.buffer) : new Uint32Array(copy.buffer);
    tensors[key] = { dtype: info.dtype, shape: info.shape, data };
  }
  return { tensors, metadata };
}

/** Writes atomically: `<path>.tmp`, then rename. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await Deno.writeFile(`${path}.tmp`, bytes);
  await Deno.rename(`${path}.tmp`, path);
}

export async function readSafetensors(path: string): Promise<ReturnType<typeof decodeSafetensors>> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`${path}: cannot read (${(error as Error).message})`);
  }
  return decodeSafetensors(bytes, path);
}
