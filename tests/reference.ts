/**
 * Float64 reference implementations of every engine op, in plain loops: the oracle the GPU kernels
 * are tested against, and the function finite differences are taken of. Deliberately written
 * independently of the kernels (no shared tables), so a wrong formula cannot hide in both.
 */

export interface Nd {
  shape: number[];
  data: Float64Array;
}

export function nd(shape: readonly number[], data: ArrayLike<number>): Nd {
  const size = shape.reduce((a, b) => a * b, 1);
  if (data.length !== size) throw new Error(`nd: ${data.length} values for shape [${shape}]`);
  return { shape: [...shape], data: Float64Array.from(data) };
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function strides(shape: readonly number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

/** Reads `x` at the output index `idx` of a broadcast result. */
function atBroadcast(x: Nd, idx: readonly number[]): number {
  const lead = idx.length - x.shape.length;
  const s = strides(x.shape);
  let off = 0;
  for (let d = 0; d < x.shape.length; d++) off += (x.shape[d] === 1 ? 0 : idx[lead + d]) * s[d];
  return x.data[off];
}

export function broadcastShape(...shapes: number[][]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array(rank).fill(1);
  for (const s of shapes) {
    s.forEach((d, i) => {
      const j = rank - s.length + i;
      if (d !== 1) out[j] = d;
    });
  }
  return out;
}

export const unaryRef: Record<string, (x: number, p: number) => number> = {
  neg: (x) => -x,
  abs: Math.abs,
  sign: Math.sign,
  exp: Math.exp,
  log: Math.log,
  log1p: Math.log1p,
  expm1: Math.expm1,
  sqrt: Math.sqrt,
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  relu: (x) => Math.max(x, 0),
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  silu: (x) => x / (1 + Math.exp(-x)),
  softplus: (x) => Math.log1p(Math.exp(-Math.abs(x))) + Math.max(x, 0),
  tanh: Math.tanh,
  pow: (x, p) => Math.pow(x, p),
};

export function unary(op: string, x: Nd, p = 0): Nd {
  const f = unaryRef[op];
  return { shape: [...x.shape], data: x.data.map((v) => f(v, p)) };
}

export const binaryRef: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  maximum: Math.max,
  minimum: Math.min,
  greater: (a, b) => +(a > b),
  greaterEqual: (a, b) => +(a >= b),
  less: (a, b) => +(a < b),
  lessEqual: (a, b) => +(a <= b),
  equal: (a, b) => +(a === b),
  notEqual: (a, b) => +(a !== b),
};

const asNd = (x: Nd | number): Nd => typeof x === "number" ? nd([], [x]) : x;

export function binary(op: string, a: Nd | number, b: Nd | number): Nd {
  const A = asNd(a), B = asNd(b);
  const shape = broadcastShape(A.shape, B.shape);
  const out = new Float64Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    out[i] = binaryRef[op](atBroadcast(A, idx), atBroadcast(B, idx));
  }
  return { shape, data: out };
}

export function where(c: Nd, a: Nd | number, b: Nd | number): Nd {
  const A = asNd(a), B = asNd(b);
  const shape = broadcastShape(c.shape, A.shape, B.shape);
  const out = new Float64Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    out[i] = atBroadcast(c, idx) !== 0 ? atBroadcast(A, idx) : atBroadcast(B, idx);
  }
  return { shape, data: out };
}

function normAxes(axes: number | number[] | undefined, rank: number): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  return (typeof axes === "number" ? [axes] : axes).map((a) => a < 0 ? a + rank : a);
}

/** Reduction by folding `combine` over the reduced elements, then `finish(acc, count)`. */
function reduceWith(
  x: Nd,
  axes: number | number[] | undefined,
  keepdims: boolean,
  init: number,
  combine: (acc: number, v: number) => number,
  finish: (acc: number, count: number) => number = (a) => a,
): Nd {
  const ax = normAxes(axes, x.shape.length);
  const kept = x.shape.map((d, i) => ax.includes(i) ? 1 : d);
  const acc = new Float64Array(sizeOf(kept)).fill(init);
  const ks = strides(kept);
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape);
    let o = 0;
    idx.forEach((v, d) => o += (ax.includes(d) ? 0 : v) * ks[d]);
    acc[o] = combine(acc[o], x.data[i]);
  }
  const count = ax.reduce((n, a) => n * x.shape[a], 1);
  const data = acc.map((a) => finish(a, count));
  const shape = keepdims ? kept : x.shape.filter((_, i) => !ax.includes(i));
  return { shape, data };
}

export const sum = (x: Nd, axes?: number | number[], keepdims = false) =>
  reduceWith(x, axes, keepdims, 0, (a, v) => a + v);
export const mean = (x: Nd, axes?: number | number[], keepdims = false) =>
  reduceWith(x, axes, keepdims, 0, (a, v) => a + v, (a, n) => a / n);
export const max = (x: Nd, axes?: number | number[], keepdims = false) =>
  reduceWith(x, axes, keepdims, -Infinity, Math.max);

export function logsumexp(x: Nd, axes?: number | number[], keepdims = false): Nd {
  const m = max(x, axes, true);
  const shifted = binary("sub", x, m);
  const s = sum(unary("exp", shifted), axes, true);
  const y = binary("add", unary("log", s), m);
  const ax = normAxes(axes, x.shape.length);
  return keepdims ? y : { shape: x.shape.filter((_, i) => !ax.includes(i)), data: y.data };
}

export function reshape(x: Nd, shape: number[]): Nd {
  return { shape: [...shape], data: x.data.slice() };
}

export function permute(x: Nd, perm: number[]): Nd {
  const shape = perm.map((p) => x.shape[p]);
  const xs = strides(x.shape);
  const out = new Float64Array(x.data.length);
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    out[i] = x.data[idx.reduce((o, v, d) => o + v * xs[perm[d]], 0)];
  }
  return { shape, data: out };
}

export function broadcastTo(x: Nd, shape: number[]): Nd {
  const out = new Float64Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) out[i] = atBroadcast(x, unravel(i, shape));
  return { shape: [...shape], data: out };
}

export function slice(x: Nd, begin: number[], end: number[]): Nd {
  const shape = x.shape.map((_, d) => end[d] - begin[d]);
  const xs = strides(x.shape);
  const out = new Float64Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    out[i] = x.data[idx.reduce((o, v, d) => o + (v + begin[d]) * xs[d], 0)];
  }
  return { shape, data: out };
}

export function pad(x: Nd, pads: [number, number][], value = 0): Nd {
  const shape = x.shape.map((d, i) => d + pads[i][0] + pads[i][1]);
  const xs = strides(x.shape);
  const out = new Float64Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape).map((v, d) => v - pads[d][0]);
    const inside = idx.every((v, d) => v >= 0 && v < x.shape[d]);
    out[i] = inside ? x.data[idx.reduce((o, v, d) => o + v * xs[d], 0)] : value;
  }
  return { shape, data: out };
}

export function concat(parts: Nd[], axis: number): Nd {
  const shape = [...parts[0].shape];
  shape[axis] = parts.reduce((n, p) => n + p.shape[axis], 0);
  const out = new Float64Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    let k = idx[axis];
    let part = 0;
    while (k >= parts[part].shape[axis]) k -= parts[part++].shape[axis];
    const p = parts[part];
    const ps = strides(p.shape);
    out[i] = p.data[idx.reduce((o, v, d) => o + (d === axis ? k : v) * ps[d], 0)];
  }
  return { shape, data: out };
}

/** Batched op(A) @ op(B) with broadcasting batch axes. */
export function matmul(a: Nd, b: Nd, transA = false, transB = false): Nd {
  const ra = a.shape.length, rb = b.shape.length;
  const M = transA ? a.shape[ra - 1] : a.shape[ra - 2];
  const K = transA ? a.shape[ra - 2] : a.shape[ra - 1];
  const N = transB ? b.shape[rb - 2] : b.shape[rb - 1];
  const batch = broadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const shape = [...batch, M, N];
  const out = new Float64Array(sizeOf(shape));
  const aBatch = a.shape.slice(0, -2), bBatch = b.shape.slice(0, -2);
  for (let bi = 0; bi < sizeOf(batch); bi++) {
    const idx = unravel(bi, batch);
    const offA = batchOffset(idx, aBatch) * a.shape[ra - 1] * a.shape[ra - 2];
    const offB = batchOffset(idx, bBatch) * b.shape[rb - 1] * b.shape[rb - 2];
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) {
          const av = a.data[offA + (transA ? k * M + m : m * K + k)];
          const bv = b.data[offB + (transB ? n * K + k : k * N + n)];
          acc += av * bv;
        }
        out[bi * M * N + m * N + n] = acc;
      }
    }
  }
  return { shape, data: out };
}

function batchOffset(idx: number[], batch: number[]): number {
  const lead = idx.length - batch.length;
  const s = strides(batch);
  return batch.reduce((o, d, i) => o + (d === 1 ? 0 : idx[lead + i]) * s[i], 0);
}

/** Geometry of a reference convolution: strides and explicit [top, bottom] / [left, right] padding. */
export interface ConvRefOptions {
  stride: [number, number];
  pads: [[number, number], [number, number]];
}

/**
 * Every multiply of a direct convolution: `tap(oi, xi, wi)` for each output element oi = (b, oh, ow,
 * co), filter element wi = (ky, kx, ci, co) and the input element xi = (b, oh*sy + ky - top,
 * ow*sx + kx - left, ci) it reads, when that lies inside the input (flat NHWC / HWIO indices).
 */
function convTaps(
  x: readonly number[],
  w: readonly number[],
  [oH, oW]: readonly number[],
  o: ConvRefOptions,
  tap: (oi: number, xi: number, wi: number) => void,
): void {
  const [B, H, W, Ci] = x;
  const [kh, kw, , Co] = w;
  const [sy, sx] = o.stride;
  const [[pT], [pL]] = o.pads;
  for (let b = 0; b < B; b++) {
    for (let oh = 0; oh < oH; oh++) {
      for (let ow = 0; ow < oW; ow++) {
        for (let co = 0; co < Co; co++) {
          const oi = ((b * oH + oh) * oW + ow) * Co + co;
          for (let ky = 0; ky < kh; ky++) {
            const ih = oh * sy + ky - pT;
            if (ih < 0 || ih >= H) continue;
            for (let kx = 0; kx < kw; kx++) {
              const iw = ow * sx + kx - pL;
              if (iw < 0 || iw >= W) continue;
              for (let ci = 0; ci < Ci; ci++) {
                tap(oi, ((b * H + ih) * W + iw) * Ci + ci, ((ky * kw + kx) * Ci + ci) * Co + co);
              }
            }
          }
        }
      }
    }
  }
}

/** y[b, oh, ow, co] = sum x[b, oh*sy + ky - top, ow*sx + kx - left, ci] w[ky, kx, ci, co] + bias[co]. */
export function conv2d(x: Nd, w: Nd, bias: Nd | null, o: ConvRefOptions): Nd {
  const [B, H, W] = x.shape;
  const [kh, kw, , Co] = w.shape;
  const [[pT, pB], [pL, pR]] = o.pads;
  const [sy, sx] = o.stride;
  const oH = Math.floor((H + pT + pB - kh) / sy) + 1, oW = Math.floor((W + pL + pR - kw) / sx) + 1;
  const out = new Float64Array(B * oH * oW * Co);
  if (bias) { for (let i = 0; i < out.length; i++) out[i] = bias.data[i % Co]; }
  convTaps(x.shape, w.shape, [oH, oW], o, (oi, xi, wi) => out[oi] += x.data[xi] * w.data[wi]);
  return { shape: [B, oH, oW, Co], data: out };
}

/** The adjoint of `conv2d`, the same multiplies reversed: dx, dw, db from the cotangent g. */
export function conv2dVjp(x: Nd, w: Nd, g: Nd, o: ConvRefOptions): { dx: Nd; dw: Nd; db: Nd } {
  const Co = w.shape[3];
  const dx = new Float64Array(x.data.length), dw = new Float64Array(w.data.length), db = new Float64Array(Co);
  for (let i = 0; i < g.data.length; i++) db[i % Co] += g.data[i];
  convTaps(x.shape, w.shape, g.shape.slice(1, 3), o, (oi, xi, wi) => {
    dx[xi] += g.data[oi] * w.data[wi];
    dw[wi] += g.data[oi] * x.data[xi];
  });
  return {
    dx: { shape: [...x.shape], data: dx },
    dw: { shape: [...w.shape], data: dw },
    db: { shape: [Co], data: db },
  };
}

/**
 * Transposed convolution by its own definition: every input pixel scatters x * w into the full
 * (H - 1) s + k output, which is then cropped by [top, bottom] / [left, right] (a negative bottom or
 * right crop extends it with zeros). Filter [kh, kw, Cout, Cin].
 */
export function conv2dTranspose(x: Nd, w: Nd, bias: Nd | null, o: ConvRefOptions): Nd {
  const [B, H, W, Cin] = x.shape;
  const [kh, kw, Cout] = w.shape;
  const [sy, sx] = o.stride;
  const [[cT, cB], [cL, cR]] = o.pads;
  const fH = (H - 1) * sy + kh, fW = (W - 1) * sx + kw;
  const full = new Float64Array(B * fH * fW * Cout);
  for (let b = 0; b < B; b++) {
    for (let ih = 0; ih < H; ih++) {
      for (let iw = 0; iw < W; iw++) {
        for (let ci = 0; ci < Cin; ci++) {
          const xv = x.data[((b * H + ih) * W + iw) * Cin + ci];
          for (let ky = 0; ky < kh; ky++) {
            for (let kx = 0; kx < kw; kx++) {
              for (let co = 0; co < Cout; co++) {
                full[((b * fH + ih * sy + ky) * fW + iw * sx + kx) * Cout + co] += xv *
                  w.data[((ky * kw + kx) * Cout + co) * Cin + ci];
              }
            }
          }
        }
      }
    }
  }
  const oH = fH - cT - cB, oW = fW - cL - cR;
  const out = new Float64Array(B * oH * oW * Cout);
  for (let b = 0; b < B; b++) {
    for (let oh = 0; oh < oH; oh++) {
      for (let ow = 0; ow < oW; ow++) {
        for (let co = 0; co < Cout; co++) {
          const fh = oh + cT, fw = ow + cL;
          const v = fh < fH && fw < fW ? full[((b * fH + fh) * fW + fw) * Cout + co] : 0;
          out[((b * oH + oh) * oW + ow) * Cout + co] = v + (bias ? bias.data[co] : 0);
        }
      }
    }
  }
  return { shape: [B, oH, oW, Cout], data: out };
}

/** sigma(u) = max(softplus(beta u) / beta + offset, floor). */
export function sigmaOf(u: number, m: { beta: number; offset: number; floor: number }): number {
  const bu = m.beta * u;
  return Math.max((Math.max(bu, 0) + Math.log1p(Math.exp(-Math.abs(bu)))) / m.beta + m.offset, m.floor);
}

/** Elementwise map over broadcast inputs (the shape rules of the engine's fused ops). */
export function mapBroadcast(inputs: Nd[], f: (xs: number[], i: number) => number): Nd {
  const shape = broadcastShape(...inputs.map((x) => x.shape));
  const out = new Float64Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    out[i] = f(inputs.map((x) => atBroadcast(x, idx)), i);
  }
  return { shape, data: out };
}

/** Average pooling (NHWC) with explicit padding; divisor kh*kw ("window") or in-bounds taps ("valid"). */
export function avgPool2d(
  x: Nd,
  kh: number,
  kw: number,
  o: ConvRefOptions,
  divisor: "window" | "valid",
): Nd {
  const [B, H, W, C] = x.shape;
  const [sy, sx] = o.stride;
  const [[pT, pB], [pL, pR]] = o.pads;
  const oH = Math.floor((H + pT + pB - kh) / sy) + 1, oW = Math.floor((W + pL + pR - kw) / sx) + 1;
  const out = new Float64Array(B * oH * oW * C);
  for (let b = 0; b < B; b++) {
    for (let oh = 0; oh < oH; oh++) {
      for (let ow = 0; ow < oW; ow++) {
        for (let c = 0; c < C; c++) {
          let acc = 0, count = 0;
          for (let ky = 0; ky < kh; ky++) {
            for (let kx = 0; kx < kw; kx++) {
              const ih = oh * sy + ky - pT, iw = ow * sx + kx - pL;
              if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
              acc += x.data[((b * H + ih) * W + iw) * C + c];
              count++;
            }
          }
          out[((b * oH + oh) * oW + ow) * C + c] = acc / (divisor === "window" ? kh * kw : count);
        }
      }
    }
  }
  return { shape: [B, oH, oW, C], data: out };
}

/** w = g v / ||v||, one norm per index c of the unit axis (default the last), over all other axes. */
export function weightNorm(v: Nd, g: Nd, axis = -1): Nd {
  const a = axis < 0 ? v.shape.length + axis : axis;
  const C = v.shape[a];
  const I = v.shape.slice(a + 1).reduce((n, d) => n * d, 1);
  const unitOf = (flat: number) => Math.floor(flat / I) % C;
  const sq = new Float64Array(C);
  v.data.forEach((x, j) => sq[unitOf(j)] += x * x);
  const out = v.data.map((x, j) => g.data[unitOf(j)] * x / Math.sqrt(sq[unitOf(j)]));
  return { shape: [...v.shape], data: out };
}

/**
 * log P of one channel's bin under a logistic of mean mu and log-scale s (clamped at -7), the level v
 * presented as x = 2v/255 - 1, in float64; a bin below probability 1e-5 takes the midpoint density
 * times the bin width, as kernels/logistic_mixture.ts does.
 */
export function logisticBinLogProb(x: number, mu: number, rawS: number): number {
  const sig = (t: number) => 1 / (1 + Math.exp(-t));
  const softplus = (t: number) => Math.max(t, 0) + Math.log1p(Math.exp(-Math.abs(t)));
  const v = Math.round((x + 1) * 127.5);
  const s = Math.max(rawS, -7);
  const c = x - mu;
  const plus = (c + 1 / 255) / Math.exp(s), minus = (c - 1 / 255) / Math.exp(s);
  if (v === 0) return -softplus(-plus);
  if (v === 255) return -softplus(minus);
  const delta = sig(plus) - sig(minus);
  const mid = c / Math.exp(s);
  return delta >= 1e-5 ? Math.log(delta) : mid - s - 2 * softplus(mid) - Math.log(127.5);
}

/**
 * log p(x) per pixel of the discretized logistic mixture (kernels/logistic_mixture.ts), in the
 * textbook form of PixelCNN++ (Salimans et al. 2017) evaluated in float64: params [..., 3K] (logits,
 * then the channel's means and log-scales) for x [..., 1], or [..., 10K] (logits, then per channel
 * means, log-scales and coupling coefficients) for RGB x [..., 3], x = 2v/255 - 1; returns [..., 1].
 */
export function logisticMixtureLogLik(params: Nd, x: Nd, K: number): Nd {
  const C = x.shape[x.shape.length - 1];
  const n = x.data.length / C;
  const width = C === 1 ? 3 * K : 10 * K, block = C === 1 ? 2 * K : 3 * K;
  const out = new Float64Array(n);
  const lse = (xs: number[]) => {
    const m = Math.max(...xs);
    return m + Math.log(xs.reduce((a, t) => a + Math.exp(t - m), 0));
  };
  for (let i = 0; i < n; i++) {
    const xs = Array.from(x.data.subarray(i * C, (i + 1) * C));
    const at = (j: number) => params.data[i * width + j];
    const logits = Array.from({ length: K }, (_, k) => at(k));
    const terms = logits.map((l, k) => {
      const mean = (c: number) => at(K + c * block + k);
      const logScale = (c: number) => at(K + c * block + K + k);
      const coefficient = (c: number) => Math.tanh(at(K + c * block + 2 * K + k));
      if (C === 1) return l + logisticBinLogProb(xs[0], mean(0), logScale(0));
      const mu = [
        mean(0),
        mean(1) + coefficient(0) * xs[0],
        mean(2) + coefficient(1) * xs[0] + coefficient(2) * xs[1],
      ];
      return l + [0, 1, 2].reduce((a, c) => a + logisticBinLogProb(xs[c], mu[c], logScale(c)), 0);
    });
    out[i] = lse(terms) - lse(logits);
  }
  return { shape: [...x.shape.slice(0, -1), 1], data: out };
}
