/**
 * Parameter trees: plain objects and arrays whose leaves are values of some type (tensors, mostly).
 * `flatten` lists the leaves in a stable order (object keys sorted) with their dotted paths;
 * `unflatten` rebuilds the same structure from new leaves. Paths like `enc.stage1.block0.conv1.weight`
 * are what checkpoints use as parameter names.
 */

export type Tree<T> = T | readonly Tree<T>[] | { readonly [key: string]: Tree<T> };

/** A flattened tree: its leaves in a stable order, their dotted paths, and the way back. */
export interface Flat<T> {
  /** The leaves, in the order of the sorted object keys. */
  leaves: T[];
  /** Each leaf's dotted path (e.g. `enc.stage1.block0.conv1.weight`). */
  paths: string[];
  /** The same structure with `leaves` (in the same order) in place of the old ones. */
  rebuild<U>(leaves: readonly U[]): Tree<U>;
}

export function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== "object") return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

/** Flattens `tree`, treating every value for which `isLeaf` holds as a leaf. */
export function flatten<T>(tree: Tree<T>, isLeaf: (x: unknown) => x is T): Flat<T> {
  const leaves: T[] = [];
  const paths: string[] = [];
  const walk = (node: unknown, path: string): void => {
    if (isLeaf(node)) {
      leaves.push(node);
      paths.push(path);
    } else if (Array.isArray(node)) {
      node.forEach((child, i) => walk(child, path ? `${path}.${i}` : String(i)));
    } else if (isPlainObject(node)) {
      for (const key of Object.keys(node).sort()) walk(node[key], path ? `${path}.${key}` : key);
    } else {
      throw new Error(
        `tree: unexpected ${typeof node} at '${path || "<root>"}' (expected a leaf, array or plain object)`,
      );
    }
  };
  walk(tree, "");
  const rebuild = <U>(newLeaves: readonly U[]): Tree<U> => {
    if (newLeaves.length !== leaves.length) {
      throw new Error(`tree: ${newLeaves.length} leaves given for a tree of ${leaves.length}`);
    }
    let i = 0;
    const build = (node: unknown): Tree<U> => {
      if (isLeaf(node)) return newLeaves[i++];
      if (Array.isArray(node)) return node.map(build);
      const out: Record<string, Tree<U>> = {};
      for (const key of Object.keys(node as object).sort()) {
        out[key] = build((node as Record<string, unknown>)[key]);
      }
      return out;
    };
    return build(tree);
  };
  return { leaves, paths, rebuild };
}
