#!/usr/bin/env python3
"""The project's hierarchical VAE in PyTorch, built from a run's config.json and loaded from its
model.safetensors: an independent second implementation for two jobs.

1. --check FILE: on the batch stored in FILE (the model's input: binarised, dequantised or 8-bit levels) (written by `deno task bench:compare`), with
   posterior and prior means in place of samples, compute every per-image reconstruction term
   ll_k = log p(x | z^(k)) and KL_l, and compare them with ours (also in FILE). This proves that our
   checkpoints load elsewhere and that both implementations compute the same function.
2. --time: time one training step (loss, gradients, Adam) at the given batch size, on the CPU with one
   thread and with all threads, and on CUDA when there is a GPU; one JSON object per line.

The model follows models/hvae.ts and models/layers.ts (read them for the math): bottom-up inference
("ladder" or "markov"), top-down generation with optional decoder skips, Gaussian heads with
sigma = max(softplus(beta u) / beta + offset, floor), the run's likelihood (Bernoulli logits, the
OverSmooth Gaussian, or the 8-bit discretized logistic mixture), analytic KL, the ELBO (Eq. 2/3)
and the informative loss (Eq. 10 of Li et al. 2022). Activations are NCHW here; our checkpoints are
NHWC with filters [kh, kw, in, out] (transposed: [kh, kw, out, in]) and dense weights [in, out], so
filters are permuted on load and dense inputs are flattened in NHWC order.

Needs Python 3 with PyTorch and NumPy (Debian: apt-get install python3-torch python3-numpy). Nothing
else: safetensors are read with the json module.

  python3 bench/torch/hvae.py --run runs/small-informative-seed1 --check reference.safetensors
  python3 bench/torch/hvae.py --run DIR --time --loss elbo,informative --batch 128 --steps 3
"""

import argparse
import json
import math
import os
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


# ---------------------------------------------------------------- the 8-bit likelihood

def discretized_logistic_mixture(out, x, K):
    """log p(x) per pixel of the 256-level discretized logistic mixture, written from PixelCNN++
    (Salimans et al. 2017) as hvae-oodd uses it, one channel: out [B, 3K, H, W] (K logits, K means,
    K log-scales clamped at -7), x [B, 1, H, W] = 2v/255 - 1."""
    logits, means, log_scales = out[:, :K], out[:, K:2 * K], torch.clamp(out[:, 2 * K:3 * K], min=-7.0)
    centered = x - means
    inv = torch.exp(-log_scales)
    plus, minus = inv * (centered + 1.0 / 255), inv * (centered - 1.0 / 255)
    cdf_plus, cdf_minus = torch.sigmoid(plus), torch.sigmoid(minus)
    log_cdf_plus = plus - F.softplus(plus)            # log sigmoid(plus), the bin of level 0
    log_one_minus_cdf_min = -F.softplus(minus)        # log(1 - sigmoid(minus)), the bin of level 255
    cdf_delta = cdf_plus - cdf_minus
    mid = inv * centered
    log_pdf_mid = mid - log_scales - 2.0 * F.softplus(mid)
    inner = torch.where(cdf_delta > 1e-5, torch.log(torch.clamp(cdf_delta, min=1e-12)), log_pdf_mid - math.log(127.5))
    log_probs = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, inner))
    return torch.logsumexp(log_probs + F.log_softmax(logits, dim=1), dim=1, keepdim=True)


# ---------------------------------------------------------------- files

def read_safetensors(path):
    """name -> numpy array (F32 or U32), and the metadata; data/safetensors.ts writes the format."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise SystemExit(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": np.float32, "U32": np.uint32}.get(entry["dtype"])
        if dtype is None:
            raise SystemExit(f"{path}: '{name}' has dtype {entry['dtype']}, expected F32 or U32")
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(raw[base + begin:base + end], dtype=dtype).reshape(entry["shape"]).copy()
    return tensors, header.get("__metadata__", {})


# ---------------------------------------------------------------- geometry (kernels/conv.ts)

def same_padding(n, k, s):
    """TensorFlow's "same": output ceil(n / s), the odd element of the padding at the bottom/right."""
    out = -(-n // s)
    total = max(0, (out - 1) * s + k - n)
    return total // 2, total - total // 2


def transpose_same_crop(k, s):
    """The crop of the full (n - 1) s + k output that leaves n s ("same" for a transposed conv)."""
    c = k - s
    return (c // 2, c - c // 2) if c >= 0 else (0, c)


# ---------------------------------------------------------------- the model

class Hvae(torch.nn.Module):
    def __init__(self, cfg, tensors):
        super().__init__()
        self.cfg = cfg
        self.names = {}
        for name, value in tensors.items():
            param = torch.nn.Parameter(torch.from_numpy(np.asarray(value, dtype=np.float32)))
            self.register_parameter(name.replace(".", "__"), param)
            self.names[name] = param
        self.L = len(cfg["layers"])
        s = cfg["sigma"]
        self.beta, self.offset, self.floor = s["beta"], s["offset"], s["floor"]

    def has(self, name):
        return name + ".weight" in self.names

    def param(self, name):
        return self.names[name]

    # Weight normalisation (kernels/weightnorm.ts): w = g v / ||v|| per output unit.
    def weight(self, name, unit_axis):
        v = self.names[name + ".weight"]
        gain = self.names.get(name + ".gain")
        if gain is None:
            return v
        axes = [a for a in range(v.dim()) if a != unit_axis]
        norm = torch.sqrt((v * v).sum(dim=axes, keepdim=True)).clamp_min(1e-20)
        shape = [1] * v.dim()
        shape[unit_axis] = -1
        return v * (gain.reshape(shape) / norm)

    def act(self, x):
        return F.silu(x) if self.cfg["activation"] == "silu" else F.relu(x)

    def conv(self, name, x, stride=1, padding="same"):
        w = self.weight(name, 3).permute(3, 2, 0, 1)  # [kh, kw, ci, co] -> [co, ci, kh, kw]
        kh, kw = w.shape[2], w.shape[3]
        if padding == "same":
            (t, b), (l, r) = same_padding(x.shape[2], kh, stride), same_padding(x.shape[3], kw, stride)
        else:
            (t, b), (l, r) = padding
        bias = self.names[name + ".bias"]
        if t == b and l == r:  # symmetric: the convolution pads (no copy)
            return F.conv2d(x, w, bias, stride=stride, padding=(t, l))
        return F.conv2d(F.pad(x, (l, r, t, b)), w, bias, stride=stride)

    def conv_transpose(self, name, x, stride, crop):
        w = self.weight(name, 2).permute(3, 2, 0, 1)  # [kh, kw, co, ci] -> [ci, co, kh, kw]
        kh, kw = w.shape[2], w.shape[3]
        if crop == "same":
            (t, b), (l, r) = transpose_same_crop(kh, stride), transpose_same_crop(kw, stride)
        else:
            (t, b), (l, r) = crop
        bias = self.names[name + ".bias"]
        if 0 <= b <= t < b + stride and 0 <= r <= l < r + stride:
            # PyTorch's padding p with output_padding q crops p at the top/left and p - q at the bottom/right.
            return F.conv_transpose2d(x, w, bias, stride=stride, padding=(t, l), output_padding=(t - b, l - r))
        y = F.conv_transpose2d(x, w, bias, stride=stride)
        if b < 0 or r < 0:  # a negative crop extends the output (kernels/conv.ts)
            y = F.pad(y, (0, max(0, -r), 0, max(0, -b)))
            b, r = max(b, 0), max(r, 0)
        return y[:, :, t:y.shape[2] - b, l:y.shape[3] - r]

    def dense(self, name, x):
        return x @ self.weight(name, 1) + self.names[name + ".bias"]

    def project(self, name, z, hw):
        """dense(z) viewed as a [B, h, w, C] map (NHWC order), returned NCHW."""
        h, w = hw
        return self.dense(name, z).reshape(z.shape[0], h, w, self.cfg["channels"]).permute(0, 3, 1, 2)

    def block(self, spec, prefix, x, skip=None):
        """models/layers.ts `block`: shortcut(x) + conv2(act(conv1(act(x)) [+ skip])) by kind and style."""
        kind = spec["kind"]
        havtorn = self.cfg["blockStyle"] == "havtorn"
        k = self.names[prefix + ".conv1.weight"].shape[0]
        pad = k // 2
        h = self.conv(prefix + ".conv1", self.act(x) if spec.get("preact", True) else x)
        if skip is not None and self.has(prefix + ".skip"):
            h = h + self.conv_transpose(prefix + ".skip", self.act(skip), 2, "same")
        a = self.act(h)
        if kind == "res":
            y = self.conv(prefix + ".conv2", a)
        elif kind == "down":
            y = self.conv(prefix + ".conv2", a, 2, "same" if havtorn else ((pad, pad), (pad, pad)))
        else:
            y = self.conv_transpose(prefix + ".conv2", a, 2,
                                    "same" if havtorn else ((pad, pad - 1), (pad, pad - 1)))
        if not spec.get("residual", True) or (havtorn and kind == "up"):
            return y
        short = x
        C = y.shape[1]
        if self.has(prefix + ".shortcut"):
            short = self.conv(prefix + ".shortcut", short, 1, ((0, 0), (0, 0)))
        elif short.shape[1] < C:
            short = F.pad(short, (0, 0, 0, 0, 0, C - short.shape[1]))
        if kind == "down":
            if havtorn:  # AvgPool k3 s2 with TF-"same" zero padding, divisor 9
                (t, b), (l, r) = same_padding(short.shape[2], 3, 2), same_padding(short.shape[3], 3, 2)
                short = F.avg_pool2d(F.pad(short, (l, r, t, b)), 3, 2)
            else:
                short = F.avg_pool2d(short, 2, 2)
        elif kind == "up":
            short = F.interpolate(short, scale_factor=2, mode="nearest")
        return short + y

    def blocks(self, prefix, specs, x, skips=None):
        outs = []
        for i, spec in enumerate(specs):
            x = self.block(spec, f"{prefix}.block{i}", x, skips[i] if skips and i < len(skips) else None)
            outs.append(x)
        return outs

    def head(self, name, latent, h):
        a = self.act(h)
        if latent["kind"] == "conv":
            raw = self.conv(name, a)
            n = latent["channels"]
            return raw[:, :n], raw[:, n:]
        raw = self.dense(name, a.permute(0, 2, 3, 1).reshape(a.shape[0], -1))
        n = latent["size"]
        return raw[:, :n], raw[:, n:]

    def sigma(self, u):
        return torch.clamp_min(F.softplus(self.beta * u) / self.beta + self.offset, self.floor)

    def draw(self, mu, u, mean):
        return mu if mean else mu + self.sigma(u) * torch.randn_like(mu)

    def encode(self, x, mean):
        cfg = self.cfg
        h = x
        if cfg["stem"]:
            st = cfg["stem"]
            p = st["padding"]
            h = self.conv("enc.stem", x, st["stride"], ((p, p), (p, p)))
        out = []
        for l, layer in enumerate(cfg["layers"]):
            stage = f"enc.stage{l + 1}"
            if cfg["inference"] == "markov" and l > 0:
                z = out[l - 1][2]
                below = cfg["layers"][l - 1]["latent"]
                h = self.project(stage + ".proj", z, layer["inputMap"]) if below["kind"] == "dense" else z
            outs = self.blocks(stage, layer["encoder"], h)
            if outs:
                h = outs[-1]
            mu, u = self.head(f"q.z{l + 1}", layer["latent"], h)
            out.append((mu, u, self.draw(mu, u, mean)))
        return out

    def decode(self, l, z, skips=None):
        layer = self.cfg["layers"][l]
        stage = f"dec.stage{l + 1}"
        if layer["latent"]["kind"] == "dense":
            x = self.project(stage + ".proj", z, layer["projection"])
        elif self.has(stage + ".proj"):
            x = self.conv(stage + ".proj", z)
        else:
            x = z
        return self.blocks(stage, layer["decoder"], x, skips)

    def prior(self, l, d):
        return self.head(f"p.z{l + 1}", self.cfg["layers"][l]["latent"], d)

    def log_lik(self, d, x):
        """log p(x | z) per image from d_1, for the run's likelihood (models/likelihood.ts)."""
        out = self.conv("out", self.act(d))
        kind = self.cfg.get("likelihood", "bernoulli")
        if kind == "bernoulli":
            return (x * out - F.softplus(out)).flatten(1).sum(1)
        if kind == "gaussian":
            s = self.sigma(self.param("likelihood.u"))
            return (-0.5 * math.log(2 * math.pi) - torch.log(s) - 0.5 * ((x - out) / s) ** 2).flatten(1).sum(1)
        if kind == "logistic-mixture":
            return discretized_logistic_mixture(out, x, self.cfg.get("components", 10)).flatten(1).sum(1)
        raise SystemExit(f"likelihood '{kind}' is not implemented here")

    def kl(self, mq, uq, mp, up):
        sq, sp = self.sigma(uq), self.sigma(up)
        return (torch.log(sp) - torch.log(sq) + (sq * sq + (mq - mp) ** 2) / (2 * sp * sp) - 0.5).flatten(1).sum(1)

    def passes(self, x, informative, mean):
        """Per-image ll_k (k = 0, and 1..L-1 when informative) and KL_l, as models/hvae.ts hvaeObjective."""
        L = self.L
        q = self.encode(x, mean)
        stages, priors = [None] * L, [None] * L
        for l in range(L - 1, -1, -1):
            stages[l] = self.decode(l, q[l][2], stages[l + 1] if l + 1 < L else None)
            if l > 0:
                priors[l - 1] = self.prior(l - 1, stages[l][-1])
        lls = [self.log_lik(stages[0][-1], x)]
        kls = []
        for l in range(L):
            if priors[l] is None:  # the top layer's prior N(0, I): u with sigma(u) = 1 (unitScaleU)
                u1 = math.log(math.expm1(self.beta * (1 - self.offset))) / self.beta
                mp, up = torch.zeros_like(q[l][0]), torch.full_like(q[l][1], u1)
            else:
                mp, up = priors[l]
            kls.append(self.kl(q[l][0], q[l][1], mp, up))
        if informative:
            for k in range(1, L):
                g, above = priors[k - 1], stages[k]
                for l in range(k - 1, -1, -1):
                    above = self.decode(l, self.draw(g[0], g[1], mean), above)
                    if l > 0:
                        g = self.prior(l - 1, above[-1])
                lls.append(self.log_lik(above[-1], x))
        return lls, kls

    def loss(self, x, informative):
        """-(batch mean of the objective): Eq. 2/3 (ELBO) or Eq. 10 (informative), beta 1, no free bits."""
        lls, kls = self.passes(x, informative, mean=False)
        recon = sum(lls) / len(lls)
        return -(recon - sum(kls)).mean()


# ---------------------------------------------------------------- jobs

def load(run):
    with open(os.path.join(run, "config.json")) as f:
        config = json.load(f)
    cfg = config["model"]
    if cfg.get("kl", "analytic") != "analytic":
        raise SystemExit(f"{run}: kl '{cfg['kl']}' is not implemented here (analytic only)")
    tensors, _ = read_safetensors(os.path.join(run, "model.safetensors"))
    return cfg, tensors


def nchw(x_nhwc):
    return torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).contiguous()


def check(cfg, tensors, path, rtol, atol):
    ref, _ = read_safetensors(path)
    model = Hvae(cfg, tensors)
    with torch.no_grad():
        lls, kls = model.passes(nchw(ref["x"]), informative=True, mean=True)
    stats = {}
    ok = True
    for name, ours in (("ll", lls), ("kl", kls)):
        expected = ref[name].astype(np.float64)
        got = torch.stack(ours).numpy()
        if got.shape != expected.shape:
            raise SystemExit(f"{path}: {name} has shape {list(expected.shape)}, PyTorch gives {list(got.shape)}")
        diff = np.abs(got.astype(np.float64) - expected)
        stats[f"max_abs_diff_{name}"] = float(diff.max())
        stats[f"max_rel_diff_{name}"] = float((diff / np.maximum(np.abs(expected), 1e-12)).max())
        stats[f"min_{name}"] = float(expected.min())
        stats[f"max_{name}"] = float(expected.max())
        ok = ok and bool(np.all(diff <= atol + rtol * np.abs(expected)))
    print(json.dumps({
        "name": "torch-check", "ok": ok, "images": int(ref["x"].shape[0]), "layers": model.L,
        **stats, "rtol": rtol, "atol": atol, "mean_ll0": float(ref["ll"][0].mean()),
    }), flush=True)
    return ok


def time_steps(cfg, tensors, loss, batch, steps, warmup, device, threads):
    if device == "cpu":
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Hvae(cfg, tensors).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4, betas=(0.9, 0.999), eps=1e-8)
    H, W = cfg["image"]["height"], cfg["image"]["width"]
    if cfg.get("likelihood") == "logistic-mixture":
        x = (torch.round(torch.rand(batch, 1, H, W) * 255) * 2 / 255 - 1).to(device)
    else:
        x = (torch.rand(batch, 1, H, W) < 0.4).float().to(device)
    times = []
    for i in range(warmup + steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        value = model.loss(x, loss == "informative")
        value.backward()
        opt.step()
        value.item()  # one readback, as ours
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    return {
        "name": f"torch-train-step-{cfg['preset']}-{loss}", "preset": cfg["preset"], "loss": loss,
        "device": device, "threads": threads if device == "cpu" else None, "batch": batch,
        "ms": round(statistics.median(times), 2), "runs_ms": [round(t, 2) for t in times],
        "torch": torch.__version__,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a run directory: config.json and model.safetensors")
    ap.add_argument("--check", metavar="FILE", help="reference batch and our per-image terms (safetensors)")
    ap.add_argument("--rtol", type=float, default=2e-5)
    ap.add_argument("--atol", type=float, default=1e-3)
    ap.add_argument("--time", action="store_true", help="time training steps")
    ap.add_argument("--loss", default="elbo,informative")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", default="1,all", help="CPU thread counts to time: numbers or 'all'")
    ap.add_argument("--devices", default="cpu,cuda", help="cpu and/or cuda (cuda only when available)")
    args = ap.parse_args()
    cfg, tensors = load(args.run)
    ok = True
    if args.check:
        ok = check(cfg, tensors, args.check, args.rtol, args.atol)
    if args.time:
        all_threads = os.cpu_count() or 1
        for loss in args.loss.split(","):
            for device in args.devices.split(","):
                if device == "cuda" and not torch.cuda.is_available():
                    continue
                counts = [all_threads if t == "all" else int(t) for t in args.threads.split(",")] \
                    if device == "cpu" else [0]
                for threads in dict.fromkeys(counts):
                    print(json.dumps(time_steps(cfg, tensors, loss, args.batch, args.steps, args.warmup,
                                                device, threads)), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
