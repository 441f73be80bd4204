/**
 * Image grids for the pictures (Fig. 2/5 reconstructions, Fig. 9 samples): tiles of gray values in
 * [0, 1] laid out in rows and columns, scaled up by pixel replication, with gaps, as 8-bit pixels for
 * data/png.ts. White is 1 (MNIST's convention: bright strokes on black).
 */

export interface GrayImage {
  width: number;
  height: number;
  pixels: Uint8Array;
}

/**
 * `tiles[r][c]` is an h*w array in [0, 1], or null for an empty cell. Cells are `scale` times the
 * tile size, `gap` pixels apart, on a mid-gray background.
 */
export function imageGrid(
  tiles: readonly (readonly (ArrayLike<number> | null)[])[],
  h: number,
  w: number,
  { scale = 2, gap = 2 }: { scale?: number; gap?: number } = {},
): GrayImage {
  const rows = tiles.length, cols = Math.max(...tiles.map((r) => r.length));
  const width = cols * w * scale + (cols + 1) * gap, height = rows * h * scale + (rows + 1) * gap;
  const pixels = new Uint8Array(width * height).fill(128);
  tiles.forEach((row, r) =>
    row.forEach((tile, c) => {
      if (!tile) return;
      if (tile.length !== h * w) {
        throw new Error(`imageGrid: tile [${r}][${c}] has ${tile.length} values, not ${h}x${w}`);
      }
      const ox = gap + c * (w * scale + gap), oy = gap + r * (h * scale + gap);
      for (let y = 0; y < h * scale; y++) {
        for (let x = 0; x < w * scale; x++) {
          const v = tile[Math.floor(y / scale) * w + Math.floor(x / scale)];
          pixels[(oy + y) * width + ox + x] = Math.round(255 * Math.min(1, Math.max(0, v)));
        }
      }
    })
  );
  return { width, height, pixels };
}
