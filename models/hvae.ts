/**
 * The bottom-up hierarchical VAE and its training objectives (paper section 3; docs/design.md sections 1-2).
 *
 * Latents z_1 (bottom, nearest x) ... z_L (top), indexed 0..L-1 here. Each layer's encoder blocks
 * produce h_l and the posterior head reads act(h_l). Three wirings:
 *   "ladder"  h_l = enc_l(h_{l-1}) from a deterministic stack on x, q(z_l | x) (the `small` preset);
 *   "markov"  h_l = enc_l(z_{l-1}), the sample below (projected to a map if dense): q(z_l | z_{l-1}),
 *             Havtorn et al.'s backbone (`havtorn3`, `paper3`, `paper5`);
 *   "topdown" the LVAE (Sonderby et al. 2016, "Ladder variational autoencoders", NeurIPS; the `*-lvae`
 *             presets): the deterministic stack of "ladder" gives a bottom-up Gaussian per layer; the
 *             posterior is built top-down along the generative path, q(z_L | x) = the top estimate and
 *             q(z_l | x, z_{>l}) = its precision-weighted product with the prior p(z_l | z_{l+1})
 *             (their Eq. 17-18; `precisionWeighted` in autograd/ops.ts), in `posteriorTopDown`;
 *   "bidirectional" BIVA (Maaloe et al. 2019, "BIVA: A very deep hierarchy of latent variables for
 *             generative modeling", NeurIPS; the `*-biva` presets; docs/design.md section 1): every layer
 *             under the top has two latents of the layer's size, z_l = [z_l^TD, z_l^BU] (concatenated
 *             on the last axis). The bottom-up path is stochastic: stage l reads h^BU_{l-1} + proj(z^BU_{l-1}),
 *             the sample below, and q(z_l^BU | x, z^BU_{<l}) reads its output h^BU_l. A second,
 *             deterministic top-down-inference stack h^TD_l = encTd_l(h^TD_{l-1}) + fromBu(act(h^BU_l))
 *             takes the bottom-up features as skips and gives an estimate that `posteriorTopDown`
 *             precision-weights with the prior's TD half, as in the LVAE: q(z_l^TD | x, z_{>l}). The
 *             top stage reads both paths (+ fromTd(act(h^TD_{L-1}))) and infers the single top latent.
 *             The generative model is the HVAE's with z_l = [z^TD, z^BU]: one prior head gives both halves
 *             from d_{l+1} (BIVA's p(z^TD | z_{>l}) p(z^BU | z_{>l}), its code's default), and the decoder
 *             reads their concatenation.
 * Generation is top-down: p(z_L) = N(0, I); for each layer l, d_l = dec_l(proj_l(z_l)) (with skips:
 * decoder block j also reads block j of the stage above, upsampled); the prior head of layer l - 1
 * reads act(d_l); the bottom layer's features give p(x | z_1) through the likelihood head
 * (models/likelihood.ts: Bernoulli logits, a Gaussian's mean, or a logistic mixture's 3K channels).
 * Gaussian heads output (mu, u) and sigma = sigma(u) (the preset's map, kernels/distributions.ts).
 *
 * Parameter names (checkpoint keys, the dotted paths of the tree):
 *   enc.stem.{weight,bias}                   the first convolution on x (ladder presets)
 *   enc.stageL.proj.{weight,bias}            dense projection of z_(L-1) into a map (markov presets)
 *   enc.stageL.blockB.{conv1,conv2,shortcut}.{weight,gain?,bias}   encoder blocks of layer L (1-based)
 *   q.zL.{weight,bias}                       posterior head of z_L
 *   dec.stageL.proj.{weight,bias}            projection of z_L into features (none where z_L enters directly)
 *   dec.stageL.blockB...                     decoder blocks of layer L (`.skip` where a skip arrives)
 *   p.zL.{weight,bias}                       prior head of z_L (reads dec.stage(L+1)), L < top
 *   enc.stageL.fromTd, encTd.stageL.{blockB...,fromBu}, qTd.zL   BIVA's 1x1 path joins, top-down
 *                                            inference stack and estimate heads (layers under the top)
 *   out.{weight,gain?,bias}                  the likelihood head (reads dec.stage1; models/likelihood.ts)
 *   likelihood.u                             the Gaussian likelihood's scale sigma_x = sigma(u) (OverSmooth)
 * Convolutions are [kh, kw, in, out] (transposed: [kh, kw, out, in]); dense weights [in, out];
 * activations NHWC; a dense latent's projection is reshaped to [7, 7, C]-like maps row-major (NHWC).
 */

import {
  add,
  concat,
  full,
  gaussianKl,
  gaussianLogRatio,
  maximum,
  mean,
  mul,
  neg,
  precisionWeighted,
  reparameterize,
  reshape,
  slice,
  sub,
  sum,
} from "../autograd/ops.ts";
import { type SigmaMap, unitScaleU } from "../kernels/distributions.ts";
import type { RandomKey } from "../kernels/philox.ts";
import { isTensor, scope, type Tensor } from "../kernels/tensor.ts";
import { type Flat, flatten, type Tree } from "../kernels/tree.ts";
import {
  activate,
  type Activation,
  block,
  type BlockKind,
  type BlockParams,
  type BlockStyle,
  convLayer,
  dense,
  initBlock,
  initConv,
  initDense,
  initWeightNormFromData,
  type LinearParams,
} from "./layers.ts";
import {
  checkLikelihoodFields,
  headOutput,
  imageChannels,
  type LikelihoodName,
  likelihoodOf,
  reconstruction,
} from "./likelihood.ts";

export { imageChannels } from "./likelihood.ts";
import type { Rng } from "./rng.ts";
import { MAX_LAYERS, posteriorStream, priorStream, topDownPosteriorStream } from "./streams.ts";

/** A latent layer: a conv latent (channels at the stage's resolution) or a dense one (size). */
export type LatentSpec =
  | { kind: "conv"; channels: number }
  | { kind: "dense"; size: number };

/** One residual block of a stage. */
export interface BlockSpec {
  /** Size-keeping, down- or up-sampling (`BlockKind`). */
  kind: BlockKind;
  /** Kernel size. */
  kernel: number;
  /**
   * Input channels of a stage's first block when they are not what its input has by default (the
   * first block reading x or z); later blocks read the block before.
   */
  in?: number;
  /** Output channels when they are not the model's width (stages that widen, as Havtorn's CIFAR backbone). */
  out?: number;
  /** act(x) before the first conv (default true). */
  preact?: boolean;
  /** Add the shortcut (default true). */
  residual?: boolean;
}

/** One latent layer with its encoder and decoder stages. */
export interface LayerSpec {
  /** The latent's kind and size. */
  latent: LatentSpec;
  /** Blocks from the features below to h_l (the q head's input). */
  encoder: BlockSpec[];
  /** Blocks from proj(z_l) to d_l (the input of the prior head below, or of the likelihood head). */
  decoder: BlockSpec[];
  /** Spatial size [h, w] of proj(z_l) for a dense latent (a conv latent keeps its own). */
  projection?: [number, number];
  /** A conv latent enters the decoder through a conv projection (default) or as it is ("none"). */
  decoderProjection?: "conv" | "none";
  /** "markov" wiring: spatial size [h, w] of the projection of z_{l-1} (dense) that this stage reads. */
  inputMap?: [number, number];
}

/** A plain, JSON-serialisable model description (printed and saved with every run). */
export interface HvaeConfig {
  /** The preset's name. */
  preset: string;
  /** Image size, and its channels: 1 (grayscale, the default when absent, as in older runs) or 3 (RGB). */
  image: { height: number; width: number; channels?: number };
  /** Feature channels of every stage. */
  channels: number;
  /** The activation of blocks and heads. */
  activation: Activation;
  /** The map from a head's raw output u to sigma (kernels/distributions.ts). */
  sigma: SigmaMap;
  /** Weight-normalised layers with data-dependent initialisation. */
  weightNorm: boolean;
  /** Residual block family (models/layers.ts). */
  blockStyle: BlockStyle;
  /**
   * "ladder": stage l reads the deterministic features h_{l-1} (the `small` preset);
   * "markov": stage l reads the posterior sample z_{l-1}, q(z_l | z_{l-1}) (Havtorn's backbone);
   * "topdown": the LVAE, "ladder"'s stack merged top-down with the priors (this file's header);
   * "bidirectional": BIVA, two latents per layer under the top (this file's header).
   */
  inference: "ladder" | "markov" | "topdown" | "bidirectional";
  /** A first convolution on x (kernel, stride, padding), or none. */
  stem: { kernel: number; stride: number; padding: number } | null;
  /** Decoder block j of a stage adds a transposed conv of block j's output in the stage above. */
  decoderSkips: boolean;
  /** Bottom (z_1) to top (z_L). */
  layers: LayerSpec[];
  /** Kernel of the convolutional heads (q, p of conv latents, and the logits). */
  headKernel: number;
  /** "analytic": KL between the Gaussians; "sample": log q(z) - log p(z) at the posterior sample. */
  kl: "analytic" | "sample";
  /**
   * p(x | z) (models/likelihood.ts): "bernoulli" on binarised images (the default when absent, as in
   * older runs), "gaussian" with one learned sigma_x on dequantised images ("OverSmooth", the paper's
   * Appendix J), or "logistic-mixture", the paper's 256-level likelihood of 8-bit images.
   */
  likelihood?: LikelihoodName;
  /** The logistic mixture's number of components K (default 10); only with that likelihood. */
  components?: number;
}

type Size = { h: number; w: number };

function afterBlocks(start: Size, blocks: BlockSpec[]): Size[] {
  let { h, w } = start;
  return blocks.map((b) => {
    if (b.kind === "down") [h, w] = [Math.ceil(h / 2), Math.ceil(w / 2)];
    if (b.kind === "up") [h, w] = [2 * h, 2 * w];
    return { h, w };
  });
}

/** Spatial size of h_l (the q head's input) per layer, walking the encoder. */
export function featureShapes(cfg: HvaeConfig): Size[] {
  let at: Size = { h: cfg.image.height, w: cfg.image.width };
  if (cfg.stem) {
    const { kernel, stride, padding } = cfg.stem;
    at = {
      h: Math.floor((at.h + 2 * padding - kernel) / stride) + 1,
      w: Math.floor((at.w + 2 * padding - kernel) / stride) + 1,
    };
  }
  const out: Size[] = [];
  cfg.layers.forEach((layer, l) => {
    if (cfg.inference === "markov" && l > 0 && cfg.layers[l - 1].latent.kind === "dense") {
      at = { h: layer.inputMap![0], w: layer.inputMap![1] };
    }
    const sizes = afterBlocks(at, layer.encoder);
    at = sizes[sizes.length - 1] ?? at;
    out.push(at);
  });
  return out;
}

function latentSize(latent: LatentSpec): number {
  return latent.kind === "conv" ? latent.channels : latent.size;
}

/**
 * Layer l's latent as the generative model sees it: the layer's own, or for BIVA's layers under the
 * top the concatenation [z^TD, z^BU], twice as wide (the prior head's output and the decoder's input).
 */
export function generativeLatent(cfg: HvaeConfig, l: number): LatentSpec {
  const latent = cfg.layers[l].latent;
  if (cfg.inference !== "bidirectional" || l === cfg.layers.length - 1) return latent;
  return latent.kind === "conv"
    ? { kind: "conv", channels: 2 * latent.channels }
    : { kind: "dense", size: 2 * latent.size };
}

/** Whether the posterior of a layer depends on the samples below it ("markov", BIVA's bottom-up path). */
export const inferenceReadsSamples = (cfg: HvaeConfig): boolean =>
  cfg.inference === "markov" || cfg.inference === "bidirectional";

/** A Gaussian head reading `width`-channel features of size `at`. */
function initHead(cfg: HvaeConfig, latent: LatentSpec, at: Size, width: number, rng: Rng): LinearParams {
  return latent.kind === "conv"
    ? initConv(cfg.headKernel, width, 2 * latent.channels, rng, cfg.weightNorm)
    : initDense(at.h * at.w * width, 2 * latent.size, rng, cfg.weightNorm);
}

/** The channels of a stage: its input's, every block's in and out, and the features it ends with. */
export interface StageWidths {
  /** Channels of what the stage's first block reads. */
  input: number;
  /** Each block's input and output channels. */
  blocks: { in: number; out: number }[];
  /** Channels of the stage's last output (its input's when it has no block). */
  end: number;
}

function stageWidths(cfg: HvaeConfig, blocks: BlockSpec[], input: number): StageWidths {
  let c = input;
  const widths = blocks.map((b) => {
    const w = { in: b.in ?? c, out: b.out ?? cfg.channels };
    c = w.out;
    return w;
  });
  return { input, blocks: widths, end: c };
}

/**
 * The encoder's channels per layer. A stage reads: the image (or the stem's C channels) at the
 * bottom; above it, the features below (ladder, LVAE, BIVA), or the sample below (Havtorn's
 * backbone: z itself when it is a conv latent, a dense projection of it to the first block's `in`
 * channels when it is dense).
 */
export function encoderWidths(cfg: HvaeConfig): StageWidths[] {
  const out: StageWidths[] = [];
  cfg.layers.forEach((layer, l) => {
    const below = cfg.layers[l - 1];
    const input = l === 0
      ? (cfg.stem ? cfg.channels : imageChannels(cfg))
      : cfg.inference !== "markov"
      ? out[l - 1].end
      : below.latent.kind === "conv"
      ? below.latent.channels
      : layer.encoder[0]?.in ?? cfg.channels;
    out.push(stageWidths(cfg, layer.encoder, input));
  });
  return out;
}

/**
 * The decoder's channels per layer: a stage reads z_l as it is (a conv latent without projection) or
 * its projection to the first block's `in` channels (the model's width by default).
 */
export function decoderWidths(cfg: HvaeConfig): StageWidths[] {
  return cfg.layers.map((layer, l) => {
    const z = generativeLatent(cfg, l);
    const input = z.kind === "conv" && layer.decoderProjection === "none"
      ? z.channels
      : layer.decoder[0]?.in ?? cfg.channels;
    return stageWidths(cfg, layer.decoder, input);
  });
}

/** Decoder sizes per layer: where proj(z_l) starts, and the output of each decoder block. */
function decoderShapes(cfg: HvaeConfig): { start: Size; blocks: Size[]; end: Size }[] {
  const enc = featureShapes(cfg);
  return cfg.layers.map((layer, l) => {
    const start = layer.latent.kind === "conv"
      ? enc[l]
      : { h: layer.projection![0], w: layer.projection![1] };
    const blocks = afterBlocks(start, layer.decoder);
    return { start, blocks, end: blocks[blocks.length - 1] ?? start };
  });
}

/** Which decoder blocks take a skip from the stage above: those whose input is smaller there. */
function skipPlan(cfg: HvaeConfig): boolean[][] {
  const dec = decoderShapes(cfg);
  return cfg.layers.map((layer, l) =>
    layer.decoder.map((_, j) => {
      if (
        !cfg.decoderSkips || l + 1 >= cfg.layers.length || j >= cfg.layers[l + 1].decoder.length
      ) return false;
      const input = j === 0 ? dec[l].start : dec[l].blocks[j - 1];
      const above = dec[l + 1].blocks[j];
      return above.h * 2 === input.h && above.w * 2 === input.w;
    })
  );
}

/** The bounds on a configuration's sizes: far above the paper's models, far below what exhausts memory. */
const CONFIG_LIMITS = { image: 1024, channels: 1024, latent: 65536, kernel: 15 } as const;

/**
 * Checks the fields of a configuration read from a file before anything is built from it: every
 * size an integer within `CONFIG_LIMITS`, every choice one of its values. A hostile or corrupt
 * config.json gets a message naming the field instead of a TypeError or an allocation failure.
 */
function checkConfigFields(cfg: HvaeConfig): void {
  const where = `preset '${typeof cfg?.preset === "string" ? cfg.preset : "?"}'`;
  const size = (name: string, v: unknown, max: number, min = 1) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw new Error(`${where}: ${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    }
  };
  const oneOf = (name: string, v: unknown, values: readonly unknown[]) => {
    if (!values.includes(v)) {
      throw new Error(`${where}: ${name} must be one of ${values.join(", ")}, got ${JSON.stringify(v)}`);
    }
  };
  const pair = (name: string, v: unknown) => {
    if (!Array.isArray(v) || v.length !== 2) throw new Error(`${where}: ${name} must be [h, w]`);
    v.forEach((d, i) => size(`${name}[${i}]`, d, CONFIG_LIMITS.image));
  };
  size("image.height", cfg.image?.height, CONFIG_LIMITS.image);
  size("image.width", cfg.image?.width, CONFIG_LIMITS.image);
  if (cfg.image?.channels !== undefined) oneOf("image.channels", cfg.image.channels, [1, 3]);
  size("channels", cfg.channels, CONFIG_LIMITS.channels);
  size("headKernel", cfg.headKernel, CONFIG_LIMITS.kernel);
  oneOf("activation", cfg.activation, ["relu", "silu"]);
  oneOf("blockStyle", cfg.blockStyle, ["small", "havtorn"]);
  oneOf("inference", cfg.inference, ["ladder", "markov", "topdown", "bidirectional"]);
  oneOf("kl", cfg.kl, ["analytic", "sample"]);
  oneOf("weightNorm", cfg.weightNorm, [true, false]);
  oneOf("decoderSkips", cfg.decoderSkips, [true, false]);
  checkLikelihoodFields(cfg);
  const sigma = cfg.sigma;
  if (![sigma?.beta, sigma?.offset, sigma?.floor].every((v) => typeof v === "number" && Number.isFinite(v))) {
    throw new Error(`${where}: sigma must be {beta, offset, floor}, finite numbers`);
  }
  if (cfg.stem !== null) {
    size("stem.kernel", cfg.stem?.kernel, CONFIG_LIMITS.kernel);
    size("stem.stride", cfg.stem?.stride, 4);
    size("stem.padding", cfg.stem?.padding, CONFIG_LIMITS.kernel, 0);
  }
  if (!Array.isArray(cfg.layers)) throw new Error(`${where}: layers must be a list`);
  cfg.layers.forEach((layer, l) => {
    const at = `layers[${l}]`;
    oneOf(`${at}.latent.kind`, layer?.latent?.kind, ["conv", "dense"]);
    if (layer.latent.kind === "conv") {
      size(`${at}.latent.channels`, layer.latent.channels, CONFIG_LIMITS.channels);
    } else size(`${at}.latent.size`, layer.latent.size, CONFIG_LIMITS.latent);
    for (const part of ["encoder", "decoder"] as const) {
      if (!Array.isArray(layer[part])) throw new Error(`${where}: ${at}.${part} must be a list of blocks`);
      layer[part].forEach((b, j) => {
        oneOf(`${at}.${part}[${j}].kind`, b?.kind, ["res", "down", "up"]);
        size(`${at}.${part}[${j}].kernel`, b.kernel, CONFIG_LIMITS.kernel);
        if (b.in !== undefined) size(`${at}.${part}[${j}].in`, b.in, CONFIG_LIMITS.channels);
        if (b.out !== undefined) size(`${at}.${part}[${j}].out`, b.out, CONFIG_LIMITS.channels);
      });
    }
    if (layer.projection !== undefined) pair(`${at}.projection`, layer.projection);
    if (layer.inputMap !== undefined) pair(`${at}.inputMap`, layer.inputMap);
  });
}

/** Checks that the decoder's feature sizes meet the heads that read them. */
export function validateConfig(cfg: HvaeConfig): void {
  checkConfigFields(cfg);
  const where = `preset '${cfg.preset}'`;
  if (cfg.layers.length < 1) throw new Error(`${where}: needs at least one latent layer`);
  if (cfg.layers.length > MAX_LAYERS) {
    throw new Error(
      `${where}: at most ${MAX_LAYERS} latent layers (the random streams have room for that many)`,
    );
  }
  cfg.layers.forEach((layer, l) => {
    if (layer.latent.kind === "dense" && !layer.projection) {
      throw new Error(`${where}: dense latent z${l + 1} needs a projection size`);
    }
    if (cfg.inference === "markov" && l > 0 && cfg.layers[l - 1].latent.kind === "dense" && !layer.inputMap) {
      throw new Error(`${where}: stage ${l + 1} reads the dense z${l} and needs an inputMap size`);
    }
  });
  const enc = featureShapes(cfg);
  const dec = decoderShapes(cfg);
  const encW = encoderWidths(cfg), decW = decoderWidths(cfg);
  cfg.layers.forEach((layer, l) => {
    const z = generativeLatent(cfg, l);
    const first = decW[l].blocks[0]?.in ?? decW[l].input;
    if (z.kind === "conv" && layer.decoderProjection === "none" && first !== z.channels) {
      throw new Error(
        `${where}: z${l + 1} enters dec.stage${
          l + 1
        } as it is (${z.channels} channels), its first block reads ${first}`,
      );
    }
    const reads = encW[l].blocks[0]?.in;
    if (reads !== undefined && reads !== encW[l].input) {
      throw new Error(
        `${where}: enc.stage${l + 1}'s first block reads ${reads} channels, its input has ${encW[l].input}`,
      );
    }
    const end = dec[l].end;
    if (l === 0 && (end.h !== cfg.image.height || end.w !== cfg.image.width)) {
      throw new Error(
        `${where}: dec.stage1 ends at ${end.h}x${end.w}, the image is ${cfg.image.height}x${cfg.image.width}`,
      );
    }
    const below = cfg.layers[l - 1];
    if (l > 0 && below.latent.kind === "conv" && (end.h !== enc[l - 1].h || end.w !== enc[l - 1].w)) {
      throw new Error(
        `${where}: dec.stage${l + 1} ends at ${end.h}x${end.w}, z${l} lives at ${enc[l - 1].h}x${
          enc[l - 1].w
        }`,
      );
    }
  });
}

/** A stage's blocks with their channels (`widths`); block i adds a skip from `skipWidths[i]` channels (0: none). */
function initBlocks(
  specs: BlockSpec[],
  cfg: HvaeConfig,
  rng: Rng,
  widths: StageWidths,
  skipWidths: number[] = [],
): Record<string, BlockParams> {
  const out: Record<string, BlockParams> = {};
  specs.forEach((b, i) => {
    const { in: ci, out: co } = widths.blocks[i];
    out[`block${i}`] = initBlock(
      b.kind,
      b.kernel,
      ci,
      co,
      rng,
      cfg.weightNorm,
      cfg.blockStyle,
      skipWidths[i] ?? 0,
    );
  });
  return out;
}

/** Fresh parameters for `cfg`, drawn from `rng` (deterministic for a seed). */
export function initHvae(cfg: HvaeConfig, rng: Rng): HvaeParams {
  validateConfig(cfg);
  const C = cfg.channels, wn = cfg.weightNorm;
  const enc = featureShapes(cfg);
  const dec = decoderShapes(cfg);
  const skips = skipPlan(cfg);
  const encW = encoderWidths(cfg), decW = decoderWidths(cfg);
  const encoder: HvaeParams["enc"] = {};
  const posterior: HvaeParams["q"] = {};
  const topDownStages: NonNullable<HvaeParams["encTd"]> = {};
  const topDownHeads: NonNullable<HvaeParams["qTd"]> = {};
  const bidirectional = cfg.inference === "bidirectional";
  const L = cfg.layers.length;
  const decoder: HvaeParams["dec"] = {};
  const priors: HvaeParams["p"] = {};
  // The draws from `rng` happen in this order (stem, then per layer: encoder, projection, posterior
  // head, [BIVA: BU projection, fromTd, TD blocks, fromBu, TD head,] decoder, projection, prior head;
  // then the likelihood head): a seed gives the same weights, and BIVA's extra draws leave the other
  // wirings' weights as they were.
  if (cfg.stem) encoder.stem = initConv(cfg.stem.kernel, imageChannels(cfg), C, rng, wn);
  cfg.layers.forEach((layer, l) => {
    const stage: StageParams = initBlocks(layer.encoder, cfg, rng, encW[l]);
    const below = cfg.layers[l - 1];
    if (cfg.inference === "markov" && below?.latent.kind === "dense") {
      const [h, w] = layer.inputMap!;
      stage.proj = initDense(below.latent.size, h * w * encW[l].input, rng, wn);
    }
    encoder[`stage${l + 1}`] = stage;
    posterior[`z${l + 1}`] = initHead(cfg, layer.latent, enc[l], encW[l].end, rng);
    if (bidirectional) {
      // BIVA: the BU sample below enters at the features below (at their width); the TD stack, which
      // has the bottom-up stack's widths, and its estimate head.
      if (l > 0) {
        const at = enc[l - 1], width = encW[l - 1].end;
        stage.proj = below.latent.kind === "conv"
          ? initConv(1, below.latent.channels, width, rng, wn)
          : initDense(below.latent.size, at.h * at.w * width, rng, wn);
      }
      if (l === L - 1 && L > 1) stage.fromTd = initConv(1, encW[l - 1].end, encW[l - 1].end, rng, wn);
      if (l < L - 1) {
        topDownStages[`stage${l + 1}`] = {
          ...initBlocks(layer.encoder, cfg, rng, encW[l]),
          fromBu: initConv(1, encW[l].end, encW[l].end, rng, wn),
        };
        topDownHeads[`z${l + 1}`] = initHead(cfg, layer.latent, enc[l], encW[l].end, rng);
      }
    }
    // Block j's skip reads block j's output in the stage above.
    const skipWidths = skips[l].map((s, j) => s ? decW[l + 1].blocks[j].out : 0);
    const decStage: StageParams = initBlocks(layer.decoder, cfg, rng, decW[l], skipWidths);
    const z = generativeLatent(cfg, l);
    if (z.kind === "dense") {
      decStage.proj = initDense(z.size, dec[l].start.h * dec[l].start.w * decW[l].input, rng, wn);
    } else if ((layer.decoderProjection ?? "conv") === "conv") {
      decStage.proj = initConv(cfg.headKernel, z.channels, decW[l].input, rng, wn);
    }
    decoder[`stage${l + 1}`] = decStage;
    if (l > 0) priors[`z${l}`] = initHead(cfg, generativeLatent(cfg, l - 1), dec[l].end, decW[l].end, rng);
  });
  const likelihood = likelihoodOf(cfg);
  const out = initConv(likelihood.headKernel(cfg), decW[0].end, likelihood.headChannels(cfg), rng, wn);
  const params: HvaeParams = { enc: encoder, q: posterior, dec: decoder, p: priors, out };
  if (bidirectional) Object.assign(params, { encTd: topDownStages, qTd: topDownHeads });
  // The likelihood's own parameters draw nothing from rng: the other weights of a seed are those of
  // the Bernoulli model.
  if (likelihood.initParams) params.likelihood = likelihood.initParams(cfg);
  return params;
}

/**
 * The reference's data-dependent weight-norm initialisation (hvae-oodd; models/layers.ts): one ELBO
 * pass over a first batch x [B, H, W, 1], in which every weight-normalised layer, in the order the pass
 * reaches it (encoder, posterior heads, decoder top-down, prior heads, likelihood head), takes the gain and bias
 * that give its outputs zero mean and unit variance per channel on this batch. Updates `params` in
 * place and returns it; a preset without weight norm is returned unchanged.
 */
export function initHvaeFromData(
  params: HvaeParams,
  cfg: HvaeConfig,
  x: Tensor,
  keyOf: (stream: number) => RandomKey,
): HvaeParams {
  if (!cfg.weightNorm) return params;
  scope(() => {
    initWeightNormFromData(() =>
      hvaeObjective(params, cfg, x, { loss: "elbo", beta: 1, freeBits: 0, keyOf }).metrics
    );
  });
  return params;
}

// ---------------------------------------------------------------- the forward pieces

/**
 * One encoder or decoder stage: its residual blocks `block0`, `block1`, ... and, where a latent
 * enters the stage, the projection `proj` (see the names in this file's header).
 */
export interface StageParams {
  /** The projection of the latent into the stage's features, where it has one. */
  proj?: LinearParams;
  /** BIVA's top stage: the 1x1 conv adding the top-down-inference features below. */
  fromTd?: LinearParams;
  /** BIVA's top-down-inference stage: the 1x1 conv adding this stage's bottom-up features. */
  fromBu?: LinearParams;
  /** The residual blocks, `block0` first. */
  [block: `block${number}`]: BlockParams;
}

/**
 * The parameter tree of a model; its dotted paths are the checkpoint names (this file's header).
 * Layers are 1-based in the names (`stage1`, `z1`); the accessors below take 0-based layers.
 */
export interface HvaeParams {
  /** The encoder: the stem (ladder presets) and stages `stage1`..`stageL`. */
  enc: { stem?: LinearParams; [stage: `stage${number}`]: StageParams };
  /** Posterior heads q(z_l | .) (BIVA: q(z_l^BU | .) under the top). */
  q: { [head: `z${number}`]: LinearParams };
  /** BIVA's top-down-inference stack `stage1`..`stage(L-1)` (models under "bidirectional" only). */
  encTd?: { [stage: `stage${number}`]: StageParams };
  /** BIVA's top-down estimate heads, precision-weighted with the priors' TD halves. */
  qTd?: { [head: `z${number}`]: LinearParams };
  /** The decoder stages `stage1`..`stageL`. */
  dec: { [stage: `stage${number}`]: StageParams };
  /** Prior heads p(z_l | z_{l+1}), for every layer but the top. */
  p: { [head: `z${number}`]: LinearParams };
  /** The likelihood's head (models/likelihood.ts): Bernoulli logits, the Gaussian's mean, the mixture's 3K. */
  out: LinearParams;
  /** The Gaussian likelihood's scalar scale, sigma_x = sigma(u) ([1]); absent for the Bernoulli. */
  likelihood?: { u: Tensor };
}

/**
 * The tensors of a parameter tree (or of its gradients, which have its shape) with their dotted
 * names, in the stable order of kernels/tree.ts.
 */
export function flattenParams(params: HvaeParams): Flat<Tensor> {
  return flatten(params as unknown as Tree<Tensor>, isTensor);
}

/** The encoder stage of layer l (0-based). */
export const encoderStage = (params: HvaeParams, l: number): StageParams => params.enc[`stage${l + 1}`];
/** The decoder stage of layer l (0-based). */
export const decoderStage = (params: HvaeParams, l: number): StageParams => params.dec[`stage${l + 1}`];
/** The posterior head of layer l (0-based). */
export const posteriorHead = (params: HvaeParams, l: number): LinearParams => params.q[`z${l + 1}`];
/** The prior head of layer l (0-based; every layer but the top). */
export const priorHead = (params: HvaeParams, l: number): LinearParams => params.p[`z${l + 1}`];

/** A diagonal Gaussian as a head outputs it: mean and raw scale u (sigma = sigma(u)). */
export interface Gaussian {
  /** The mean. */
  mu: Tensor;
  /** The raw scale: sigma = the preset's map of u. */
  u: Tensor;
}

/** Runs a stage's blocks; returns every block's output (the last is the stage's). */
function runBlocks(
  p: StageParams,
  specs: BlockSpec[],
  x: Tensor,
  cfg: HvaeConfig,
  skips: Tensor[] = [],
): Tensor[] {
  return specs.map((b, i) =>
    x = block(
      b.kind,
      p[`block${i}`],
      x,
      cfg.activation,
      { style: cfg.blockStyle, preact: b.preact ?? true, residual: b.residual ?? true },
      skips[i],
    )
  );
}

/** A Gaussian head on act(h): (mu, u) split along the last axis. */
function head(p: LinearParams, latent: LatentSpec, h: Tensor, cfg: HvaeConfig): Gaussian {
  const raw = latent.kind === "conv"
    ? convLayer(p, h, 1, "same", cfg.activation)
    : dense(p, reshape(activate(cfg.activation, h), [h.shape[0], -1]));
  const n = latentSize(latent);
  const last = raw.rank - 1;
  const begin = raw.shape.map(() => 0), endMu = [...raw.shape];
  endMu[last] = n;
  const beginU = [...begin];
  beginU[last] = n;
  return { mu: slice(raw, begin, endMu), u: slice(raw, beginU) };
}

/** dense(z) viewed as a [B, h, w, channels] feature map (its width sets the channels). */
function projectDense(p: LinearParams, z: Tensor, [h, w]: [number, number]): Tensor {
  return reshape(dense(p, z), [z.shape[0], h, w, -1]);
}

/**
 * The decoder stage of layer l from z_l: projection, then its blocks (with the skips from the stage
 * above when the preset uses them). Returns every block output; the last is d_l.
 */
function decode(params: HvaeParams, cfg: HvaeConfig, l: number, z: Tensor, skips: Tensor[] = []): Tensor[] {
  const layer = cfg.layers[l];
  const p = decoderStage(params, l);
  let x = z;
  if (layer.latent.kind === "dense") x = projectDense(p.proj!, z, layer.projection!);
  else if (p.proj) x = convLayer(p.proj, z);
  return runBlocks(p, layer.decoder, x, cfg, skips);
}

/** The prior head p(z_l | z_{l+1}) from d_{l+1} (for BIVA both halves, [TD, BU]). */
function prior(params: HvaeParams, cfg: HvaeConfig, l: number, d: Tensor): Gaussian {
  return head(priorHead(params, l), generativeLatent(cfg, l), d, cfg);
}

const last = (xs: Tensor[]) => xs[xs.length - 1];

/**
 * The posterior of every layer, bottom to top, and a reparameterised sample of each; the bottom
 * `meanBelow` layers give their posterior mean instead (the scoring passes of models/scores.ts, as
 * Havtorn et al.'s `ood-llr.py`: z_1..z_k = mu_q while going up). With "topdown" inference these are
 * the bottom-up estimates, and only the top one is sampled here: `posteriorTopDown` merges the others
 * with the priors and samples them (their `z` here is their mean, unused). With "bidirectional"
 * inference (BIVA) the layers under the top give q(z^BU) and its sample (which the stage above reads),
 * and `td`, the top-down stack's estimate that `posteriorTopDown` merges with the prior.
 */
export function encode(
  params: HvaeParams,
  cfg: HvaeConfig,
  x: Tensor,
  keyOf: (stream: number) => RandomKey,
  meanBelow = 0,
): Posterior[] {
  let h = cfg.stem ? convLayer(params.enc.stem!, x, cfg.stem.stride, cfg.stem.padding) : x;
  const L = cfg.layers.length;
  const bidirectional = cfg.inference === "bidirectional";
  // BIVA's top-down-inference stack starts from the same input as the bottom-up path.
  let hTd = h;
  const out: Posterior[] = [];
  cfg.layers.forEach((layer, l) => {
    const stage = encoderStage(params, l);
    if (cfg.inference === "markov" && l > 0) {
      const z = out[l - 1].z;
      h = cfg.layers[l - 1].latent.kind === "dense" ? projectDense(stage.proj!, z, layer.inputMap!) : z;
    }
    if (bidirectional && l > 0) {
      // BIVA's bottom-up path is stochastic: the sample below joins the features below; the top
      // stage also reads the top-down-inference features.
      const z = out[l - 1].z;
      h = add(
        h,
        cfg.layers[l - 1].latent.kind === "dense"
          ? projectDense(stage.proj!, z, [h.shape[1], h.shape[2]])
          : convLayer(stage.proj!, z),
      );
      if (l === L - 1) h = add(h, convLayer(stage.fromTd!, hTd, 1, "same", cfg.activation));
    }
    h = last(runBlocks(stage, layer.encoder, h, cfg)) ?? h;
    const q = head(posteriorHead(params, l), layer.latent, h, cfg);
    const merged = cfg.inference === "topdown" && l < L - 1;
    const z = l < meanBelow || merged
      ? q.mu
      : reparameterize(q.mu, q.u, keyOf(posteriorStream(l)), cfg.sigma);
    if (bidirectional && l < L - 1) {
      const tdStage = params.encTd![`stage${l + 1}`];
      hTd = add(
        last(runBlocks(tdStage, layer.encoder, hTd, cfg)) ?? hTd,
        convLayer(tdStage.fromBu!, h, 1, "same", cfg.activation),
      );
      out.push({ ...q, z, td: head(params.qTd![`z${l + 1}`], layer.latent, hTd, cfg) });
    } else out.push({ ...q, z });
  });
  return out;
}

/** Per-image sum over all axes but the batch: [B]. */
export function perImage(t: Tensor): Tensor {
  return sum(t, t.shape.map((_, i) => i).slice(1));
}

/**
 * A posterior layer: its Gaussian and the z the pass uses (a sample, or the mean); from `encode` for
 * BIVA's layers under the top, also `td`, the top-down estimate `posteriorTopDown` merges.
 */
export type Posterior = Gaussian & { z: Tensor; td?: Gaussian };

/** The generative pass from posterior samples, and the prior heads it computes. */
export interface TopDown {
  /** stages[l]: every block output of decoder stage l (for l >= the pass's first layer). */
  stages: Tensor[][];
  /** priors[l]: p(z_l | z_{l+1}) from stage l + 1; null for the top layer (N(0, I)). */
  priors: (Gaussian | null)[];
  /**
   * posteriors[l]: q(z_l | .) and its z, for l >= the pass's first layer: `encode`'s for bottom-up
   * inference, the precision-weighted products for "topdown" (the KL terms compare these with `priors`).
   */
  posteriors: Posterior[];
}

/**
 * Top-down from the posterior samples of layers L-1 .. `from` (0-based): decodes each z_l with the
 * skips of the stage above, and evaluates the prior head of the layer below. With "topdown"
 * inference (LVAE) the posterior of each layer under the top is made here, from `q[l]` (the
 * bottom-up estimate) and the prior just computed, and z_l is drawn from it by `keyOf`'s posterior
 * stream (or is its mean with `draw` "mean"); otherwise q[l] is the posterior and q[l].z is used.
 * With "bidirectional" inference (BIVA) only the TD half is made so (`bidirectionalPosterior`).
 * With `draw` "given", q[l] (and its z) is the posterior of every wiring: nothing is merged.
 */
export function posteriorTopDown(
  params: HvaeParams,
  cfg: HvaeConfig,
  q: Posterior[],
  from = 0,
  keyOf?: (stream: number) => RandomKey,
  draw: "sample" | "mean" | "given" = "sample",
): TopDown {
  const L = cfg.layers.length;
  const priors: (Gaussian | null)[] = new Array(L).fill(null);
  const posteriors: Posterior[] = new Array(L);
  const stages: Tensor[][] = new Array(L);
  for (let l = L - 1; l >= from; l--) {
    if (cfg.inference === "bidirectional" && l < L - 1 && draw !== "given") {
      posteriors[l] = bidirectionalPosterior(cfg, l, q[l], priors[l]!, draw, keyOf);
    } else if (cfg.inference === "topdown" && l < L - 1 && draw !== "given") {
      const { mu, u } = precisionWeighted(q[l].mu, q[l].u, priors[l]!.mu, priors[l]!.u, cfg.sigma);
      if (draw === "sample" && !keyOf) throw new Error("posteriorTopDown: topdown inference needs keyOf");
      const z = draw === "mean" ? mu : reparameterize(mu, u, keyOf!(posteriorStream(l)), cfg.sigma);
      posteriors[l] = { mu, u, z };
    } else posteriors[l] = draw === "mean" ? { ...q[l], z: q[l].mu } : q[l];
    stages[l] = decode(params, cfg, l, posteriors[l].z, stages[l + 1]);
    if (l > 0) priors[l - 1] = prior(params, cfg, l - 1, last(stages[l]));
  }
  return { stages, priors, posteriors };
}

/**
 * BIVA's posterior of layer l under the top, [TD, BU] on the last axis: q(z^TD | x, z_{>l}) is the
 * precision-weighted product of the top-down estimate `ql.td` with the prior's TD half (as the LVAE's;
 * drawn by `topDownPosteriorStream(l)`), q(z^BU | x, z^BU_{<l}) is `encode`'s, with its sample.
 */
function bidirectionalPosterior(
  cfg: HvaeConfig,
  l: number,
  ql: Posterior,
  p: Gaussian,
  draw: "sample" | "mean",
  keyOf?: (stream: number) => RandomKey,
): Posterior {
  if (!ql.td) {
    throw new Error(`posteriorTopDown: layer z${l + 1} of a BIVA model needs encode's top-down estimate`);
  }
  const axis = ql.mu.rank - 1;
  const n = ql.mu.shape[axis];
  const tdHalf = (t: Tensor) => slice(t, t.shape.map(() => 0), [...t.shape.slice(0, axis), n]);
  const td = precisionWeighted(ql.td.mu, ql.td.u, tdHalf(p.mu), tdHalf(p.u), cfg.sigma);
  if (draw === "sample" && !keyOf) throw new Error("posteriorTopDown: bidirectional inference needs keyOf");
  const zTd = draw === "mean"
    ? td.mu
    : reparameterize(td.mu, td.u, keyOf!(topDownPosteriorStream(l)), cfg.sigma);
  return {
    mu: concat([td.mu, ql.mu], axis),
    u: concat([td.u, ql.u], axis),
    z: concat([zTd, draw === "mean" ? ql.mu : ql.z], axis),
  };
}

/**
 * The posterior means of every layer for images x (the latent-space figures): `encode`'s means, or
 * for "topdown" and "bidirectional" inference the means of the merged posteriors, each conditioned on
 * the means above (BIVA's: [TD, BU] per layer under the top).
 */
export function posteriorMeans(params: HvaeParams, cfg: HvaeConfig, x: Tensor): Tensor[] {
  const noKey = () => {
    throw new Error("posteriorMeans draws nothing");
  };
  const q = encode(params, cfg, x, noKey, cfg.layers.length);
  if (cfg.inference !== "topdown" && cfg.inference !== "bidirectional") return q.map((ql) => ql.mu);
  return posteriorTopDown(params, cfg, q, 0, undefined, "mean").posteriors.map((p) => p.mu);
}

/**
 * Regenerates z_k .. z_1 (indices k-1 .. 0) top-down from the generative model, starting at the
 * prior head p(z_k | z_{k+1}) of `td` (computed once, shared with the other passes); `draw` turns each
 * prior into z_l (a reparameterised sample, or its mean). Returns d_1, the features the likelihood
 * head reads.
 */
export function priorTopDown(
  params: HvaeParams,
  cfg: HvaeConfig,
  td: TopDown,
  k: number,
  draw: (p: Gaussian, l: number) => Tensor,
): Tensor {
  return generateDown(params, cfg, k - 1, td.priors[k - 1]!, td.stages[k], draw);
}

/**
 * `count` draws from the generative model (the paper's Fig. 9): z_L from p(z_L) = N(0, I), then each
 * z_l from p(z_l | z_{l+1}) down to z_1 (`draw` turns each Gaussian into z_l: a reparameterised sample,
 * or its mean). Returns the likelihood head's output for p(x | z_1), [count, H, W, channels].
 */
export function generate(
  params: HvaeParams,
  cfg: HvaeConfig,
  count: number,
  draw: (p: Gaussian, l: number) => Tensor,
): Tensor {
  const L = cfg.layers.length;
  const top = cfg.layers[L - 1].latent;
  const at = featureShapes(cfg)[L - 1];
  const shape = top.kind === "dense" ? [count, top.size] : [count, at.h, at.w, top.channels];
  const standard = { mu: full(shape, 0), u: full(shape, unitScaleU(cfg.sigma)) };
  return headOutput(params, cfg, generateDown(params, cfg, L - 1, standard, [], draw));
}

/** Decodes z_from .. z_1 top-down from the Gaussian `g` of layer `from`; returns d_1. */
function generateDown(
  params: HvaeParams,
  cfg: HvaeConfig,
  from: number,
  g: Gaussian,
  skips: Tensor[],
  draw: (p: Gaussian, l: number) => Tensor,
): Tensor {
  let above = skips;
  for (let l = from; l >= 0; l--) {
    above = decode(params, cfg, l, draw(g, l), above);
    if (l > 0) g = prior(params, cfg, l - 1, last(above));
  }
  return last(above);
}

/** KL_l per element: analytic between the Gaussians, or log q(z) - log p(z) at the sample (cfg.kl). */
export function klElementwise(cfg: HvaeConfig, ql: Posterior, p: Gaussian | null): Tensor {
  const top = p ?? { mu: full([1], 0), u: full([1], unitScaleU(cfg.sigma)) };
  return cfg.kl === "analytic"
    ? gaussianKl(ql.mu, ql.u, top.mu, top.u, cfg.sigma)
    : gaussianLogRatio(ql.z, ql.mu, ql.u, top.mu, top.u, cfg.sigma);
}

/** Settings of `hvaeObjective`. */
export interface ObjectiveOptions {
  /** The ELBO, or the informative loss of Eq. 10. */
  loss: "elbo" | "informative";
  /** KL weight (warm-up); 1 for the plain objective. */
  beta: number;
  /** Free bits: a floor of this many nats per layer, spread evenly over the layer's elements. */
  freeBits: number;
  /** The key of stream s for this step. */
  keyOf: (stream: number) => RandomKey;
}

/** What `hvaeObjective` returns. */
export interface Objective {
  /** The scalar to minimise: -(batch mean of the objective). */
  loss: Tensor;
  /** [loss, elbo, KL_1..KL_L, ll_0..ll_{L-1}]: batch means, one readback (ll_k for k >= 1 only with the informative loss). */
  metrics: Tensor;
}

/**
 * The per-image objective, averaged over the batch and negated:
 *   elbo         L_x = log p(x | z) - sum_l KL_l                          (Eq. 2/3)
 *   informative  L_in = (1/L) sum_{k=0}^{L-1} log p(x | z^(k)) - sum_l KL_l  (Eq. 10)
 * where z^(k) keeps the posterior samples of z_{>k} and regenerates z_k .. z_1 top-down as
 * reparameterised samples of the generative model. The k >= 1 passes start from the prior head of
 * layer k computed in the k = 0 pass: the generative work above layer k is shared, not recomputed.
 * The KL terms are multiplied by `beta` (warm-up) and floored by free bits in the loss; `metrics`
 * report the plain ELBO and KLs.
 */
export function hvaeObjective(
  params: HvaeParams,
  cfg: HvaeConfig,
  x: Tensor,
  o: ObjectiveOptions,
): Objective {
  const L = cfg.layers.length;
  const q = encode(params, cfg, x, o.keyOf);
  // k = 0: everything from the posterior samples.
  const td = posteriorTopDown(params, cfg, q, 0, o.keyOf);
  const lls = [reconstruction(params, cfg, last(td.stages[0]), x).ll];
  // KL per layer and image; the top layer's prior is N(0, I).
  const kls = td.posteriors.map((ql, l) => {
    const elementwise = klElementwise(cfg, ql, td.priors[l]);
    return { elementwise, perImage: perImage(elementwise) };
  });
  if (o.loss === "informative") {
    for (let k = 1; k < L; k++) {
      // Regenerate z_k .. z_1 as reparameterised prior samples, from the shared head of layer k.
      const d = priorTopDown(
        params,
        cfg,
        td,
        k,
        (g, l) => reparameterize(g.mu, g.u, o.keyOf(priorStream(k, l)), cfg.sigma),
      );
      lls.push(reconstruction(params, cfg, d, x).ll);
    }
  }
  // The penalty: beta * sum_l sum_elements max(KL_elem, lambda / n_l).
  let penalty: Tensor | null = null;
  for (const kl of kls) {
    const n = kl.elementwise.size / kl.elementwise.shape[0];
    const floored = o.freeBits > 0 ? perImage(maximum(kl.elementwise, o.freeBits / n)) : kl.perImage;
    penalty = penalty ? add(penalty, floored) : floored;
  }
  let recon = lls[0];
  for (let k = 1; k < lls.length; k++) recon = add(recon, lls[k]);
  if (lls.length > 1) recon = mul(recon, 1 / lls.length);
  const objective = sub(recon, mul(penalty!, o.beta));
  const loss = neg(mean(objective));
  let klTotal = kls[0].perImage;
  for (let l = 1; l < L; l++) klTotal = add(klTotal, kls[l].perImage);
  const elbo = mean(sub(lls[0], klTotal));
  const metrics = concat([
    reshape(loss, [1]),
    reshape(elbo, [1]),
    ...kls.map((kl) => reshape(mean(kl.perImage), [1])),
    ...lls.map((ll) => reshape(mean(ll), [1])),
  ]);
  return { loss, metrics };
}
