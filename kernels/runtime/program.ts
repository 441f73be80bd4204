/**
 * Kernel programs: a declarative spec per kernel variant, generated WGSL headers, and a pipeline
 * cache keyed by the variant's name.
 *
 * One `KernelSpec` is one compiled pipeline (tfjs's "program per variant"). Its `key` must name
 * every specialisation that changes the WGSL (op, transpose flags, tile sizes); shapes never enter
 * the key because they travel as uniforms, so one pipeline serves every shape of its class.
 *
 * The spec lists its uniforms and bindings once; from that list come both the WGSL declarations
 * (`struct Params`, `var<storage>` bindings, accessors for array uniforms) and the packer that writes
 * the uniform block on the CPU: a single source of truth for the layout.
 *
 * Bind group layout, shared by all kernels of the same arity: binding 0 is the per-dispatch uniform
 * block (a slice of the recorder's ring, dynamic offset), bindings 1..n the read-only inputs, then
 * the read_write outputs.
 */

import { gpu } from "./device.ts";

/** A scalar uniform, or `u32x8`: eight u32 (a shape or strides up to rank 8). */
export type UniformType = "u32" | "i32" | "f32" | "u32x8";
/** A binding's element type; the vec4s serve the contiguous elementwise kernels (kernels/launch.ts). */
export type ElementType = "f32" | "u32" | "vec4<f32>" | "vec4<u32>";

export interface KernelSpec {
  /** Cache key naming the variant, e.g. "unary:op=exp:backward=0", made by `memoSpec` alone. */
  key: string;
  uniforms: ReadonlyArray<readonly [name: string, type: UniformType]>;
  inputs: ReadonlyArray<readonly [name: string, type: ElementType]>;
  outputs: ReadonlyArray<readonly [name: string, type: ElementType]>;
  /** WGSL after the generated header: helpers and the `@compute` entry point `main`. */
  body: string;
}

/** Uniform values by name; `u32x8` fields take arrays of up to 8 numbers. */
export type UniformValues = Record<string, number | readonly number[]>;

/** Bytes of one uniform block; every kernel's Params must fit. */
export const UNIFORM_BLOCK_BYTES = 256;

interface FieldLayout {
  name: string;
  type: UniformType;
  offset: number;
}

export interface CompiledKernel {
  spec: KernelSpec;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  fields: FieldLayout[];
  /** Set when compilation failed; reported at the next sync. */
  error?: string;
}

/** WGSL layout rules for a uniform struct of scalars and array<vec4<u32>, 2>. */
function layoutFields(spec: KernelSpec): FieldLayout[] {
  let offset = 0;
  const fields: FieldLayout[] = [];
  for (const [name, type] of spec.uniforms) {
    const align = type === "u32x8" ? 16 : 4;
    offset = Math.ceil(offset / align) * align;
    fields.push({ name, type, offset });
    offset += type === "u32x8" ? 32 : 4;
  }
  if (offset > UNIFORM_BLOCK_BYTES) {
    throw new Error(`kernel ${spec.key}: uniform block of ${offset} B exceeds ${UNIFORM_BLOCK_BYTES} B`);
  }
  return fields;
}

/** The generated declarations that precede a kernel's body. */
export function kernelHeader(spec: KernelSpec): string {
  const lines: string[] = [];
  const members = spec.uniforms.map(([name, type]) =>
    `  ${name}: ${type === "u32x8" ? "array<vec4<u32>, 2>" : type},`
  );
  // WGSL forbids empty structs; a kernel without uniforms still gets one member.
  lines.push("struct Params {", ...(members.length ? members : ["  unused: u32,"]), "}");
  lines.push("@group(0) @binding(0) var<uniform> P: Params;");
  let binding = 1;
  for (const [name, type] of spec.inputs) {
    lines.push(`@group(0) @binding(${binding++}) var<storage, read> ${name}: array<${type}>;`);
  }
  for (const [name, type] of spec.outputs) {
    lines.push(`@group(0) @binding(${binding++}) var<storage, read_write> ${name}: array<${type}>;`);
  }
  for (const [name, type] of spec.uniforms) {
    if (type === "u32x8") lines.push(`fn ${name}_at(i: u32) -> u32 { return P.${name}[i / 4u][i % 4u]; }`);
  }
  return lines.join("\n") + "\n";
}

const specs = new Map<string, KernelSpec>();

/** A kernel's WGSL and bindings: a spec before `memoSpec` gives it its key. */
export type KernelBody = Omit<KernelSpec, "key">;

/** The parameters that select a kernel variant: everything that changes its WGSL. */
export type Variant = Readonly<Record<string, string | number | boolean>>;

/** The cache key of a variant: its family, then each parameter as name=value (booleans 0/1), in order. */
export function variantKey(family: string, variant: Variant): string {
  const params = Object.entries(variant).map(([name, v]) => `${name}=${typeof v === "boolean" ? +v : v}`);
  return [family, ...params].join(":");
}

/**
 * The spec of `family`'s `variant`, built by `build(variant)` on first use and cached. Its pipeline key
 * is made here, from the same parameters the builder receives, and nowhere else (tfjs adds a
 * program's variant suffix centrally in the same way): no kernel file writes a key by hand.
 */
export function memoSpec<V extends Variant>(
  family: string,
  variant: V,
  build: (v: V) => KernelBody,
): KernelSpec {
  const key = variantKey(family, variant);
  let spec = specs.get(key);
  if (!spec) specs.set(key, spec = { key, ...build(variant) });
  return spec;
}

const layouts = new Map<string, GPUBindGroupLayout>();
const kernels = new Map<string, CompiledKernel>();
const compileErrors: string[] = [];

function bindGroupLayout(device: GPUDevice, inputs: number, outputs: number): GPUBindGroupLayout {
  const key = `${inputs}r${outputs}w`;
  let layout = layouts.get(key);
  if (!layout) {
    const entries: GPUBindGroupLayoutEntry[] = [{
      binding: 0,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: UNIFORM_BLOCK_BYTES },
    }];
    for (let i = 0; i < inputs + outputs; i++) {
      entries.push({
        binding: i + 1,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: i < inputs ? "read-only-storage" : "storage" },
      });
    }
    layout = device.createBindGroupLayout({ label: key, entries });
    layouts.set(key, layout);
  }
  return layout;
}

/** The compiled pipeline for a spec, compiled on first use and cached by `spec.key`. */
export function compile(spec: KernelSpec): CompiledKernel {
  const cached = kernels.get(spec.key);
  if (cached) return cached;
  const { device } = gpu();
  const layout = bindGroupLayout(device, spec.inputs.length, spec.outputs.length);
  const code = kernelHeader(spec) + spec.body;
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label: spec.key, code });
  const pipeline = device.createComputePipeline({
    label: spec.key,
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: { module, entryPoint: "main" },
  });
  const compiled: CompiledKernel = { spec, pipeline, layout, fields: layoutFields(spec) };
  device.popErrorScope().then((error) => {
    if (error) {
      compiled.error = error.message;
      compileErrors.push(`kernel ${spec.key} failed to compile: ${error.message}`);
    }
  });
  kernels.set(spec.key, compiled);
  return compiled;
}

/** Compile errors seen so far (taken: each is reported once). */
export function takeCompileErrors(): string[] {
  return compileErrors.splice(0);
}

/** Number of distinct pipelines compiled in this process. */
export function pipelineCount(): number {
  return kernels.size;
}

/** Packs uniform values into `target` (a 256-byte block view) following the kernel's layout. */
export function packUniforms(kernel: CompiledKernel, values: UniformValues, target: DataView): void {
  for (const field of kernel.fields) {
    const value = values[field.name];
    if (value === undefined) throw new Error(`kernel ${kernel.spec.key}: uniform '${field.name}' missing`);
    if (field.type === "u32x8") {
      const list = value as readonly number[];
      if (list.length > 8) {
        throw new Error(`kernel ${kernel.spec.key}: '${field.name}' has ${list.length} > 8 entries`);
      }
      for (let i = 0; i < 8; i++) target.setUint32(field.offset + 4 * i, list[i] ?? 0, true);
    } else if (field.type === "f32") {
      target.setFloat32(field.offset, value as number, true);
    } else if (field.type === "i32") {
      target.setInt32(field.offset, value as number, true);
    } else {
      target.setUint32(field.offset, value as number, true);
    }
  }
}
