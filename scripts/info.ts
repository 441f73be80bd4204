/**
 * `deno task info`: what the engine runs on: the adapter, its limits and features, Deno's version.
 * Prints one JSON object.
 */

import { adapterInfo } from "../kernels/engine.ts";
import { initGpuOrExit } from "./cli.ts";

await initGpuOrExit("info");
console.log(JSON.stringify({ ...adapterInfo(), deno: Deno.version }, null, 2));
