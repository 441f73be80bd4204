/**
 * The browser page (web/, `deno task serve`) in a real browser: headless Chromium with WebGPU on the
 * CPU (tests/browser.ts). A stroke drawn with the mouse is scored on the page, and its scores equal
 * `deno task score --json` on the same 28x28 image within float32 tolerance (another WebGPU
 * implementation: SwiftShader there, the test adapter here). The page's bundle holds no Deno API, and
 * its DOM-free parts are checked here. Set HVAE_SCREENSHOT=docs/browser.png to keep the screenshot.
 */

import assert from "node:assert/strict";
import { encodePng } from "../data/png.ts";
import { grayLevels, histogramSvg } from "../web/page_parts.ts";
import { Browser, findChromium } from "./browser.ts";
import { command, runTask, trainTinyColourRun } from "./commands.ts";
import { colourDataDir } from "./official_formats.ts";

Deno.test("page parts: Rec. 601 gray levels as data/png.ts reads colour; the histogram marks the image", () => {
  assert.deepEqual([...grayLevels([255, 255, 255, 255, 0, 0, 0, 255, 255, 0, 0, 255, 10, 20, 30, 255])], [
    255,
    0,
    Math.round(0.299 * 255),
    Math.round(0.299 * 10 + 0.587 * 20 + 0.114 * 30),
  ]);
  const svg = histogramSvg([1, 2, 2, 3], 5, 2.5, "llr_ada");
  assert.equal(svg.match(/<rect /g)?.length, 40);
  assert.match(svg, /stroke="#c33"/);
  assert.match(svg, /llr_ada of 4 Fashion-MNIST test images/);
});

Deno.test("page bundle: deno bundle makes web/app.ts for the browser without any Deno API", async () => {
  const out = await Deno.makeTempFile({ suffix: ".js" });
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--platform", "browser", "--quiet", "-o", out, "web/app.ts"],
    stderr: "piped",
  }).output();
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
  const js = await Deno.readTextFile(out);
  await Deno.remove(out);
  assert.ok(js.length > 50_000, `bundle of ${js.length} characters`);
  assert.doesNotMatch(js, /\bDeno\.[A-Za-z]/, "a Deno API in the page's bundle");
  assert.match(js, /navigator\.gpu/);
});

/** Starts `deno task serve` with `args`; resolves with its address once it listens, and the process. */
async function startServe(args: string[]): Promise<{ url: string; out: string; server: Deno.ChildProcess }> {
  const server = command("serve", args).spawn();
  const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (true) {
    const { value, done } = await lines.read();
    if (done) break;
    out += value;
    const url = out.match(/at (http:\/\/127\.0\.0\.1:\d+\/)/)?.[1];
    if (url) {
      (async () => {
        while (!(await lines.read()).done) { /* the server's later lines */ }
      })().catch(() => {});
      return { url, out, server };
    }
  }
  const err = new TextDecoder().decode((await server.output().catch(() => null))?.stderr ?? new Uint8Array());
  throw new Error(`serve did not start: ${out}${err}`);
}

/** A `tiny` run trained for one epoch with `flags`, in a new temporary directory `root`. */
async function trainedTinyRun(flags: string[]): Promise<{ root: string; run: string }> {
  const root = await Deno.makeTempDir();
  const run = `${root}/run`;
  const trained = await runTask("train", ["--preset", "tiny", "--epochs", "1", ...flags, "--out", run]);
  assert.equal(trained.code, 0, trained.out + trained.err);
  return { root, run };
}

Deno.test({
  name: "serve: a run without scores.csv is calibrated once and cached; a bad --run is named",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { root, run } = await trainedTinyRun(["--train-limit", "64", "--batch-size", "64", "--no-eval"]);
    for (const first of [true, false]) {
      const { url, out, server } = await startServe([
        "--run",
        run,
        "--port",
        "0",
        "--calibration-limit",
        "12",
      ]);
      try {
        assert.equal(/scoring 12 fashion-mnist test images once/.test(out), first, out);
        const calibration = await (await fetch(`${url}run/calibration.json`)).json();
        assert.equal(calibration.images, 12);
        assert.deepEqual(Object.keys(calibration.scores), ["elbo", "llr>1", "llr>2", "llr_optk", "llr_ada"]);
        for (const values of Object.values(calibration.scores) as number[][]) {
          assert.ok(values.length === 12 && values.every(Number.isFinite));
        }
        assert.equal(await fetch(`${url}nothing`).then(async (r) => (await r.body?.cancel(), r.status)), 404);
      } finally {
        server.kill();
        await server.status;
      }
    }
    assert.ok((await Deno.stat(`${run}/calibration.json`)).isFile);
    const bad = await runTask("serve", ["--run", `${root}/nothing`, "--port", "0"]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /nothing\/config\.json not found/);
    await Deno.remove(root, { recursive: true });
  },
});

const chromium = findChromium();

/** The JSON behind the page's "save the image and its scores" link, as an expression for the page. */
const saved = `(() => { const href = document.getElementById("download").href; ` +
  `return JSON.parse(decodeURIComponent(href.slice(href.indexOf(",") + 1))); })()`;

/**
 * A model's page in Chromium: a stroke drawn on the pad is scored as `deno task score` scores the same
 * image saved as a PNG (gray, or RGB for a colour model), and the page names the training set.
 */
function strokeTest(
  name: string,
  train: () => Promise<{ root: string; run: string }>,
  expect: {
    preset: RegExp;
    dataset: RegExp;
    channels: 1 | 3;
    size: number;
    dataFlags: (root: string) => string[];
  },
): void {
  Deno.test({
    name,
    ignore: chromium === null,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const { root, run } = await train();
      const { url, server } = await startServe(["--run", run, "--port", "0", ...expect.dataFlags(root)]);
      const browser = await Browser.launch(chromium!);
      try {
        await browser.send("Page.enable");
        await browser.send("Page.navigate", { url });
        await browser.waitFor(`["scored", "error", "no-webgpu"].includes(document.body.dataset.state)`);
        const state = await browser.evaluate<string>("document.body.dataset.state");
        assert.equal(
          state,
          "scored",
          await browser.evaluate<string>("document.getElementById('error').textContent"),
        );
        assert.match(
          await browser.evaluate<string>("document.getElementById('run').textContent"),
          expect.preset,
        );
        // A stroke across the pad, then wait until the last scoring is of the finished drawing.
        const rect = await browser.evaluate<{ x: number; y: number }>(
          "(() => { const r = document.getElementById('pad').getBoundingClientRect(); return { x: r.x, y: r.y }; })()",
        );
        const points = [[70, 60], [140, 120], [150, 200], [210, 230]];
        await browser.mouse("mousePressed", rect.x + points[0][0], rect.y + points[0][1]);
        for (const [x, y] of points.slice(1)) await browser.mouse("mouseMoved", rect.x + x, rect.y + y);
        await browser.mouse("mouseReleased", rect.x + points[3][0], rect.y + points[3][1]);
        await new Promise((r) => setTimeout(r, 500));
        await browser.waitFor(
          `document.body.dataset.state === "scored" && ${saved}.pixels.some((p) => p > 0)`,
        );
        await new Promise((r) => setTimeout(r, 1500));
        await browser.waitFor(`document.body.dataset.state === "scored"`);
        const last = await browser.evaluate<{ pixels: number[]; scores: Record<string, number> }>(saved);
        assert.equal(last.pixels.length, expect.size * expect.size * expect.channels);
        assert.ok(last.pixels.filter((p) => p > 0).length > 20, "the stroke reached the image");
        assert.match(
          await browser.evaluate<string>("document.getElementById('verdict').textContent"),
          expect.dataset,
        );
        assert.equal(await browser.evaluate<number>("document.querySelectorAll('#recon canvas').length"), 4);
        const shot = await browser.screenshot();
        assert.deepEqual([...shot.subarray(1, 4)], [0x50, 0x4e, 0x47]);
        const keep = Deno.env.get("HVAE_SCREENSHOT");
        if (keep) await Deno.writeFile(keep.replace(/\.png$/, `-${expect.channels}.png`), shot);

        // The same image through the command line.
        const png = `${root}/drawn.png`;
        const bytes = Uint8Array.from(last.pixels);
        await Deno.writeFile(png, await encodePng(bytes, expect.size, expect.size, expect.channels));
        const scored = await runTask("score", [
          "--run",
          run,
          "--input",
          png,
          "--json",
          ...expect.dataFlags(root),
        ]);
        assert.equal(scored.code, 0, scored.out + scored.err);
        const cli = JSON.parse(scored.out.trim().split("\n").at(-1)!).scores as Record<string, number>;
        const gaps = Object.entries(last.scores).map(([name, value]) =>
          `${name} ${Math.abs(value - cli[name]).toExponential(1)}`
        );
        console.log(`page (SwiftShader) vs deno task score: |difference| ${gaps.join(", ")}`);
        for (const [name, value] of Object.entries(last.scores)) {
          assert.ok(
            Math.abs(value - cli[name]) <= 1e-3 * Math.max(1, Math.abs(cli[name])),
            `${name}: page ${value}, deno task score ${cli[name]}`,
          );
        }
      } finally {
        await browser.close();
        server.kill();
        await server.status;
        await Deno.remove(root, { recursive: true });
      }
    },
  });
}

strokeTest(
  "browser: a stroke drawn on the page is scored as deno task score scores the same image",
  () =>
    trainedTinyRun([
      "--train-limit",
      "128",
      "--batch-size",
      "64",
      "--eval-limit",
      "64",
      "--eval-batch-size",
      "32",
    ]),
  { preset: /preset tiny,/, dataset: /Fashion-MNIST/, channels: 1, size: 28, dataFlags: () => [] },
);

strokeTest(
  "browser: a colour model's page reads the pad as RGB and scores it as deno task score does",
  async () => {
    const root = await colourDataDir();
    const run = await trainTinyColourRun(root, ["--no-eval"]);
    return { root, run };
  },
  {
    preset: /preset tiny-cifar/,
    dataset: /CIFAR-10/,
    channels: 3,
    size: 32,
    dataFlags: (root) => ["--data-dir", root],
  },
);
