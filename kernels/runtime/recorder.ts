/**
 * The command recorder: every op appends its dispatch to one open encoder and compute pass; work
 * reaches the GPU in few submits.
 *
 * Why: under Deno (Zen 5, docs/design.md section 8.1) a submit costs ~0.2 ms of CPU per op when each op
 * submits alone, ~0.03 ms when hundreds share one submit, and every GPU->CPU sync costs >= 11 ms
 * and blocks the event loop (docs/design.md section 8). So the recorder flushes only when
 *   - a readback is requested (`read`),
 *   - `flushEvery` dispatches are pending (a tunable; tfjs uses 15, cubecl 16-32),
 *   - an upload needs the queue ordered after pending work (`beforeUpload`),
 *   - the caller says so (`flush`, e.g. at the end of a training step).
 *
 * Uniforms: each dispatch writes its parameter block into a CPU-side ring; at flush the whole ring
 * goes to one GPU uniform buffer with a single `writeBuffer`, right before the submit that reads it,
 * and each dispatch binds its slice with a dynamic offset. Nothing is ever written into a buffer that
 * an encoded-but-unsubmitted dispatch reads: WebGPU would let that earlier dispatch see the new data.
 *
 * Debug mode gives each dispatch its own submit inside an error scope, so a validation or memory
 * error names the op that caused it; errors surface at the next `read`/`sync`.
 */

import { gpu } from "./device.ts";
import type { DispatchWork, Profiler } from "./profiler.ts";
import {
  type CompiledKernel,
  packUniforms,
  takeCompileErrors,
  UNIFORM_BLOCK_BYTES,
  type UniformValues,
} from "./program.ts";

/** The command recorder's counters since start-up (part of `engineStats()`). */
export interface RecorderCounters {
  /** Dispatches recorded. */
  dispatches: number;
  /** `queue.submit` calls. */
  submits: number;
  /** GPU->CPU readbacks (each one `mapAsync`). */
  readbacks: number;
  /** CPU->GPU uploads (`writeBuffer` of tensor data). */
  uploads: number;
}

/** One buffer to read back: `bytes` from offset 0. */
export interface ReadRequest {
  buffer: GPUBuffer;
  bytes: number;
}

export class Recorder {
  /**
   * Flush after this many pending dispatches: enough for the per-submit cost to vanish (see above)
   * and a training step to take a handful of submits (the `small` step: 6), few enough that a real
   * GPU's queue is fed while the rest of the step is recorded.
   */
  flushEvery = 64;
  /** One submit and error scope per dispatch; errors name the op. */
  debug = false;
  readonly counters: RecorderCounters = { dispatches: 0, submits: 0, readbacks: 0, uploads: 0 };
  /** Called after every submit (the pool destroys surplus buffers there, once no recorded command uses them). */
  readonly afterSubmit: (() => void)[] = [];
  /** The running profile (kernels/runtime/profiler.ts), or null: then dispatches share one pass. */
  profiler: Profiler | null = null;

  #device: GPUDevice;
  #slot: number;
  #ringCpu: Uint8Array<ArrayBuffer>;
  #ringView: DataView;
  #ringGpu: GPUBuffer;
  #ringCapacity: number;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #pending = 0;
  #errors: string[] = [];
  #staging = new Map<number, GPUBuffer[]>();

  constructor() {
    const ctx = gpu();
    this.#device = ctx.device;
    this.#slot = Math.ceil(UNIFORM_BLOCK_BYTES / ctx.uniformAlignment) * ctx.uniformAlignment;
    // Uniform blocks of up to 1024 pending dispatches (256 KiB at 256 B each): more than
    // `flushEvery`, so the ring only forces a flush if `flushEvery` is raised past it.
    this.#ringCapacity = 1024;
    this.#ringCpu = new Uint8Array(this.#slot * this.#ringCapacity);
    this.#ringView = new DataView(this.#ringCpu.buffer);
    this.#ringGpu = this.#device.createBuffer({
      label: "uniform ring",
      size: this.#ringCpu.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.#device.addEventListener("uncapturederror", (event) => {
      this.#errors.push(`WebGPU error: ${(event as GPUUncapturedErrorEvent).error.message}`);
    });
  }

  /** Dispatches recorded but not yet submitted. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Records one dispatch. `buffers` are the kernel's inputs then outputs, in spec order;
   * `label` names the op for error messages.
   */
  dispatch(
    kernel: CompiledKernel,
    buffers: readonly GPUBuffer[],
    uniforms: UniformValues,
    workgroups: readonly [number, number?, number?],
    label: string,
    work: DispatchWork = {},
  ): void {
    if (this.#pending >= Math.min(this.flushEvery, this.#ringCapacity) || this.profiler?.full) this.flush();
    const slotIndex = this.#pending;
    const offset = slotIndex * this.#slot;
    packUniforms(kernel, uniforms, new DataView(this.#ringCpu.buffer, offset, UNIFORM_BLOCK_BYTES));
    const entries: GPUBindGroupEntry[] = [{
      binding: 0,
      resource: { buffer: this.#ringGpu, offset: 0, size: UNIFORM_BLOCK_BYTES },
    }];
    for (let i = 0; i < buffers.length; i++) {
      entries.push({ binding: i + 1, resource: { buffer: buffers[i] } });
    }
    if (this.debug) this.#device.pushErrorScope("validation");
    const bindGroup = this.#device.createBindGroup({ layout: kernel.layout, entries, label });
    const profiled = this.profiler && { label, key: kernel.spec.key, work };
    // While profiling with timestamps, each dispatch gets a pass of its own, timed at both ends.
    if (profiled) this.#endPass();
    const pass = this.#openPass(profiled ? this.profiler!.nextPassTimestamps(profiled) : undefined);
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, bindGroup, [offset]);
    pass.dispatchWorkgroups(workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1);
    this.#pending++;
    this.counters.dispatches++;
    if (profiled) {
      this.#endPass();
      if (this.profiler!.method === "submit-per-dispatch") {
        this.flush();
        this.profiler!.afterSubmit(profiled);
      }
    }
    if (this.debug) {
      this.#device.pushErrorScope("out-of-memory");
      this.flush();
      const where = `op ${label} (kernel ${kernel.spec.key})`;
      for (let i = 0; i < 2; i++) {
        this.#device.popErrorScope().then((e) => e && this.#errors.push(`${where}: ${e.message}`));
      }
    }
  }

  #openPass(timestampWrites?: GPUComputePassTimestampWrites): GPUComputePassEncoder {
    this.#encoder ??= this.#device.createCommandEncoder();
    this.#pass ??= this.#encoder.beginComputePass(timestampWrites ? { timestampWrites } : undefined);
    return this.#pass;
  }

  #endPass(): GPUCommandEncoder {
    this.#encoder ??= this.#device.createCommandEncoder();
    this.#pass?.end();
    this.#pass = null;
    return this.#encoder;
  }

  /** Submits everything recorded so far (a no-op when nothing is pending). */
  flush(): void {
    if (!this.#encoder) return;
    const encoder = this.#endPass();
    if (this.#pending > 0) {
      this.#device.queue.writeBuffer(this.#ringGpu, 0, this.#ringCpu, 0, this.#pending * this.#slot);
    }
    this.profiler?.beforeSubmit(encoder);
    this.#device.queue.submit([encoder.finish()]);
    this.counters.submits++;
    this.#encoder = null;
    this.#pending = 0;
    for (const hook of this.afterSubmit) hook();
  }

  /** Call before `queue.writeBuffer` into a pooled buffer: orders the write after all recorded work. */
  beforeUpload(): void {
    if (this.#pending > 0 || this.#encoder) this.flush();
    this.counters.uploads++;
  }

  /**
   * Copies each request into one staging buffer, submits, maps once (one ~11 ms sync under Deno),
   * and returns one ArrayBuffer per request.
   */
  async read(requests: readonly ReadRequest[]): Promise<ArrayBuffer[]> {
    const offsets: number[] = [];
    let total = 0;
    for (const r of requests) {
      offsets.push(total);
      total += Math.ceil(r.bytes / 4) * 4;
    }
    const stagingSize = Math.max(256, Math.ceil(total / 256) * 256);
    const staging = this.#staging.get(stagingSize)?.pop() ?? this.#device.createBuffer({
      label: "readback staging",
      size: stagingSize,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const encoder = this.#endPass();
    requests.forEach((r, i) => {
      const bytes = Math.ceil(r.bytes / 4) * 4;
      if (bytes > 0) encoder.copyBufferToBuffer(r.buffer, 0, staging, offsets[i], bytes);
    });
    this.flush();
    this.counters.readbacks++;
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, stagingSize);
    } catch (error) {
      this.#throwErrors();
      throw error;
    }
    const mapped = staging.getMappedRange(0, stagingSize);
    const results = requests.map((r, i) => mapped.slice(offsets[i], offsets[i] + r.bytes));
    staging.unmap();
    let list = this.#staging.get(stagingSize);
    if (!list) this.#staging.set(stagingSize, list = []);
    if (list.length < 4) list.push(staging);
    else staging.destroy();
    // Error-scope promises settle by the time the map resolves; report what they found.
    await Promise.resolve();
    this.#throwErrors();
    return results;
  }

  /** Waits for all submitted work and throws the first GPU error seen since the last sync. */
  async sync(): Promise<void> {
    this.flush();
    await this.#device.queue.onSubmittedWorkDone();
    await Promise.resolve();
    this.#throwErrors();
  }

  #throwErrors(): void {
    const errors = [...takeCompileErrors(), ...this.#errors.splice(0)];
    if (errors.length) throw new Error(errors.join("\n"));
  }
}

let recorder: Recorder | null = null;

/** The process-wide recorder (created after `initGpu`). */
export function getRecorder(): Recorder {
  return recorder ??= new Recorder();
}
