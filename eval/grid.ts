/**
 * Image grids for the pictures (Fig. 2/5 reconstructions, Fig. 9 samples): tiles of values in [0, 1]
 * (gray levels, or RGB triples per pixel) laid out in rows and columns, scaled up by pixel
 * replication, with gaps, as 8-bit pixels for data/png.ts. White is 1 (MNIST's convention: bright
 * strokes on black).
 */

/** A picture's pixels: gray levels, or RGB triples when `channels` is 3. */
export interface GridImage {
  width: number;
  height: number;
  channels: 1 | 3;
  pixels: Uint8Array;
}

/**
 * `tiles[r][c]` is an h*w*channels array in [0, 1], or null for an empty cell. Cells are `scale`
 * times the tile size, `gap` pixels apart, on a mid-gray background.
 */
export function imageGrid(
  tiles: readonly (readonly (ArrayLike<number> | null)[])[],
  h: number,
  w: number,
  { scale = 2, gap = 2, channels = 1 }: { scale?: number; gap?: number; channels?: 1 | 3 } = {},
): GridImage {
  const rows = tiles.length, cols = Math.max(...tiles.map((r) => r.length));
  const width = cols * w * scale + (cols + 1) * gap, height = rows * h * scale + (rows + 1) * gap;
  const pixels = new Uint8Array(width * height * channels).fill(128);
  tiles.forEach((row, r) =>
    row.forEach((tile, c) => {
      if (!tile) return;
      if (tile.length !== h * w * channels) {
        throw new Error(
          `imageGrid: tile [${r}][${c}] has ${tile.length} values, not ${h}x${w}${
            channels === 3 ? "x3" : ""
          }`,
        );
      }
      const ox = gap + c * (w * scale + gap), oy = gap + r * (h * scale + gap);
      for (let y = 0; y < h * scale; y++) {
        for (let x = 0; x < w * scale; x++) {
          const from = (Math.floor(y / scale) * w + Math.floor(x / scale)) * channels;
          const to = ((oy + y) * width + ox + x) * channels;
          for (let k = 0; k < channels; k++) {
            pixels[to + k] = Math.round(255 * Math.min(1, Math.max(0, tile[from + k])));
          }
        }
      }
    })
  );
  return { width, height, channels, pixels };
}
