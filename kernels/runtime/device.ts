/**
 * The WebGPU device: one per process, requested once with the adapter's real limits.
 *
 * WebGPU hands out the spec's minimum limits (8 storage buffers per stage, 16 KiB of workgroup
 * memory, 256 invocations per workgroup) unless a device asks for more, so `initGpu` copies the
 * adapter's own limits into `requiredLimits`. Everything here is asynchronous; after `initGpu`
 * resolves, `gpu()` returns the context synchronously, which is what lets ops be plain functions.
 *
 * Reference: WebGPU spec, "requestDevice" and "GPUSupportedLimits"; Deno's `navigator.gpu`.
 */

/** What the engine knows about the adapter it runs on. */
export interface AdapterDescription {
  /** e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" or "NVIDIA H100 80GB HBM3". */
  description: string;
  /** The adapter's vendor, as WebGPU reports it. */
  vendor: string;
  /** The adapter's architecture, as WebGPU reports it (often empty). */
  architecture: string;
  /** True for a software adapter (Mesa's llvmpipe): expect ~100x lower throughput. */
  isFallbackAdapter: boolean;
  /** Optional WebGPU features the adapter offers (e.g. `timestamp-query`). */
  features: string[];
  /** The adapter's limits, by WebGPU limit name. */
  limits: Record<string, number>;
}

/** The device plus the facts the runtime needs about it. */
export interface GpuContext {
  /** The WebGPU device every kernel runs on. */
  device: GPUDevice;
  /** What the adapter is (`adapterInfo()` returns it). */
  adapter: AdapterDescription;
  /** Byte alignment for dynamic uniform offsets on this device. */
  uniformAlignment: number;
  /** The device's limit on workgroups per grid dimension (launchers split grids to respect it). */
  maxWorkgroupsPerDimension: number;
  /** The device's largest storage-buffer binding, in bytes. */
  maxStorageBindingSize: number;
}

/** Thrown when no usable WebGPU device exists; its message says what to install. */
export class GpuUnavailableError extends Error {
  /** The error's name. */
  override name = "GpuUnavailableError";
}

const HOW_TO_GET_A_GPU = "Run on a machine with a GPU and Vulkan drivers, or install Mesa's software " +
  "adapter: `apt-get install -y libvulkan1 mesa-vulkan-drivers` (Debian/Ubuntu).";

/** Limits copied from the adapter into the device request (the rest keep WebGPU's defaults). */
const LIMITS_TO_REQUEST = [
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxUniformBufferBindingSize",
  "maxDynamicUniformBuffersPerPipelineLayout",
  "maxBindingsPerBindGroup",
] as const;

/** Optional features the engine uses where present; none is required. */
const OPTIONAL_FEATURES: GPUFeatureName[] = ["timestamp-query", "shader-f16"];

let context: GpuContext | null = null;
let pending: Promise<GpuContext> | null = null;
let lostReason: string | null = null;

/**
 * Requests the adapter and device once per process; later calls return the same context.
 * Throws `GpuUnavailableError` with installation advice when WebGPU or an adapter is missing.
 */
export function initGpu(options: { powerPreference?: GPUPowerPreference } = {}): Promise<GpuContext> {
  if (context) return Promise.resolve(context);
  pending ??= requestContext(options).catch((error) => {
    pending = null;
    throw error;
  });
  return pending;
}

/**
 * Mesa's Vulkan loader prints "XDG_RUNTIME_DIR is invalid or not set" on headless machines; the
 * variable only matters for windowing, so point it at the temp dir when it is missing.
 */
function quietMesa(): void {
  // Only under Deno (this module also runs in browsers, web/): found on globalThis, not named.
  const runtime = (globalThis as { Deno?: typeof Deno }).Deno;
  try {
    if (runtime?.build.os === "linux" && !runtime.env.get("XDG_RUNTIME_DIR")) {
      runtime.env.set("XDG_RUNTIME_DIR", runtime.env.get("TMPDIR") ?? "/tmp");
    }
  } catch {
    // No --allow-env: leave the environment alone (the warning is harmless).
  }
}

async function requestContext(options: { powerPreference?: GPUPowerPreference }): Promise<GpuContext> {
  quietMesa();
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    throw new GpuUnavailableError(
      `navigator.gpu is missing: this runtime has no WebGPU. ${HOW_TO_GET_A_GPU}`,
    );
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: options.powerPreference });
  if (!adapter) {
    throw new GpuUnavailableError(`navigator.gpu.requestAdapter() found no adapter. ${HOW_TO_GET_A_GPU}`);
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMITS_TO_REQUEST) {
    const value = (adapter.limits as unknown as Record<string, number | undefined>)[name];
    if (typeof value === "number") requiredLimits[name] = value;
  }
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  device.lost?.then((info) => {
    lostReason = `${info.reason}: ${info.message}`;
    context = null;
  });
  const info = adapter.info;
  const limits: Record<string, number> = {};
  for (const name in adapter.limits) {
    const value = (adapter.limits as unknown as Record<string, unknown>)[name];
    if (typeof value === "number") limits[name] = value;
  }
  context = {
    device,
    adapter: {
      description: info.description || `${info.vendor} ${info.device}`.trim() || "unknown adapter",
      vendor: info.vendor,
      architecture: info.architecture,
      isFallbackAdapter: Boolean((info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter),
      features: [...adapter.features].sort(),
      limits,
    },
    uniformAlignment: device.limits.minUniformBufferOffsetAlignment,
    maxWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
    maxStorageBindingSize: device.limits.maxStorageBufferBindingSize,
  };
  return context;
}

/** The initialised context. Ops call this; it throws if `initGpu` has not resolved or the device was lost. */
export function gpu(): GpuContext {
  if (context) return context;
  if (lostReason) {
    throw new GpuUnavailableError(
      `the WebGPU device was lost (${lostReason}); results since the last readback are gone. ` +
        "Restart the process; if it repeats, lower the batch size or preset (out of GPU memory?).",
    );
  }
  throw new GpuUnavailableError(
    "no GPU device yet: `await initGpu()` (exported by mod.ts) before using tensors.",
  );
}
