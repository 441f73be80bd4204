/**
 * The kernel profiler: the GPU time of every dispatch, grouped by kernel variant.
 *
 * Two methods, chosen by what the adapter offers:
 *   "timestamp-query"  while profiling, the recorder gives each dispatch its own compute pass with
 *                      `timestampWrites` (begin and end of the pass); at each submit the queries are
 *                      resolved into a buffer that is read back when the profile stops. The time is
 *                      the GPU's own, and the dispatches still share submits.
 *   "submit-per-dispatch"  without timestamp queries, every dispatch is submitted alone and its
 *                      time is the gap between the completion of its submit and of the one before
 *                      (`onSubmittedWorkDone`); it includes submit overhead, so it overstates short
 *                      kernels, and the report says which method was used.
 * Outside a profile the recorder records as always: one pass, few submits.
 *
 * Reference: WebGPU spec, "Timestamp Query" (GPUComputePassTimestampWrites, resolveQuerySet).
 */

/** How a kernel's work is counted, for throughput columns. */
export interface DispatchWork {
  /** Useful floating-point operations (2 per multiply-add). */
  flops?: number;
  /** Bytes the kernel reads and writes (its bindings' sizes). */
  bytes?: number;
}

/** One timed dispatch. */
export interface DispatchTiming {
  /** The op that recorded it (e.g. "conv2d-dx"). */
  label: string;
  /** The kernel variant's cache key (e.g. "conv-direct-dx:bias0:cols16"). */
  key: string;
  ms: number;
  work: DispatchWork;
}

/** One row of a profile: the dispatches of one op and kernel variant. */
export interface ProfileRow {
  /** The op that recorded the dispatches (e.g. `conv2d-dw`). */
  label: string;
  /** The kernel variant: its pipeline's cache key. */
  key: string;
  /** Dispatches of this op and variant in the profiled work. */
  calls: number;
  /** Their total GPU time, in milliseconds. */
  ms: number;
  /** Share of the summed kernel time, 0..1. */
  share: number;
  /** Useful floating-point work per second (2 per multiply-add), where the kernel knows its work. */
  gflops?: number;
  /** Bytes read and written per second (operands counted once per dispatch). */
  gbps?: number;
}

/** How dispatch times were measured: GPU timestamps, or one submit per dispatch. */
export type ProfileMethod = "timestamp-query" | "submit-per-dispatch";

/** A profile of the work between `startProfile()` and `stopProfile()`. */
export interface ProfileReport {
  /** How the times were measured. */
  method: ProfileMethod;
  /** Wall time from start to stop, ms. */
  wallMs: number;
  /** Sum of the dispatches' GPU times, ms. */
  kernelMs: number;
  /** Dispatches recorded. */
  dispatches: number;
  /** Submits made. */
  submits: number;
  /** Rows by descending time. */
  rows: ProfileRow[];
}

/** Groups timed dispatches by (label, key), slowest first. */
export function summarize(
  timings: readonly DispatchTiming[],
  method: ProfileMethod,
  wallMs: number,
  submits: number,
): ProfileReport {
  const groups = new Map<string, ProfileRow & { flops: number; bytes: number }>();
  let kernelMs = 0;
  for (const t of timings) {
    const id = `${t.label}\u0000${t.key}`;
    let row = groups.get(id);
    if (!row) {
      groups.set(id, row = { label: t.label, key: t.key, calls: 0, ms: 0, share: 0, flops: 0, bytes: 0 });
    }
    row.calls++;
    row.ms += t.ms;
    row.flops += t.work.flops ?? 0;
    row.bytes += t.work.bytes ?? 0;
    kernelMs += t.ms;
  }
  const rows = [...groups.values()].map(({ flops, bytes, ...row }): ProfileRow => ({
    ...row,
    share: kernelMs > 0 ? row.ms / kernelMs : 0,
    ...(flops > 0 && row.ms > 0 ? { gflops: flops / row.ms / 1e6 } : {}),
    ...(bytes > 0 && row.ms > 0 ? { gbps: bytes / row.ms / 1e6 } : {}),
  }));
  rows.sort((a, b) => b.ms - a.ms);
  return { method, wallMs, kernelMs, dispatches: timings.length, submits, rows };
}

/** The adapter's ceiling (kernels/ceiling.ts), for the fraction-of-peak columns. */
export interface ProfileCeiling {
  /** FMA peak, GFLOP/s. */
  gflops: number;
  /** Streaming bandwidth, GB/s. */
  gbps: number;
}

/**
 * The report as a text table (top `limit` rows, the rest summed in one line). Given the adapter's
 * `ceiling`, two more columns say what fraction of its FMA peak and of its streaming bandwidth each
 * row reaches: a kernel near neither is bound by something else (loads it gathers, barriers, launch).
 */
export function formatProfile(report: ProfileReport, limit = 25, ceiling?: ProfileCeiling): string {
  const lines: string[] = [];
  const pad = (s: string, n: number) => s.length >= n ? s : s + " ".repeat(n - s.length);
  const left = (s: string, n: number) => s.length >= n ? s : " ".repeat(n - s.length) + s;
  lines.push(
    `profile (${report.method}): ${report.dispatches} dispatches, ${report.submits} submits, ` +
      `kernel time ${report.kernelMs.toFixed(1)} ms, wall ${report.wallMs.toFixed(1)} ms`,
  );
  lines.push(
    `${pad("op", 22)} ${pad("kernel variant", 44)} ${left("calls", 5)} ${left("ms", 9)} ${left("share", 6)} ${
      left("GFLOP/s", 8)
    } ${left("GB/s", 6)}${ceiling ? ` ${left("%FMA", 5)} ${left("%BW", 5)}` : ""}`,
  );
  const percent = (value: number | undefined, peak: number) =>
    left(value === undefined ? "" : (100 * value / peak).toFixed(value < peak / 100 ? 2 : 1), 5);
  const shown = report.rows.slice(0, limit);
  for (const r of shown) {
    lines.push(
      `${pad(r.label, 22)} ${pad(r.key, 44)} ${left(String(r.calls), 5)} ${left(r.ms.toFixed(1), 9)} ${
        left((100 * r.share).toFixed(1) + "%", 6)
      } ${left(r.gflops === undefined ? "" : r.gflops.toFixed(2), 8)} ${
        left(r.gbps === undefined ? "" : r.gbps.toFixed(2), 6)
      }${ceiling ? ` ${percent(r.gflops, ceiling.gflops)} ${percent(r.gbps, ceiling.gbps)}` : ""}`,
    );
  }
  const rest = report.rows.slice(limit);
  if (rest.length) {
    const ms = rest.reduce((a, r) => a + r.ms, 0);
    const calls = rest.reduce((a, r) => a + r.calls, 0);
    lines.push(
      `${pad(`(${rest.length} more)`, 22)} ${pad("", 44)} ${left(String(calls), 5)} ${
        left(ms.toFixed(1), 9)
      } ${left((100 * ms / Math.max(report.kernelMs, 1e-9)).toFixed(1) + "%", 6)}`,
    );
  }
  return lines.join("\n");
}

/** Queries per query set: two per dispatch, more than one flush can hold (the uniform ring's 1024). */
const QUERY_CAPACITY = 2 * 1024;

/** What the recorder needs from a running profile. */
export class Profiler {
  readonly method: ProfileMethod;
  readonly timings: DispatchTiming[] = [];
  readonly startedAt = performance.now();
  #device: GPUDevice;
  #querySet: GPUQuerySet | null = null;
  /** Dispatches of the current submit whose timestamps sit at 2i, 2i + 1 of the query set. */
  #batch: Omit<DispatchTiming, "ms">[] = [];
  /** Resolved batches waiting to be read. */
  #resolved: { buffer: GPUBuffer; batch: Omit<DispatchTiming, "ms">[] }[] = [];
  /** Completion promises of the fallback method. */
  #completions: Promise<void>[] = [];
  #lastDone = performance.now();

  constructor(device: GPUDevice, hasTimestamps: boolean) {
    this.#device = device;
    this.method = hasTimestamps ? "timestamp-query" : "submit-per-dispatch";
    if (hasTimestamps) {
      this.#querySet = device.createQuerySet({ type: "timestamp", count: QUERY_CAPACITY });
    }
  }

  /** Timestamp writes for the pass of the next dispatch (timestamp method only). */
  nextPassTimestamps(info: Omit<DispatchTiming, "ms">): GPUComputePassTimestampWrites | undefined {
    if (!this.#querySet) return undefined;
    const slot = this.#batch.length;
    this.#batch.push(info);
    return {
      querySet: this.#querySet,
      beginningOfPassWriteIndex: 2 * slot,
      endOfPassWriteIndex: 2 * slot + 1,
    };
  }

  /** True when the recorder must submit now so the query set does not overflow. */
  get full(): boolean {
    return this.#batch.length * 2 >= QUERY_CAPACITY;
  }

  /** Called by the recorder with the encoder of a submit: resolves this submit's queries. */
  beforeSubmit(encoder: GPUCommandEncoder): void {
    if (!this.#querySet || this.#batch.length === 0) return;
    const count = 2 * this.#batch.length;
    const resolve = this.#device.createBuffer({
      size: count * 8,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const readable = this.#device.createBuffer({
      size: count * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    encoder.resolveQuerySet(this.#querySet, 0, count, resolve, 0);
    encoder.copyBufferToBuffer(resolve, 0, readable, 0, count * 8);
    this.#resolved.push({ buffer: readable, batch: this.#batch });
    this.#batch = [];
    // The resolve buffer is needed only by this submit's copy.
    queueMicrotask(() => resolve.destroy());
  }

  /** Fallback method: called after the submit of a single dispatch. */
  afterSubmit(info: Omit<DispatchTiming, "ms">): void {
    if (this.#querySet) return;
    const done = this.#device.queue.onSubmittedWorkDone().then(() => {
      const now = performance.now();
      this.timings.push({ ...info, ms: now - this.#lastDone });
      this.#lastDone = now;
    });
    this.#completions.push(done);
  }

  /** Waits for every timed dispatch and returns the timings in recording order. */
  async collect(): Promise<DispatchTiming[]> {
    await Promise.all(this.#completions);
    for (const { buffer, batch } of this.#resolved.splice(0)) {
      await buffer.mapAsync(GPUMapMode.READ);
      const stamps = new BigUint64Array(buffer.getMappedRange().slice(0));
      buffer.unmap();
      buffer.destroy();
      batch.forEach((info, i) => {
        const ns = Number(stamps[2 * i + 1] - stamps[2 * i]);
        this.timings.push({ ...info, ms: Math.max(0, ns) / 1e6 });
      });
    }
    this.#querySet?.destroy();
    return this.timings;
  }
}
