/**
 * `--likelihood NAME` and `--components K` (models/likelihood.ts), as `deno task train`, `reproduce`
 * and `bench:compare` read them: one parse, with usage errors that name the flag.
 */

import { MAX_COMPONENTS } from "../kernels/logistic_mixture.ts";
import { DEFAULT_LIKELIHOOD, LIKELIHOOD_NAMES, type LikelihoodName } from "../models/likelihood.ts";
import { intFlag, usageError } from "./cli.ts";

/** The two flags for `parseFlags`; no defaults, so that a flag given can be told from one absent. */
export const LIKELIHOOD_FLAGS = {
  likelihood: { type: "string" },
  components: { type: "string" },
} as const;

/** What the flags asked for: undefined where a flag was not given. */
export interface LikelihoodChoice {
  /** The likelihood's name. */
  likelihood?: LikelihoodName;
  /** The mixture's components. */
  components?: number;
}

/**
 * Checks the flags: a known name, components an integer in [1, MAX_COMPONENTS] and only for the
 * logistic mixture (named, or the default when no --likelihood is given).
 */
export function likelihoodChoice(
  tool: string,
  usage: string,
  flags: { likelihood?: string; components?: string },
): LikelihoodChoice {
  const name = flags.likelihood;
  if (name !== undefined && !(LIKELIHOOD_NAMES as readonly string[]).includes(name)) {
    usageError(tool, usage, `--likelihood must be one of ${LIKELIHOOD_NAMES.join(", ")}, got '${name}'`);
  }
  const components = flags.components === undefined
    ? undefined
    : intFlag(tool, usage, "components", flags.components, 1, MAX_COMPONENTS);
  if (components !== undefined && (name ?? DEFAULT_LIKELIHOOD) !== "logistic-mixture") {
    usageError(tool, usage, "--components is for --likelihood logistic-mixture");
  }
  return { likelihood: name as LikelihoodName | undefined, components };
}
