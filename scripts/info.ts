/**
 * `deno task info`: what the engine runs on: the adapter, the native backend under WebGPU (with a
 * warning when it is the slow OpenGL path), its limits and features, Deno's version. Prints one JSON
 * object on stdout; the warning goes to stderr.
 */

import { adapterInfo } from "../kernels/engine.ts";
import { guessBackend } from "../kernels/runtime/backend.ts";
import { initGpuOrExit } from "./cli.ts";

await initGpuOrExit("info");
const adapter = adapterInfo();
const backend = await guessBackend(adapter);
if (backend.warning) console.error(`info: warning: ${backend.warning}`);
console.log(JSON.stringify({ ...adapter, backend: backend.name, deno: Deno.version }, null, 2));
