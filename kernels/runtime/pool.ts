/**
 * Size-class buffer pool with counters.
 *
 * Every tensor's storage is a GPUBuffer with one usage set (STORAGE | COPY_SRC | COPY_DST), so any
 * free buffer of the right class serves any tensor. Classes: multiples of 256 B up to 64 KiB, then
 * eight steps per power of two (at most 12.5% waste), which keeps the number of distinct classes
 * small across the shapes of one model. A freed buffer goes back to its class's free list; it is
 * destroyed instead when that list already holds `maxFreePerClass` buffers.
 *
 * Counters (the tfjs lesson: a pool hides true usage unless it says so): bytes in use by tensors,
 * bytes pooled (allocated but free), bytes allocated in total, and buffers created so far. Tests
 * use them to prove that a training loop's memory stays flat.
 *
 * A buffer released while a not-yet-submitted dispatch still reads it may be handed out again as
 * the *output* of a later dispatch: GPU command order makes that safe. It must not be the target of
 * `queue.writeBuffer` before the pending work is submitted; the recorder flushes before uploads.
 * Nor may it be destroyed then (a recorded command would use a dead buffer): surplus buffers wait in
 * `#doomed` until `destroyDoomed()`, which the recorder calls after each submit.
 */

export const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/**
 * Rounds a byte size up to its size class: multiples of 256 B (WebGPU's usual storage-offset
 * alignment, and a multiple of 16 B, which the vec4 kernels rely on) up to 64 KiB, where rounding
 * wastes little; above, eight classes per power of two (waste <= 12.5%) keep the number of classes
 * small, so freed buffers are found again.
 */
export function sizeClass(bytes: number): number {
  const b = Math.max(4, bytes);
  if (b <= 65536) return Math.ceil(b / 256) * 256;
  const pow = 2 ** Math.floor(Math.log2(b));
  const step = pow / 8;
  return Math.ceil(b / step) * step;
}

/** The buffer pool's counters (part of `engineStats()`). */
export interface PoolStats {
  /** Bytes of buffers currently held by live tensors (class sizes). */
  bytesInUse: number;
  /** Bytes of buffers sitting free in the pool. */
  bytesPooled: number;
  /** bytesInUse + bytesPooled: what the GPU really holds for tensors. */
  bytesAllocated: number;
  /** Buffers held by live tensors. */
  buffersInUse: number;
  /** GPUBuffers created since start: flat across training steps once warm. */
  buffersCreated: number;
}

export class BufferPool {
  #free = new Map<number, GPUBuffer[]>();
  #doomed: GPUBuffer[] = [];
  #stats: PoolStats = {
    bytesInUse: 0,
    bytesPooled: 0,
    bytesAllocated: 0,
    buffersInUse: 0,
    buffersCreated: 0,
  };

  /**
   * `maxFreePerClass`: free buffers kept per class. Generous for the models here (a step's
   * buffers of one class are freed and reused within the step; the tests prove memory stays flat),
   * and a bound on what a burst of one-off shapes can hold on to.
   */
  constructor(private device: GPUDevice, private maxFreePerClass = 64) {}

  /** A buffer of at least `bytes` bytes, reused when one of its class is free. */
  acquire(bytes: number, label = "tensor"): GPUBuffer {
    const size = sizeClass(bytes);
    const list = this.#free.get(size);
    let buffer = list?.pop();
    if (buffer) {
      this.#stats.bytesPooled -= size;
    } else {
      buffer = this.device.createBuffer({ size, usage: STORAGE_USAGE, label });
      this.#stats.buffersCreated++;
      this.#stats.bytesAllocated += size;
    }
    this.#stats.bytesInUse += size;
    this.#stats.buffersInUse++;
    return buffer;
  }

  /** Returns a buffer obtained from `acquire`. */
  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    this.#stats.bytesInUse -= size;
    this.#stats.buffersInUse--;
    let list = this.#free.get(size);
    if (!list) this.#free.set(size, list = []);
    if (list.length < this.maxFreePerClass) {
      list.push(buffer);
      this.#stats.bytesPooled += size;
    } else {
      this.#doomed.push(buffer);
      this.#stats.bytesAllocated -= size;
    }
  }

  /** Drops every free buffer (memory pressure, or the end of a benchmark); destroyed after the next submit. */
  trim(): void {
    for (const list of this.#free.values()) this.#doomed.push(...list);
    this.#stats.bytesAllocated -= this.#stats.bytesPooled;
    this.#stats.bytesPooled = 0;
    this.#free.clear();
  }

  /** Destroys the buffers dropped so far. Only safe once every command that used them is submitted. */
  destroyDoomed(): void {
    for (const b of this.#doomed) b.destroy();
    this.#doomed.length = 0;
  }

  stats(): PoolStats {
    return { ...this.#stats };
  }
}
