/**
 * The run directory's life cycle (docs/design.md section 7): what state a directory is in, whether a
 * new run may start in it, the lock that keeps two commands from writing one run at once, and the
 * repair of metrics.jsonl after a crash. Errors say what the user can do, in one command.
 *
 * States of a directory given to `deno task train`:
 *   absent or empty           a new run starts there;
 *   files but no config.json  refused: never write over files this program did not create;
 *   config.json, no model     a run stopped before its first checkpoint: `--resume` starts it over
 *                             from its saved configuration (its first step is deterministic);
 *   config.json and model     a run with a checkpoint: `--resume` continues it.
 */

/** The lock file: JSON {pid, tool, since}, locked with an OS file lock while its command runs. */
export const LOCK_FILE = ".lock";

/** What a directory holds, as far as a run is concerned. */
export type RunDirState = "absent" | "empty" | "foreign" | "no-checkpoint" | "checkpoint";

/** An error whose message is meant for the user as it is (no stack trace). */
export class RunDirError extends Error {}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new RunDirError(`cannot use ${path} (${(error as Error).message})`);
  }
}

/** The state of `dir` (see the module comment); also the names of its entries. */
export async function runDirState(dir: string): Promise<{ state: RunDirState; entries: string[] }> {
  const info = await statOrNull(dir);
  if (!info) return { state: "absent", entries: [] };
  if (!info.isDirectory) throw new RunDirError(`${dir} is a file, not a directory`);
  const entries: string[] = [];
  try {
    // The lock (see RunLock) is not the run's content.
    for await (const e of Deno.readDir(dir)) if (e.name !== LOCK_FILE) entries.push(e.name);
  } catch (error) {
    throw new RunDirError(`cannot list ${dir}: ${(error as Error).message}`);
  }
  entries.sort();
  if (entries.length === 0) return { state: "empty", entries };
  if (!entries.includes("config.json")) return { state: "foreign", entries };
  return { state: entries.includes("model.safetensors") ? "checkpoint" : "no-checkpoint", entries };
}

/**
 * Makes sure a new run may start in `dir` (absent or empty) and creates it; otherwise throws a
 * RunDirError that says why and what to do.
 */
export async function prepareNewRunDir(dir: string): Promise<void> {
  const { state, entries } = await runDirState(dir);
  if (state === "checkpoint") {
    throw new RunDirError(
      `${dir} already holds a run; continue it with --resume ${dir}, or choose another --out`,
    );
  }
  if (state === "no-checkpoint") {
    throw new RunDirError(
      `${dir} holds a run that stopped before its first checkpoint; --resume ${dir} starts it over ` +
        `with its saved configuration, or choose another --out`,
    );
  }
  if (state === "foreign") {
    const shown = entries.slice(0, 5).join(", ") + (entries.length > 5 ? `, ... (${entries.length})` : "");
    throw new RunDirError(
      `${dir} exists and holds files that are not a run (${shown}); nothing was written: ` +
        `choose a new or empty directory for --out`,
    );
  }
  await makeRunDir(dir);
}

/** Creates `dir` (and its parents) if absent; an error names it. */
export async function makeRunDir(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (error) {
    throw new RunDirError(`cannot create ${dir}: ${(error as Error).message}`);
  }
}

/**
 * An exclusive claim on a run directory, held while a command writes into it: an OS file lock
 * (`flock`) on `DIR/.lock`, which the kernel drops when the process ends, however it ends (`kill -9`
 * included), so a lock can never outlive its holder. The file names the holder, for the message
 * another command gets. Released by `release`, and at exit (Deno.exit included) by an unload listener.
 */
export class RunLock {
  #path: string;
  #file: Deno.FsFile | null;
  #onUnload = () => this.release();

  private constructor(path: string, file: Deno.FsFile) {
    this.#path = path;
    this.#file = file;
    globalThis.addEventListener("unload", this.#onUnload);
  }

  /** Takes the lock of `dir` for `tool`, or throws a RunDirError naming the command that holds it. */
  static async acquire(dir: string, tool: string, warn: (line: string) => void): Promise<RunLock> {
    const path = `${dir}/${LOCK_FILE}`;
    for (let attempt = 0; attempt < 5; attempt++) {
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { read: true, write: true, create: true });
      } catch (error) {
        throw new RunDirError(`cannot write into ${dir}: ${(error as Error).message}`);
      }
      const previous = await Deno.readTextFile(path).catch(() => "");
      if (!(await file.tryLock(true))) {
        file.close();
        // The holder may have taken the lock but not yet written its name (it writes right after):
        // read again for a moment before saying "?".
        let holder = parseHolder(previous);
        for (let wait = 0; holder.pid === undefined && wait < 25; wait++) {
          await new Promise((r) => setTimeout(r, 20));
          holder = parseHolder(await Deno.readTextFile(path).catch(() => ""));
        }
        throw new RunDirError(
          `${dir} is in use by ${holder.tool ?? "another command"} (process ${holder.pid ?? "?"}, since ${
            holder.since ?? "?"
          }); wait for it to finish`,
        );
      }
      // The holder before may have removed the file between our open and our lock: then this lock is
      // on a name no one else sees, and another process may lock the new file. Start again.
      const [mine, named] = [await file.stat(), await Deno.stat(path).catch(() => null)];
      if (named === null || (mine.ino !== null && named.ino !== mine.ino)) {
        file.close();
        continue;
      }
      const before = parseHolder(await Deno.readTextFile(path).catch(() => ""));
      if (before.pid !== undefined) {
        // Its holder ended without releasing it (a kill -9, a crash): the kernel dropped its lock.
        warn(
          `took over the lock of process ${before.pid} (${
            before.tool ?? "?"
          }), which ended without releasing it`,
        );
      }
      const content = { pid: Deno.pid, tool, since: new Date().toISOString() };
      await file.truncate(0);
      await file.write(new TextEncoder().encode(JSON.stringify(content) + "\n"));
      return new RunLock(path, file);
    }
    throw new RunDirError(`cannot lock ${dir}: other commands keep taking and releasing it`);
  }

  /** Removes the lock file, then drops the lock (idempotent). */
  release(): void {
    if (this.#file === null) return;
    try {
      Deno.removeSync(this.#path);
    } catch {
      // Already gone (removed by hand): the lock is dropped below all the same.
    }
    this.#file.close();
    this.#file = null;
    globalThis.removeEventListener("unload", this.#onUnload);
  }
}

function parseHolder(text: string): { pid?: number; tool?: string; since?: string } {
  try {
    const holder = JSON.parse(text);
    return typeof holder === "object" && holder !== null ? holder : {};
  } catch {
    return {};
  }
}

/** Whether a metrics.jsonl line belongs to a run restored at `step`: parseable, and not after it. */
function lineWithin(line: string, step: number): boolean {
  let record: { step?: unknown };
  try {
    record = JSON.parse(line);
  } catch {
    return false;
  }
  // Lines written before records carried their step cannot be judged: kept, unless starting over.
  return typeof record.step === "number" ? record.step <= step : step > 0;
}

/**
 * Drops the lines of `dir/metrics.jsonl` (or another JSON-lines `file` of the run whose lines carry
 * their `step`, such as curves.jsonl) that describe steps after `step` (the checkpoint's): a crash
 * between an epoch's checkpoint and its line cannot leave a line, but one in an older version could,
 * and a run started over from nothing keeps none. Garbled lines (a write cut short) go too. Returns
 * how many lines were dropped.
 */
export async function truncateMetrics(dir: string, step: number, file = "metrics.jsonl"): Promise<number> {
  const path = `${dir}/${file}`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw new RunDirError(`cannot read ${path}: ${(error as Error).message}`);
  }
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const keep = lines.filter((l) => lineWithin(l, step));
  if (keep.length === lines.length) return 0;
  const body = keep.map((l) => l + "\n").join("");
  await Deno.writeTextFile(`${path}.tmp`, body);
  await Deno.rename(`${path}.tmp`, path);
  return lines.length - keep.length;
}

/** Epochs a run has completed, from its metrics.jsonl (0 when it has none). */
export async function completedEpochs(dir: string): Promise<number> {
  try {
    const lines = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").filter(Boolean);
    return lines.map((l) => JSON.parse(l)).filter((r) => r.complete).length;
  } catch {
    return 0;
  }
}
