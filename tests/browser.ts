/**
 * A headless Chromium driven over the Chrome DevTools Protocol (https://chromedevtools.github.io/devtools-protocol/)
 * with Deno's built-in WebSocket: no driver package. Chromium runs WebGPU on the CPU through SwiftShader
 * (the flags below), so the browser test needs no GPU.
 */

/** Where Debian's chromium (or another Chrome) is, or null. */
export function findChromium(): string | null {
  for (
    const path of [
      Deno.env.get("CHROMIUM") ?? "",
      "/usr/bin/chromium",
      "/usr/bin/chromium-browser",
      "/usr/bin/google-chrome",
    ]
  ) {
    try {
      if (path && Deno.statSync(path).isFile) return path;
    } catch {
      // Not there: the next.
    }
  }
  return null;
}

/** The flags that give headless Chromium a WebGPU adapter on the CPU (SwiftShader over Vulkan). */
export const WEBGPU_FLAGS = [
  "--headless=new",
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--use-vulkan=swiftshader",
  "--use-webgpu-adapter=swiftshader",
  "--no-sandbox",
  "--no-first-run",
  "--no-default-browser-check",
  "--window-size=1200,1000",
  // SwiftShader on a busy 2-core CPU can take longer per submission than the GPU watchdog allows.
  "--disable-gpu-watchdog",
];

/** A browser with one page, commands sent to that page's session. */
export class Browser {
  #next = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  /** The page's console lines and uncaught exceptions (after `Runtime.enable`). */
  readonly console: string[] = [];

  private constructor(
    private readonly child: Deno.ChildProcess,
    private readonly socket: WebSocket,
    private readonly profile: string,
    private session = "",
  ) {
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.method === "Runtime.consoleAPICalled") {
        const args = message.params.args.map((a: { value?: unknown; description?: string }) =>
          a.value ?? a.description
        );
        this.console.push(`${message.params.type}: ${args.join(" ")}`);
      } else if (message.method === "Runtime.exceptionThrown") {
        this.console.push(`exception: ${message.params.exceptionDetails?.exception?.description}`);
      }
      const waiting = message.id !== undefined ? this.#pending.get(message.id) : undefined;
      if (!waiting) return;
      this.#pending.delete(message.id);
      if (message.error) waiting.reject(new Error(`CDP: ${JSON.stringify(message.error)}`));
      else waiting.resolve(message.result);
    };
  }

  /** Starts `chromium` and opens a blank page. */
  static async launch(chromium: string): Promise<Browser> {
    const profile = await Deno.makeTempDir({ prefix: "hvae-chromium-" });
    const child = new Deno.Command(chromium, {
      args: [...WEBGPU_FLAGS, "--remote-debugging-port=0", `--user-data-dir=${profile}`, "about:blank"],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Chromium prints its DevTools endpoint on stderr.
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "", url: string | undefined;
    const deadline = Date.now() + 30_000;
    while (!url && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      url = text.match(/DevTools listening on (ws:\/\/\S+)/)?.[1];
    }
    // Keep draining stderr so that chromium never blocks on a full pipe.
    (async () => {
      while (!(await reader.read()).done) { /* discard */ }
    })().catch(() => {});
    if (!url) {
      child.kill();
      throw new Error(`chromium did not start: ${text.slice(-2000)}`);
    }
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
    const browser = new Browser(child, socket, profile);
    const { targetId } = await browser.send("Target.createTarget", { url: "about:blank" }) as {
      targetId: string;
    };
    const { sessionId } = await browser.send("Target.attachToTarget", { targetId, flatten: true }) as {
      sessionId: string;
    };
    browser.session = sessionId;
    return browser;
  }

  /** Sends a command (to the page's session once attached) and waits for its result. */
  send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#next++;
    const message = { id, method, params, ...(this.session ? { sessionId: this.session } : {}) };
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify(message));
    });
  }

  /** Evaluates a JavaScript expression in the page; returns its value (awaiting promises). */
  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send("Runtime.evaluate", {
      expression,
      returnByValue: true,
      awaitPromise: true,
    }) as {
      result: { value: T };
      exceptionDetails?: { text: string };
    };
    if (r.exceptionDetails) throw new Error(`page: ${expression}: ${JSON.stringify(r.exceptionDetails)}`);
    return r.result.value;
  }

  /** Waits until `expression` is true in the page (polling), or throws after `ms`. */
  async waitFor(expression: string, ms = 120_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      // Errors count as not yet (e.g. no document.body while the page loads).
      if (
        await this.evaluate<boolean>(
          `(() => { try { return Boolean(${expression}); } catch { return false; } })()`,
        )
      ) {
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`timed out waiting for ${expression}`);
  }

  /** A mouse event at page coordinates (x, y). */
  mouse(type: "mousePressed" | "mouseMoved" | "mouseReleased", x: number, y: number): Promise<unknown> {
    return this.send("Input.dispatchMouseEvent", {
      type,
      x,
      y,
      button: "left",
      buttons: type === "mouseReleased" ? 0 : 1,
      clickCount: 1,
    });
  }

  /** A PNG screenshot of the page. */
  async screenshot(): Promise<Uint8Array> {
    const { data } = await this.send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
    }) as {
      data: string;
    };
    return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  }

  /** Closes the browser and removes its profile. */
  async close(): Promise<void> {
    try {
      this.session = ""; // Browser.close goes to the browser, not the page
      await this.send("Browser.close").catch(() => {});
      this.socket.close();
    } finally {
      try {
        this.child.kill();
      } catch {
        // Already gone.
      }
      await this.child.status;
      await Deno.remove(this.profile, { recursive: true }).catch(() => {});
    }
  }
}
