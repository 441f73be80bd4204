/**
 * p(x | z), the likelihood of the image given the bottom decoder features d_1: one record per
 * likelihood, the one place that knows what it is (docs/design.md, "The likelihoods"). A record owns
 * the output head's channels, how a byte image becomes the model's input and the likelihood's target,
 * log p(x | z) per pixel, the image shown in pictures, the bits-per-dimension correction and its own
 * parameters. Adding a likelihood is one record here plus its kernel.
 *
 *   bernoulli         Havtorn et al.'s setting: binarised images x ~ Bernoulli(v / 255) (a fresh draw
 *                     every time a training image is used, one fixed draw for evaluation sets), one
 *                     channel of logits (the default of configurations without the field: older runs)
 *   gaussian          N(x | mu(z), sigma_x^2) with one learned sigma_x on uniformly dequantised images
 *                     (v + u) / 256 ("OverSmooth", the paper's Appendix J): a density on [0, 1)^D
 *   logistic-mixture  the paper's setting: 8-bit images x = 2v/255 - 1 and a 256-level discretized
 *                     logistic mixture of K components per pixel (Salimans et al. 2017, "PixelCNN++";
 *                     hvae-oodd's `DiscretizedLogisticMixLikelihoodConv2d`; kernels/logistic_mixture.ts)
 */

import {
  add,
  bernoulliLogLik,
  concat,
  div,
  exp,
  full,
  gaussianLogProb,
  logisticMixtureLogLik,
  logsumexp,
  maximum,
  minimum,
  mul,
  sigmoid,
  slice,
  sub,
  sum,
  tanh,
} from "../autograd/ops.ts";
import { unitScaleU } from "../kernels/distributions.ts";
import { MAX_COMPONENTS, mixtureHeadChannels } from "../kernels/logistic_mixture.ts";
import type { ByteImageMode } from "../kernels/random.ts";
import type { Tensor } from "../kernels/tensor.ts";
import type { HvaeConfig, HvaeParams } from "./hvae.ts";
import { convLayer } from "./layers.ts";

/** The image's channels: 1 (grayscale) or 3 (RGB); configurations without the field are grayscale. */
export function imageChannels(cfg: HvaeConfig): number {
  return cfg.image.channels ?? 1;
}

/** The likelihoods by name (`--likelihood`, `HvaeConfig.likelihood`). */
export const LIKELIHOOD_NAMES = ["bernoulli", "gaussian", "logistic-mixture"] as const;
/** A likelihood's name. */
export type LikelihoodName = typeof LIKELIHOOD_NAMES[number];
/** Mixture components when a configuration does not say (hvae-oodd's and PixelCNN++'s 10). */
export const DEFAULT_COMPONENTS = 10;
/**
 * The likelihood of a new run when none is asked for (`deno task train`, `reproduce`): the paper's
 * setting, where the informative loss's LLR^ada beat the ELBO model's best score on `small` (README,
 * Results) while on binarised images it lost. A configuration without the field is a Bernoulli model
 * all the same (runs made before the field existed).
 */
export const DEFAULT_LIKELIHOOD: LikelihoodName = "logistic-mixture";

/** One likelihood p(x | z): everything the model, the data and the reports need to know of it. */
export interface Likelihood {
  /** Its name in configurations and flags. */
  name: LikelihoodName;
  /** One line for run headers and help. */
  summary: string;
  /** How a byte image becomes the model's input and the likelihood's target (kernels/random.ts). */
  input: ByteImageMode;
  /** What that input is, in a caption ("the binarised input"). */
  inputCaption: string;
  /** The input as a picture, [B, H, W, C] in [0, 1]. */
  shownInput(x: Tensor): Tensor;
  /** Channels of the output head `out` per pixel. */
  headChannels(cfg: HvaeConfig): number;
  /** The head convolution's kernel size. */
  headKernel(cfg: HvaeConfig): number;
  /** log p(x | z) per pixel [B, H, W, 1] (or per value, [B, H, W, C]) from the head's output and the target x. */
  logProb(params: HvaeParams, cfg: HvaeConfig, out: Tensor, x: Tensor): Tensor;
  /** The image shown for the head's output, [B, H, W, C] in [0, 1] (its mean). */
  shownImage(cfg: HvaeConfig, out: Tensor): Tensor;
  /**
   * Nats per dimension to add to -log p(x | z) so that it is the negative log-probability of the
   * 8-bit image: log 256 for a density on [0, 1) (each level is a bin of width 1/256), 0 for a
   * distribution over the levels themselves (and for the Bernoulli, whose bits are not the image).
   */
  binNatsPerDim: number;
  /** Parameters of the likelihood itself (`params.likelihood`), if any; drawn from no random stream. */
  initParams?(cfg: HvaeConfig): NonNullable<HvaeParams["likelihood"]>;
}

/**
 * What the likelihoods of one head value per image value share: the input is shown as it is, and the
 * head has the image's channels through the configuration's head kernel.
 */
const perValue = {
  shownInput: (x: Tensor) => x,
  headChannels: imageChannels,
  headKernel: (cfg: HvaeConfig) => cfg.headKernel,
};

const bernoulli: Likelihood = {
  ...perValue,
  name: "bernoulli",
  summary: "Bernoulli on binarised images",
  input: "binarize",
  inputCaption: "the binarised input",
  logProb: (_params, _cfg, out, x) => bernoulliLogLik(out, x),
  shownImage: (_cfg, out) => sigmoid(out),
  binNatsPerDim: 0,
};

const gaussian: Likelihood = {
  ...perValue,
  name: "gaussian",
  summary: "Gaussian with one learned scale on dequantised images (OverSmooth)",
  input: "dequantize",
  inputCaption: "the dequantised input",
  logProb: (params, cfg, out, x) => {
    if (!params.likelihood) {
      throw new Error(`preset '${cfg.preset}': the Gaussian likelihood needs likelihood.u`);
    }
    return gaussianLogProb(x, out, params.likelihood.u, cfg.sigma);
  },
  shownImage: (_cfg, out) => minimum(maximum(out, 0), 1),
  binNatsPerDim: Math.log(256),
  // sigma_x = sigma(u) starts at 1.
  initParams: (cfg) => ({ u: full([1], unitScaleU(cfg.sigma)) }),
};

/** The mixture's K (the configuration's, or `DEFAULT_COMPONENTS`). */
export const componentsOf = (cfg: HvaeConfig): number => cfg.components ?? DEFAULT_COMPONENTS;

const logisticMixture: Likelihood = {
  name: "logistic-mixture",
  summary: "256-level discretized logistic mixture on 8-bit images",
  input: "levels",
  inputCaption: "the 8-bit input",
  shownInput: (x) => div(add(x, 1), 2),
  headChannels: (cfg) => mixtureHeadChannels(imageChannels(cfg) === 3 ? 3 : 1, componentsOf(cfg)),
  // A 1x1 convolution, as hvae-oodd's DiscretizedLogisticMixLikelihoodConv2d (its kernel_size=1): the
  // 3K channels are per pixel, and a 3x3 head would cost 9x the FLOPs three times per informative step.
  headKernel: () => 1,
  logProb: (_params, cfg, out, x) => logisticMixtureLogLik(out, x, componentsOf(cfg)),
  // The mixture's mean per channel, sum_k pi_k clamp(mu_ck, -1, 1), back on [0, 1]; for RGB the means
  // of green and blue follow the component's means before them through the coupling (the mean of
  // each component's channel given the means of the channels before it).
  shownImage: (cfg, out) => {
    const K = componentsOf(cfg);
    const lead = out.shape.slice(0, -1);
    const part = (j: number) => slice(out, [...lead.map(() => 0), j * K], [...lead, (j + 1) * K]);
    const logits = part(0);
    const pi = exp(sub(logits, logsumexp(logits, [-1], true)));
    const shown = (mu: Tensor) => div(add(sum(mul(pi, minimum(maximum(mu, -1), 1)), [-1], true), 1), 2);
    if (imageChannels(cfg) === 1) return shown(part(1));
    // Blocks of 3K per channel after the K logits: K means, K log-scales, K coefficients (tanh).
    const mean = (c: number) => part(1 + 3 * c), coefficient = (c: number) => tanh(part(3 + 3 * c));
    const red = mean(0);
    const green = add(mean(1), mul(coefficient(0), red));
    const blue = add(add(mean(2), mul(coefficient(1), red)), mul(coefficient(2), green));
    return concat([shown(red), shown(green), shown(blue)], -1);
  },
  binNatsPerDim: 0,
};

/** Every likelihood by name. */
export const LIKELIHOODS: Record<LikelihoodName, Likelihood> = {
  bernoulli,
  gaussian,
  "logistic-mixture": logisticMixture,
};

/** The likelihood of a configuration (Bernoulli when the field is absent, as in older runs). */
export function likelihoodOf(cfg: HvaeConfig): Likelihood {
  const name = cfg.likelihood ?? "bernoulli";
  // Own keys only: a config.json saying "toString" or "__proto__" must not reach Object's members.
  const lik = Object.hasOwn(LIKELIHOODS, name) ? LIKELIHOODS[name] : undefined;
  if (!lik) {
    throw new Error(
      `preset '${cfg.preset}': unknown likelihood ${JSON.stringify(cfg.likelihood)} (choices: ${
        LIKELIHOOD_NAMES.join(", ")
      })`,
    );
  }
  return lik;
}

/** Checks the likelihood fields of a configuration (validateConfig's part). */
export function checkLikelihoodFields(cfg: HvaeConfig): void {
  likelihoodOf(cfg);
  const K = cfg.components;
  if (K === undefined) return;
  if (cfg.likelihood !== "logistic-mixture") {
    throw new Error(`preset '${cfg.preset}': components are for the logistic-mixture likelihood only`);
  }
  if (typeof K !== "number" || !Number.isInteger(K) || K < 1 || K > MAX_COMPONENTS) {
    throw new Error(
      `preset '${cfg.preset}': components must be an integer in [1, ${MAX_COMPONENTS}], got ${
        JSON.stringify(K)
      }`,
    );
  }
}

/**
 * `cfg` with likelihood `name` (and, for the mixture, `components`); an unknown name is an error
 * listing the choices.
 */
export function withLikelihood(cfg: HvaeConfig, name: string, components?: number): HvaeConfig {
  if (!(LIKELIHOOD_NAMES as readonly string[]).includes(name)) {
    throw new Error(`unknown likelihood '${name}' (choices: ${LIKELIHOOD_NAMES.join(", ")})`);
  }
  const out: HvaeConfig = { ...cfg, likelihood: name as LikelihoodName };
  delete out.components;
  if (name === "logistic-mixture") out.components = components ?? DEFAULT_COMPONENTS;
  else if (components !== undefined) {
    throw new Error(`components are for the logistic-mixture likelihood only`);
  }
  checkLikelihoodFields(out);
  return out;
}

/**
 * What a run directory's name says of the likelihood, after the preset: nothing for the Bernoulli
 * (and for a preset that names its own, the -oversmooth Gaussian), "-8bit" for the logistic mixture
 * ("-8bit-k5" with other than the default components).
 */
export function runTag(cfg: HvaeConfig): string {
  if (cfg.likelihood !== "logistic-mixture") return "";
  return componentsOf(cfg) === DEFAULT_COMPONENTS ? "-8bit" : `-8bit-k${componentsOf(cfg)}`;
}

/** The likelihood head's output [B, H, W, channels] from d_1 (Bernoulli logits, the Gaussian's mean, the mixture's 3K). */
export function headOutput(params: HvaeParams, cfg: HvaeConfig, d: Tensor): Tensor {
  return convLayer(params.out, d, 1, "same", cfg.activation);
}

/** log p(x | z) per pixel [B, H, W, 1] from the head's output (the configuration's likelihood). */
export function logLikelihood(params: HvaeParams, cfg: HvaeConfig, out: Tensor, x: Tensor): Tensor {
  return likelihoodOf(cfg).logProb(params, cfg, out, x);
}

/** The image shown for the head's output: [B, H, W, C] in [0, 1]. */
export function meanImage(cfg: HvaeConfig, out: Tensor): Tensor {
  return likelihoodOf(cfg).shownImage(cfg, out);
}

/** The reconstruction term of one pass: the head's output from d_1 and log p(x | z) per image, [B]. */
export interface Reconstruction {
  /** The head's output [B, H, W, channels] (pictures take `meanImage` of it). */
  out: Tensor;
  /** log p(x | z) per image. */
  ll: Tensor;
}

/**
 * The reconstruction term of a pass from its bottom decoder features d_1: the one path from d_1 to
 * log p(x | z) that the objectives, the scores, Likelihood Regret and the PyTorch check share.
 */
export function reconstruction(params: HvaeParams, cfg: HvaeConfig, d: Tensor, x: Tensor): Reconstruction {
  const out = headOutput(params, cfg, d);
  const perPixel = logLikelihood(params, cfg, out, x);
  return { out, ll: sum(perPixel, perPixel.shape.map((_, i) => i).slice(1)) };
}
