/**
 * Progress of a long scoring pass (`deno task ood`, `deno task score`): on a terminal, one line
 * rewritten in place (done/total, images per second, time left, and whatever the caller adds, such
 * as how many were flagged so far); in a log (not a terminal), a plain line every `every` seconds and
 * one at the end, so a log file stays short and readable.
 */

import { formatSeconds } from "../store/training_run.ts";

/** Where `progressReporter` writes, and how often. */
export interface ProgressOptions {
  /** The stream the lines go to (results never share it when they are on stdout). */
  stream: "stdout" | "stderr";
  /** Seconds between plain lines when the stream is not a terminal (default 30). */
  every?: number;
  /** More to say after the rate and time left (e.g. "12 OOD so far"). */
  extra?: () => string;
  /** Images already done when it starts (a resumed run): not counted in the rate. */
  from?: number;
  /** Where a plain line goes when the stream is not a terminal (default: the stream). */
  log?: (line: string) => void;
}

/**
 * A function to call with (images done, images in all) after each batch: it prints
 * `<label> done/total (p%) r img/s ETA t[, extra]` as the module comment says. `clear()` removes a
 * terminal's line before other output is written to the same terminal.
 */
export function progressReporter(label: string, o: ProgressOptions) {
  const out = o.stream === "stdout" ? Deno.stdout : Deno.stderr;
  const terminal = out.isTerminal();
  const encoder = new TextEncoder();
  const started = performance.now();
  let lastPrint = -Infinity, shown = false;
  const report = (done: number, total: number) => {
    const elapsed = (performance.now() - started) / 1000;
    const last = done >= total;
    if (terminal ? elapsed - lastPrint < 0.25 && !last : elapsed - lastPrint < (o.every ?? 30) && !last) {
      return;
    }
    lastPrint = elapsed;
    const rate = (done - (o.from ?? 0)) / Math.max(elapsed, 1e-9);
    const percent = total > 0 ? ` (${(100 * done / total).toFixed(1)}%)` : "";
    const extra = o.extra ? `, ${o.extra()}` : "";
    const line = `${label} ${done}/${total}${percent} ${rate.toFixed(1)} img/s ETA ${
      formatSeconds((total - done) / rate)
    }${extra}`;
    if (terminal) {
      out.writeSync(encoder.encode(`\r\x1b[K${line}${last ? "\n" : ""}`));
      shown = !last;
    } else if (o.log) o.log(line);
    else out.writeSync(encoder.encode(`${line}\n`));
  };
  report.clear = () => {
    if (shown) [out.writeSync(encoder.encode("\r\x1b[K")), shown = false];
  };
  return report;
}
