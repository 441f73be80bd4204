// jaxjs_hvae.ts — side-by-side performance peer: the "small" HVAE preset (L=3, C=16) written with
// jax-js (npm:@jax-js/jax 0.1.25, public API only), trained with a hand-written Adam, timed per training step.
//
//   cd bench/jaxjs && deno run -A jaxjs_hvae.ts --batch 128 --loss elbo --steps 5
//
// Flags (defaults in brackets):
//   --batch N [128]          batch size
//   --loss elbo|informative [elbo]
//   --steps N [5]            timed steps (after --warmup)
//   --warmup N [2]           untimed warm-up steps (jit trace + compile, pipeline creation)
//   --device webgpu|wasm|cpu [webgpu]
//   --jit true|false [true]  wrap the whole step (value+grad+Adam+RNG) in jax-js `jit`
//   --data random|fixed|fmnist [random]
//                            random: a fresh random binary batch every step (made on the host and uploaded
//                            before the timer starts); fixed: one random binary batch; fmnist: the first N
//                            Fashion-MNIST training images binarised once (x ~ Bernoulli(pixel/255), fixed
//                            seed) from /usr/share/datasets/fashion-mnist — use it to watch the loss go down.
//   --sync all|loss [all]    what each timed step waits for: all = loss + new params + Adam moments
//                            (blockUntilReady), loss = only the loss readback
//   --time-limit S [780]     take no further step once this many seconds have passed since start (a step
//                            already running is not interrupted)
//   --lr F [3e-4]  --seed N [0]  --C N [16]
//   --profile                after the timed steps, run one more step under jax-js's profiler (WebGPU
//                            timestamp queries, reported through performance.measure) and print the top kernels
//   --json FILE              append the summary (one JSON line) to FILE
//   --dump FILE              instead of training: one value+grad evaluation with host-made noise; writes
//                            params, x, noise, jax-js's loss and gradients to FILE (a cross-check file; its checker is not part of this project)
//
// As a module (same process as another engine, e.g. a side-by-side bench):
//   import { runJaxjsHvae } from "./jaxjs_hvae.ts";
//   const summary = await runJaxjsHvae({ batch: 128, loss: "elbo", steps: 5 });
// (The module calls jax-js's init() itself; the caller should end with Deno.exit(), since jax-js's wasm
// workers keep the process alive.)
//
// Model (the project's `small` preset): ResBlock(x) = skip(x) + conv2(silu(conv1(silu(x)))); DownBlock:
// conv2 3x3 stride 2, skip 2x2 avg-pool; UpBlock: conv2 3x3 stride-2 transposed (pad 1, output pad 1), skip 2x
// nearest. sigma = softplus(u) + 1e-3. z1: 8x14x14, z2: 16, z3: 8. 122,033 parameters at C=16.
//
// Ownership: jax-js arrays are reference counted and every op consumes its arguments. Here every layer
// *borrows* parameters (`p[name].ref`) and the loss function disposes its parameter tree once at the end;
// activations are consumed, with `.ref` where one is used twice.

import {
  blockUntilReady,
  defaultDevice,
  getWebGPUDevice,
  init,
  jit,
  lax,
  nn,
  numpy as np,
  profiler,
  random,
  tree,
  valueAndGrad,
} from "@jax-js/jax";

type Arr = np.Array;
type Params = Record<string, Arr>;

export const JAXJS_VERSION = "0.1.25";
const Z1C = 8, Z2 = 16, Z3 = 8;
const B1 = 0.9, B2 = 0.999, EPS = 1e-8;

export type HvaeBenchConfig = {
  batch?: number;
  loss?: "elbo" | "informative";
  steps?: number;
  warmup?: number;
  device?: "webgpu" | "wasm" | "cpu";
  jit?: boolean;
  data?: "random" | "fixed" | "fmnist";
  sync?: "all" | "loss";
  timeLimitS?: number;
  lr?: number;
  seed?: number;
  C?: number;
  profile?: boolean;
  log?: (line: string) => void;
};

export function loadavg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").trim().split(" ").slice(0, 3)
      .join(" ");
  } catch {
    return "n/a";
  }
}

// ---------------------------------------------------------------- host PRNG (init, data, dump noise)
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function gaussianHost(rng: () => number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = Math.max(rng(), 1e-12), u2 = rng();
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}
const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
/** A materialised device array from host data (never a lazily fused constant). */
const fromHost = (data: Float32Array, shape: number[]): Arr =>
  np.array(data as Float32Array<ArrayBuffer>).reshape(shape);

// ---------------------------------------------------------------- parameters
// conv weights [Cout, Cin, k, k] + bias [Cout]; dense weights [in, out] + bias [out].
// Transposed convs ("*.c2" of up blocks) use a [Cout, Cin, 3, 3] kernel applied to the 2x-dilated input.
function convSpecs(C: number): [string, number, number, number][] {
  return [
    ["enc0", 1, C, 5],
    ["enc1.c1", C, C, 3],
    ["enc1.c2", C, C, 3],
    ["enc2.c1", C, C, 3],
    ["enc2.c2", C, C, 3],
    ["enc3.c1", C, C, 3],
    ["enc3.c2", C, C, 3],
    ["dec3.c1", C, C, 3],
    ["dec3.c2", C, C, 3],
    ["dec2.c1", C, C, 3],
    ["dec2.c2", C, C, 3],
    ["dec1in", Z1C, C, 3],
    ["dec1a.c1", C, C, 3],
    ["dec1a.c2", C, C, 3],
    ["dec1b.c1", C, C, 3],
    ["dec1b.c2", C, C, 3],
    ["out", C, 1, 3],
    ["q1", C, 2 * Z1C, 3],
    ["p1", C, 2 * Z1C, 3],
  ];
}
function denseSpecs(C: number): [string, number, number][] {
  return [
    ["q2", C * 49, 2 * Z2],
    ["q3", C * 49, 2 * Z3],
    ["in3", Z3, C * 49],
    ["p2", C * 49, 2 * Z2],
    ["in2", Z2, C * 49],
  ];
}
type HostTensor = { data: Float32Array; shape: number[] };
/** Host-side parameter values (PyTorch-default-like U(-1/sqrt(fan_in), 1/sqrt(fan_in))). */
function initParamsHost(C: number, seed: number): Record<string, HostTensor> {
  const rng = mulberry32(seed * 7919 + 17);
  const out: Record<string, HostTensor> = {};
  const unif = (n: number, bound: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (2 * rng() - 1) * bound;
    return a;
  };
  for (const [name, cin, cout, k] of convSpecs(C)) {
    const bound = 1 / Math.sqrt(cin * k * k);
    out[name + ".w"] = {
      data: unif(cout * cin * k * k, bound),
      shape: [cout, cin, k, k],
    };
    out[name + ".b"] = { data: unif(cout, bound), shape: [cout] };
  }
  for (const [name, fin, fout] of denseSpecs(C)) {
    const bound = 1 / Math.sqrt(fin);
    out[name + ".w"] = { data: unif(fin * fout, bound), shape: [fin, fout] };
    out[name + ".b"] = { data: unif(fout, bound), shape: [fout] };
  }
  return out;
}

// ---------------------------------------------------------------- layers (borrow params, consume x)
const act = (x: Arr): Arr => nn.silu(x);
const softplus = (x: Arr): Arr => np.logaddexp(0, x); // nn.softplus(100) = Infinity in 0.1.25

function conv(p: Params, name: string, x: Arr, stride = 1, pad = 1): Arr {
  const w = p[name + ".w"].ref, b = p[name + ".b"].ref;
  const y = lax.convGeneralDilated(x, w, [stride, stride], [[pad, pad], [
    pad,
    pad,
  ]]);
  return y.add(b.reshape([1, b.shape[0], 1, 1]));
}
/** 3x3 stride-2 transposed conv, pad 1, output padding 1 (H -> 2H): conv over the 2x lhs-dilated input with
 * padding (k-1-pad, k-1-pad+output_pad) = (1, 2). lax.convTranspose(x, w, [2,2], [[1,0],[1,0]]) gives the same
 * numbers (checked: max |diff| = 0); this form states the padding explicitly. */
function convT(p: Params, name: string, x: Arr): Arr {
  const w = p[name + ".w"].ref, b = p[name + ".b"].ref;
  const y = lax.convGeneralDilated(x, w, [1, 1], [[1, 2], [1, 2]], {
    lhsDilation: [2, 2],
  });
  return y.add(b.reshape([1, b.shape[0], 1, 1]));
}
function dense(p: Params, name: string, x: Arr): Arr {
  return np.matmul(x, p[name + ".w"].ref).add(p[name + ".b"].ref);
}
function avgPool2(x: Arr): Arr {
  const [n, c, h, w] = x.shape;
  return x.reshape([n, c, h / 2, 2, w / 2, 2]).mean([3, 5]);
}
function upsample2(x: Arr): Arr {
  const [n, c, h, w] = x.shape;
  return np.broadcastTo(x.reshape([n, c, h, 1, w, 1]), [n, c, h, 2, w, 2])
    .reshape([n, c, 2 * h, 2 * w]);
}
function resBlock(
  p: Params,
  name: string,
  x: Arr,
  kind: "same" | "down" | "up",
): Arr {
  const h = act(conv(p, name + ".c1", act(x.ref)));
  const y = kind === "same"
    ? conv(p, name + ".c2", h)
    : kind === "down"
    ? conv(p, name + ".c2", h, 2, 1)
    : convT(p, name + ".c2", h);
  const s = kind === "same" ? x : kind === "down" ? avgPool2(x) : upsample2(x);
  return s.add(y);
}
const flat = (x: Arr): Arr => x.reshape([x.shape[0], prod(x.shape.slice(1))]);

// ---------------------------------------------------------------- distributions
type Gauss = { mu: Arr; sigma: Arr };
function gaussFrom(raw: Arr): Gauss {
  const [mu, u] = np.split(raw, 2, 1);
  return { mu, sigma: softplus(u).add(1e-3) };
}
/** z = mu + sigma * eps; borrows g. */
const rsample = (g: Gauss, eps: Arr): Arr => g.mu.ref.add(g.sigma.ref.mul(eps));
const disposeGauss = (g: Gauss) => {
  g.mu.dispose();
  g.sigma.dispose();
};
const sumPerItem = (x: Arr): Arr => flat(x).sum(1);
/** KL(q || p) of diagonal Gaussians summed over non-batch dims; consumes q and p. */
function klGauss(q: Gauss, p: Gauss): Arr {
  const logRatio = np.log(p.sigma.ref).sub(np.log(q.sigma.ref));
  const num = np.square(q.sigma).add(np.square(q.mu.sub(p.mu)));
  const t = num.div(np.square(p.sigma).mul(2));
  return sumPerItem(logRatio.add(t).sub(0.5));
}
/** KL(q || N(0, I)); consumes q. */
function klStd(q: Gauss): Arr {
  const t = np.square(q.sigma.ref).add(np.square(q.mu)).sub(1).mul(0.5).sub(
    np.log(q.sigma),
  );
  return sumPerItem(t);
}
/** sum over pixels of log Bernoulli(x | sigmoid(l)) = x*l - softplus(l); consumes both. */
const bernoulliLL = (logits: Arr, x: Arr): Arr => sumPerItem(x.mul(logits.ref).sub(softplus(logits)));

// ---------------------------------------------------------------- networks
function encode(p: Params, x: Arr): [Gauss, Gauss, Gauss] {
  const h1 = resBlock(p, "enc1", conv(p, "enc0", x, 2, 2), "same");
  const h2 = resBlock(p, "enc2", h1.ref, "down");
  const h3 = resBlock(p, "enc3", h2.ref, "same");
  const q1 = gaussFrom(conv(p, "q1", act(h1)));
  const q2 = gaussFrom(dense(p, "q2", flat(act(h2))));
  const q3 = gaussFrom(dense(p, "q3", flat(act(h3))));
  return [q1, q2, q3];
}
/** dense(z) reshaped to [n, C, 7, 7]; C is read off the dense layer's width. */
function toMap(p: Params, name: string, z: Arr): Arr {
  const n = z.shape[0], width = p[name + ".w"].shape[1];
  return dense(p, name, z).reshape([n, width / 49, 7, 7]);
}
function pZ2(p: Params, z3: Arr): Gauss {
  const d = resBlock(p, "dec3", toMap(p, "in3", z3), "same");
  return gaussFrom(dense(p, "p2", flat(act(d))));
}
function pZ1(p: Params, z2: Arr): Gauss {
  const d = resBlock(p, "dec2", toMap(p, "in2", z2), "up");
  return gaussFrom(conv(p, "p1", act(d)));
}
function pxLogits(p: Params, z1: Arr): Arr {
  let h = conv(p, "dec1in", z1);
  h = resBlock(p, "dec1a", h, "same");
  h = resBlock(p, "dec1b", h, "up");
  return conv(p, "out", act(h));
}

/** noise(i, shape): standard normal draw number i (0: z3, 1: z2, 2: z1, 3: z1', 4: z2'', 5: z1''), the same
 * order of the reference PyTorch code. */
type Noise = (i: number, shape: number[]) => Arr;

/** -mean_b[ LL - KL1 - KL2 - KL3 ] (elbo) or -mean_b[ (LL0+LL1+LL2)/3 - KL ] (informative).
 * Consumes p and x. Returns the scalar loss. */
function hvaeLoss(p: Params, x: Arr, noise: Noise, informative: boolean): Arr {
  const n = x.shape[0];
  const [q1, q2, q3] = encode(p, x.ref);
  const z3 = rsample(q3, noise(0, [n, Z3]));
  const z2 = rsample(q2, noise(1, [n, Z2]));
  const z1 = rsample(q1, noise(2, [n, Z1C, 14, 14]));
  const p2 = pZ2(p, z3);
  const p1 = pZ1(p, z2);
  let ll: Arr;
  if (!informative) {
    ll = bernoulliLL(pxLogits(p, z1), x);
  } else {
    const z1a = rsample(p1, noise(3, [n, Z1C, 14, 14])); // z>1 ~ q, z1 ~ p(z1|z2)
    const z2b = rsample(p2, noise(4, [n, Z2])); // z3 ~ q, z2 ~ p(z2|z3), z1 ~ p(z1|z2)
    const p1b = pZ1(p, z2b);
    const z1b = rsample(p1b, noise(5, [n, Z1C, 14, 14]));
    disposeGauss(p1b);
    const logits = pxLogits(p, np.concatenate([z1, z1a, z1b], 0)); // one decoder call on 3x batch
    const x3 = np.concatenate([x.ref, x.ref, x], 0);
    ll = bernoulliLL(logits, x3).reshape([3, n]).mean(0);
  }
  const kl = klGauss(q1, p1).add(klGauss(q2, p2)).add(klStd(q3));
  tree.dispose(p);
  return ll.sub(kl).mean().neg();
}

function keyNoise(key: Arr, count: number): Noise {
  const keys = [...random.split(key, count)];
  return (i, shape) => random.normal(keys[i], shape);
}

// ---------------------------------------------------------------- training step (value+grad+Adam)
type StepFn = (
  p: Params,
  m: Params,
  v: Params,
  x: Arr,
  key: Arr,
  c1: Arr,
  c2: Arr,
) => [Arr, Params, Params, Params];
/** One step: loss and gradient w.r.t. all parameters, then a torch-style Adam update
 * p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), with c1 = 1/(1-b1^t), c2 = 1/(1-b2^t) passed in. */
function makeTrainStep(informative: boolean, lr: number): StepFn {
  const lossOf = (pp: Params, xx: Arr, kk: Arr) =>
    hvaeLoss(pp, xx, keyNoise(kk, informative ? 6 : 3), informative);
  return (p, m, v, x, key, c1, c2) => {
    const [loss, g] = valueAndGrad(lossOf)(tree.ref(p), x, key);
    const [pl, def] = tree.flatten(p);
    const gl = tree.leaves(g as Params),
      ml = tree.leaves(m),
      vl = tree.leaves(v);
    const np_: Arr[] = [], nm: Arr[] = [], nv: Arr[] = [];
    for (let i = 0; i < pl.length; i++) {
      const gi = gl[i];
      const mi = ml[i].mul(B1).add(gi.ref.mul(1 - B1));
      const vi = vl[i].mul(B2).add(gi.ref.mul(gi).mul(1 - B2));
      const upd = mi.ref.mul(c1.ref).div(np.sqrt(vi.ref.mul(c2.ref)).add(EPS))
        .mul(lr);
      np_.push(pl[i].sub(upd));
      nm.push(mi);
      nv.push(vi);
    }
    c1.dispose();
    c2.dispose();
    return [
      loss,
      tree.unflatten(def, np_) as Params,
      tree.unflatten(def, nm) as Params,
      tree.unflatten(def, nv) as Params,
    ];
  };
}

// ---------------------------------------------------------------- data
export async function loadFmnist(
  n: number,
  seed: number,
): Promise<Float32Array | null> {
  const path = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  try {
    const f = await Deno.open(path);
    const raw = new Uint8Array(
      await new Response(
        f.readable.pipeThrough(new DecompressionStream("gzip")),
      ).arrayBuffer(),
    );
    const rng = mulberry32(seed + 12345);
    const out = new Float32Array(n * 784);
    for (let i = 0; i < n * 784; i++) {
      out[i] = rng() < raw[16 + i] / 255 ? 1 : 0;
    }
    return out;
  } catch {
    return null;
  }
}
function randomBinary(rng: () => number, n: number): Float32Array {
  const out = new Float32Array(n * 784);
  for (let i = 0; i < out.length; i++) out[i] = rng() < 0.5 ? 1 : 0;
  return out;
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function setupDevice(
  device: string,
  log: (s: string) => void,
): Promise<string> {
  const tInit = performance.now();
  const avail = await init();
  if (!avail.includes(device as "webgpu")) {
    throw new Error(`device ${device} not available (have ${avail.join(",")})`);
  }
  defaultDevice(device as "webgpu");
  let adapter = device;
  if (device === "webgpu") {
    const info = (getWebGPUDevice() as unknown as {
      adapterInfo?: { description?: string };
    }).adapterInfo;
    adapter = `webgpu: ${info?.description ?? "?"}`;
  }
  log(
    `jax-js ${JAXJS_VERSION} | ${adapter} | init ${
      (performance.now() - tInit).toFixed(0)
    } ms | Deno ${Deno.version.deno}`,
  );
  return adapter;
}

// ---------------------------------------------------------------- benchmark / training loop
export type HvaeBenchSummary = Record<string, unknown> & {
  median_ms: number | null;
};

export async function runJaxjsHvae(
  cfg: HvaeBenchConfig = {},
): Promise<HvaeBenchSummary> {
  const tStart = performance.now();
  const BATCH = cfg.batch ?? 128,
    LOSS = cfg.loss ?? "elbo",
    STEPS = cfg.steps ?? 5,
    WARMUP = cfg.warmup ?? 2;
  const DEVICE = cfg.device ?? "webgpu",
    USE_JIT = cfg.jit ?? true,
    DATA = cfg.data ?? "random";
  const SYNC = cfg.sync ?? "all",
    TIME_LIMIT_S = cfg.timeLimitS ?? 780,
    LR = cfg.lr ?? 3e-4;
  const SEED = cfg.seed ?? 0,
    C = cfg.C ?? 16,
    log = cfg.log ?? ((s: string) => console.log(s));
  if (LOSS !== "elbo" && LOSS !== "informative") {
    throw new Error("loss must be elbo or informative");
  }

  const adapter = await setupDevice(DEVICE, log);
  const hostParams = initParamsHost(C, SEED);
  const nParams = Object.values(hostParams).reduce(
    (a, t) => a + t.data.length,
    0,
  );
  const mkTree = (f: (t: HostTensor) => Arr): Params => {
    const t: Params = {};
    for (const [k, ht] of Object.entries(hostParams)) t[k] = f(ht);
    return t;
  };
  let p = mkTree(({ data, shape }) => fromHost(data, shape));
  let m = mkTree(({ data, shape }) => fromHost(new Float32Array(data.length), shape));
  let v = mkTree(({ data, shape }) => fromHost(new Float32Array(data.length), shape));
  await blockUntilReady([p, m, v]);

  const dataRng = mulberry32(SEED * 31 + 5);
  let fixedX: Float32Array | null = null;
  let dataDesc: string = DATA;
  if (DATA === "fmnist") {
    fixedX = await loadFmnist(BATCH, SEED);
    if (!fixedX) {
      log("fashion-mnist not found; using a fixed random binary batch");
      dataDesc = "fixed";
    }
  }
  if (DATA === "fixed" || (DATA === "fmnist" && !fixedX)) {
    fixedX = randomBinary(dataRng, BATCH);
  }

  const rawStep = makeTrainStep(LOSS === "informative", LR);
  const step = USE_JIT ? jit(rawStep) : rawStep;
  log(
    `HVAE small C=${C} | ${nParams} params | loss ${LOSS} | batch ${BATCH} | jit ${USE_JIT} | data ${dataDesc}` +
      ` | sync ${SYNC} | warmup ${WARMUP} + steps ${STEPS} | load ${loadavg()}`,
  );

  const prepInputs = async (s: number) => {
    const x = fromHost(fixedX ?? randomBinary(dataRng, BATCH), [
      BATCH,
      1,
      28,
      28,
    ]);
    const key = random.key(SEED * 100003 + s);
    const t = s + 1;
    const c1 = np.array(new Float32Array([1 / (1 - Math.pow(B1, t))])).reshape(
      [],
    );
    const c2 = np.array(new Float32Array([1 / (1 - Math.pow(B2, t))])).reshape(
      [],
    );
    await blockUntilReady([x, key, c1, c2]);
    return { x, key, c1, c2 };
  };

  const times: number[] = [], warmTimes: number[] = [], losses: number[] = [];
  const loadBefore = loadavg();
  let stoppedEarly = false;
  let s = 0;
  for (; s < WARMUP + STEPS; s++) {
    const elapsed = (performance.now() - tStart) / 1000;
    const last = times.length
      ? times[times.length - 1]
      : warmTimes.length
      ? warmTimes[warmTimes.length - 1]
      : 0;
    if (s > 0 && elapsed + last / 1000 > TIME_LIMIT_S) {
      log(
        `time guard: stopping after ${s} steps (${elapsed.toFixed(0)} s elapsed, limit ${TIME_LIMIT_S} s)`,
      );
      stoppedEarly = true;
      break;
    }
    const { x, key, c1, c2 } = await prepInputs(s);
    const t0 = performance.now();
    const out = step(p, m, v, x, key, c1, c2);
    const loss = out[0];
    p = out[1];
    m = out[2];
    v = out[3];
    if (SYNC === "all") await blockUntilReady([loss, p, m, v]);
    const lv = (await loss.data())[0];
    const dt = performance.now() - t0;
    losses.push(lv);
    (s < WARMUP ? warmTimes : times).push(dt);
    log(
      `${s < WARMUP ? "warmup" : "step  "} ${String(s + 1).padStart(3)}  loss ${
        lv.toFixed(3).padStart(9)
      }  ` +
        `${dt.toFixed(1).padStart(9)} ms  load ${loadavg()}`,
    );
    if (!Number.isFinite(lv)) {
      log("non-finite loss; stopping");
      break;
    }
  }

  let profileTop: { kernel: string; ms: number; n: number }[] | undefined;
  if (cfg.profile) {
    // One extra step with kernel tracing on; entries arrive as performance.measure() marks.
    performance.clearMeasures();
    const { x, key, c1, c2 } = await prepInputs(s);
    profiler.startTrace();
    const t0 = performance.now();
    const out = step(p, m, v, x, key, c1, c2);
    p = out[1];
    m = out[2];
    v = out[3];
    await blockUntilReady([out[0], p, m, v]);
    await out[0].data();
    const wall = performance.now() - t0;
    profiler.stopTrace();
    await new Promise((r) => setTimeout(r, 500));
    const entries = performance.getEntriesByType("measure");
    const agg = new Map<string, { n: number; ms: number }>();
    let total = 0;
    for (const e of entries) {
      const a = agg.get(e.name) ?? { n: 0, ms: 0 };
      a.n++;
      a.ms += e.duration;
      agg.set(e.name, a);
      total += e.duration;
    }
    profileTop = [...agg.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(
      0,
      12,
    )
      .map(([kernel, a]) => ({ kernel, ms: +a.ms.toFixed(1), n: a.n }));
    log(
      `profile: ${entries.length} traced dispatches, kernel time sum ${total.toFixed(1)} ms, step wall ${
        wall.toFixed(1)
      } ms` +
        " (labels are jax-js's: Kernel[output size])",
    );
    for (const t of profileTop) {
      log(
        `  ${t.ms.toFixed(1).padStart(9)} ms  x${String(t.n).padStart(3)}  ${t.kernel}`,
      );
    }
  }

  // cost of one extra "everything ready" sync with nothing pending (a floor inside each --sync all step)
  const ts = performance.now();
  await blockUntilReady([p, m, v]);
  const syncFloor = performance.now() - ts;
  const ts2 = performance.now();
  await np.sum(p["out.b"].ref).data();
  const readFloor = performance.now() - ts2;
  tree.dispose([p, m, v]);
  if (USE_JIT) (step as { dispose?: () => void }).dispose?.();

  const summary: HvaeBenchSummary = {
    peer: `jax-js@${JAXJS_VERSION}`,
    adapter,
    device: DEVICE,
    jit: USE_JIT,
    loss: LOSS,
    batch: BATCH,
    C,
    params: nParams,
    data: dataDesc,
    sync: SYNC,
    warmup_ms: warmTimes.map((t) => +t.toFixed(1)),
    steps_ms: times.map((t) => +t.toFixed(1)),
    steps_timed: times.length,
    median_ms: times.length ? +median(times).toFixed(1) : null,
    mean_ms: times.length ? +(times.reduce((a, b) => a + b, 0) / times.length).toFixed(1) : null,
    min_ms: times.length ? +Math.min(...times).toFixed(1) : null,
    max_ms: times.length ? +Math.max(...times).toFixed(1) : null,
    sync_floor_ms: +syncFloor.toFixed(1),
    read_floor_ms: +readFloor.toFixed(1),
    losses: losses.map((l) => +l.toFixed(4)),
    stopped_early: stoppedEarly,
    loadavg_before: loadBefore,
    loadavg_after: loadavg(),
    total_s: +((performance.now() - tStart) / 1000).toFixed(1),
    deno: Deno.version.deno,
    date: new Date().toISOString(),
    ...(profileTop ? { profile_top: profileTop } : {}),
  };
  return summary;
}

// ---------------------------------------------------------------- --dump (checked by check_vs_torch.py)
export async function dumpJaxjsHvae(
  cfg: HvaeBenchConfig,
  path: string,
): Promise<number> {
  const BATCH = cfg.batch ?? 128,
    LOSS = cfg.loss ?? "elbo",
    SEED = cfg.seed ?? 0,
    C = cfg.C ?? 16;
  const DEVICE = cfg.device ?? "webgpu",
    log = cfg.log ?? ((s: string) => console.log(s));
  await setupDevice(DEVICE, log);
  const hostParams = initParamsHost(C, SEED);
  const rng = mulberry32(SEED + 999);
  const fm = cfg.data === "fmnist" ? await loadFmnist(BATCH, SEED) : null;
  const xHost = fm ?? randomBinary(rng, BATCH);
  const informative = LOSS === "informative";
  const shapes = [
    [BATCH, Z3],
    [BATCH, Z2],
    [BATCH, Z1C, 14, 14],
    [BATCH, Z1C, 14, 14],
    [BATCH, Z2],
    [BATCH, Z1C, 14, 14],
  ];
  const epsHost = shapes.map((s) => gaussianHost(rng, prod(s)));
  const f = (pp: Params, xx: Arr, e: Arr[]) => {
    const out = hvaeLoss(pp, xx, (i) => e[i].ref, informative);
    for (const a of e) a.dispose();
    return out;
  };
  const p: Params = {};
  for (const [k, { data, shape }] of Object.entries(hostParams)) {
    p[k] = fromHost(data, shape);
  }
  const [loss, g] = valueAndGrad(f)(
    tree.ref(p),
    fromHost(xHost, [BATCH, 1, 28, 28]),
    epsHost.map((d, i) => fromHost(d, shapes[i])),
  );
  const lossV = (await loss.data())[0];
  // file: one JSON header line, then float32 blobs in header order
  const blobs: { name: string; shape: number[]; data: Float32Array }[] = [];
  blobs.push({ name: "x", shape: [BATCH, 1, 28, 28], data: xHost });
  epsHost.forEach((d, i) => blobs.push({ name: `eps${i}`, shape: shapes[i], data: d }));
  for (const [k, { shape, data }] of Object.entries(hostParams)) {
    blobs.push({ name: `param:${k}`, shape, data });
  }
  for (const k of Object.keys(hostParams)) {
    const gk = (g as Params)[k];
    blobs.push({
      name: `grad:${k}`,
      shape: gk.shape,
      data: (await gk.data()) as Float32Array,
    });
  }
  tree.dispose(p);
  const header = JSON.stringify({
    loss: LOSS,
    batch: BATCH,
    C,
    jaxjs_loss: lossV,
    device: DEVICE,
    blobs: blobs.map((b) => ({ name: b.name, shape: b.shape })),
  });
  const enc = new TextEncoder().encode(header + "\n");
  const buf = new Uint8Array(
    enc.length + blobs.reduce((a, b) => a + b.data.byteLength, 0),
  );
  buf.set(enc, 0);
  let off = enc.length;
  for (const b of blobs) {
    buf.set(
      new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength),
      off,
    );
    off += b.data.byteLength;
  }
  Deno.writeFileSync(path, buf);
  log(`dump: ${LOSS} B=${BATCH} jax-js loss ${lossV.toFixed(4)} -> ${path}`);
  return lossV;
}

// ---------------------------------------------------------------- CLI
function parseFlags(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf("=");
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
      out[a.slice(2)] = argv[++i];
    } else out[a.slice(2)] = "true";
  }
  return out;
}

if (import.meta.main) {
  const a = parseFlags(Deno.args);
  const known = [
    "batch",
    "loss",
    "steps",
    "warmup",
    "device",
    "jit",
    "data",
    "sync",
    "time-limit",
    "lr",
    "seed",
    "C",
    "dump",
    "json",
    "profile",
  ];
  for (const k of Object.keys(a)) {
    if (!known.includes(k)) throw new Error(`unknown flag --${k}`);
  }
  const num = (k: string) => (a[k] === undefined ? undefined : Number(a[k]));
  const cfg: HvaeBenchConfig = {
    batch: num("batch"),
    loss: a.loss as HvaeBenchConfig["loss"],
    steps: num("steps"),
    warmup: num("warmup"),
    device: a.device as HvaeBenchConfig["device"],
    jit: a.jit === undefined ? undefined : a.jit !== "false",
    data: a.data as HvaeBenchConfig["data"],
    sync: a.sync as HvaeBenchConfig["sync"],
    timeLimitS: num("time-limit"),
    lr: num("lr"),
    seed: num("seed"),
    C: num("C"),
    profile: a.profile === "true",
  };
  if (a.dump) {
    await dumpJaxjsHvae(cfg, a.dump);
  } else {
    const summary = await runJaxjsHvae(cfg);
    console.log("SUMMARY " + JSON.stringify(summary));
    if (a.json) {
      Deno.writeTextFileSync(a.json, JSON.stringify(summary) + "\n", {
        append: true,
      });
    }
  }
  Deno.exit(0); // jax-js's wasm workers would otherwise keep the process alive
}
