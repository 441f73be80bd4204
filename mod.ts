/**
 * hvae-ood: a from-scratch deep-learning engine for Deno on WebGPU, and on it the informative
 * hierarchical VAE with the Adaptive Likelihood Ratio (Li et al., NeurIPS 2022) for unsupervised
 * out-of-distribution detection.
 *
 * The public API, curated (re-exports only; everything else is internal and may change):
 * - **the engine**: the GPU (`initGpu` first; `configure`, `sync`, the kernel profiler); tensors and
 *   their lifetimes (`tensor`, `read`, `readAll`, `scope`, `keep`, `dispose`); autodiff (`grad`,
 *   `valueAndGrad`, `noGrad`); and three namespaces: `ops` (every differentiable op: elementwise,
 *   reductions, movement, matmul, NHWC convolutions, average pooling, weight normalisation, the VAE's
 *   fused probability primitives), `random` (counter-based Philox tensors), `nn` (layers) and `optim`
 *   (Adam);
 * - **the model**: `PRESETS` / `presetConfig`, `initHvae`, `hvaeObjective` (the ELBO and the
 *   informative loss of Eq. 10), training (`initialState`, `train`, `trainStep`), checkpoints,
 *   datasets and image sets, safetensors;
 * - **evaluation**: `loadRun` (a trained run directory), `scoreSet` / `scoreImages` (every score of
 *   docs/design.md section 3 per image, higher = more OOD), `openImageInputs` + `scoreInputs` (any
 *   number of a user's images, a batch at a time), `thresholdAtFpr`, `detectionMetrics` (AUROC,
 *   AUPRC, FPR80), `evaluateRun` (the whole evaluation of `deno task ood`), test sets and ensembles.
 *
 * Switches that exist for tests and benchmarks (forcing a convolution kernel family, the TypeScript
 * Philox mirror, kernel tuning) are in the `./testing` entry (testing.ts), not here.
 *
 * @example
 * ```ts
 * import { initGpu, ops, read, readScalar, tensor, valueAndGrad } from "./mod.ts";
 * await initGpu();
 * const w = tensor([1, 2, 3]);
 * const f = (p: { w: typeof w }) => ops.sum(ops.square(ops.mul(p.w, 2)));
 * const { value, grads } = valueAndGrad(f)({ w });
 * console.log(await readScalar(value), await read(grads.w)); // 56, [8, 16, 24]
 * ```
 * @module
 */

// ---------------------------------------------------------------- the engine

export {
  type AdapterDescription,
  type GpuContext,
  GpuUnavailableError,
  initGpu,
} from "./kernels/runtime/device.ts";
export {
  adapterInfo,
  configure,
  type EngineOptions,
  type EngineStats,
  engineStats,
  type PoolStats,
  type RecorderCounters,
  startProfile,
  stopProfile,
  sync,
} from "./kernels/engine.ts";
export {
  formatProfile,
  type ProfileCeiling,
  type ProfileMethod,
  type ProfileReport,
  type ProfileRow,
} from "./kernels/runtime/profiler.ts";
export { type Ceiling, measureCeiling } from "./kernels/ceiling.ts";
export {
  dispose,
  type DType,
  keep,
  type Nested,
  read,
  readAll,
  readScalar,
  type Scope,
  scope,
  Tensor,
  tensor,
} from "./kernels/tensor.ts";
export type { Shape } from "./kernels/shape.ts";
export type { Tree } from "./kernels/tree.ts";
export {
  grad,
  noGrad,
  type ValueAndGrad,
  valueAndGrad,
  type ValueAndGradAux,
  valueAndGradWithAux,
} from "./autograd/tape.ts";
/** Every differentiable op: `ops.add`, `ops.conv2d`, `ops.gaussianKl`, ... (autograd/ops.ts). */
export * as ops from "./autograd/ops.ts";
export type { MatmulKernel, MatmulOptions } from "./kernels/matmul.ts";
export type { Conv2dOptions, Padding2d } from "./kernels/conv_geometry.ts";
export type { RandomKey } from "./kernels/philox.ts";
export type { ByteImageMode } from "./kernels/random.ts";
export type { SigmaMap } from "./kernels/distributions.ts";
export type { Activation, BlockKind, BlockParams, BlockStyle, LinearParams } from "./models/layers.ts";
export type { AdamState } from "./models/adam.ts";
export type { Rng } from "./models/rng.ts";
/** Random tensors from the counter-based Philox generator: `random.uniform`, `random.normal`, ... */
export * as random from "./kernels/random.ts";
/** Layers: `nn.dense`, `nn.convLayer`, `nn.block`, their initialisers (models/layers.ts). */
export * as nn from "./models/layers.ts";
/** Adam: `optim.adamInit`, `optim.adamUpdate`, `optim.globalNorm` (models/adam.ts). */
export * as optim from "./models/adam.ts";

// ---------------------------------------------------------------- the model

export {
  type BlockSpec,
  type Gaussian,
  generate,
  type HvaeConfig,
  hvaeObjective,
  type HvaeParams,
  initHvae,
  initHvaeFromData,
  type LatentSpec,
  type LayerSpec,
  type Objective,
  type ObjectiveOptions,
  type StageParams,
} from "./models/hvae.ts";
export { type Likelihood, LIKELIHOOD_NAMES, type LikelihoodName, likelihoodOf } from "./models/likelihood.ts";
export { presetConfig, PRESETS } from "./models/presets.ts";
export {
  type EpochRecord,
  initialParams,
  initialState,
  NonFiniteLossError,
  type Progress,
  type StepOptions,
  type StepReport,
  train,
  type TrainHooks,
  type TrainingMetrics,
  type TrainingSchedule,
  type TrainState,
  trainStep,
  warmupBeta,
} from "./models/training.ts";
export {
  type DataOptions,
  type DatasetName,
  type LoadedSplit,
  loadSplit,
  type Split,
} from "./data/datasets.ts";
export { DATASET_IMAGES, type IdxDatasetName, type ImageShape } from "./data/dataset_names.ts";
export {
  type ColourDataOptions,
  type ColourDatasetName,
  type ColourSplit,
  loadColourSplit,
} from "./data/colour_datasets.ts";
export type { Expected } from "./data/official_files.ts";
export type { IdxArray } from "./data/idx.ts";
export { type ImageSet, imageSetFromPixels, imageSetOnGpu } from "./data/loader.ts";
export { loadCheckpoint, saveCheckpoint } from "./store/checkpoint.ts";
export { decodeSafetensors, encodeSafetensors, type NamedArray } from "./data/safetensors.ts";
export { type LoadedRun, loadRun, type RunConfig, type TrainingConfig } from "./store/load_run.ts";

// ---------------------------------------------------------------- evaluation

export {
  type GenerateMode,
  type ImageScores,
  partialElbos,
  type PartialPasses,
  type PassOptions,
  scoreNames,
} from "./models/scores.ts";
export { likelihoodRegret, type RegretOptions } from "./models/regret.ts";
export {
  type Diagnostics,
  evaluateRun,
  type EvaluationOptions,
  type OodReport,
  type OodResult,
} from "./eval/evaluate.ts";
export {
  auroc,
  type Detection,
  detectionMetrics,
  fprAtTpr,
  type Roc,
  roc,
  thresholdAtFpr,
} from "./eval/metrics.ts";
export {
  REGRET_SCORE,
  regretSet,
  type RegretSetOptions,
  type RegretSettings,
  scoreSet,
  type ScoreSetOptions,
} from "./eval/score_set.ts";
export { type EvaluatedRun, readEvaluation, waicEvaluation, type WaicReport } from "./eval/ensemble.ts";
export {
  scoreAllInputs,
  type ScoredBatch,
  scoreImages,
  scoreInputs,
  type UserScoreOptions,
} from "./eval/user_images.ts";
export { type ImageBatch, type ImageInputs, openImageInputs, readImageInputs } from "./data/image_inputs.ts";
export {
  BUILT_IN_SETS,
  builtInSetsFor,
  COLOUR_BUILT_IN_SETS,
  type DirectorySet,
  loadTestSet,
  openTestSet,
  type TestImageShape,
  type TestSet,
  type TestSetOptions,
} from "./eval/evaluation_sets.ts";
export {
  EXTRA_DATASET_NAMES,
  type ExtraDataOptions,
  type ExtraDataset,
  type ExtraDatasetName,
  loadExtraDataset,
  type OfficialFile,
} from "./data/extra_datasets.ts";
