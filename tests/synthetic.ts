/** Synthetic 28x28 test images (smooth blobs, shifted per image), binarised on the GPU like real batches. */

import { parseIdx } from "../data/idx.ts";
import { binarizedBatch, type ImageSet, imageSetOnGpu } from "../data/loader.ts";
import type { Tensor } from "../kernels/tensor.ts";

/** The gray levels of `n` blob images, 784 bytes each. */
export function syntheticPixels(n: number): Uint8Array {
  const pixels = new Uint8Array(n * 784);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < 784; p++) {
      const r = Math.floor(p / 28) - 14 + (i % 3), c = (p % 28) - 14 + (i % 5);
      pixels[i * 784 + p] = Math.max(0, 255 - 3 * (r * r + c * c));
    }
  }
  return pixels;
}

/** An image set of `n` (< 256) blob images on the GPU (its bytes are kept: dispose them). */
export function syntheticSet(n: number): ImageSet {
  const header = new Uint8Array([0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 28, 0, 0, 0, 28]);
  const images = parseIdx(new Uint8Array([...header, ...syntheticPixels(n)]), "synthetic", "images");
  return imageSetOnGpu({
    dataset: "mnist",
    split: "test",
    images,
    labels: { dims: [n], data: new Uint8Array(n) },
    source: "",
  });
}

/** `n` binarised blob images [n, 28, 28, 1]. */
export function syntheticBatch(n: number): Tensor {
  const set = syntheticSet(n);
  return binarizedBatch(set, Uint32Array.from({ length: n }, (_, i) => i), { seed: 1, stream: 1, offset: 0 });
}
