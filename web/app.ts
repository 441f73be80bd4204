/**
 * The browser page (web/index.html, served by `deno task serve`, scripts/serve.ts): draw or drop an
 * image, see every OOD score of a trained run, its verdict at a chosen false-positive rate, where it
 * falls among the Fashion-MNIST test scores, and its reconstructions from p(x | z_{>k}) (the paper's
 * Fig. 5 for one image).
 *
 * It runs the project's own modules, bundled for the browser: the WebGPU device, the tensors and
 * kernels, the model and its scores (eval/score_set.ts, as `deno task score` scores a user's image:
 * each image alone, the same binarisation and passes), the run from its files' bytes
 * (models/run_from_bytes.ts). Nothing here or below it touches Deno's APIs; the server owns the files.
 */

/// <reference lib="dom" />

import { initGpu } from "../kernels/runtime/device.ts";
import { adapterInfo } from "../kernels/engine.ts";
import { defaultTuning, setTuning } from "../kernels/tuning_choices.ts";
import { dispose } from "../kernels/tensor.ts";
import { imageSetFromPixels } from "../data/loader.ts";
import { runFromBytes } from "../models/run_from_bytes.ts";
import type { LoadedRun } from "../models/run_from_bytes.ts";
import { scoreNames } from "../models/scores.ts";
import { reconstructions, scoreSet } from "../eval/score_set.ts";
import { thresholdAtFpr } from "../eval/metrics.ts";
import { type Calibration, histogramSvg, modelPixels, type RunInfo } from "./page_parts.ts";
import { imageChannels } from "../models/hvae.ts";
import { DATASET_DISPLAY } from "../data/dataset_names.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** What the page shows and offers to save: the last image scored (gray levels) and its scores. */
interface Scored {
  pixels: number[];
  scores: Record<string, number>;
}

function setState(state: string): void {
  document.body.dataset.state = state;
}

function fail(message: string, state = "error"): void {
  $("error").textContent = message;
  setState(state);
}

async function fetchOk(path: string): Promise<Response> {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response;
}

/** The adapter as the browser names it (Chromium's SwiftShader says only "google" in its description). */
function adapterName(): string {
  const a = adapterInfo();
  return [a.description, a.architecture].filter((s, i, all) => s && all.indexOf(s) === i).join(", ");
}

/** The scores table, the verdict at the chosen score and false-positive rate, and the histogram. */
function showScores(
  last: Scored,
  names: readonly string[],
  calibration: Calibration,
  chosen: string,
  rate: number,
  rateText: string,
  dataset: string,
): void {
  $("fprValue").textContent = rateText;
  const rows = names.map((name) => {
    const threshold = thresholdAtFpr(calibration.scores[name], rate);
    const ood = last.scores[name] > threshold;
    return `<tr class="${name === chosen ? "chosen" : ""}"><td>${name}</td><td>${
      last.scores[name].toFixed(2)
    }</td>` +
      `<td>${threshold.toFixed(2)}</td><td>${ood ? "OOD" : "in"}</td></tr>`;
  });
  $("scores").querySelector("tbody")!.innerHTML = rows.join("");
  const threshold = thresholdAtFpr(calibration.scores[chosen], rate);
  const ood = last.scores[chosen] > threshold;
  const verdict = $("verdict");
  verdict.textContent = ood
    ? `Not like ${dataset} (${chosen} ${last.scores[chosen].toFixed(1)} > ${threshold.toFixed(1)})`
    : `Looks like ${dataset} (${chosen} ${last.scores[chosen].toFixed(1)} ≤ ${threshold.toFixed(1)})`;
  verdict.className = ood ? "ood" : "in";
  $("histogram").innerHTML = histogramSvg(
    calibration.scores[chosen],
    last.scores[chosen],
    threshold,
    chosen,
    dataset,
  );
}

/**
 * The "save" link: the image's gray levels and its full-precision scores as JSON, the same values
 * `deno task score --json` prints for that image saved as a PNG.
 */
function offerDownload(last: Scored): void {
  const link = $<HTMLAnchorElement>("download");
  link.href = `data:application/json;charset=utf-8,${encodeURIComponent(JSON.stringify(last))}`;
  link.hidden = false;
}

/**
 * The input and its reconstructions from p(x | z>k), one small canvas each (H x W x channels values
 * in [0, 1]: gray levels or RGB).
 */
function showReconstructions(images: readonly Float32Array[], H: number, W: number, channels: number): void {
  const recon = $("recon");
  recon.innerHTML = "";
  images.forEach((image, i) => {
    const figure = document.createElement("figure");
    const c = document.createElement("canvas");
    [c.width, c.height] = [W, H];
    const data = new ImageData(W, H);
    const byte = (v: number) => Math.round(255 * Math.min(1, Math.max(0, v)));
    for (let p = 0; p < H * W; p++) {
      const rgb = channels === 3
        ? [0, 1, 2].map((c) => byte(image[3 * p + c]))
        : new Array(3).fill(byte(image[p]));
      data.data.set([...rgb, 255], 4 * p);
    }
    c.getContext("2d")!.putImageData(data, 0, 0);
    const caption = Object.assign(document.createElement("figcaption"), {
      textContent: i === 0 ? "input" : `k = ${i - 1}`,
    });
    figure.append(c, caption);
    recon.append(figure);
  });
}

/** Strokes on the pad: round white lines of the brush's width; `changed` after each move and at the end. */
function wireStrokes(pad: HTMLCanvasElement, ctx: CanvasRenderingContext2D, changed: () => void): void {
  let drawing = false, lastPoint: [number, number] | null = null;
  const at = (e: PointerEvent): [number, number] => {
    const r = pad.getBoundingClientRect();
    return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
  };
  pad.addEventListener("pointerdown", (e) => {
    drawing = true;
    pad.setPointerCapture(e.pointerId);
    lastPoint = at(e);
  });
  pad.addEventListener("pointermove", (e) => {
    if (!drawing || !lastPoint) return;
    const p = at(e);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = Number($<HTMLInputElement>("brush").value);
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(...lastPoint);
    ctx.lineTo(...p);
    ctx.stroke();
    lastPoint = p;
    changed();
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    lastPoint = null;
    changed();
  };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
}

/** A file chosen or dropped on the page goes to `load`. */
function wireFiles(load: (file: Blob) => Promise<void>): void {
  $<HTMLInputElement>("file").addEventListener("change", (e) => {
    const file = (e.target as HTMLInputElement).files?.[0];
    if (file) void load(file);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer?.files[0];
    if (file) void load(file);
  });
}

async function main(): Promise<void> {
  const [config, modelBytes, calibration, info] = await Promise.all([
    fetchOk("/run/config.json").then((r) => r.json()),
    fetchOk("/run/model.safetensors").then(async (r) => new Uint8Array(await r.arrayBuffer())),
    fetchOk("/run/calibration.json").then((r) => r.json() as Promise<Calibration>),
    fetchOk("/run/info.json").then((r) => r.json() as Promise<RunInfo>),
  ]);
  try {
    await initGpu();
  } catch (error) {
    fail(
      `This browser has no WebGPU, so the model cannot run here (${(error as Error).message}).\n` +
        "Chrome or Edge 113+ have it; Firefox and Safari behind flags; on Linux, Chrome needs " +
        "--enable-unsafe-webgpu --enable-features=Vulkan.",
      "no-webgpu",
    );
    return;
  }
  // The engine's CPU-adapter default (16 pixels x 16 channels per thread in the direct convolution,
  // kernels/tuning_choices.ts) is tuned for llvmpipe; Chromium's SwiftShader compiled such a kernel for minutes
  // until the page lost its device, and ran a 4 x 4 block in 0.26 s. The GPU default suits both.
  setTuning(defaultTuning(false));
  const run: LoadedRun = runFromBytes(config, modelBytes, info.dir);
  const cfg = run.config.model;
  // The model's image size and channels (28x28 gray, or 32x32 RGB for the -cifar presets): the pad and
  // dropped images are read at it.
  const { height: H, width: W } = cfg.image;
  const channels = imageChannels(cfg);
  const dataset = DATASET_DISPLAY[run.config.training.dataset] ?? run.config.training.dataset;
  document.title = `Is it ${dataset}? An informative HVAE decides`;
  $("title").textContent = `Is it ${dataset}? An informative hierarchical VAE decides`;
  $("howto").textContent = channels === 3
    ? `Drop a colour image, or draw on black. Images are read as ${H}×${W} RGB, as deno task score reads PNGs.`
    : `Draw bright strokes on black, as in Fashion-MNIST and MNIST. Images are converted to ${H}×${W} gray ` +
      `levels as deno task score converts PNGs.`;
  $("higher").textContent =
    `Higher = more unlike ${dataset}. A threshold flags the chosen share of ${dataset} test images.`;
  const L = cfg.layers.length;
  const names = scoreNames(L);
  $("run").textContent = `Run ${info.dir}: preset ${cfg.preset}, ${run.config.training.loss} loss, ` +
    `${info.epochs} epoch(s), seed ${run.config.training.seed}; WebGPU adapter: ${adapterName()}. ` +
    `Thresholds from ${calibration.images} ${dataset} test images (${calibration.source}).`;

  const select = $<HTMLSelectElement>("score");
  for (const name of names) select.add(new Option(name, name, name === "llr_ada", name === "llr_ada"));
  const fpr = $<HTMLInputElement>("fpr");

  // The drawing pad: 280x280 on screen, read as H x W gray levels (or RGB).
  const pad = $<HTMLCanvasElement>("pad");
  pad.setAttribute("aria-label", `drawing pad, ${H} by ${W} pixels shown enlarged`);
  const ctx = pad.getContext("2d")!;
  const clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, pad.width, pad.height);
  };
  clear();
  const small = document.createElement("canvas");
  [small.width, small.height] = [W, H];
  const smallCtx = small.getContext("2d", { willReadFrequently: true })!;
  const padPixels = (): Uint8Array => {
    smallCtx.fillStyle = "#000";
    smallCtx.fillRect(0, 0, W, H);
    smallCtx.imageSmoothingEnabled = true;
    smallCtx.imageSmoothingQuality = "high";
    smallCtx.drawImage(pad, 0, 0, W, H);
    return modelPixels(smallCtx.getImageData(0, 0, W, H).data, channels);
  };

  let last: Scored | null = null;
  let busy = false, again: Uint8Array | null = null;
  const show = () => {
    if (last) {
      showScores(last, names, calibration, select.value, Number(fpr.value) / 100, `${fpr.value}%`, dataset);
    }
  };
  const score = async (pixels: Uint8Array): Promise<void> => {
    if (busy) {
      again = pixels;
      return;
    }
    busy = true;
    setState("scoring");
    const set = imageSetFromPixels("your image", pixels, H, W, undefined, channels);
    try {
      const seed = run.config.training.seed;
      const s = await scoreSet(run.params, cfg, set, {
        seed,
        samples: 1,
        iw: 1,
        generate: "mean",
        batchSize: 1,
        eachImageAlone: true,
      });
      const images = (await reconstructions(run.params, cfg, set, Uint32Array.of(0), seed))[0];
      last = {
        pixels: Array.from(pixels),
        scores: Object.fromEntries(names.map((n) => [n, s.scores[n][0]])),
      };
      offerDownload(last);
      showReconstructions(images, H, W, channels);
      show();
    } catch (error) {
      fail(`scoring failed: ${(error as Error).message}`);
      return;
    } finally {
      dispose(set.bytes);
      busy = false;
    }
    setState("scored");
    if (again) {
      const next = again;
      again = null;
      await score(next);
    }
  };

  // Strokes: round white lines; scored while drawing (at most one scoring at a time) and at the end.
  wireStrokes(pad, ctx, () => void score(padPixels()));
  $("clear").addEventListener("click", () => {
    clear();
    void score(padPixels());
  });
  select.addEventListener("change", show);
  fpr.addEventListener("input", show);

  // Files: decoded by the browser, drawn onto black at the model's size (resized if needed), gray by
  // Rec. 601 for a grayscale model.
  const load = async (file: Blob) => {
    const bitmap = await createImageBitmap(file);
    clear();
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bitmap, 0, 0, pad.width, pad.height);
    smallCtx.fillStyle = "#000";
    smallCtx.fillRect(0, 0, W, H);
    smallCtx.imageSmoothingEnabled = true;
    smallCtx.drawImage(bitmap, 0, 0, W, H);
    await score(modelPixels(smallCtx.getImageData(0, 0, W, H).data, channels));
  };
  wireFiles(load);

  setState("ready");
  await score(padPixels());
}

main().catch((error) => fail(`${(error as Error).message}`));
