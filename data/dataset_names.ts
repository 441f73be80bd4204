/**
 * The names of the datasets a model can be trained on and the images each holds: plain data, no file
 * system, shared by the loaders (data/datasets.ts, data/colour_datasets.ts) and the run configuration's
 * checks (models/run_from_bytes.ts).
 */

/** The training datasets published as IDX files (data/datasets.ts). */
export type IdxDatasetName = "fashion-mnist" | "mnist" | "kmnist";
/** Every `IdxDatasetName`. */
export const IDX_DATASET_NAMES: readonly IdxDatasetName[] = ["fashion-mnist", "mnist", "kmnist"];
/** A training dataset: an IDX one, or CIFAR-10 (data/colour_datasets.ts). */
export type DatasetName = IdxDatasetName | "cifar10";
/** Every `DatasetName`. */
export const DATASET_NAMES: readonly DatasetName[] = [...IDX_DATASET_NAMES, "cifar10"];

/** The images of a dataset: height, width and channels (1 grayscale, 3 RGB). */
export interface ImageShape {
  /** Rows. */
  height: number;
  /** Columns. */
  width: number;
  /** Values per pixel. */
  channels: number;
}

/** Each training dataset's name in tables, figures and the page. */
export const DATASET_DISPLAY: Record<DatasetName, string> = {
  "fashion-mnist": "Fashion-MNIST",
  mnist: "MNIST",
  kmnist: "KMNIST",
  cifar10: "CIFAR-10",
};

/** Each training dataset's images. */
export const DATASET_IMAGES: Record<DatasetName, ImageShape> = {
  "fashion-mnist": { height: 28, width: 28, channels: 1 },
  mnist: { height: 28, width: 28, channels: 1 },
  kmnist: { height: 28, width: 28, channels: 1 },
  cifar10: { height: 32, width: 32, channels: 3 },
};

/** "28x28" for grayscale, "32x32 RGB" for three channels: how errors name an image shape. */
export const shapeName = (height: number, width: number, channels: number): string =>
  `${height}x${width}${channels === 3 ? " RGB" : channels === 1 ? "" : `x${channels}`}`;

/** The paper's OOD set for a model trained on `inName`: MNIST for the grayscale sets, SVHN for CIFAR-10. */
export function pairedOodSet(inName: DatasetName): string {
  return DATASET_IMAGES[inName].channels === 3 ? "svhn" : "mnist";
}
