/**
 * Reverse-mode autodiff: a tape recorded while `f` runs, replayed backwards.
 *
 * `valueAndGrad(f)(params, ...args)` marks the tensors of the `params` tree as tracked, runs `f`
 * (synchronously, inside a scope), and every primitive whose inputs include a tracked tensor appends
 * one entry {primitive, inputs, output, attrs} to the tape and marks its output tracked. The tape is
 * in execution order, which is a topological order of the graph, so the backward pass is one loop
 * over the entries in reverse: look up the output's cotangent, apply the primitive's VJP rule
 * (autograd/rules.ts) for the inputs that need one, and add the results into their cotangents.
 * That is micrograd's backward, minus the graph search.
 *
 * First order only: calling `valueAndGrad` inside `f` throws. Outside `valueAndGrad` nothing is
 * recorded, so inference needs no special mode (`noGrad` exists to pause a tape explicitly).
 * Library code never reads back inside `f`: readbacks are async and `f` is not.
 */

import { binary } from "../kernels/binary.ts";
import { full } from "../kernels/movement.ts";
import { isTensor, scope, type Tensor } from "../kernels/tensor.ts";
import { flatten, type Tree } from "../kernels/tree.ts";
import { type AttrsOf, type PrimitiveName, VJP, type VjpArgs } from "./rules.ts";

/** An input of a primitive: a tensor, or a number folded into the kernel. */
export type Operand = Tensor | number;

/** One recorded op: its primitive, its operands and output, and its attributes (typed per primitive). */
type Entry = {
  [P in PrimitiveName]: { primitive: P; inputs: readonly Operand[]; output: Tensor; attrs: AttrsOf<P> };
}[PrimitiveName];

class Tape {
  entries: Entry[] = [];
  tracked = new Set<number>();
  paused = 0;
}

let active: Tape | null = null;

/**
 * Called by every differentiable op after computing `output`: records the op when any input is
 * tracked. Cheap when no tape is active.
 */
export function record<P extends PrimitiveName>(
  primitive: P,
  inputs: readonly Operand[],
  output: Tensor,
  // Attributes are required exactly for the primitives that have them (`PrimitiveAttrs`).
  ...[attrs]: [keyof AttrsOf<P>] extends [never] ? [attrs?: AttrsOf<P>] : [attrs: AttrsOf<P>]
): Tensor {
  const tape = active;
  if (!tape || tape.paused) return output;
  if (!inputs.some((x) => isTensor(x) && tape.tracked.has(x.id))) return output;
  tape.entries.push({ primitive, inputs, output, attrs: attrs ?? {} } as Entry);
  tape.tracked.add(output.id);
  return output;
}

/** Runs `fn` without recording, even inside `valueAndGrad` (its results carry no gradient). */
export function noGrad<T>(fn: () => T): T {
  const tape = active;
  if (tape) tape.paused++;
  try {
    return fn();
  } finally {
    if (tape) tape.paused--;
  }
}

/** What `valueAndGrad(f)(params)` returns. */
export interface ValueAndGrad<P> {
  /** f(params), a scalar tensor. */
  value: Tensor;
  /** The gradient of the value with respect to every tensor of `params`, in the same tree shape. */
  grads: P;
}

/** What `valueAndGradWithAux(f)(params)` returns: also the auxiliary output of f. */
export interface ValueAndGradAux<P, A> extends ValueAndGrad<P> {
  /** The second element f returned (not differentiated). */
  aux: A;
}

function backward(tape: Tape, loss: Tensor): Map<number, Tensor> {
  const cotangents = new Map<number, Tensor>();
  cotangents.set(loss.id, full(loss.shape, 1));
  tape.paused++;
  for (let i = tape.entries.length - 1; i >= 0; i--) {
    const { primitive, inputs, output, attrs } = tape.entries[i];
    const g = cotangents.get(output.id);
    if (!g) continue;
    const needs = inputs.map((x) => isTensor(x) && tape.tracked.has(x.id));
    // The entry pairs a primitive with its own attributes (`Entry`), so its rule gets the right kind.
    const rule = VJP[primitive] as (args: VjpArgs<typeof attrs>) => (Tensor | null)[];
    const grads = rule({ g, inputs, output, attrs, needs });
    inputs.forEach((x, j) => {
      const gj = grads[j];
      if (!needs[j] || !gj || !isTensor(x)) return;
      const prev = cotangents.get(x.id);
      cotangents.set(x.id, prev ? binary("add", prev, gj) : gj);
    });
  }
  tape.paused--;
  return cotangents;
}

function run<P, R>(
  f: (params: P, ...args: never[]) => R,
  params: P,
  args: unknown[],
  split: (r: R) => [Tensor, unknown],
): { value: Tensor; grads: P; aux: unknown } {
  if (active) {
    throw new Error("valueAndGrad: nested differentiation is not supported (first-order autodiff only)");
  }
  const flat = flatten(params as Tree<Tensor>, isTensor);
  return scope(() => {
    const tape = new Tape();
    active = tape;
    try {
      for (const p of flat.leaves) tape.tracked.add(p.id);
      const result = (f as (params: P, ...args: unknown[]) => R)(params, ...args);
      if (result instanceof Promise) {
        throw new Error("valueAndGrad: f returned a Promise; f must be synchronous");
      }
      const [value, aux] = split(result);
      if (!isTensor(value) || value.size !== 1) {
        throw new Error(`valueAndGrad: f must return a one-element tensor, got ${value}`);
      }
      const cotangents = backward(tape, value);
      const grads = flat.leaves.map((p) => cotangents.get(p.id) ?? full(p.shape, 0));
      return { value, grads: flat.rebuild(grads) as P, aux };
    } finally {
      active = null;
    }
  });
}

/**
 * Returns a function computing f(params, ...args) and its gradient with respect to every tensor in
 * the `params` tree (plain objects/arrays of tensors); gradients come back in the same tree.
 * `f` must be synchronous and return a one-element tensor.
 */
export function valueAndGrad<P, Args extends unknown[]>(
  f: (params: P, ...args: Args) => Tensor,
): (params: P, ...args: Args) => ValueAndGrad<P> {
  return (params, ...args) => {
    const { value, grads } = run(f as never, params, args, (r: Tensor) => [r, undefined]);
    return { value, grads };
  };
}

/** Like `valueAndGrad`, for an `f` that returns [loss, aux]; aux (any tree) is passed through. */
export function valueAndGradWithAux<P, Args extends unknown[], A>(
  f: (params: P, ...args: Args) => [Tensor, A],
): (params: P, ...args: Args) => ValueAndGradAux<P, A> {
  return (params, ...args) => {
    const { value, grads, aux } = run(f as never, params, args, (r: [Tensor, A]) => r);
    return { value, grads, aux: aux as A };
  };
}

/** The gradient of f with respect to `params` (see `valueAndGrad`). */
export function grad<P, Args extends unknown[]>(
  f: (params: P, ...args: Args) => Tensor,
): (params: P, ...args: Args) => P {
  const vg = valueAndGrad(f);
  return (params, ...args) => scope(() => vg(params, ...args).grads);
}
