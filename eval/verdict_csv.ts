/**
 * The verdicts of `deno task score --csv FILE`: one row per image (its name, every score, the chosen
 * score, its value, the threshold and the verdict), appended a batch at a time with one write, so a
 * run stopped between batches leaves only whole rows. `--resume` reads such a file back in bounded
 * memory (a chunk and a row at a time): how many rows it holds, how many say OOD, its threshold and
 * its last image, after dropping a partial last row that a kill in the middle of a write can leave.
 */

import type { ImageInputs } from "../data/image_inputs.ts";

/** The verdict of an image above the threshold, and of one at or below it. */
export const VERDICTS = { ood: "OOD", in: "in-distribution" } as const;

/** The CSV header: image, every score, then score, value, threshold, verdict. */
export function verdictColumns(scores: readonly string[]): string[] {
  return ["image", ...scores, "score", "value", "threshold", "verdict"];
}

/** One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. */
export function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** A number as CSV text that reads back to the same float64 (String() round-trips). */
const numberField = (v: number) => String(v);

/** One batch's rows, each ended by "\n". `all` holds every score of `scores`, per image of `names`. */
export function verdictRows(
  names: readonly string[],
  all: Record<string, ArrayLike<number>>,
  scores: readonly string[],
  chosen: string,
  threshold: number,
): string {
  let text = "";
  names.forEach((name, i) => {
    const value = all[chosen][i];
    text += [
      csvField(name),
      ...scores.map((s) => numberField(all[s][i])),
      chosen,
      numberField(value),
      numberField(threshold),
      value > threshold ? VERDICTS.ood : VERDICTS.in,
    ].join(",") + "\n";
  });
  return text;
}

/** What a verdict file holds (`readVerdictCsv`). */
export interface VerdictFile {
  /** Whole rows after the header. */
  rows: number;
  /** Rows whose verdict is OOD. */
  ood: number;
  /** The threshold of its first row (null without rows). */
  threshold: number | null;
  /** The image of its last row (null without rows). */
  lastImage: string | null;
  /** Bytes of whole rows and the header: where the next row goes (0: not even the header is whole). */
  end: number;
  /** Whether a partial last row followed them. */
  partial: boolean;
}

/** Splits one CSV record (no line break) into its fields. */
export function csvFields(record: string): string[] {
  const fields: string[] = [];
  let field = "", quoted = false;
  for (let i = 0; i < record.length; i++) {
    const c = record[i];
    if (quoted) {
      if (c === '"' && record[i + 1] === '"') [field, i] = [field + '"', i + 1];
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") [fields[fields.length], field] = [field, ""];
    else field += c;
  }
  return [...fields, field];
}

/**
 * Reads a verdict file written with `header` (the columns joined by commas), a 64 KiB chunk at a
 * time; errors name the file and say what differs.
 */
export async function readVerdictCsv(path: string, header: string): Promise<VerdictFile> {
  using file = await Deno.open(path, { read: true });
  const out: VerdictFile = { rows: 0, ood: 0, threshold: null, lastImage: null, end: 0, partial: false };
  const decoder = new TextDecoder();
  const columns = header.split(",").length;
  let record: number[] = [], quoted = false, offset = 0, headerSeen = false;
  const buffer = new Uint8Array(1 << 16);
  const take = (bytes: number[]) => {
    const text = decoder.decode(Uint8Array.from(bytes)).replace(/\r$/, "");
    if (!headerSeen) {
      if (text !== header) {
        throw new Error(
          `${path}: its columns (${text.slice(0, 200)}) are not this command's (${header}); ` +
            `resume with the same --score and --regret, or write a new file`,
        );
      }
      headerSeen = true;
      return;
    }
    const fields = csvFields(text);
    if (fields.length !== columns) {
      throw new Error(`${path}: row ${out.rows + 1} has ${fields.length} fields, not ${columns}`);
    }
    out.rows++;
    if (fields[columns - 1] === VERDICTS.ood) out.ood++;
    out.threshold ??= Number(fields[columns - 2]);
    out.lastImage = fields[0];
  };
  while (true) {
    const got = await file.read(buffer);
    if (got === null) break;
    for (let i = 0; i < got; i++) {
      const b = buffer[i];
      offset++;
      if (b === 0x22) quoted = !quoted;
      if (b === 0x0a && !quoted) {
        take(record);
        [record, out.end] = [[], offset];
      } else record.push(b);
    }
  }
  // A partial header (or an empty file) is a file that was stopped while it was being created:
  // `end` 0 says the header is to be written again.
  out.partial = record.length > 0;
  return out;
}

/**
 * Checks that a file being resumed belongs to `inputs`: no more rows than images, and its last row's
 * image is the inputs' image at that place (the same inputs in the same order).
 */
export async function checkResumedInputs(
  path: string,
  done: VerdictFile,
  inputs: ImageInputs,
): Promise<void> {
  if (done.rows > inputs.count) {
    throw new Error(`${path}: holds ${done.rows} rows, more than the ${inputs.count} images of the inputs`);
  }
  if (!done.lastImage) return;
  const [at] = await Array.fromAsync(inputs.batches(1, { skip: done.rows - 1, limit: done.rows }));
  if (at?.names[0] !== done.lastImage) {
    throw new Error(
      `${path}: its row ${done.rows} is '${done.lastImage}', but image ${done.rows} of the inputs is ` +
        `'${at?.names[0]}': not the same inputs, in the same order (write a new file)`,
    );
  }
}

/** Checks that a file being resumed was judged against `threshold` (the same calibration). */
export function checkResumedThreshold(path: string, done: VerdictFile, threshold: number): void {
  if (done.threshold === null || done.threshold === threshold) return;
  throw new Error(
    `${path}: its rows were judged against threshold ${done.threshold}, this command's calibration gives ` +
      `${threshold} (another --fpr, --calibration-limit, score or run?); resume with the same command`,
  );
}

/**
 * Opens a verdict file for appending rows: cut after the whole rows of `done` (a resumed file), or
 * created anew (or replaced) with its header.
 */
export async function openVerdictFile(
  path: string,
  header: string,
  done: VerdictFile | null,
): Promise<Deno.FsFile> {
  if (done && done.end > 0) {
    await Deno.truncate(path, done.end);
    return await Deno.open(path, { append: true });
  }
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  await writeText(file, header + "\n");
  return file;
}

/** Writes all of `text` (a batch's rows: one write call, as far as the OS allows). */
export async function writeText(
  file: { write(p: Uint8Array): Promise<number> },
  text: string,
): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
}
