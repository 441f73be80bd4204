/**
 * hvae-ood: a from-scratch deep-learning engine for Deno on WebGPU, and on it the informative
 * hierarchical VAE with the Adaptive Likelihood Ratio (Li et al., NeurIPS 2022) for unsupervised
 * out-of-distribution detection.
 *
 * This module is the public API (re-exports only), in three parts:
 * - **the engine**: the GPU (`initGpu` first, then `adapterInfo`, `configure`, `engineStats`, `flush`,
 *   `sync`, and the kernel profiler `startProfile` / `stopProfile`); tensors and their lifetimes
 *   (`tensor`, `read`, `readAll`, `scope`, `keep`, `dispose`); differentiable ops (elementwise,
 *   broadcasting binary, reductions, movement, matmul, convolution and transposed convolution in
 *   NHWC, average pooling, weight normalisation, and the VAE's fused probability primitives); random
 *   tensors from a counter-based generator (Philox-4x32-10); autodiff (`valueAndGrad`, `grad`,
 *   `noGrad`, `stopGradient`); layers and optimisers (Adam, SGD);
 * - **the model**: presets, `initHvae`, the objectives (ELBO, the informative loss of Eq. 10), the
 *   training loop `train` with bit-exact resume, checkpoints, datasets and image sets;
 * - **evaluation**: `loadRun` (a trained run directory), `scoreImages` / `scoreSet` (every score of
 *   docs/design.md section 3 per image, higher = more OOD), `openImageInputs` + `scoreInputs` (any
 *   number of a user's images, streamed a batch at a time), `thresholdAtFpr` (the threshold for a
 *   target false-positive rate), the metrics (`detectionMetrics`: AUROC, AUPRC, FPR80) and
 *   `evaluateRun` (the whole evaluation of `deno task ood`).
 *
 * Switches that exist for tests and benchmarks (forcing a convolution kernel family, the TypeScript
 * Philox mirror, kernel tuning) are in the `./testing` entry (testing.ts), not here.
 *
 * @example
 * ```ts
 * import { initGpu, mul, read, readScalar, square, sum, tensor, valueAndGrad } from "./mod.ts";
 * await initGpu();
 * const w = tensor([1, 2, 3]);
 * const f = (p: { w: typeof w }) => sum(square(mul(p.w, 2)));
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
  flush,
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
export { type Flat, flatten, type Tree } from "./kernels/tree.ts";
export {
  abs,
  add,
  avgPool2d,
  type AvgPool2dOptions,
  type Axes,
  bernoulliLogLik,
  broadcastTo,
  concat,
  conv2d,
  conv2dTranspose,
  div,
  equal,
  exp,
  expm1,
  full,
  gaussianKl,
  gaussianLogProb,
  gaussianLogRatio,
  greater,
  greaterEqual,
  less,
  lessEqual,
  log,
  log1p,
  logisticMixtureLogLik,
  logsumexp,
  matmul,
  max,
  maximum,
  mean,
  minimum,
  mul,
  neg,
  notEqual,
  ones,
  pad,
  permute,
  pow,
  precisionWeighted,
  reciprocal,
  relu,
  reparameterize,
  reshape,
  sigma,
  sigmoid,
  sign,
  silu,
  slice,
  softplus,
  sqrt,
  square,
  stopGradient,
  sub,
  sum,
  tanh,
  transpose,
  weightNorm,
  where,
  zeros,
} from "./autograd/ops.ts";
export type { MatmulOptions } from "./kernels/matmul.ts";
export { type Conv2dOptions, type Padding2d, samePadding } from "./kernels/conv_geometry.ts";
export { SIGMA_LOG2, SIGMA_SOFTPLUS, type SigmaMap, unitScaleU } from "./kernels/distributions.ts";
export type { PoolDivisor } from "./kernels/avgpool.ts";
export type { RandomKey } from "./kernels/philox.ts";
export {
  bernoulli,
  binarize,
  type ByteImageMode,
  dequantize,
  normal,
  packBytes,
  randomBits,
  scaledLevels,
  uniform,
} from "./kernels/random.ts";
export {
  grad,
  noGrad,
  type Operand,
  type ValueAndGrad,
  valueAndGrad,
  type ValueAndGradAux,
  valueAndGradWithAux,
} from "./autograd/tape.ts";
export {
  activate,
  type Activation,
  block,
  type BlockKind,
  type BlockOptions,
  type BlockParams,
  type BlockStyle,
  convLayer,
  convTransposeLayer,
  dense,
  initBlock,
  initConv,
  initConvTranspose,
  initDense,
  initWeightNormFromData,
  type LinearParams,
  upsampleNearest2x,
} from "./models/layers.ts";
export { adamInit, type AdamOptions, type AdamState, adamUpdate, globalNorm } from "./models/adam.ts";
export { sgdStep } from "./models/sgd.ts";
export { createRng, type Rng } from "./models/rng.ts";

// ---------------------------------------------------------------- the model

export {
  type BlockSpec,
  decoderStage,
  encoderStage,
  flattenParams,
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
  type Posterior,
  posteriorHead,
  posteriorMeans,
  posteriorTopDown,
  priorHead,
  type StageParams,
  type TopDown,
} from "./models/hvae.ts";
export {
  headOutput,
  type Likelihood,
  LIKELIHOOD_NAMES,
  type LikelihoodName,
  likelihoodOf,
  LIKELIHOODS,
  logLikelihood,
  meanImage,
  type Reconstruction,
  reconstruction,
  withLikelihood,
} from "./models/likelihood.ts";
export { elboUnder, iwBound, likelihoodRegret, modelPosterior, type RegretOptions } from "./models/regret.ts";
export { presetConfig, PRESETS } from "./models/presets.ts";
export type { KeyOf } from "./models/streams.ts";
export {
  batchesOf,
  type EpochRecord,
  freeBitsAt,
  initialParams,
  metricNames,
  namedMetrics,
  NonFiniteLossError,
  type Progress,
  shuffledOrder,
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
  type Expected,
  type LoadedSplit,
  loadSplit,
  type Split,
} from "./data/datasets.ts";
export { type IdxArray, type IdxKind, readIdx } from "./data/idx.ts";
export {
  binarizedBatch,
  type ImageSet,
  imageSetFromPixels,
  imageSetOnGpu,
  inputBatch,
} from "./data/loader.ts";
export { loadCheckpoint, saveCheckpoint } from "./data/checkpoint.ts";
export { decodeSafetensors, encodeSafetensors, type NamedArray } from "./data/safetensors.ts";
export { type LoadedRun, loadRun, type RunConfig, type TrainingConfig } from "./data/run.ts";
export { checkRunConfig, restoreTree, runFromBytes } from "./models/run_model.ts";

// ---------------------------------------------------------------- evaluation

export {
  adaptiveLlr,
  type GenerateMode,
  type ImageScores,
  optimalKLlr,
  partialElbos,
  type PartialPasses,
  type PassOptions,
  scoreNames,
} from "./models/scores.ts";
export {
  type Diagnostics,
  evaluateRun,
  type EvaluationOptions,
  holdsEvaluation,
  type OodReport,
  type OodResult,
  type RegretSettings,
} from "./eval/evaluate.ts";
export {
  auroc,
  averagePrecision,
  type Detection,
  detectionMetrics,
  fprAtTpr,
  type Roc,
  roc,
  thresholdAtFpr,
} from "./eval/metrics.ts";
export { regretSet, type RegretSetOptions, scoreSet, type ScoreSetOptions } from "./eval/score_set.ts";
export {
  type EvaluatedRun,
  readEvaluation,
  waicEvaluation,
  type WaicReport,
  waicScores,
  waicTable,
} from "./eval/ensemble.ts";
export {
  scoreAllInputs,
  type ScoredBatch,
  scoreImages,
  scoreInputs,
  type UserScoreOptions,
} from "./eval/user_images.ts";
export {
  collectImages,
  type ImageBatch,
  type ImageInputs,
  openImageInputs,
  readImageInputs,
} from "./data/image_inputs.ts";
export {
  BUILT_IN_SETS,
  type DirectorySet,
  loadTestSet,
  openTestSet,
  type TestSet,
  testSetOnGpu,
} from "./eval/test_sets.ts";
export {
  EXTRA_DATASET_NAMES,
  type ExtraDataOptions,
  type ExtraDataset,
  type ExtraDatasetName,
  loadExtraDataset,
  type OfficialFile,
} from "./data/extra_datasets.ts";
