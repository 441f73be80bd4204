/**
 * The fused probability primitives: sigma maps, reparameterisation (noise regenerated from the key in
 * the backward pass), Gaussian log-density, analytic KL and the log-ratio estimator, Bernoulli
 * log-likelihood: forward against float64 formulas, gradients against finite differences, with
 * broadcasting (a standard-normal prior as scalars) and both sigma maps.
 */

import assert from "node:assert/strict";
import * as ops from "../autograd/ops.ts";
import { SIGMA_LOG2, SIGMA_SOFTPLUS, type SigmaMap } from "../kernels/distributions.ts";
import { philox, philoxInputs, type RandomKey } from "../kernels/philox.ts";
import { read, readScalar, type Tensor, tensor } from "../kernels/tensor.ts";
import { grad } from "../autograd/tape.ts";
import { checkOp, createRng, gpuTest, randomNd } from "./helpers.ts";
import * as ref from "./reference.ts";

const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);
const MAPS: [string, SigmaMap][] = [["log2", SIGMA_LOG2], ["softplus", SIGMA_SOFTPLUS]];
const tol = { rtol: 1e-5, atol: 2e-6 };

/** eps of element i under `key`, as the GPU's Box-Muller computes it (in float64 here). */
function epsAt(key: RandomKey, i: number): number {
  const { counter, key: k } = philoxInputs(key, i);
  const [w0, w1] = philox(counter, k);
  const u1 = ((w0 >>> 8) + 1) * 2 ** -24, u2 = (w1 >>> 8) * 2 ** -24;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

for (const [name, map] of MAPS) {
  gpuTest(`sigma (${name} map): value and gradient, including where the floor binds`, async () => {
    const rng = createRng(401);
    await checkOp({
      name: `sigma ${name}`,
      inputs: [randomNd(rng, [4, 9], { low: -6, high: 6 })],
      gpu: (u) => ops.sigma(u, map),
      ref: (u) => ref.mapBroadcast([u], ([v]) => ref.sigmaOf(v, map)),
      tol,
    });
    if (map.floor > 0) {
      const u = tensor([-60, -40]);
      assert.deepEqual([...await read(ops.sigma(u, map))], [Math.fround(map.floor), Math.fround(map.floor)]);
    }
  });

  gpuTest(
    `reparameterize (${name} map): z = mu + sigma(u) eps; gradients use the regenerated eps`,
    async () => {
      const rng = createRng(403);
      const key = { seed: 77, stream: 5, offset: 12 };
      // mu broadcasts over the batch: the element index (and so eps) is the output's.
      await checkOp({
        name: `reparameterize ${name}`,
        inputs: [randomNd(rng, [3, 5]), randomNd(rng, [2, 3, 5], { low: -2, high: 2 })],
        gpu: (mu, u) => ops.reparameterize(mu, u, key, map),
        ref: (mu, u) => ref.mapBroadcast([mu, u], ([m, v], i) => m + ref.sigmaOf(v, map) * epsAt(key, i)),
        tol: { rtol: 1e-5, atol: 2e-5 },
      });
    },
  );

  gpuTest(`gaussianLogProb and gaussianKl (${name} map): values and gradients in every input`, async () => {
    const rng = createRng(409);
    await checkOp({
      name: `gaussianLogProb ${name}`,
      inputs: [
        randomNd(rng, [4, 6], { low: -2, high: 2 }),
        randomNd(rng, [4, 6]),
        randomNd(rng, [4, 6], { low: -1, high: 2 }),
      ],
      gpu: (z, mu, u) => ops.gaussianLogProb(z, mu, u, map),
      ref: (z, mu, u) =>
        ref.mapBroadcast([z, mu, u], ([zv, m, v]) => {
          const s = ref.sigmaOf(v, map);
          return -LOG_SQRT_2PI - Math.log(s) - 0.5 * ((zv - m) / s) ** 2;
        }),
      tol,
    });
    const kl = ([mq, uq, mp, up]: number[]) => {
      const sq = ref.sigmaOf(uq, map), sp = ref.sigmaOf(up, map);
      return Math.log(sp / sq) + (sq * sq + (mq - mp) ** 2) / (2 * sp * sp) - 0.5;
    };
    await checkOp({
      name: `gaussianKl ${name}`,
      inputs: [0, 1, 2, 3].map(() => randomNd(rng, [3, 7], { low: -1.5, high: 1.5 })),
      gpu: (mq, uq, mp, up) => ops.gaussianKl(mq, uq, mp, up, map),
      ref: (...xs) => ref.mapBroadcast(xs, kl),
      tol,
    });
    // The top prior p(z_L) = N(0, I) as broadcast scalars (u = 0 gives sigma = 1 under log2).
    await checkOp({
      name: `gaussianKl against a broadcast prior ${name}`,
      inputs: [randomNd(rng, [4, 8]), randomNd(rng, [4, 8]), ref.nd([1], [0]), ref.nd([1], [0.3])],
      gpu: (mq, uq, mp, up) => ops.gaussianKl(mq, uq, mp, up, map),
      ref: (...xs) => ref.mapBroadcast(xs, kl),
      tol,
      grad: { wrt: [0, 1, 3] },
    });
    await checkOp({
      name: `gaussianLogRatio ${name}`,
      inputs: [0, 1, 2, 3, 4].map(() => randomNd(rng, [2, 5], { low: -1.5, high: 1.5 })),
      gpu: (z, mq, uq, mp, up) => ops.gaussianLogRatio(z, mq, uq, mp, up, map),
      ref: (...xs) =>
        ref.mapBroadcast(xs, ([z, mq, uq, mp, up]) => {
          const lp = (m: number, v: number) => {
            const s = ref.sigmaOf(v, map);
            return -LOG_SQRT_2PI - Math.log(s) - 0.5 * ((z - m) / s) ** 2;
          };
          return lp(mq, uq) - lp(mp, up);
        }),
      tol,
    });
  });
}

/** LVAE's precision-weighted product in float64: (mu, sigma). */
function precisionRef([m1, u1, m2, u2]: number[], map: SigmaMap): { mu: number; s: number } {
  const p1 = ref.sigmaOf(u1, map) ** -2, p2 = ref.sigmaOf(u2, map) ** -2;
  return { mu: (m1 * p1 + m2 * p2) / (p1 + p2), s: Math.sqrt(1 / (p1 + p2)) };
}

for (const [name, map] of MAPS) {
  gpuTest(`precisionWeighted (${name} map): LVAE's mean and scale, values and gradients`, async () => {
    const rng = createRng(421);
    const inputs = () => [0, 1, 2, 3].map((k) => randomNd(rng, [3, 6], { low: k % 2 ? -1.5 : -2, high: 2 }));
    await checkOp({
      name: `precisionWeighted mean ${name}`,
      inputs: inputs(),
      gpu: (m1, u1, m2, u2) => ops.precisionWeighted(m1, u1, m2, u2, map).mu,
      ref: (...xs) => ref.mapBroadcast(xs, (v) => precisionRef(v, map).mu),
      tol,
    });
    // u through the map's inverse: sigma(u) is the product's sigma, in float64 log(expm1(.)).
    await checkOp({
      name: `precisionWeighted scale ${name}`,
      inputs: inputs(),
      gpu: (m1, u1, m2, u2) => ops.precisionWeighted(m1, u1, m2, u2, map).u,
      ref: (...xs) =>
        ref.mapBroadcast(
          xs,
          (v) => Math.log(Math.expm1(map.beta * (precisionRef(v, map).s - map.offset))) / map.beta,
        ),
      tol: { rtol: 1e-4, atol: 2e-5 },
      grad: { wrt: [1, 3] },
    });
    // Against a standard-normal prior broadcast as scalars; sigma(u) recovers the product's sigma.
    const [m1, u1] = [randomNd(rng, [2, 5]), randomNd(rng, [2, 5], { low: -1, high: 1 })];
    const top = { mu: tensor([0]), u: tensor([map === SIGMA_LOG2 ? 0 : 0.5413]) };
    const q = ops.precisionWeighted(tensor(m1.data, m1.shape), tensor(u1.data, u1.shape), top.mu, top.u, map);
    const sq = await read(ops.sigma(q.u, map));
    for (let i = 0; i < sq.length; i++) {
      const want = precisionRef([m1.data[i], u1.data[i], 0, map === SIGMA_LOG2 ? 0 : 0.5413], map).s;
      assert.ok(Math.abs(sq[i] - want) < 1e-5 * want + 1e-6, `sigma(u) ${sq[i]} vs ${want}`);
    }
  });
}

gpuTest(
  "precisionWeighted: a product narrower than the map allows stays finite, with zero scale gradient",
  async () => {
    // Two posteriors at the softplus map's lowest sigma (1e-3): their product's 7.1e-4 is below it.
    const u = tensor([-30, -30]);
    const q = ops.precisionWeighted(tensor([1, 2]), u, tensor([3, 4]), u, SIGMA_SOFTPLUS);
    const [mu, raw] = [await read(q.mu), await read(q.u)];
    [2, 3].forEach((want, i) => assert.ok(Math.abs(mu[i] - want) < 1e-6 * want, `mu ${mu[i]}`));
    for (const v of raw) assert.ok(Number.isFinite(v), `u ${v}`);
    const gu = grad((uu: Tensor) =>
      ops.sum(ops.precisionWeighted(tensor([1, 2]), uu, tensor([3, 4]), uu, SIGMA_SOFTPLUS).u)
    )(u);
    for (const v of await read(gu)) assert.equal(v, 0);
  },
);

gpuTest("gaussianKl equals the mean of log q(z) - log p(z) over many posterior samples", async () => {
  const n = 200_000;
  const [mq, uq, mp, up] = [0.7, -0.4, -0.2, 0.5].map((v) =>
    tensor(Float32Array.from({ length: n }, () => v))
  );
  const z = ops.reparameterize(mq, uq, { seed: 5, stream: 0, offset: 0 });
  const mc = await readScalar(ops.mean(ops.gaussianLogRatio(z, mq, uq, mp, up)));
  const analytic = (await read(ops.gaussianKl(mq, uq, mp, up)))[0];
  // The estimator's standard deviation here is about 0.8 per sample: 5 standard errors is 0.009.
  assert.ok(Math.abs(mc - analytic) < 0.01, `Monte-Carlo KL ${mc} vs analytic ${analytic}`);
});

gpuTest("bernoulliLogLik: stable for large logits; gradient wrt logits is x - sigmoid(l)", async () => {
  const rng = createRng(419);
  await checkOp({
    name: "bernoulliLogLik",
    inputs: [
      randomNd(rng, [3, 10], { low: -8, high: 8 }),
      randomNd(rng, [3, 10], { low: 0, high: 1, integer: true }),
    ],
    gpu: (l, x) => ops.bernoulliLogLik(l, x),
    ref: (l, x) =>
      ref.mapBroadcast(
        [l, x],
        ([lv, xv]) => xv * lv - (Math.max(lv, 0) + Math.log1p(Math.exp(-Math.abs(lv)))),
      ),
    tol,
    grad: { wrt: [0] },
  });
  const extremes = await read(ops.bernoulliLogLik(tensor([100, -100, 100, -100]), tensor([1, 0, 0, 1])));
  assert.deepEqual([...extremes].map((v) => Math.round(v) + 0), [0, 0, -100, -100]); // + 0: no -0
  assert.ok(extremes.every(Number.isFinite));
});
