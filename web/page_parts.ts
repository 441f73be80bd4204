/**
 * The page's pieces that need no DOM (web/app.ts uses them; tests/browser_test.ts checks them in Deno):
 * what the server sends about the run, canvas pixels to gray levels as `deno task score` reads PNGs
 * (data/png.ts: Rec. 601 luma), and the histogram of the in-distribution scores with the image's.
 */

/** /run/calibration.json: every score of the in-distribution test images (scripts/serve.ts). */
export interface Calibration {
  /** Where the scores come from (the run's scores.csv, or computed by the server). */
  source: string;
  /** How many images. */
  images: number;
  /** The --calibration-limit it was scored with by the server; null when it came from scores.csv. */
  limit: number | null;
  /** Score name -> one value per image. */
  scores: Record<string, number[]>;
}

/** /run/info.json: what the page says about the run. */
export interface RunInfo {
  /** The run directory. */
  dir: string;
  /** Epochs it completed. */
  epochs: number;
}

/**
 * Gray levels of RGBA pixels drawn on black (alpha already composited by the canvas): the Rec. 601
 * luma 0.299 R + 0.587 G + 0.114 B, rounded, as data/png.ts converts colour PNGs.
 */
export function grayLevels(rgba: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(rgba.length / 4);
  for (let i = 0; i < out.length; i++) {
    out[i] = Math.round(0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]);
  }
  return out;
}

/** The RGB triples of RGBA canvas pixels (alpha dropped: the canvas is painted on black first). */
export function rgbTriples(rgba: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0; i < out.length / 3; i++) out.set([rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]], 3 * i);
  return out;
}

/** A canvas's RGBA pixels as the model reads them: gray levels (1 channel) or RGB triples (3). */
export function modelPixels(rgba: ArrayLike<number>, channels: number): Uint8Array {
  return channels === 3 ? rgbTriples(rgba) : grayLevels(rgba);
}

/**
 * An SVG histogram of the in-distribution scores (40 bins over their range and the image's), a dashed
 * line at the threshold and a red one at the image's score.
 */
export function histogramSvg(
  values: readonly number[],
  mine: number,
  threshold: number,
  name: string,
  dataset = "Fashion-MNIST",
): string {
  const [W, H, pad] = [420, 150, 28];
  const finite = values.filter(Number.isFinite);
  let lo = Math.min(mine, threshold, ...finite), hi = Math.max(mine, threshold, ...finite);
  if (hi === lo) [lo, hi] = [lo - 1, hi + 1];
  const bins = new Array(40).fill(0);
  for (const v of finite) bins[Math.min(39, Math.floor((v - lo) / (hi - lo) * 40))]++;
  const top = Math.max(1, ...bins);
  const x = (v: number) => pad + (v - lo) / (hi - lo) * (W - 2 * pad);
  const bw = (W - 2 * pad) / 40;
  const bars = bins.map((c, i) => {
    const h = c / top * (H - 2 * pad);
    return `<rect x="${(pad + i * bw).toFixed(1)}" y="${(H - pad - h).toFixed(1)}" width="${
      (bw - 1).toFixed(1)
    }" height="${h.toFixed(1)}" fill="#8ab"/>`;
  });
  const line = (v: number, style: string) =>
    `<line x1="${x(v).toFixed(1)}" x2="${x(v).toFixed(1)}" y1="${pad - 8}" y2="${H - pad}" ${style}/>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-size="11">` +
    `<text x="${pad}" y="14">${name} of ${finite.length} ${dataset} test images; red: yours</text>` +
    bars.join("") + line(threshold, 'stroke="#333" stroke-dasharray="4 3"') +
    line(mine, 'stroke="#c33" stroke-width="2"') +
    `<text x="${pad}" y="${H - 8}">${lo.toFixed(1)}</text>` +
    `<text x="${W - pad}" y="${H - 8}" text-anchor="end">${hi.toFixed(1)}</text></svg>`;
}
