/**
 * Named model configurations. Each is a plain object (models/hvae.ts `HvaeConfig`), printed and
 * saved with every run.
 *
 *   small  the CPU preset, exactly as specified for this project: C = 16, SiLU, sigma = softplus(u) + 1e-3,
 *          z1 = 8 channels at 14x14, z2 = 16, z3 = 8; a 5x5 stride-2 stem; encoder
 *          h1 = Res(stem(x)), h2 = Down(h1), h3 = Res(h2); decoder stage 3: dense 8 -> 16x7x7, Res;
 *          stage 2: dense 16 -> 16x7x7, Up; stage 1: conv 8 -> 16, Res, Up; 3x3 heads; plain layers.
 *   tiny   the same shape with C = 4 and latents 2 channels / 4 / 2: for tests.
 * Not yet here: `havtorn3` (the 64-channel weight-normalised reference backbone with its
 * cross-stage skips and data-dependent initialisation), `paper3`, `paper5`.
 */

import { SIGMA_SOFTPLUS } from "../kernels/distributions.ts";
import type { HvaeConfig } from "./hvae.ts";

function smallLike(preset: string, C: number, z: [number, number, number]): HvaeConfig {
  return {
    preset,
    image: { height: 28, width: 28 },
    channels: C,
    activation: "silu",
    sigma: SIGMA_SOFTPLUS,
    weightNorm: false,
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
        projection: [7, 7],
      },
      {
        latent: { kind: "dense", size: z[2] },
        encoder: [{ kind: "res", kernel: 3 }],
        decoder: [{ kind: "res", kernel: 3 }],
        projection: [7, 7],
      },
    ],
    headKernel: 3,
    kl: "analytic",
  };
}

export const PRESETS: Record<string, () => HvaeConfig> = {
  small: () => smallLike("small", 16, [8, 16, 8]),
  tiny: () => smallLike("tiny", 4, [2, 4, 2]),
};

/** The named preset, or an error listing the available ones. */
export function presetConfig(name: string): HvaeConfig {
  const make = PRESETS[name];
  if (!make) throw new Error(`unknown preset '${name}' (available: ${Object.keys(PRESETS).join(", ")})`);
  return make();
}
