/**
 * Switches for tests and benchmarks, apart from the public API (mod.ts): forcing one convolution
 * kernel family (the conv tests run every variant on the same cases), watching the convolutions a
 * step records, the per-adapter kernel choices and the tuner, and the TypeScript mirror of the GPU's
 * Philox generator (tests compare the two bit for bit).
 *
 * @module
 */

export {
  type ConvDirection,
  type ConvImplementation,
  type ConvObserver,
  type ConvPlan,
  convPlan,
  observeConvolutions,
  setConvImplementation,
} from "./kernels/conv.ts";
export {
  defaultTuning,
  type DirectBlocks,
  type GemmTiling,
  setTuning,
  type Tuning,
  tuning,
} from "./kernels/tuning_choices.ts";
export { philox } from "./kernels/philox.ts";
export type { ConvGeometry } from "./kernels/conv_geometry.ts";
