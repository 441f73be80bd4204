/**
 * Which native API Deno's WebGPU (wgpu) runs on. WebGPU does not say, so it is inferred: wgpu uses
 * Metal on macOS, and on Linux Vulkan when a Vulkan driver (an ICD manifest) is installed, else
 * OpenGL. The OpenGL path works but is slow: on Mesa's software adapter it ran the test suite 13 times
 * slower than Vulkan did (README, "Quick start": `mesa-vulkan-drivers`).
 */

import type { AdapterDescription } from "./device.ts";

/** The backend and, when it is a slow one, a warning that says how to get the fast one. */
export interface Backend {
  /** "Vulkan", "OpenGL", "Metal", "Direct3D 12 or Vulkan" or "unknown". */
  name: string;
  /** Set when the backend is known to be slow. */
  warning?: string;
}

/** Where the Vulkan loader looks for driver manifests (Khronos' loader documentation, Linux). */
const ICD_DIRS = [
  "/etc/vulkan/icd.d",
  "/usr/share/vulkan/icd.d",
  "/usr/local/share/vulkan/icd.d",
  "/usr/local/etc/vulkan/icd.d",
];

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The Vulkan driver manifests the loader would find (the environment's override first). */
async function vulkanDrivers(): Promise<string[]> {
  const override = env("VK_DRIVER_FILES") ?? env("VK_ICD_FILENAMES");
  if (override) {
    const files = override.split(":").filter(Boolean);
    const found = [];
    for (const f of files) if (await exists(f)) found.push(f);
    return found;
  }
  const found: string[] = [];
  for (const dir of ICD_DIRS) {
    try {
      for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".json")) found.push(`${dir}/${e.name}`);
    } catch {
      // Not there or not readable: the loader would not find drivers there either.
    }
  }
  return found;
}

/** Infers the backend of `adapter` (see the module comment). */
export async function guessBackend(adapter: AdapterDescription): Promise<Backend> {
  const os = Deno.build.os;
  if (os === "darwin") return { name: "Metal" };
  if (os === "windows") return { name: "Direct3D 12 or Vulkan" };
  if (os !== "linux") return { name: "unknown" };
  if ((await vulkanDrivers()).length > 0) return { name: "Vulkan" };
  const software = adapter.isFallbackAdapter || /llvmpipe|swiftshader|software/i.test(adapter.description);
  return {
    name: "OpenGL",
    warning: `no Vulkan driver found (no ICD manifest in ${ICD_DIRS.join(", ")} or $VK_DRIVER_FILES), ` +
      `so WebGPU runs over OpenGL${
        software ? ", many times slower on this software adapter" : ", which is slower"
      }: install one (Debian: apt-get install mesa-vulkan-drivers)`,
  };
}
