/**
 * The engine's controls and counters in one place: configuration (flush threshold, debug mode),
 * explicit flush/sync, and the statistics tests and benchmarks read (pool bytes, dispatches,
 * submits, readbacks, pipelines).
 */

import { type AdapterDescription, gpu } from "./runtime/device.ts";
import { type PoolStats } from "./runtime/pool.ts";
import { pipelineCount } from "./runtime/program.ts";
import { getRecorder, type RecorderCounters } from "./runtime/recorder.ts";
import { getPool } from "./tensor.ts";

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
