/**
 * A small seeded CPU generator (SplitMix32) for parameter initialisation and data shuffling, where a
 * host-side stream is what is needed. GPU-side randomness (reparameterisation noise, binarisation)
 * uses the counter-based generator in kernels/.
 */

export interface Rng {
  /** Uniform in [0, 1). */
  uniform(): number;
  /** Standard normal (Box-Muller). */
  normal(): number;
  /** A uint32. */
  nextU32(): number;
}

/** SplitMix32: a 32-bit state advanced by the golden-ratio increment, then mixed. */
export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  const nextU32 = (): number => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const uniform = (): number => nextU32() / 4294967296;
  const normal = (): number => {
    const u1 = 1 - uniform();
    const u2 = uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  };
  return { uniform, normal, nextU32 };
}
