/**
 * Running the command lines from tests as a user would: `deno task <name>`'s own permissions (read
 * from deno.json, so a check that needs more than the task grants fails in the tests too), and
 * interrupting a running command once it has printed a given line.
 */

import { taskPermissions } from "../scripts/cli.ts";

/** What a command printed, and how it ended. */
export interface CommandResult {
  /** Exit status. */
  code: number;
  /** Standard output. */
  out: string;
  /** Standard error. */
  err: string;
}

const TASKS = ["train", "ood", "score", "info", "reproduce", "serve"];
const PERMISSIONS: Record<string, string[]> = Object.fromEntries(
  await Promise.all(TASKS.map(async (t) => [t, await taskPermissions(t)])),
);

/** The permission flags of `deno task <name>`, as deno.json gives them (scripts/cli.ts). */
export function permissionsOf(name: string): string[] {
  return PERMISSIONS[name];
}

/** `deno run <permissions> scripts/<script>.ts args...` with the task's permissions and the test task's kernels. */
export function command(script: string, args: string[], env: Record<string, string> = {}): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissionsOf(script), `scripts/${script}.ts`, ...args],
    env: { HVAE_OOD_KERNELS: "default", NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs `scripts/<script>.ts` as `deno task <script>` would, to its end. */
export async function runTask(
  script: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<CommandResult> {
  const result = await command(script, args, env).output();
  return {
    code: result.code,
    out: new TextDecoder().decode(result.stdout),
    err: new TextDecoder().decode(result.stderr),
  };
}

/**
 * Starts `scripts/<script>.ts`, sends `signal` once its standard output matches `after`, and waits
 * for its end. Returns the exit status and everything it printed on standard output.
 */
export async function interruptAfter(
  script: string,
  args: string[],
  after: RegExp,
  signal: Deno.Signal,
): Promise<{ code: number; out: string }> {
  const child = command(script, args).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "", sent = false;
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
    if (!sent && after.test(out)) {
      child.kill(signal);
      sent = true;
    }
  }
  await child.stderr.cancel();
  return { code: (await child.status).code, out };
}

/** A run trained and evaluated by `trainTinyRun`: its directory, ood.json and config.json. */
export interface TinyRun {
  /** The run directory (a temporary one: remove it when done). */
  dir: string;
  // deno-lint-ignore no-explicit-any
  report: any;
  // deno-lint-ignore no-explicit-any
  config: any;
}

/**
 * `deno task train --preset tiny-cifar` for one epoch (batches of 20) on the CIFAR-10 files in `data`
 * (tests/official_formats.ts `colourDataDir`) into `data`/run, with `extra` flags; returns the run's
 * directory.
 */
export async function trainTinyColourRun(data: string, extra: string[]): Promise<string> {
  const run = `${data}/run`;
  const trained = await runTask("train", [
    ...["--preset", "tiny-cifar", "--data-dir", data, "--epochs", "1", "--batch-size", "20", ...extra],
    ...["--out", run],
  ]);
  if (trained.code !== 0) throw new Error(`train --preset tiny-cifar failed:\n${trained.out}${trained.err}`);
  return run;
}

/**
 * `deno task train --preset <preset> [extra flags]` on 128 training images for one epoch, then its evaluation on 24
 * test images of each set (batches of 12): the end-to-end check of each model variant.
 */
export async function trainTinyRun(preset: string, extra: string[] = []): Promise<TinyRun> {
  const dir = await Deno.makeTempDir();
  const trained = await runTask("train", [
    ...["--preset", preset, "--train-limit", "128", "--batch-size", "64", "--epochs", "1", ...extra],
    ...["--eval-limit", "24", "--eval-batch-size", "12", "--out", dir],
  ]);
  if (trained.code !== 0) throw new Error(`train --preset ${preset} failed:\n${trained.out}${trained.err}`);
  return {
    dir,
    report: JSON.parse(await Deno.readTextFile(`${dir}/ood.json`)),
    config: JSON.parse(await Deno.readTextFile(`${dir}/config.json`)),
  };
}
