/**
 * The architecture's arrows (README, "How it works"): each folder imports only the folders below it,
 * so no folder imports one that imports it back, and no module imports itself through a circle of
 * others at run time. Read from the sources' import lines, relative ones only (npm and node: imports
 * are outside). Type-only imports count for the folders but not for circles: they are erased, and a
 * model's config type and its likelihood's interface may name each other (models/hvae.ts and
 * models/likelihood.ts).
 */

import assert from "node:assert/strict";

/** The folders with code, bottom to top: each may import only folders before it in this list. */
const LAYERS = ["kernels", "autograd", "data", "models", "store", "eval", "web", "scripts"];

/**
 * Every .ts file of the layers and the project files it imports (paths from the root); with
 * `runtime`, only the imports that remain at run time (not `import type`, not `export type`).
 */
async function importGraph(runtime = false): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(path);
        const targets = [...text.matchAll(/^(import|export)( type)?[^;]*?from\s+"(\.{1,2}\/[^"]+)"/gms)]
          .filter((m) => !runtime || !m[2])
          .map((m) => new URL(m[3], `file:///${path}`).pathname.slice(1));
        graph.set(path, targets);
      }
    }
  };
  for (const layer of LAYERS) await walk(layer);
  return graph;
}

Deno.test("layering: each folder imports only the folders below it", async () => {
  const wrong: string[] = [];
  for (const [file, targets] of await importGraph()) {
    const from = LAYERS.indexOf(file.split("/")[0]);
    for (const target of targets) {
      const to = LAYERS.indexOf(target.split("/")[0]);
      if (to > from) wrong.push(`${file} -> ${target}`);
    }
  }
  assert.deepEqual(wrong, [], `imports against the layering (${LAYERS.join(" < ")})`);
});

Deno.test("layering: no module imports itself through a circle at run time", async () => {
  const graph = await importGraph(true);
  const state = new Map<string, "open" | "done">();
  const circles: string[] = [];
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "open") {
      circles.push([...path.slice(path.indexOf(file)), file].join(" -> "));
      return;
    }
    state.set(file, "open");
    for (const target of graph.get(file) ?? []) visit(target, [...path, file]);
    state.set(file, "done");
  };
  for (const file of graph.keys()) visit(file, []);
  assert.deepEqual(circles, []);
});
