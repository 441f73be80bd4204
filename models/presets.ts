/**
 * Named model configurations. Each is a plain object (models/hvae.ts `HvaeConfig`), printed and
 * saved with every run.
 *
 *   small  the CPU preset, exactly as specified for this project: C = 16, SiLU, sigma = softplus(u) + 1e-3,
 *          z1 = 8 channels at 14x14, z2 = 16, z3 = 8; a 5x5 stride-2 stem; encoder
 *          h1 = Res(stem(x)), h2 = Down(h1), h3 = Res(h2); decoder stage 3: dense 8 -> 16x7x7, Res;
 *          stage 2: dense 16 -> 16x7x7, Up; stage 1: conv 8 -> 16, Res, Up; 3x3 heads; plain layers.
 *   tiny   the same shape with C = 4 and latents 2 channels / 4 / 2: for tests.
 *   small5 five latent layers at CPU scale: small's z1 (8 channels at 14x14), then dense [24, 16, 8, 4]
 *          (the paper's 5-layer sizes above its first), each on a 7x7 stage of one residual block.
 *   havtorn3, paper3, paper5: the reference backbone (below) with latents [8, 16, 8], [16, 8, 4] and
 *          [32, 24, 16, 8, 4].
 *   <name>-lvae: the same model with the LVAE's top-down inference (Sonderby et al. 2016; models/hvae.ts):
 *          the same parameters, the posterior of each layer below the top merged with its prior.
 *   <name>-biva: BIVA's bidirectional inference (Maaloe et al. 2019; models/hvae.ts) on the same backbone:
 *          two latents of the layer's size under the top (TD and BU), one at the top, a top-down-inference
 *          stack beside the bottom-up one; the decoder reads [z^TD, z^BU].
 *   <name>-oversmooth: the same model with a Gaussian likelihood and one learned scale sigma_x on
 *          dequantised images in [0, 1) ("OverSmooth", the paper's Appendix J, after Takida et al.).
 *   small-cifar, tiny-cifar: `small` and `tiny` on CIFAR-10's 32x32 RGB images (z1 at 16x16, the dense
 *          latents on 8x8 stages); -lvae, -biva and -oversmooth as above.
 *   havtorn-cifar3, cifar3, cifar5: Havtorn et al.'s CIFAR-10 backbone (below: stages that widen from
 *          32 to 256 channels, conv latents) with latents [8, 16, 32], [128, 64, 32] and
 *          [128, 64, 32, 28, 24]; -lvae, -biva and -oversmooth as above.
 */

import { SIGMA_LOG2, SIGMA_SOFTPLUS } from "../kernels/distributions.ts";
import type { BlockSpec, HvaeConfig } from "./hvae.ts";

/** Fashion-MNIST's and MNIST's images. */
const GRAYSCALE_28 = { height: 28, width: 28 };
/** CIFAR-10's and SVHN's images. */
const RGB_32 = { height: 32, width: 32, channels: 3 };

/**
 * What Havtorn et al.'s backbones share (hvae-oodd): ReLU, sigma = log2(1 + 2^u), weight-normalised
 * layers, its residual blocks with skips from the stage above in the generative path, no stem, 3x3 heads.
 */
const HAVTORN_WIRING = {
  activation: "relu",
  sigma: SIGMA_LOG2,
  weightNorm: true,
  blockStyle: "havtorn",
  decoderSkips: true,
  stem: null,
  headKernel: 3,
  kl: "analytic",
} as const;

/**
 * `small`'s shape: z[0] a conv latent at 14x14, z[1] dense after a stride-2 block (7x7), every further
 * latent dense on a 7x7 stage of one residual block each way (`small` has one such, `small5` three).
 */
function smallLike(
  preset: string,
  C: number,
  z: number[],
  inference: "ladder" | "topdown" | "bidirectional" = "ladder",
  image: HvaeConfig["image"] = GRAYSCALE_28,
): HvaeConfig {
  // The 7x7 stages of 28x28 images (8x8 for CIFAR's 32x32): two halvings.
  const quarter: [number, number] = [Math.ceil(image.height / 4), Math.ceil(image.width / 4)];
  return {
    preset,
    image,
    channels: C,
    activation: "silu",
    sigma: SIGMA_SOFTPLUS,
    weightNorm: false,
    blockStyle: "small",
    inference,
    decoderSkips: false,
    stem: { kernel: 5, stride: 2, padding: 2 },
    layers: [
      {
        latent: { kind: "conv", channels: z[0] },
        encoder: [{ kind: "res", kernel: 3 }],
        decoder: [{ kind: "res", kernel: 3 }, { kind: "up", kernel: 3 }],
      },
      {
        latent: { kind: "dense", size: z[1] },
        encoder: [{ kind: "down", kernel: 3 }],
        decoder: [{ kind: "up", kernel: 3 }],
        projection: quarter,
      },
      ...z.slice(2).map((size) => ({
        latent: { kind: "dense" as const, size },
        encoder: [{ kind: "res" as const, kernel: 3 }],
        decoder: [{ kind: "res" as const, kernel: 3 }],
        projection: quarter,
      })),
    ],
    headKernel: 3,
    kl: "analytic",
  };
}

/**
 * The reference backbone of Havtorn et al. (hvae-oodd's FashionMNIST "VAE" stages; docs/design.md
 * section 1): 64 channels, ReLU, weight normalisation, sigma = log2(1 + 2^u);
 * inference through the samples (q(z_l | z_{l-1})); three residual blocks per stage (k5 with a stride-2
 * last block at 28x28, k3 with a stride-2 last block at 14x14, k3 at 7x7), the first block of a stage
 * without pre-activation or residual where it reads x; z1 a conv latent at 14x14, the others dense.
 * The generative path mirrors it with stride-2 transposed convolutions and skips from the stage above.
 * `latents` gives the latent sizes bottom to top; beyond three layers the extra stages repeat the 7x7
 * stage (our reading of the paper's 5-layer model; its appendix does not give the backbone).
 * Weight norm is per output channel (transposed convs too) with the reference's data-dependent
 * initialisation on the first training batch (`initHvaeFromData`, run by `deno task train`).
 */
function havtornLike(
  preset: string,
  latents: number[],
  inference: "markov" | "topdown" | "bidirectional" = "markov",
): HvaeConfig {
  const k3 = { kind: "res" as const, kernel: 3 };
  const first = { preact: false, residual: false };
  // The LVAE's and BIVA's stages read the deterministic features below (64 channels at 14x14, then 7x7)
  // (BIVA adds a projection of its bottom-up sample to them), not z.
  const markov = inference === "markov";
  // BIVA's decoder reads both latents of z1, [z^TD, z^BU].
  const z1In = inference === "bidirectional" ? 2 * latents[0] : latents[0];
  const top = latents.slice(2).map((size) => ({
    latent: { kind: "dense" as const, size },
    encoder: [k3, k3, k3],
    decoder: [{ ...k3, ...first }, k3, k3],
    projection: [7, 7] as [number, number],
    ...(markov ? { inputMap: [7, 7] as [number, number] } : {}),
  }));
  return {
    ...HAVTORN_WIRING,
    preset,
    image: GRAYSCALE_28,
    channels: 64,
    inference,
    layers: [
      {
        latent: { kind: "conv", channels: latents[0] },
        encoder: [{ kind: "res", kernel: 5, in: 1, ...first }, { kind: "res", kernel: 5 }, {
          kind: "down",
          kernel: 5,
        }],
        decoder: [{ kind: "up", kernel: 5, in: z1In, ...first }, { kind: "res", kernel: 5 }, {
          kind: "res",
          kernel: 5,
        }],
        decoderProjection: "none",
      },
      {
        latent: { kind: "dense", size: latents[1] },
        encoder: [markov ? { ...k3, in: latents[0] } : k3, k3, { kind: "down", kernel: 3 }],
        decoder: [{ kind: "up", kernel: 3, ...first }, k3, k3],
        projection: [7, 7],
      },
      ...top,
    ],
  };
}

/**
 * Havtorn et al.'s CIFAR-10 backbone (hvae-oodd's README, "CIFAR10/SVHN"): the reference's blocks and
 * weight normalisation on 32x32 RGB, with stages that widen, 5x5 blocks of 32 channels then a
 * stride-2 block to 64 (16x16), 3x3 blocks of 64 then 128 (8x8), of 128 then 256 (4x4), and a conv
 * latent after each (z1 at 16x16, z2 at 8x8, z3 at 4x4). The generative path mirrors each stage
 * (a stride-2 transposed block from z to the wider width, then two blocks at the narrower one) with
 * skips from the stage above. Beyond three layers the extra stages repeat three 3x3 blocks of 256
 * channels at 4x4 (our reading of the paper's 5-layer CIFAR model; its appendix does not give the
 * backbone). `latents` gives the latent channels bottom to top: the README's [8, 16, 32], or the
 * paper's [128, 64, 32] and [128, 64, 32, 28, 24] (section 5, "Implementation Details").
 */
function havtornCifarLike(
  preset: string,
  latents: number[],
  inference: "markov" | "topdown" | "bidirectional" = "markov",
  narrower = 1,
): HvaeConfig {
  const first = { preact: false, residual: false };
  const markov = inference === "markov", biva = inference === "bidirectional";
  // Channels of each stage: inside it, and after its stride-2 block (`narrower` divides them: tests).
  const widths = [[32, 64], [64, 128], [128, 256]].map((w) => w.map((c) => c / narrower));
  const top = 256 / narrower;
  const stage = (l: number) => widths[Math.min(l, 2)];
  const kernel = (l: number) => (l === 0 ? 5 : 3);
  return {
    ...HAVTORN_WIRING,
    preset,
    image: RGB_32,
    channels: top,
    inference,
    layers: latents.map((z, l) => {
      const [inner, outer] = stage(l), k = kernel(l);
      // The stage's first block reads x (bottom), the sample below (Havtorn's q(z_l | z_{l-1})) or,
      // for the LVAE, the features below.
      const reads = l === 0 ? { in: 3, ...first } : markov ? { in: latents[l - 1] } : {};
      // Stages above the third stay at 4x4: three size-keeping blocks at the top width.
      const deep = l >= 3;
      const [w0, w1] = deep ? [top, top] : [inner, outer];
      const blocks = (...list: [BlockSpec["kind"], number, object][]): BlockSpec[] =>
        list.map(([kind, out, extra]) => ({ kind, kernel: deep ? 3 : k, out, ...extra }));
      return {
        latent: { kind: "conv" as const, channels: z },
        encoder: blocks(["res", w0, reads], ["res", w0, {}], [deep ? "res" : "down", w1, {}]),
        // BIVA's generative path reads both latents under the top, [z^TD, z^BU].
        decoder: blocks([deep ? "res" : "up", w1, {
          in: biva && l < latents.length - 1 ? 2 * z : z,
          ...first,
        }], [
          "res",
          w0,
          {},
        ], ["res", w0, {}]),
        decoderProjection: "none" as const,
      };
    }),
  };
}

/** Every preset by name (docs/design.md section 1). */
export const PRESETS: Record<string, () => HvaeConfig> = {
  small: () => smallLike("small", 16, [8, 16, 8]),
  tiny: () => smallLike("tiny", 4, [2, 4, 2]),
  // Five latent layers at CPU scale (the paper's headline tables are for L = 5): small's z1 (8 channels
  // at 14x14) under the paper's dense sizes [24, 16, 8, 4] of its [32, 24, 16, 8, 4].
  small5: () => smallLike("small5", 16, [8, 24, 16, 8, 4]),
  havtorn3: () => havtornLike("havtorn3", [8, 16, 8]),
  paper3: () => havtornLike("paper3", [16, 8, 4]),
  paper5: () => havtornLike("paper5", [32, 24, 16, 8, 4]),
  // The LVAE (top-down inference, models/hvae.ts) on the same backbones and latent sizes.
  "small-lvae": () => smallLike("small-lvae", 16, [8, 16, 8], "topdown"),
  "tiny-lvae": () => smallLike("tiny-lvae", 4, [2, 4, 2], "topdown"),
  "small5-lvae": () => smallLike("small5-lvae", 16, [8, 24, 16, 8, 4], "topdown"),
  "havtorn3-lvae": () => havtornLike("havtorn3-lvae", [8, 16, 8], "topdown"),
  "paper3-lvae": () => havtornLike("paper3-lvae", [16, 8, 4], "topdown"),
  "paper5-lvae": () => havtornLike("paper5-lvae", [32, 24, 16, 8, 4], "topdown"),
  // BIVA (bidirectional inference, models/hvae.ts) on the same backbones and latent sizes.
  "small-biva": () => smallLike("small-biva", 16, [8, 16, 8], "bidirectional"),
  "tiny-biva": () => smallLike("tiny-biva", 4, [2, 4, 2], "bidirectional"),
  "small5-biva": () => smallLike("small5-biva", 16, [8, 24, 16, 8, 4], "bidirectional"),
  "havtorn3-biva": () => havtornLike("havtorn3-biva", [8, 16, 8], "bidirectional"),
  "paper3-biva": () => havtornLike("paper3-biva", [16, 8, 4], "bidirectional"),
  "paper5-biva": () => havtornLike("paper5-biva", [32, 24, 16, 8, 4], "bidirectional"),
  // OverSmooth (the paper's Appendix J): the same HVAEs with a Gaussian likelihood and a learned sigma_x.
  "small-oversmooth": () => gaussian(smallLike("small-oversmooth", 16, [8, 16, 8])),
  "tiny-oversmooth": () => gaussian(smallLike("tiny-oversmooth", 4, [2, 4, 2])),
  "small5-oversmooth": () => gaussian(smallLike("small5-oversmooth", 16, [8, 24, 16, 8, 4])),
  "havtorn3-oversmooth": () => gaussian(havtornLike("havtorn3-oversmooth", [8, 16, 8])),
  "paper3-oversmooth": () => gaussian(havtornLike("paper3-oversmooth", [16, 8, 4])),
  "paper5-oversmooth": () => gaussian(havtornLike("paper5-oversmooth", [32, 24, 16, 8, 4])),
  // CIFAR-10's 32x32 RGB images: `small` and `tiny` on them (z1 at 16x16, dense latents on 8x8 stages).
  "small-cifar": () => smallLike("small-cifar", 16, [8, 16, 8], "ladder", RGB_32),
  "tiny-cifar": () => smallLike("tiny-cifar", 4, [2, 4, 2], "ladder", RGB_32),
  "small-cifar-lvae": () => smallLike("small-cifar-lvae", 16, [8, 16, 8], "topdown", RGB_32),
  "small-cifar-biva": () => smallLike("small-cifar-biva", 16, [8, 16, 8], "bidirectional", RGB_32),
  "small-cifar-oversmooth": () =>
    gaussian(smallLike("small-cifar-oversmooth", 16, [8, 16, 8], "ladder", RGB_32)),
  "tiny-cifar-lvae": () => smallLike("tiny-cifar-lvae", 4, [2, 4, 2], "topdown", RGB_32),
  "tiny-cifar-biva": () => smallLike("tiny-cifar-biva", 4, [2, 4, 2], "bidirectional", RGB_32),
  "tiny-cifar-oversmooth": () => gaussian(smallLike("tiny-cifar-oversmooth", 4, [2, 4, 2], "ladder", RGB_32)),
  // Havtorn et al.'s CIFAR-10 backbone (widening stages, conv latents) with the README's latents and
  // the paper's 3- and 5-layer sizes; their LVAEs, BIVAs and OverSmooths.
  "havtorn-cifar3": () => havtornCifarLike("havtorn-cifar3", [8, 16, 32]),
  cifar3: () => havtornCifarLike("cifar3", [128, 64, 32]),
  cifar5: () => havtornCifarLike("cifar5", [128, 64, 32, 28, 24]),
  "havtorn-cifar3-lvae": () => havtornCifarLike("havtorn-cifar3-lvae", [8, 16, 32], "topdown"),
  "cifar3-lvae": () => havtornCifarLike("cifar3-lvae", [128, 64, 32], "topdown"),
  "cifar5-lvae": () => havtornCifarLike("cifar5-lvae", [128, 64, 32, 28, 24], "topdown"),
  "havtorn-cifar3-biva": () => havtornCifarLike("havtorn-cifar3-biva", [8, 16, 32], "bidirectional"),
  "cifar3-biva": () => havtornCifarLike("cifar3-biva", [128, 64, 32], "bidirectional"),
  "cifar5-biva": () => havtornCifarLike("cifar5-biva", [128, 64, 32, 28, 24], "bidirectional"),
  "havtorn-cifar3-oversmooth": () => gaussian(havtornCifarLike("havtorn-cifar3-oversmooth", [8, 16, 32])),
  "cifar3-oversmooth": () => gaussian(havtornCifarLike("cifar3-oversmooth", [128, 64, 32])),
  "cifar5-oversmooth": () => gaussian(havtornCifarLike("cifar5-oversmooth", [128, 64, 32, 28, 24])),
  // The same backbone 8x narrower (4 to 32 channels), five layers: for tests.
  "tiny-havtorn-cifar": () => havtornCifarLike("tiny-havtorn-cifar", [2, 4, 4, 3, 2], "markov", 8),
  "tiny-havtorn-cifar-lvae": () => havtornCifarLike("tiny-havtorn-cifar-lvae", [2, 4, 4, 3, 2], "topdown", 8),
  "tiny-havtorn-cifar-biva": () =>
    havtornCifarLike("tiny-havtorn-cifar-biva", [2, 4, 4, 3, 2], "bidirectional", 8),
};

/** `cfg` with the Gaussian likelihood N(x | mu(z), sigma_x^2 I) on dequantised images (models/hvae.ts). */
function gaussian(cfg: HvaeConfig): HvaeConfig {
  return { ...cfg, likelihood: "gaussian" };
}

/** The named preset, or an error listing the available ones. */
export function presetConfig(name: string): HvaeConfig {
  const make = PRESETS[name];
  if (!make) throw new Error(`unknown preset '${name}' (available: ${Object.keys(PRESETS).join(", ")})`);
  return make();
}
