/**
 * `deno task train`: trains a hierarchical VAE on Fashion-MNIST and writes a run directory:
 *   config.json            the resolved model and training configuration, seed, adapter, versions, data,
 *                          and the changes made on resuming (`resumes`: a new --epochs or --lr);
 *   metrics.jsonl          one line per epoch: loss, ELBO, KL per layer, ll_k per k, seconds, images/s,
 *                          the global step after it and the learning rate;
 *   model.safetensors      the parameters (names documented in models/hvae.ts);
 *   optimizer.safetensors  Adam's moments and the position in the run, for --resume.
 * Checkpoints are written after every epoch (and on Ctrl-C, SIGTERM or --time-limit), both files in
 * full before either is renamed into place; a non-finite loss or a failed write stops the run without
 * touching the last good checkpoint. The directory is locked while a command writes into it
 * (store/run_lifecycle.ts), and everything that can be checked (flags, data, the batch against the device)
 * is checked before the first byte is written. README, "When things go wrong", lists the rules.
 */

import { adapterInfo, engineStats, startProfile, sync } from "../kernels/engine.ts";
import { dispose } from "../kernels/tensor.ts";
import { guessBackend } from "../kernels/runtime/backend.ts";
import { checkStepFits, train } from "../models/training.ts";
import { makeRunDir, prepareNewRunDir, RunLock } from "../store/run_lifecycle.ts";
import {
  epochLine,
  evaluationLimitFor,
  formatSeconds,
  modelSummary,
  progressPrinter,
  recordResumeChanges,
  saveEpoch,
  startingState,
  startLines,
  stoppedOnError,
  timeLimitLine,
  trainingSet,
  writeRunConfig,
  writeStepProfile,
} from "../store/training_run.ts";
import { addCurvePoints, curveSettings, loadCurveSets, runCurves } from "../eval/curves.ts";
import { evaluateRun } from "../eval/evaluate.ts";
import { initGpuOrExit, onStopSignals, runCommand } from "./cli.ts";
import { applyKernelsMode } from "./kernels_flag.ts";
import {
  DEFAULT_EVAL_SECONDS,
  DEFAULT_TIME_LIMIT,
  runToTrain,
  SCORING_OVER_TRAINING_SPEED,
  trainCommandLine,
} from "./train_flags.ts";

const cli = await trainCommandLine();
const { flags, evaluation, resume, noFlags } = cli;
let timeLimit = cli.timeLimit;
const log = (line: string) => console.log(`train: ${line}`);
await runCommand("train", async () => {
  await initGpuOrExit("train");
  const adapter = adapterInfo();
  const software = adapter.isFallbackAdapter || /llvmpipe|swiftshader|software/i.test(adapter.description);
  const backend = await guessBackend(adapter);
  if (noFlags && software) timeLimit = DEFAULT_TIME_LIMIT;
  const { run, dir, changes } = await runToTrain(cli, software, adapter);
  const t = run.training;
  log(
    `adapter ${adapter.description}, ${backend.name}${
      software ? " (software: expect ~100x less speed than a GPU)" : ""
    }`,
  );
  if (backend.warning) console.error(`train: warning: ${backend.warning}`);
  log(`${modelSummary(run)}; run directory ${dir}`);

  // Data: Fashion-MNIST train split, checked against the model before anything is written.
  const set = await trainingSet(run, cli.dataDir, resume !== undefined, log);
  checkStepFits(run.model, t, set, null);

  // From here on the directory is written: hold its lock (released at exit, whatever the exit).
  if (resume === undefined) await makeRunDir(dir);
  const lock = await RunLock.acquire(dir, "deno task train", (line) => console.error(`train: ${line}`));
  if (resume === undefined) {
    // Checked again under the lock: another command may have started a run here meanwhile.
    await prepareNewRunDir(dir);
    await writeRunConfig(dir, run);
  }
  await applyKernelsMode("train", cli.kernels, { cfg: run.model, batch: t.batchSize, loss: t.loss });
  const state = await startingState(dir, run, set, resume !== undefined, log);
  // --eval-every's settings stay with the run (config.json `curves`).
  const given = cli.evalEvery > 0 ? curveSettings(cli.evalEvery, cli.curveLimit, evaluation) : null;
  const curves = await runCurves(dir, run, given, flags["eval-every"] !== undefined);
  // The fixed subsets of the curves, on the GPU for the whole run.
  const curveSets = curves ? await loadCurveSets(run, curves, evaluation, log) : null;
  await recordResumeChanges(dir, run, changes, state.progress.step, log);
  startLines(run, state).forEach(log);

  let interrupted = false;
  const stopListening = onStopSignals((signal) => {
    if (interrupted) [lock.release(), Deno.exit(130)];
    interrupted = true;
    console.log(
      `\ntrain: ${signal === "SIGINT" ? "interrupted" : signal}: finishing this step, saving, then exiting ` +
        `(Ctrl-C again to abort)`,
    );
  });
  if (timeLimit !== null) {
    log(`time limit ${formatSeconds(timeLimit)}: training stops after the step that reaches it`);
  }
  let profiling = false;
  const progress = progressPrinter(run, () => timeLimit);
  let result;
  try {
    result = await train(run.model, t, set, state, {
      beforeStep: (stepsHere, b, batches) => {
        // With --profile: the second step of this process (the first compiles the kernels), or an only one.
        profiling = flags.profile && (stepsHere === 1 || (stepsHere === 0 && batches - b === 1));
        if (profiling) startProfile();
      },
      afterStep: async (r) => {
        if (profiling) await writeStepProfile(dir, r.progress.step - 1);
        await progress.step(r);
      },
      shouldStop: (r) =>
        interrupted
          ? "interrupted"
          : timeLimit !== null && r.trainingSeconds >= timeLimit
          ? "time limit"
          : null,
      afterEpoch: async (record, s) => {
        progress.epochEnd();
        await saveEpoch(dir, run, record, s, { bytesInUse: engineStats().bytesInUse });
        console.log(epochLine(record, dir));
        if (curves && curveSets && record.complete && record.epoch % curves.every === 0) {
          console.log(
            await addCurvePoints(dir, run, s.params, curves, curveSets, {
              epoch: record.epoch,
              step: s.progress.step,
            }),
          );
        }
      },
    });
  } catch (error) {
    progress.epochEnd();
    throw await stoppedOnError(dir, error, t.lr);
  }
  stopListening();
  const { params, adam } = state;
  dispose([adam.m, adam.v, set.bytes]);
  if (curveSets) dispose([curveSets.in.bytes, ...curveSets.ood.map((o) => o.set.bytes)]);
  if (result.stoppedBy === "interrupted" || interrupted) {
    dispose(params);
    log(`stopped after step ${state.progress.step}; continue with: deno task train --resume ${dir}`);
    await sync();
    Deno.exit(130);
  }
  if (result.stoppedBy === "time limit" && state.progress.epoch < t.epochs) {
    log(timeLimitLine(timeLimit!, state.progress, Math.ceil(set.count / t.batchSize), dir));
  }
  log(`done: ${dir}/{config.json, metrics.jsonl, model.safetensors, optimizer.safetensors}`);
  if (noFlags && software && evaluation.limit === undefined && result.images > 0) {
    // Size the default evaluation by time as well, at this machine's scoring speed.
    const fit = evaluationLimitFor(
      result,
      1 + Math.max(1, evaluation.ood.length),
      DEFAULT_EVAL_SECONDS,
      SCORING_OVER_TRAINING_SPEED,
    );
    if (fit) [evaluation.limit] = [fit.limit, log(fit.line(dir))];
  }
  if (!flags["no-eval"]) {
    // The paper's evaluation (docs/design.md sections 3-4): the same code as 'deno task ood --run DIR'.
    log(`evaluating OOD detection (${evaluation.limit ?? "all"} test images per set; --no-eval skips this)`);
    try {
      await evaluateRun({ dir, config: run, params }, evaluation);
    } catch (error) {
      throw new Error(
        `evaluation failed: ${(error as Error).message}; the trained run in ${dir} is intact ` +
          `('deno task ood --run ${dir}' evaluates it again)`,
      );
    }
  }
  dispose(params);
  lock.release();
});
