/**
 * `deno task info`: what the engine runs on: the adapter, its limits and features, Deno's version.
 * Prints one JSON object.
 */

import { adapterInfo } from "../kernels/engine.ts";
import { GpuUnavailableError, initGpu } from "../kernels/runtime/device.ts";

try {
  await initGpu();
} catch (error) {
  if (error instanceof GpuUnavailableError) {
    console.error(`info: ${error.message}`);
    Deno.exit(1);
  }
  throw error;
}
console.log(JSON.stringify({ ...adapterInfo(), deno: Deno.version }, null, 2));
