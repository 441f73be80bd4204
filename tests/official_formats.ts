/**
 * Files in the formats datasets are published in, made by the tests (no package ships CIFAR-10 or
 * SVHN, so the readers are tested on these): ustar archives as GNU tar writes them, CIFAR-10's binary
 * archive, and MATLAB 5 MAT-files as SVHN's are written (numeric matrices, zlib-compressed or not).
 */

import { concatBytes } from "../data/files.ts";
import { gzip } from "./loopback.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

/** A ustar archive of `files` (as GNU tar writes one: octal fields, header checksum, two zero blocks). */
export function tar(files: [string, Uint8Array][]): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const [name, data] of files) {
    const h = new Uint8Array(512);
    const field = (at: number, text: string) => h.set(ascii(text), at);
    field(0, name);
    field(100, "0000644\0");
    field(124, data.length.toString(8).padStart(11, "0") + "\0");
    field(136, "00000000000\0");
    field(156, "0");
    field(257, "ustar\0");
    field(263, "00");
    h.fill(0x20, 148, 156); // the checksum counts its own field as spaces
    field(148, h.reduce((a, b) => a + b, 0).toString(8).padStart(6, "0") + "\0 ");
    const body = new Uint8Array(Math.ceil(data.length / 512) * 512);
    body.set(data);
    blocks.push(h, body);
  }
  blocks.push(new Uint8Array(1024));
  return concatBytes(blocks);
}

/** A colour image set made up for the tests: n images [32, 32, 3] (NHWC bytes) and labels. */
export interface ColourImages {
  images: Uint8Array;
  labels: Uint8Array;
}

/** `n` distinct 32x32 RGB images whose channels differ, with labels 0..9 (seeded by `seed`). */
export function colourImages(n: number, seed: number): ColourImages {
  const images = Uint8Array.from(
    { length: n * 3072 },
    (_, i) => (Math.floor(i / 3072) * 31 + (i % 3072 >> 5) * 7 + (i % 3) * 85 + seed * 13 + (i & 31)) % 256,
  );
  return { images, labels: Uint8Array.from({ length: n }, (_, i) => (i + seed) % 10) };
}

/** CIFAR-10 binary records of images given NHWC: a label byte, then the reds, greens, blues (planar). */
export function cifarRecords({ images, labels }: ColourImages): Uint8Array {
  const out = new Uint8Array(labels.length * 3073);
  labels.forEach((label, i) => {
    out[i * 3073] = label;
    for (let p = 0; p < 1024; p++) {
      for (let c = 0; c < 3; c++) out[i * 3073 + 1 + c * 1024 + p] = images[i * 3072 + 3 * p + c];
    }
  });
  return out;
}

/** A gzipped archive laid out as cifar-10-binary.tar.gz: five training batches and a test batch. */
export async function cifarArchive(train: ColourImages[], test: ColourImages): Promise<Uint8Array> {
  const dir = "cifar-10-batches-bin";
  return await gzip(tar([
    [`${dir}/batches.meta.txt`, ascii("airplane\nautomobile\n")],
    ...train.map((b, i): [string, Uint8Array] => [`${dir}/data_batch_${i + 1}.bin`, cifarRecords(b)]),
    [`${dir}/test_batch.bin`, cifarRecords(test)],
  ]));
}

/**
 * One MATLAB 5 data element: tag (type, byte count) and data padded to 8 bytes; up to 4 bytes of
 * data go in a small element (size and type in one word, then the data), as MATLAB writes names.
 */
function element(type: number, data: Uint8Array, pad = true): Uint8Array {
  if (pad && data.length <= 4) {
    const small = new Uint8Array(8);
    new DataView(small.buffer).setUint32(0, (data.length << 16) | type, true);
    small.set(data, 4);
    return small;
  }
  const out = new Uint8Array(8 + (pad ? Math.ceil(data.length / 8) * 8 : data.length));
  const v = new DataView(out.buffer);
  v.setUint32(0, type, true);
  v.setUint32(4, data.length, true);
  out.set(data, 8);
  return out;
}

/** A numeric matrix element: class (9 uint8, 6 double), dims, name, and the real part of type `mi`. */
export function matMatrix(
  name: string,
  cls: number,
  dims: number[],
  mi: number,
  values: Uint8Array,
): Uint8Array {
  const flags = new Uint8Array(8);
  new DataView(flags.buffer).setUint32(0, cls, true);
  const d = new Uint8Array(4 * dims.length);
  dims.forEach((x, i) => new DataView(d.buffer).setInt32(4 * i, x, true));
  return element(
    14,
    concatBytes([element(6, flags), element(5, d), element(1, ascii(name)), element(mi, values)]),
  );
}

/** Compresses an element as MATLAB 7 does (miCOMPRESSED: a zlib stream, not padded). */
export async function compressed(matrix: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([matrix as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("deflate"),
  );
  return element(15, new Uint8Array(await new Response(stream).arrayBuffer()), false);
}

/** A MAT-file: the 128-byte header (text, version 0x0100, "IM"), then the elements. */
export function matFile(elements: Uint8Array[]): Uint8Array {
  const header = new Uint8Array(128).fill(0x20);
  header.set(ascii("MATLAB 5.0 MAT-file, Platform: GLNXA64, made by the tests"), 0);
  header.fill(0, 116, 124);
  header.set([0x00, 0x01, 0x49, 0x4d], 124);
  return concatBytes([header, ...elements]);
}

/** SVHN's test file for `set`: X uint8 [32, 32, 3, N] column-major, y double [N, 1] of 1..10 stored as bytes. */
export async function svhnMat({ images, labels }: ColourImages, compress = true): Promise<Uint8Array> {
  const n = labels.length;
  const X = new Uint8Array(n * 3072);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < 32; r++) {
      for (let c = 0; c < 32; c++) {
        for (let ch = 0; ch < 3; ch++) {
          X[r + 32 * c + 1024 * ch + 3072 * i] = images[i * 3072 + (r * 32 + c) * 3 + ch];
        }
      }
    }
  }
  const y = labels.map((l) => l === 0 ? 10 : l);
  const matrices = [matMatrix("X", 9, [32, 32, 3, n], 2, X), matMatrix("y", 6, [n, 1], 2, y)];
  return matFile(compress ? await Promise.all(matrices.map(compressed)) : matrices);
}

/** A data directory holding a small CIFAR-10 archive (5 x 8 training images, 20 test) and SVHN's file. */
export async function colourDataDir(): Promise<string> {
  const dir = await Deno.makeTempDir();
  const train = [1, 2, 3, 4, 5].map((seed) => colourImages(8, seed));
  await Deno.writeFile(`${dir}/cifar-10-binary.tar.gz`, await cifarArchive(train, colourImages(20, 9)));
  await Deno.writeFile(`${dir}/test_32x32.mat`, await svhnMat(colourImages(20, 40)));
  return dir;
}
