/**
 * Resizing byte images to a model's size the way Havtorn et al.'s hvae-oodd prepares its OOD sets
 * (torchvision's `Resize`, which calls Pillow's `Image.resize`):
 *   nearest    Omniglot (105 -> 28): output pixel x takes source pixel floor((x + 0.5) * in / out);
 *   bilinear   SmallNORB (96 -> 28): Pillow's antialiased bilinear. Output pixel x is a weighted mean
 *              of the source pixels j whose centres lie within `scale = in / out` of its centre
 *              c = (x + 0.5) * scale, with triangle weights max(0, 1 - |j + 0.5 - c| / scale),
 *              normalised; rows first, rounded to bytes, then columns, rounded again (for upsampling
 *              the triangle keeps radius 1: plain bilinear interpolation).
 * Pillow computes the weights in fixed point, so a pixel may differ from it by one gray level.
 */

/** An image's [height, width]. */
export type ImageSize = readonly [number, number];

/** `count` images of `from` bytes each (row-major), resized to `to` by nearest neighbour. */
export function resizeNearest(images: Uint8Array, count: number, from: ImageSize, to: ImageSize): Uint8Array {
  const [[inH, inW], [outH, outW]] = [from, to];
  const rows = Array.from(
    { length: outH },
    (_, y) => Math.min(inH - 1, Math.floor(((y + 0.5) * inH) / outH)),
  );
  const cols = Array.from(
    { length: outW },
    (_, x) => Math.min(inW - 1, Math.floor(((x + 0.5) * inW) / outW)),
  );
  const out = new Uint8Array(count * outH * outW);
  for (let i = 0; i < count; i++) {
    const src = i * inH * inW, dst = i * outH * outW;
    for (let y = 0; y < outH; y++) {
      for (let x = 0; x < outW; x++) out[dst + y * outW + x] = images[src + rows[y] * inW + cols[x]];
    }
  }
  return out;
}

/** The taps of a 1-D antialiased bilinear resize: per output index, the first source index and weights. */
export function bilinearTaps(inSize: number, outSize: number): { first: number; weights: Float64Array }[] {
  const scale = inSize / outSize;
  const support = Math.max(1, scale);
  return Array.from({ length: outSize }, (_, x) => {
    const centre = (x + 0.5) * scale;
    const first = Math.max(0, Math.floor(centre - support));
    const last = Math.min(inSize, Math.ceil(centre + support));
    const weights = new Float64Array(last - first);
    let total = 0;
    for (let j = first; j < last; j++) {
      const w = Math.max(0, 1 - Math.abs(j + 0.5 - centre) / support);
      weights[j - first] = w;
      total += w;
    }
    for (let k = 0; k < weights.length; k++) weights[k] /= total;
    return { first, weights };
  });
}

const toByte = (v: number) => Math.min(255, Math.max(0, Math.round(v)));

/** `count` images of `from` bytes each (row-major), resized to `to` by antialiased bilinear (see above). */
export function resizeBilinear(
  images: Uint8Array,
  count: number,
  from: ImageSize,
  to: ImageSize,
): Uint8Array {
  const [[inH, inW], [outH, outW]] = [from, to];
  const horizontal = bilinearTaps(inW, outW), vertical = bilinearTaps(inH, outH);
  const out = new Uint8Array(count * outH * outW);
  const mid = new Uint8Array(inH * outW);
  for (let i = 0; i < count; i++) {
    const src = i * inH * inW;
    for (let y = 0; y < inH; y++) {
      for (let x = 0; x < outW; x++) {
        const { first, weights } = horizontal[x];
        let s = 0;
        for (let k = 0; k < weights.length; k++) s += weights[k] * images[src + y * inW + first + k];
        mid[y * outW + x] = toByte(s);
      }
    }
    const dst = i * outH * outW;
    for (let y = 0; y < outH; y++) {
      const { first, weights } = vertical[y];
      for (let x = 0; x < outW; x++) {
        let s = 0;
        for (let k = 0; k < weights.length; k++) s += weights[k] * mid[(first + k) * outW + x];
        out[dst + y * outW + x] = toByte(s);
      }
    }
  }
  return out;
}
