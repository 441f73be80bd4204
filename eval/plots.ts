/**
 * The evaluation's pictures as standalone SVG text: ROC curves of every score (the paper's Fig. 3),
 * histograms of scores for in-distribution vs OOD images (Fig. 4), and lines over epochs (AUROC
 * curves of a training run). No dependencies: a plot is a few axes, polylines and labels.
 */

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
const IN_COLOUR = "#1f77b4", OUT_COLOUR = "#ff7f0e";

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const f = (v: number) => (Math.round(v * 10) / 10).toString();

export interface RocSeries {
  name: string;
  fpr: readonly number[];
  tpr: readonly number[];
  auroc: number;
}

/** Thins a curve to the points that move it by at least `step` (keeps the ends). */
function thin(xs: readonly number[], ys: readonly number[], step: number): [number, number][] {
  const out: [number, number][] = [[xs[0], ys[0]]];
  for (let i = 1; i < xs.length; i++) {
    const [px, py] = out[out.length - 1];
    if (i === xs.length - 1 || Math.abs(xs[i] - px) >= step || Math.abs(ys[i] - py) >= step) {
      out.push([xs[i], ys[i]]);
    }
  }
  return out;
}

/** ROC curves (FPR on x, TPR on y, OOD positive) with the AUROC of each in the legend. */
export function rocSvg(series: readonly RocSeries[], title: string): string {
  const W = 520, H = 440, left = 60, top = 40, size = 340;
  const x = (v: number) => left + v * size, y = (v: number) => top + (1 - v) * size;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  for (let t = 0; t <= 1.0001; t += 0.2) {
    parts.push(
      `<line x1="${f(x(t))}" y1="${top}" x2="${f(x(t))}" y2="${top + size}" stroke="#eee"/>`,
      `<line x1="${left}" y1="${f(y(t))}" x2="${left + size}" y2="${f(y(t))}" stroke="#eee"/>`,
      `<text x="${f(x(t))}" y="${top + size + 16}" text-anchor="middle">${t.toFixed(1)}</text>`,
      `<text x="${left - 6}" y="${f(y(t) + 4)}" text-anchor="end">${t.toFixed(1)}</text>`,
    );
  }
  parts.push(
    `<rect x="${left}" y="${top}" width="${size}" height="${size}" fill="none" stroke="black"/>`,
    `<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" stroke="#999" stroke-dasharray="4 4"/>`,
    `<text x="${left + size / 2}" y="${
      top + size + 34
    }" text-anchor="middle">false-positive rate (in-distribution flagged)</text>`,
    `<text transform="translate(16 ${
      top + size / 2
    }) rotate(-90)" text-anchor="middle">true-positive rate (OOD flagged)</text>`,
  );
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = thin(s.fpr, s.tpr, 0.002).map(([a, b]) => `${f(x(a))},${f(y(b))}`).join(" ");
    parts.push(`<polyline points="${points}" fill="none" stroke="${colour}" stroke-width="1.6"/>`);
    const ly = top + 14 + i * 18;
    parts.push(
      `<line x1="${left + size + 10}" y1="${ly - 4}" x2="${left + size + 28}" y2="${
        ly - 4
      }" stroke="${colour}" stroke-width="2"/>`,
      `<text x="${left + size + 32}" y="${ly}">${esc(s.name)} ${(100 * s.auroc).toFixed(1)}</text>`,
    );
  });
  parts.push(
    `<text x="${left + size + 10}" y="${top + 14 + series.length * 18 + 4}" fill="#555">(AUROC %)</text>`,
  );
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

export interface HistogramPanel {
  title: string;
  in: ArrayLike<number>;
  out: ArrayLike<number>;
}

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.floor(q * (sorted.length - 1))))];
}

/**
 * Histograms of scores, in-distribution vs OOD, one panel per score, densities over 40 bins between
 * the 0.5% and 99.5% quantiles of both sets together (outliers go to the end bins).
 */
export function histogramSvg(
  panels: readonly HistogramPanel[],
  labels: { in: string; out: string },
  title: string,
): string {
  const cols = Math.min(panels.length, 3), rows = Math.ceil(panels.length / cols);
  const pw = 300, ph = 200, margin = 40, W = cols * (pw + margin) + margin, H = rows * (ph + 60) + 60;
  const bins = 40;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<rect x="${W / 2 - 150}" y="30" width="12" height="10" fill="${IN_COLOUR}" fill-opacity="0.5"/>`,
    `<text x="${W / 2 - 134}" y="39">${esc(labels.in)} (in)</text>`,
    `<rect x="${W / 2 + 20}" y="30" width="12" height="10" fill="${OUT_COLOUR}" fill-opacity="0.5"/>`,
    `<text x="${W / 2 + 36}" y="39">${esc(labels.out)} (OOD)</text>`,
  ];
  panels.forEach((panel, p) => {
    const ox = margin + (p % cols) * (pw + margin), oy = 60 + Math.floor(p / cols) * (ph + 60);
    const both = Float64Array.from([...Array.from(panel.in), ...Array.from(panel.out)]).filter(
      Number.isFinite,
    ).sort();
    let lo = quantile(both, 0.005), hi = quantile(both, 0.995);
    if (!(hi > lo)) [lo, hi] = [lo - 1, lo + 1];
    const counts = (xs: ArrayLike<number>) => {
      const c = new Float64Array(bins);
      let n = 0;
      for (let i = 0; i < xs.length; i++) {
        if (!Number.isFinite(xs[i])) continue;
        c[Math.min(bins - 1, Math.max(0, Math.floor(((xs[i] - lo) / (hi - lo)) * bins)))]++;
        n++;
      }
      return c.map((v) => v / Math.max(1, n));
    };
    const ci = counts(panel.in), co = counts(panel.out);
    const peak = Math.max(...ci, ...co, 1e-9);
    const bw = pw / bins;
    parts.push(
      `<text x="${ox + pw / 2}" y="${oy - 6}" text-anchor="middle" font-size="12">${esc(panel.title)}</text>`,
    );
    for (const [c, colour] of [[ci, IN_COLOUR], [co, OUT_COLOUR]] as const) {
      c.forEach((v, b) => {
        if (v === 0) return;
        const h = (v / peak) * ph;
        parts.push(
          `<rect x="${f(ox + b * bw)}" y="${f(oy + ph - h)}" width="${f(bw)}" height="${
            f(h)
          }" fill="${colour}" fill-opacity="0.5"/>`,
        );
      });
    }
    parts.push(`<rect x="${ox}" y="${oy}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`);
    for (let t = 0; t <= 4; t++) {
      const v = lo + (t / 4) * (hi - lo);
      parts.push(
        `<text x="${f(ox + (t / 4) * pw)}" y="${oy + ph + 14}" text-anchor="middle">${
          Math.abs(v) >= 1000 ? v.toExponential(1) : v.toFixed(Math.abs(v) >= 10 ? 0 : 1)
        }</text>`,
      );
    }
    parts.push(
      `<text x="${ox + pw / 2}" y="${
        oy + ph + 30
      }" text-anchor="middle" fill="#555">score (nats; higher = more OOD)</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

/** One line of a `lineSvg` panel: y over x (NaN breaks it). */
export interface LineSeries {
  name: string;
  x: readonly number[];
  y: readonly number[];
}

/**
 * Lines over a shared x (e.g. AUROC per epoch for every score), one panel per title, with points at
 * the measurements and the y range given (AUROC: 0 to 1) or fitted.
 */
export function lineSvg(
  panels: readonly { title: string; series: readonly LineSeries[] }[],
  o: { title: string; xLabel: string; yLabel: string; yRange?: [number, number] },
): string {
  const cols = Math.min(panels.length, 2), rows = Math.ceil(panels.length / cols);
  const pw = 360, ph = 240, left = 56, gap = 150, top = 50;
  const W = cols * (pw + left + gap), H = rows * (ph + 70) + top;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(o.title)}</text>`,
  ];
  panels.forEach((panel, p) => {
    const ox = left + (p % cols) * (pw + left + gap), oy = top + Math.floor(p / cols) * (ph + 70);
    const xs = panel.series.flatMap((s) => s.x.filter(Number.isFinite));
    const ys = panel.series.flatMap((s) => s.y.filter(Number.isFinite));
    let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    if (!(x1 > x0)) [x0, x1] = [x0 - 1, x0 + 1];
    let [y0, y1] = o.yRange ?? [Math.min(...ys), Math.max(...ys)];
    if (!(y1 > y0)) [y0, y1] = [y0 - 1, y0 + 1];
    const X = (v: number) => ox + ((v - x0) / (x1 - x0)) * pw,
      Y = (v: number) => oy + (1 - (v - y0) / (y1 - y0)) * ph;
    parts.push(
      `<text x="${ox + pw / 2}" y="${oy - 8}" text-anchor="middle" font-size="12">${esc(panel.title)}</text>`,
      `<rect x="${ox}" y="${oy}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`,
    );
    for (let t = 0; t <= 4; t++) {
      const yv = y0 + ((y1 - y0) * t) / 4;
      parts.push(
        `<line x1="${ox}" y1="${f(Y(yv))}" x2="${ox + pw}" y2="${f(Y(yv))}" stroke="#eee"/>`,
        `<text x="${ox - 6}" y="${f(Y(yv) + 4)}" text-anchor="end">${+yv.toFixed(3)}</text>`,
      );
    }
    // Whole-number x (epochs) over a short range gets a tick per value; otherwise four intervals.
    const whole = xs.every(Number.isInteger) && x1 - x0 <= 10;
    const xTicks = whole
      ? Array.from({ length: x1 - x0 + 1 }, (_, i) => x0 + i)
      : Array.from({ length: 5 }, (_, t) => x0 + ((x1 - x0) * t) / 4);
    for (const xv of xTicks) {
      parts.push(`<text x="${f(X(xv))}" y="${oy + ph + 16}" text-anchor="middle">${+xv.toFixed(1)}</text>`);
    }
    parts.push(
      `<text x="${ox + pw / 2}" y="${oy + ph + 34}" text-anchor="middle">${esc(o.xLabel)}</text>`,
      `<text transform="translate(${ox - 40} ${oy + ph / 2}) rotate(-90)" text-anchor="middle">${
        esc(o.yLabel)
      }</text>`,
    );
    panel.series.forEach((s, i) => {
      const colour = COLOURS[i % COLOURS.length];
      const points = s.x.map((xv, k) => [xv, s.y[k]]).filter(([a, b]) =>
        Number.isFinite(a) && Number.isFinite(b)
      );
      parts.push(
        `<polyline points="${
          points.map(([a, b]) => `${f(X(a))},${f(Y(b))}`).join(" ")
        }" fill="none" stroke="${colour}" stroke-width="1.6"/>`,
        ...points.map(([a, b]) => `<circle cx="${f(X(a))}" cy="${f(Y(b))}" r="2.5" fill="${colour}"/>`),
        `<line x1="${ox + pw + 10}" y1="${oy + 10 + i * 18}" x2="${ox + pw + 28}" y2="${
          oy + 10 + i * 18
        }" stroke="${colour}" stroke-width="2"/>`,
        `<text x="${ox + pw + 32}" y="${oy + 14 + i * 18}">${esc(s.name)}</text>`,
      );
    });
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

/**
 * Grouped bars: one group per label (e.g. a layer), one bar per series (e.g. a run), on a log scale
 * when the values span decades (KL per layer runs from 1e-4 to 1e2 nats).
 */
export function barSvg(
  labels: readonly string[],
  series: readonly { name: string; values: readonly number[] }[],
  o: { title: string; xLabel: string; yLabel: string; log?: boolean },
): string {
  const W = 640, H = 400, left = 70, top = 50, pw = 400, ph = 270;
  const positive = series.flatMap((s) => s.values.filter((v) => v > 0));
  const log = o.log ?? false;
  const lo = log ? 10 ** Math.floor(Math.log10(Math.min(...positive, 1))) : 0;
  const hi = log ? 10 ** Math.ceil(Math.log10(Math.max(...positive, 1))) : Math.max(...positive, 1e-9) * 1.1;
  const Y = (v: number) =>
    top + ph -
    (log ? (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : v / hi) * ph;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(o.title)}</text>`,
    `<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`,
  ];
  const ticks = log
    ? Array.from({ length: Math.round(Math.log10(hi / lo)) + 1 }, (_, i) => lo * 10 ** i)
    : Array.from({ length: 5 }, (_, i) => (hi * i) / 4);
  for (const t of ticks) {
    parts.push(
      `<line x1="${left}" y1="${f(Y(t))}" x2="${left + pw}" y2="${f(Y(t))}" stroke="#eee"/>`,
      `<text x="${left - 6}" y="${f(Y(t) + 4)}" text-anchor="end">${
        log ? t.toExponential(0) : +t.toPrecision(3)
      }</text>`,
    );
  }
  const group = pw / labels.length, bar = (group * 0.8) / Math.max(1, series.length);
  labels.forEach((label, g) => {
    parts.push(
      `<text x="${f(left + group * (g + 0.5))}" y="${top + ph + 16}" text-anchor="middle">${
        esc(label)
      }</text>`,
    );
    series.forEach((s, i) => {
      const v = s.values[g];
      if (!(v > 0)) return;
      const x = left + group * g + group * 0.1 + bar * i;
      parts.push(
        `<rect class="bar" x="${f(x)}" y="${f(Y(v))}" width="${f(bar)}" height="${
          f(top + ph - Y(v))
        }" fill="${COLOURS[i % COLOURS.length]}"/>`,
      );
    });
  });
  series.forEach((s, i) => {
    const ly = top + 12 + i * 18;
    parts.push(
      `<rect x="${left + pw + 12}" y="${ly - 9}" width="12" height="10" fill="${
        COLOURS[i % COLOURS.length]
      }"/>`,
      `<text x="${left + pw + 30}" y="${ly}">${esc(s.name)}</text>`,
    );
  });
  parts.push(
    `<text x="${left + pw / 2}" y="${top + ph + 34}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text transform="translate(18 ${top + ph / 2}) rotate(-90)" text-anchor="middle">${
      esc(o.yLabel)
    }</text>`,
    "</svg>",
  );
  return parts.join("\n") + "\n";
}

/** Scatter panels of 2-D points coloured by class (e.g. a latent space per layer and run). */
export function scatterSvg(
  panels: readonly {
    title: string;
    x: ArrayLike<number>;
    y: ArrayLike<number>;
    classes: ArrayLike<number>;
  }[],
  o: { title: string; classNames?: readonly string[] },
): string {
  const palette = [...COLOURS, "#bcbd22", "#17becf"];
  const cols = Math.min(panels.length, 3), rows = Math.ceil(panels.length / cols);
  const size = 220, gap = 40, top = 50, legend = 120;
  const W = cols * (size + gap) + gap + legend, H = rows * (size + gap + 20) + top;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(o.title)}</text>`,
  ];
  panels.forEach((p, k) => {
    const ox = gap + (k % cols) * (size + gap), oy = top + Math.floor(k / cols) * (size + gap + 20);
    const xs = Array.from(p.x), ys = Array.from(p.y);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const X = (v: number) => ox + 4 + ((v - x0) / (x1 - x0 || 1)) * (size - 8);
    const Y = (v: number) => oy + size - 4 - ((v - y0) / (y1 - y0 || 1)) * (size - 8);
    parts.push(
      `<text x="${ox + size / 2}" y="${oy - 6}" text-anchor="middle">${esc(p.title)}</text>`,
      `<rect x="${ox}" y="${oy}" width="${size}" height="${size}" fill="none" stroke="black"/>`,
    );
    for (let i = 0; i < xs.length; i++) {
      parts.push(
        `<circle cx="${f(X(xs[i]))}" cy="${f(Y(ys[i]))}" r="1.6" fill="${
          palette[p.classes[i] % palette.length]
        }" fill-opacity="0.7"/>`,
      );
    }
  });
  const names = o.classNames ?? Array.from({ length: 10 }, (_, i) => String(i));
  names.forEach((name, i) => {
    const lx = W - legend + 10, ly = top + 10 + i * 16;
    parts.push(
      `<circle cx="${lx}" cy="${ly - 4}" r="4" fill="${palette[i % palette.length]}"/>`,
      `<text x="${lx + 10}" y="${ly}">${esc(name)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
