/**
 * Shape arithmetic shared by every op: sizes, row-major strides, NumPy broadcasting, axis
 * normalisation. Errors name the op and the shapes involved so a bad call is easy to find.
 */

export type Shape = readonly number[];

/** Largest rank the strided kernels accept (uniform arrays hold 8 entries). */
export const MAX_RANK = 8;

export function shapeString(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major (C-order) strides in elements. */
export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Checks that a shape is a list of non-negative integers of rank <= MAX_RANK. */
export function checkShape(shape: Shape, op: string): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`${op}: shape ${JSON.stringify(shape)} must be a list of non-negative integers`);
  }
  if (shape.length > MAX_RANK) {
    throw new Error(`${op}: rank ${shape.length} of ${shapeString(shape)} exceeds the maximum ${MAX_RANK}`);
  }
}

/** NumPy broadcasting: align trailing axes; each pair must be equal or contain a 1. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const j = rank - s.length + i;
      const d = s[i];
      if (out[j] === 1) out[j] = d;
      else if (d !== 1 && d !== out[j]) {
        throw new Error(
          `${op}: shapes ${shapes.map(shapeString).join(" and ")} cannot be broadcast (axis ${j})`,
        );
      }
    }
  }
  return out;
}

/**
 * Element strides that read `shape` as if broadcast to `outShape`: 0 on broadcast axes.
 * `shape` must broadcast to `outShape`.
 */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const strides = stridesOf(shape);
  const out = new Array<number>(outShape.length).fill(0);
  const lead = outShape.length - shape.length;
  for (let i = 0; i < shape.length; i++) out[lead + i] = shape[i] === 1 ? 0 : strides[i];
  return out;
}

/** Resolves `axes` (undefined = all; negatives count from the end), sorted and unique. */
export function normalizeAxes(
  axes: number | readonly number[] | undefined,
  rank: number,
  op: string,
): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === "number" ? [axes] : [...axes];
  const out = new Set<number>();
  for (const a of list) {
    if (!Number.isInteger(a) || a < -rank || a >= rank) {
      throw new Error(`${op}: axis ${a} is out of range for rank ${rank}`);
    }
    out.add(a < 0 ? a + rank : a);
  }
  if (out.size !== list.length) throw new Error(`${op}: repeated axis in ${JSON.stringify(list)}`);
  return [...out].sort((x, y) => x - y);
}

/** The axes that `outShape` adds or stretches relative to `shape` (for summing a cotangent back). */
export function broadcastAxes(shape: Shape, outShape: Shape): number[] {
  const lead = outShape.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < outShape.length; i++) {
    if (i < lead || (shape[i - lead] === 1 && outShape[i] !== 1)) axes.push(i);
  }
  return axes;
}
