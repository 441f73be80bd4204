/**
 * The engine's controls and counters in one place: configuration (flush threshold, debug mode),
 * explicit flush/sync, and the statistics tests and benchmarks read (pool bytes, dispatches,
 * submits, readbacks, pipelines).
 */

import { type AdapterDescription, gpu } from "./runtime/device.ts";
import type { PoolStats } from "./runtime/pool.ts";
import { pipelineCount } from "./runtime/program.ts";
import { getRecorder, type RecorderCounters } from "./runtime/recorder.ts";
import { type ProfileMethod, Profiler, type ProfileReport, summarize } from "./runtime/profiler.ts";
import { getPool } from "./tensor.ts";

/** Settings of the engine (`configure`). */
export interface EngineOptions {
  /** Submit after this many recorded dispatches (default 64). */
  flushEvery?: number;
  /** Submit each dispatch alone inside an error scope, so GPU errors name their op (slow). */
  debug?: boolean;
}

/** Changes engine settings; returns the previous ones. */
export function configure(options: EngineOptions): Required<EngineOptions> {
  const recorder = getRecorder();
  const previous = { flushEvery: recorder.flushEvery, debug: recorder.debug };
  if (options.flushEvery !== undefined) {
    if (!Number.isInteger(options.flushEvery) || options.flushEvery < 1) {
      throw new Error(`configure: flushEvery must be a positive integer, got ${options.flushEvery}`);
    }
    recorder.flush();
    recorder.flushEvery = options.flushEvery;
  }
  if (options.debug !== undefined) {
    recorder.flush();
    recorder.debug = options.debug;
  }
  return previous;
}

export type { PoolStats, RecorderCounters };

/** What `engineStats()` reports: the buffer pool's bytes and buffers, and the recorder's counters. */
export interface EngineStats extends PoolStats, RecorderCounters {
  /** Compiled pipelines (one per kernel variant). */
  pipelines: number;
  /** Dispatches recorded but not yet submitted. */
  pending: number;
}

/** A snapshot of the pool and recorder counters. */
export function engineStats(): EngineStats {
  const recorder = getRecorder();
  return {
    ...getPool().stats(),
    ...recorder.counters,
    pipelines: pipelineCount(),
    pending: recorder.pending,
  };
}

/** Submits all recorded work now (e.g. at the end of a step). */
export function flush(): void {
  getRecorder().flush();
}

/** Waits until the GPU has finished all submitted work; throws any GPU error seen meanwhile. */
export function sync(): Promise<void> {
  return getRecorder().sync();
}

/** The adapter the engine runs on. */
export function adapterInfo(): AdapterDescription {
  return gpu().adapter;
}

let profileSubmits = 0;

/**
 * Starts timing every dispatch on the GPU (kernels/runtime/profiler.ts): with timestamp queries
 * where the adapter has them, else one submit per dispatch. Pending work is submitted first, so the
 * profile holds only what is recorded from now on.
 */
export function startProfile(options: { method?: ProfileMethod } = {}): void {
  const recorder = getRecorder();
  if (recorder.profiler) throw new Error("startProfile: a profile is already running");
  const { device, adapter } = gpu();
  const hasTimestamps = adapter.features.includes("timestamp-query");
  if (options.method === "timestamp-query" && !hasTimestamps) {
    throw new Error(`startProfile: adapter ${adapter.description} has no timestamp-query feature`);
  }
  recorder.flush();
  recorder.profiler = new Profiler(device, hasTimestamps && options.method !== "submit-per-dispatch");
  profileSubmits = recorder.counters.submits;
}

/** Stops the profile, waits for its dispatches and returns them grouped by op and kernel variant. */
export async function stopProfile(): Promise<ProfileReport> {
  const recorder = getRecorder();
  const profiler = recorder.profiler;
  if (!profiler) throw new Error("stopProfile: no profile is running (call startProfile first)");
  recorder.flush();
  const submits = recorder.counters.submits - profileSubmits;
  recorder.profiler = null;
  await recorder.sync();
  const timings = await profiler.collect();
  return summarize(timings, profiler.method, performance.now() - profiler.startedAt, submits);
}
