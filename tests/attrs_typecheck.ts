/**
 * Compile-time checks, run by `deno task check` (not a test file): each primitive's attributes are
 * typed (autograd/rules.ts `PrimitiveAttrs`), so recording an op without the attributes its rule
 * reads, or with attributes of the wrong type, does not compile. Each `@ts-expect-error` fails the
 * check if its line ever compiles.
 */

import { record } from "../autograd/tape.ts";
import type { Tensor } from "../kernels/tensor.ts";

/** Never called: its body only has to type-check. */
export function recordedAttributesAreTyped(x: Tensor): void {
  record("add", [x, x], x);
  record("matmul", [x, x], x, { transA: false, transB: true });
  // @ts-expect-error: matmul's rule reads transA and transB
  record("matmul", [x, x], x);
  // @ts-expect-error: concat's axis is a number
  record("concat", [x], x, { axis: "0" });
  // @ts-expect-error: not a primitive
  record("conv3d", [x], x);
}
