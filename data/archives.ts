/**
 * The two archive formats the paper's OOD sets are distributed in, read into memory:
 *   tar (POSIX ustar, as GNU tar writes it; notMNIST): 512-byte headers (name at 0, octal size at 124,
 *       type at 156, a `prefix` at 345), each file's data padded to 512 bytes, two zero blocks at the end;
 *       GNU long names (type "L") are followed;
 *   zip (PKWARE's APPNOTE; Omniglot): the central directory at the end lists every entry with its
 *       compressed size, method (0 stored, 8 deflate) and the offset of its local header.
 * Only regular files are returned. Every size is checked against the archive's length, and inflating
 * stops at the size the directory announces (data/inflate.ts), so a hostile archive costs nothing.
 */

import { inflate } from "./inflate.ts";

/** A file in an archive. */
export interface ArchiveEntry {
  /** Its path inside the archive. */
  name: string;
  /** Its bytes. */
  data: Uint8Array;
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).replace(/\0.*$/s, "");

/** The regular files of a tar archive (already gunzipped); `name` goes into the errors. */
export function readTar(bytes: Uint8Array, name: string): ArchiveEntry[] {
  const entries: ArchiveEntry[] = [];
  let longName: string | null = null;
  for (let at = 0; at + 512 <= bytes.length;) {
    const header = bytes.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break; // the end-of-archive blocks
    const sizeField = text(header.subarray(124, 136)).trim();
    const size = parseInt(sizeField || "0", 8);
    if (!Number.isSafeInteger(size) || size < 0 || at + 512 + size > bytes.length) {
      throw new Error(`${name}: corrupt tar archive (entry at byte ${at} has size '${sizeField}')`);
    }
    const type = String.fromCharCode(header[156] || 0x30);
    const data = bytes.subarray(at + 512, at + 512 + size);
    const prefix = text(header.subarray(345, 500));
    const path = longName ??
      (prefix ? `${prefix}/${text(header.subarray(0, 100))}` : text(header.subarray(0, 100)));
    longName = null;
    if (type === "L") longName = text(data);
    else if (type === "0" || type === "\0") entries.push({ name: path, data });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return entries;
}

/**
 * The regular files of a zip archive, each inflated to at most `maxEntryBytes`; `name` goes into
 * the errors.
 */
export async function readZip(
  bytes: Uint8Array,
  name: string,
  maxEntryBytes = 2 ** 24,
): Promise<ArchiveEntry[]> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The end-of-central-directory record: signature 0x06054b50 within the last 64 KiB + 22 bytes.
  let end = -1;
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - 65535); at--) {
    if (view.getUint32(at, true) === 0x06054b50) {
      end = at;
      break;
    }
  }
  if (end < 0) throw new Error(`${name}: not a zip archive (no end-of-central-directory record)`);
  const count = view.getUint16(end + 10, true);
  let at = view.getUint32(end + 16, true);
  const entries: ArchiveEntry[] = [];
  const corrupt = (what: string) => new Error(`${name}: corrupt zip archive (${what})`);
  for (let i = 0; i < count; i++) {
    if (at + 46 > bytes.length || view.getUint32(at, true) !== 0x02014b50) {
      throw corrupt(`directory entry ${i}`);
    }
    const method = view.getUint16(at + 10, true);
    const compressed = view.getUint32(at + 20, true);
    const size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extra = view.getUint16(at + 30, true), comment = view.getUint16(at + 32, true);
    const local = view.getUint32(at + 42, true);
    const path = text(bytes.subarray(at + 46, at + 46 + nameLength));
    at += 46 + nameLength + extra + comment;
    if (path.endsWith("/")) continue; // a directory
    if (local + 30 > bytes.length || view.getUint32(local, true) !== 0x04034b50) {
      throw corrupt(`local header of ${path}`);
    }
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    if (start + compressed > bytes.length) throw corrupt(`${path} runs past the end`);
    const raw = bytes.subarray(start, start + compressed);
    if (size > maxEntryBytes) throw corrupt(`${path} claims ${size} bytes`);
    let data: Uint8Array;
    if (method === 0) data = raw;
    else if (method === 8) data = await inflate(raw, "deflate-raw", `${name}: ${path}`, size);
    else {throw new Error(
        `${name}: ${path} uses compression method ${method}; only stored (0) and deflate (8) are read`,
      );}
    if (data.length !== size) throw corrupt(`${path} holds ${data.length} bytes, the directory says ${size}`);
    entries.push({ name: path, data });
  }
  return entries;
}
