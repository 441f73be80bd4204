/**
 * What every command line shares: strict flag parsing that turns a bad flag into a usage error
 * (exit 2), integer flags with their name in the error, and GPU start-up that explains itself.
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { GpuUnavailableError, initGpu } from "../kernels/runtime/device.ts";
import { sync } from "../kernels/engine.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses `Deno.args` strictly; prints usage and exits 0 on --help, 2 on a bad flag. Flags are read
 * from the parsed values only (`--epochs=4` and `--epochs 4` alike; `--out --help` is a path).
 */
export function parseFlags<O extends Options>(tool: string, usage: string, options: O) {
  return parseCommandLine(tool, usage, options, false).values;
}

/** `parseFlags` for a command that also takes positional arguments (e.g. an experiment's name). */
export function parseCommandLine<O extends Options>(
  tool: string,
  usage: string,
  options: O,
  allowPositionals = true,
) {
  let help: boolean;
  try {
    const withHelp = { ...options, help: { type: "boolean", short: "h" } } as const;
    help =
      (parseArgs({ args: Deno.args, options: withHelp, allowPositionals }).values as Record<string, unknown>)
        .help === true;
  } catch (error) {
    // A bad flag next to --help: the user asked for the usage.
    if (!Deno.args.includes("--help") && !Deno.args.includes("-h")) {
      usageError(tool, usage, (error as Error).message);
    }
    help = true;
  }
  if (help) {
    console.log(usage);
    Deno.exit(0);
  }
  return parseArgs({ args: Deno.args, options, allowPositionals });
}

/** Prints `message` and the usage, then exits with status 2. */
export function usageError(tool: string, usage: string, message: string): never {
  console.error(`${tool}: ${message}\n${usage}`);
  Deno.exit(2);
}

/** Reads an integer flag in [`min`, `max`], or exits with a usage error naming it. */
export function intFlag(
  tool: string,
  usage: string,
  name: string,
  raw: unknown,
  min = -Infinity,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const value = Number(raw);
  if (
    typeof raw !== "string" || raw.trim() === "" || !Number.isInteger(value) || value < min || value > max
  ) {
    const what = min === 1 ? "a positive integer" : min === 0 ? "a non-negative integer" : "an integer";
    usageError(
      tool,
      usage,
      `--${name} must be ${what}${max < Number.MAX_SAFE_INTEGER ? ` up to ${max}` : ""}, got '${raw}'`,
    );
  }
  return value;
}

/**
 * Reads a path flag: undefined when absent; an empty string (an unset shell variable, `--out "$DIR"`)
 * is a usage error, never "the default".
 */
export function pathFlag(tool: string, usage: string, name: string, raw: unknown): string | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== "string" || raw.trim() === "") {
    usageError(tool, usage, `--${name} needs a path, got an empty string (an unset shell variable?)`);
  }
  return raw;
}

/**
 * Runs a command's body: an error becomes one line, `<tool>: <message>`, and exit status
 * `errorStatus` (1 unless 1 means something else, as a failed gate of `deno task score`), with the
 * stack only for an unexpected kind of error, a bug to report. Before exiting, the GPU is let finish
 * what was submitted: Deno's teardown panics on a queue still busy.
 */
export async function runCommand(tool: string, body: () => Promise<void>, errorStatus = 1): Promise<void> {
  try {
    await body();
  } catch (error) {
    // Errors of the program's own making carry messages for the user; these kinds mean a bug.
    const bug = [TypeError, RangeError, ReferenceError, SyntaxError, EvalError].some((k) =>
      error instanceof k
    );
    const plain = error instanceof Error && !bug;
    console.error(
      plain
        ? `${tool}: ${error.message}`
        : `${tool}: internal error (please report): ${(error as Error)?.stack ?? error}`,
    );
    await Promise.resolve().then(sync).catch(() => {});
    Deno.exit(errorStatus);
  }
}

/**
 * Calls `onStop` on Ctrl-C (SIGINT) and on SIGTERM (what `kill`, systemd and container runtimes send),
 * so both stop a command the same way. Returns the function that removes the listeners.
 */
export function onStopSignals(onStop: (signal: string) => void): () => void {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const handlers = signals.map((signal) => [signal, () => onStop(signal)] as const);
  for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);
  return () => {
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  };
}

/** Reads a numeric flag (at least `min`; Number.MIN_VALUE for "positive"), or exits with a usage error naming it. */
export function numberFlag(tool: string, usage: string, name: string, raw: unknown, min: number): number {
  const value = Number(raw);
  if (typeof raw !== "string" || raw.trim() === "" || !Number.isFinite(value) || value < min) {
    const what = min === Number.MIN_VALUE ? "a positive number" : `a number >= ${min}`;
    usageError(tool, usage, `--${name} must be ${what}, got '${raw}'`);
  }
  return value;
}

/**
 * Reads a duration flag: seconds, or a number with s, m or h ("90", "90s", "20m", "1.5h"); returns
 * seconds, or exits with a usage error naming the flag.
 */
export function durationFlag(tool: string, usage: string, name: string, raw: unknown): number {
  const match = typeof raw === "string" ? raw.trim().match(/^(\d+(?:\.\d+)?)\s*([smh]?)$/) : null;
  const seconds = match ? Number(match[1]) * ({ "": 1, s: 1, m: 60, h: 3600 }[match[2]] ?? 1) : NaN;
  if (!(seconds > 0)) {
    usageError(tool, usage, `--${name} must be a positive duration such as 90s, 20m or 1.5h, got '${raw}'`);
  }
  return seconds;
}

/** Starts the GPU, or prints why it could not (and how to fix it) and exits with status 1. */
export async function initGpuOrExit(tool: string): Promise<void> {
  try {
    await initGpu();
  } catch (error) {
    if (!(error instanceof GpuUnavailableError)) throw error;
    console.error(`${tool}: ${error.message}`);
    Deno.exit(1);
  }
}

/**
 * The permission flags of `deno task <task>`, from deno.json: one source of truth for what each
 * command may do (reproduce runs the tasks with them, the tests run the CLIs with them).
 */
export async function taskPermissions(task: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const line = config.tasks?.[task];
  if (typeof line !== "string") throw new Error(`deno.json has no task '${task}'`);
  return line.split(" ").filter((a: string) => a.startsWith("--allow"));
}
