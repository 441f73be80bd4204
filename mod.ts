/**
 * hvae-ood: a from-scratch deep-learning engine for Deno on WebGPU, and on it the informative
 * hierarchical VAE with the Adaptive Likelihood Ratio (Li et al., NeurIPS 2022) for unsupervised
 * out-of-distribution detection.
 *
 * This module is the public API and re-exports only:
 * - the GPU: `initGpu` (call once, first), `adapterInfo`, `configure`, `engineStats`, `flush`, `sync`;
 * - tensors and their lifetimes: `tensor`, `read`, `readAll`, `readScalar`, `scope`, `keep`, `dispose`;
 * - differentiable ops: elementwise, broadcasting binary, reductions, movement, matmul, convolution
 *   and transposed convolution (NHWC), average pooling, weight normalisation, and the VAE's fused
 *   probability primitives (reparameterisation, Gaussian log-density and KL, Bernoulli log-likelihood);
 * - random tensors from a counter-based generator (Philox-4x32-10) and the binarisation of byte images;
 * - autodiff: `valueAndGrad`, `valueAndGradWithAux`, `grad`, `noGrad`, `stopGradient`;
 * - layers and optimisers (Adam, SGD) from `models/`;
 * - OOD detection: `loadRun` (a trained run directory), `scoreImages` / `scoreSet` (every score of
 *   docs/design.md section 3 per image, higher = more OOD), `calibrateThreshold` (for a target false-positive
 *   rate), the metrics (`detectionMetrics`: AUROC, AUPRC, FPR80) and `evaluateRun` (the whole
 *   evaluation of `deno task ood`).
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

export { type AdapterDescription, GpuUnavailableError, initGpu } from "./kernels/runtime/device.ts";
export {
  adapterInfo,
  configure,
  type EngineOptions,
  type EngineStats,
  engineStats,
  flush,
  sync,
} from "./kernels/engine.ts";
export {
  dispose,
  type DType,
  keep,
  read,
  readAll,
  readScalar,
  scope,
  Tensor,
  tensor,
} from "./kernels/tensor.ts";
export type { Shape } from "./kernels/shape.ts";
export { flatten, type Tree } from "./kernels/tree.ts";
export {
  abs,
  add,
  avgPool2d,
  type AvgPool2dOptions,
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
export { type ConvImplementation, setConvImplementation } from "./kernels/conv.ts";
export { type Conv2dOptions, type Padding2d, samePadding } from "./kernels/conv_geometry.ts";
export { SIGMA_LOG2, SIGMA_SOFTPLUS, type SigmaMap } from "./kernels/distributions.ts";
export type { PoolDivisor } from "./kernels/avgpool.ts";
export { philox, type RandomKey } from "./kernels/philox.ts";
export { bernoulli, binarize, normal, packBytes, randomBits, uniform } from "./kernels/random.ts";
export type { Operand } from "./autograd/tape.ts";
export {
  grad,
  noGrad,
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
export {
  decoderStage,
  encoderStage,
  flattenParams,
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
  posteriorHead,
  priorHead,
  type StageParams,
} from "./models/hvae.ts";
export { presetConfig, PRESETS } from "./models/presets.ts";
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
  type StepReport,
  train,
  type TrainHooks,
  type TrainingMetrics,
  type TrainingSchedule,
  type TrainState,
  trainStep,
  warmupBeta,
} from "./models/training.ts";
export { type DataOptions, type DatasetName, loadSplit, type Split } from "./data/datasets.ts";
export { parseIdx, readIdx } from "./data/idx.ts";
export { binarizedBatch, type ImageSet, imageSetFromPixels, imageSetOnGpu } from "./data/loader.ts";
export { loadCheckpoint, saveCheckpoint } from "./data/checkpoint.ts";
export { decodeSafetensors, encodeSafetensors } from "./data/safetensors.ts";
export { createRng, type Rng } from "./models/rng.ts";
export { sgdStep } from "./models/sgd.ts";
export { adamInit, type AdamOptions, type AdamState, adamUpdate, globalNorm } from "./models/adam.ts";
export {
  adaptiveLlr,
  type GenerateMode,
  type ImageScores,
  optimalKLlr,
  partialElbos,
  type PartialPasses,
  scoreNames,
} from "./models/scores.ts";
export { type LoadedRun, loadRun, type RunConfig } from "./data/run.ts";
export { evaluateRun, type EvaluationOptions, type OodReport } from "./eval/evaluate.ts";
export { auroc, averagePrecision, detectionMetrics, fprAtTpr, roc, thresholdAtFpr } from "./eval/metrics.ts";
export { scoreSet, type ScoreSetOptions } from "./eval/score_set.ts";
export { calibrateThreshold, readUserImages, scoreImages } from "./eval/user_images.ts";
export { decodePng, encodePng } from "./eval/png.ts";
