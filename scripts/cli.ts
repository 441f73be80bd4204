/**
 * What every command line shares: strict flag parsing that turns a bad flag into a usage error
 * (exit 2), integer flags with their name in the error, and GPU start-up that explains itself.
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { GpuUnavailableError, initGpu } from "../kernels/runtime/device.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parses `Deno.args` strictly; prints usage and exits 0 on --help, 2 on a bad flag. */
export function parseFlags<O extends Options>(tool: string, usage: string, options: O) {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(usage);
    Deno.exit(0);
  }
  try {
    return parseArgs({ args: Deno.args, options }).values;
  } catch (error) {
    usageError(tool, usage, (error as Error).message);
  }
}

/** Prints `message` and the usage, then exits with status 2. */
export function usageError(tool: string, usage: string, message: string): never {
  console.error(`${tool}: ${message}\n${usage}`);
  Deno.exit(2);
}

/** Reads an integer flag (at least `min`), or exits with a usage error naming it. */
export function intFlag(tool: string, usage: string, name: string, raw: unknown, min = -Infinity): number {
  const value = Number(raw);
  if (typeof raw !== "string" || !Number.isInteger(value) || value < min) {
    const what = min === 1 ? "a positive integer" : min === 0 ? "a non-negative integer" : "an integer";
    usageError(tool, usage, `--${name} must be ${what}, got '${raw}'`);
  }
  return value;
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
