/**
 * Tensors: immutable, contiguous, row-major values on the GPU, and their deterministic lifetimes.
 *
 * A `Tensor` is a shape, a dtype and a reference to a storage buffer from the pool. Ops never mutate
 * a tensor; `reshape` makes a new tensor that shares the storage (the storage counts its tensors and
 * returns to the pool when the last one is released, an internal detail users never see).
 *
 * Lifetimes are scopes, not garbage collection (no FinalizationRegistry: GC timing is not
 * deterministic and GPU memory is scarce). `scope(fn)` runs `fn` synchronously and releases every
 * tensor created inside except those in its return value, which move to the enclosing scope.
 * Tensors created outside any scope (parameters, optimiser state) live until `dispose`. `keep` lifts
 * a tensor out of its scope. Readbacks are async, so await them outside the scope:
 * `const loss = scope(() => step(...)); const [value] = await read(loss)`.
 */

import { getRecorder } from "./runtime/recorder.ts";
import { BufferPool } from "./runtime/pool.ts";
import { gpu } from "./runtime/device.ts";
import { checkShape, type Shape, shapeString, sizeOf } from "./shape.ts";
import { flatten, isPlainObject, type Tree } from "./tree.ts";

/** Element types: 32-bit floats, or unsigned integers (packed bytes, indices, random bits). */
export type DType = "f32" | "u32";

/** A GPU buffer shared by the tensors that view it. */
class Storage {
  refs = 1;
  constructor(readonly buffer: GPUBuffer) {}
}

/** The buffer of every tensor made inside `dryRun`: a placeholder no kernel ever binds. */
const DRY_BUFFER = Object.freeze({ label: "dry run" }) as unknown as GPUBuffer;
let dryDepth = 0;

/**
 * Runs `fn` without any GPU work: its tensors get no memory, uploads are skipped and kernels are
 * not dispatched, while every check an op makes at record time (shapes, the device's binding and
 * grid limits) runs as usual. So a whole training step at a batch size can be tried in milliseconds
 * and fail, if it must, with the engine's own message before anything is submitted (a step that
 * fails half-way leaves submitted work that Deno's teardown can time out on, with a panic).
 * Every tensor `fn` makes is released at the end; tensors it updates in place keep their values.
 */
export function dryRun(fn: () => unknown): void {
  dryDepth++;
  try {
    scope(() => {
      fn();
    });
  } finally {
    dryDepth--;
  }
}

/** @internal Whether a `dryRun` is under way (`launch` records nothing then). */
export function isDryRun(): boolean {
  return dryDepth > 0;
}

let pool: BufferPool | null = null;

/** The process-wide buffer pool. */
export function getPool(): BufferPool {
  if (!pool) {
    const created = new BufferPool(gpu().device);
    getRecorder().afterSubmit.push(() => created.destroyDoomed());
    pool = created;
  }
  return pool;
}

let nextId = 1;
/** The tensors a `scope` releases when it ends. */
export type Scope = Set<Tensor>;
const scopes: Scope[] = [];

/**
 * An immutable n-dimensional array in a GPU buffer. Ops return new tensors; `dispose` (or the
 * enclosing `scope`) releases its buffer.
 */
export class Tensor {
  /** A number unique to this tensor (debugging). */
  readonly id = nextId++;
  /** The number of elements. */
  readonly size: number;
  #storage: Storage | null;
  /** The scope that will release this tensor, or null when it is long-lived. */
  owner: Scope | null = null;

  /** @internal Use the op functions or `tensor()`; this wraps an existing storage. */
  constructor(readonly shape: Shape, readonly dtype: DType, storage: Storage) {
    this.size = sizeOf(shape);
    this.#storage = storage;
    const top = scopes[scopes.length - 1];
    if (top) {
      top.add(this);
      this.owner = top;
    }
  }

  /** The number of axes. */
  get rank(): number {
    return this.shape.length;
  }

  /** True after `dispose` (or the end of the scope that owned it). */
  get disposed(): boolean {
    return this.#storage === null;
  }

  /** @internal The storage buffer (may be larger than the tensor: pool size classes). */
  get buffer(): GPUBuffer {
    if (!this.#storage) throw new Error(`${this}: used after it was disposed`);
    return this.#storage.buffer;
  }

  /** @internal The storage, for views that share it. */
  get storage(): Storage {
    if (!this.#storage) throw new Error(`${this}: used after it was disposed`);
    return this.#storage;
  }

  /** Releases the storage now (idempotent). */
  dispose(): void {
    const storage = this.#storage;
    if (!storage) return;
    this.#storage = null;
    this.owner?.delete(this);
    this.owner = null;
    if (--storage.refs === 0 && storage.buffer !== DRY_BUFFER) getPool().release(storage.buffer);
  }

  /** `Tensor#id[shape] dtype`, for error messages. */
  toString(): string {
    return `Tensor#${this.id}(${this.dtype} ${shapeString(this.shape)})`;
  }
}

export function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}

/** @internal A fresh, uninitialised tensor whose storage a kernel will write. */
export function emptyTensor(shape: Shape, dtype: DType = "f32", op = "empty"): Tensor {
  checkShape(shape, op);
  const bytes = sizeOf(shape) * 4;
  const limit = gpu().maxStorageBindingSize;
  if (bytes > limit) {
    throw new Error(
      `${op}: a tensor of shape ${shapeString(shape)} needs ${bytes} bytes, more than this device binds ` +
        `(${limit} bytes); use a smaller batch`,
    );
  }
  const buffer = dryDepth > 0 ? DRY_BUFFER : getPool().acquire(Math.max(4, bytes), op);
  return new Tensor([...shape], dtype, new Storage(buffer));
}

/** @internal A tensor of another shape (same size) sharing `t`'s storage. */
export function viewOf(t: Tensor, shape: Shape): Tensor {
  const storage = t.storage;
  storage.refs++;
  return new Tensor([...shape], t.dtype, storage);
}

/** A number or nested arrays of numbers, as `tensor` takes them (shape from the nesting). */
export type Nested = number | Nested[];

function flattenNested(data: Nested, shape: number[], out: number[], depth = 0): void {
  if (typeof data === "number") {
    if (depth !== shape.length && shape.length) throw new Error("tensor: ragged nested array");
    out.push(data);
    return;
  }
  if (shape.length === depth) shape.push(data.length);
  else if (shape[depth] !== data.length) throw new Error("tensor: ragged nested array");
  for (const x of data) flattenNested(x, shape, out, depth + 1);
}

/**
 * Uploads data as a new tensor. `data` is a typed array or a (nested) number array; `shape` defaults
 * to the nesting (or a flat vector). u32 data keeps its bits; f32 data is rounded to float32.
 */
export function tensor(
  data: Float32Array | Uint32Array | Float64Array | Nested,
  shape?: Shape,
  dtype?: DType,
): Tensor {
  let values: ArrayLike<number>;
  let inferred: number[] = [];
  if (typeof data === "number" || Array.isArray(data)) {
    const flat: number[] = [];
    flattenNested(data, inferred, flat);
    values = flat;
  } else {
    values = data;
    inferred = [data.length];
  }
  const finalShape = shape ? [...shape] : inferred;
  checkShape(finalShape, "tensor");
  if (sizeOf(finalShape) !== values.length) {
    throw new Error(`tensor: ${values.length} values do not fill shape ${shapeString(finalShape)}`);
  }
  const type: DType = dtype ?? (data instanceof Uint32Array ? "u32" : "f32");
  const bytes = type === "u32" ? Uint32Array.from(values) : Float32Array.from(values);
  const out = emptyTensor(finalShape, type, "tensor");
  if (bytes.byteLength > 0 && dryDepth === 0) {
    getRecorder().beforeUpload();
    gpu().device.queue.writeBuffer(out.buffer, 0, bytes);
  }
  return out;
}

/** Reads tensors back in one staging copy and one sync. f32 tensors give Float32Array, u32 Uint32Array. */
export async function readAll(tensors: readonly Tensor[]): Promise<(Float32Array | Uint32Array)[]> {
  if (dryDepth > 0) throw new Error("readAll: nothing can be read inside dryRun (no GPU work runs there)");
  const buffers = await getRecorder().read(tensors.map((t) => ({ buffer: t.buffer, bytes: t.size * 4 })));
  return buffers.map((b, i) => tensors[i].dtype === "u32" ? new Uint32Array(b) : new Float32Array(b));
}

/** Reads one f32 tensor back. */
export async function read(t: Tensor): Promise<Float32Array> {
  const [data] = await readAll([t]);
  if (!(data instanceof Float32Array)) throw new Error(`read: ${t} is not f32 (use readAll)`);
  return data;
}

/** Reads a one-element tensor as a number. */
export async function readScalar(t: Tensor): Promise<number> {
  if (t.size !== 1) throw new Error(`readScalar: ${t} has ${t.size} elements, expected 1`);
  return (await readAll([t]))[0][0];
}

/**
 * Runs `fn` synchronously and releases every tensor created inside except those in its result,
 * which move to the enclosing scope (or become long-lived at top level).
 */
export function scope<T>(fn: () => T): T {
  const own: Scope = new Set();
  scopes.push(own);
  let result: T;
  try {
    result = fn();
  } catch (error) {
    scopes.pop();
    for (const t of own) t.dispose();
    throw error;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of own) t.dispose();
    throw new Error(
      "scope: fn returned a Promise; scopes are synchronous (await readbacks outside the scope)",
    );
  }
  const parent = scopes[scopes.length - 1] ?? null;
  for (const t of tensorsIn(result)) {
    if (t.owner === own) {
      own.delete(t);
      t.owner = parent;
      parent?.add(t);
    }
  }
  for (const t of own) t.dispose();
  return result;
}

/** Makes tensors long-lived: no scope will release them; `dispose` them when done. */
export function keep<T>(tree: T): T {
  for (const t of tensorsIn(tree)) {
    t.owner?.delete(t);
    t.owner = null;
  }
  return tree;
}

/** Releases every tensor in a tree now. */
export function dispose(tree: unknown): void {
  for (const t of tensorsIn(tree)) t.dispose();
}

/** The tensors in a tree (ignoring other leaves). */
export function tensorsIn(tree: unknown): Tensor[] {
  if (tree === null || tree === undefined || typeof tree !== "object") return [];
  if (isTensor(tree)) return [tree];
  const isLeaf = (x: unknown): x is unknown => !Array.isArray(x) && !isPlainObject(x);
  return flatten(tree as Tree<unknown>, isLeaf).leaves.filter(isTensor);
}
