/**
 * The names of the datasets a model can be trained on: plain data, no file system, shared by the
 * loaders (data/datasets.ts) and the run configuration's checks (models/run_from_bytes.ts).
 */

/** A training dataset. */
export type DatasetName = "fashion-mnist" | "mnist" | "kmnist";
/** Every `DatasetName`. */
export const DATASET_NAMES: readonly DatasetName[] = ["fashion-mnist", "mnist", "kmnist"];
