/**
 * The subset of MATLAB's Level 5 MAT-file format (MathWorks, "MAT-File Format", version 7 and
 * earlier) that SVHN's `*_32x32.mat` files use: a 128-byte header (descriptive text, version 0x0100
 * and the endian indicator "IM" or "MI"), then data elements, each an 8-byte tag (type, byte count)
 * or a 4-byte small-element tag, padded to 8 bytes. A top-level element is a zlib-compressed element
 * (miCOMPRESSED, 15) holding one, or a numeric matrix (miMATRIX, 14) itself: array flags (the class),
 * dimensions, name and the real part, stored in the smallest type that holds its values (MATLAB
 * writes a double array of small integers as bytes, which is how SVHN's labels come).
 * Cell arrays, structures, objects, sparse and complex arrays are refused by name; every length is
 * checked against the file, and inflating stops at the size of the largest array this reads.
 */

import { inflate } from "./inflate.ts";

/** A numeric array read from a MAT-file: MATLAB's class, its dimensions and its values (column-major). */
export interface MatArray {
  /** MATLAB's class name ("uint8", "double", ...). */
  className: string;
  /** Dimensions, MATLAB's order (column-major: the first varies fastest). */
  dims: number[];
  /** The values, in the type the file stores them in. */
  data: ArrayLike<number>;
}

/** The largest decompressed element read (SVHN's extra set is 1.3 GB; its test set 80 MB). */
const MAX_ELEMENT_BYTES = 2 ** 31 - 1;

const MI_MATRIX = 14, MI_COMPRESSED = 15;
/** Data types by number: bytes per value and how to read one. */
const MI_TYPES: Record<number, { name: string; size: number }> = {
  1: { name: "int8", size: 1 },
  2: { name: "uint8", size: 1 },
  3: { name: "int16", size: 2 },
  4: { name: "uint16", size: 2 },
  5: { name: "int32", size: 4 },
  6: { name: "uint32", size: 4 },
  7: { name: "single", size: 4 },
  9: { name: "double", size: 8 },
};
/** Numeric array classes (mxCLASS): cell (1), struct (2), object (3), char (4), sparse (5) are not read. */
const NUMERIC_CLASSES: Record<number, string> = {
  6: "double",
  7: "single",
  8: "int8",
  9: "uint8",
  10: "int16",
  11: "uint16",
  12: "int32",
  13: "uint32",
};
const OTHER_CLASSES: Record<number, string> = {
  1: "cell array",
  2: "structure",
  3: "object",
  4: "char array",
  5: "sparse array",
};

interface Element {
  type: number;
  data: Uint8Array;
  /** Where the next element starts. */
  next: number;
}

/** Reads a MAT-file's variables by name (numeric arrays only; see the module comment). */
export async function readMat(bytes: Uint8Array, name: string): Promise<Map<string, MatArray>> {
  if (bytes.length < 128) {
    throw new Error(`${name}: too short for a MATLAB 5 MAT-file (${bytes.length} bytes)`);
  }
  const text = new TextDecoder("latin1").decode(bytes.subarray(0, 10));
  const indicator = String.fromCharCode(bytes[126], bytes[127]);
  if (!text.startsWith("MATLAB 5.0") || (indicator !== "IM" && indicator !== "MI")) {
    const v73 = new TextDecoder("latin1").decode(bytes.subarray(0, 19)) === "MATLAB 7.3 MAT-file";
    throw new Error(
      `${name}: not a MATLAB 5 MAT-file${v73 ? " (a version 7.3 file is HDF5, which is not read here)" : ""}`,
    );
  }
  const little = indicator === "IM";
  const variables = new Map<string, MatArray>();
  for (let at = 128; at < bytes.length;) {
    const element = readElement(bytes, at, little, name);
    at = element.next;
    let matrix = element;
    if (element.type === MI_COMPRESSED) {
      const inner = await inflate(element.data, "deflate", name, MAX_ELEMENT_BYTES);
      matrix = readElement(inner, 0, little, name);
    }
    if (matrix.type !== MI_MATRIX) {
      throw new Error(`${name}: a top-level element of type ${matrix.type}, not a matrix; not read here`);
    }
    const { varName, array } = readMatrix(matrix.data, little, name);
    variables.set(varName, array);
  }
  return variables;
}

/** The element at `at`: its tag (full or small), its data, and where the next one starts. */
function readElement(bytes: Uint8Array, at: number, little: boolean, name: string): Element {
  if (at + 8 > bytes.length) {
    throw new Error(`${name}: truncated (an element's tag at byte ${at} is cut off)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, 8);
  const first = view.getUint32(0, little);
  if (first >>> 16 !== 0) {
    // Small data element: type and size in the first 4 bytes, the data (at most 4 bytes) in the next 4.
    const size = first >>> 16;
    if (size > 4) throw new Error(`${name}: corrupt small element at byte ${at} (${size} bytes)`);
    return { type: first & 0xffff, data: bytes.subarray(at + 4, at + 4 + size), next: at + 8 };
  }
  const size = view.getUint32(4, little);
  if (at + 8 + size > bytes.length) {
    throw new Error(
      `${name}: truncated (an element at byte ${at} announces ${size} bytes, ${
        bytes.length - at - 8
      } remain)`,
    );
  }
  // Compressed elements are not padded; everything else is, to 8 bytes.
  const next = at + 8 + (first === MI_COMPRESSED ? size : Math.ceil(size / 8) * 8);
  return { type: first, data: bytes.subarray(at + 8, at + 8 + size), next: Math.min(next, bytes.length) };
}

/** A matrix element's name and numeric array. */
function readMatrix(bytes: Uint8Array, little: boolean, name: string): { varName: string; array: MatArray } {
  const flags = readElement(bytes, 0, little, name);
  if (flags.data.length < 8) throw new Error(`${name}: corrupt array flags`);
  const flagView = new DataView(flags.data.buffer, flags.data.byteOffset, 8);
  const word = flagView.getUint32(0, little);
  const cls = word & 0xff;
  const dimsElement = readElement(bytes, flags.next, little, name);
  const nameElement = readElement(bytes, dimsElement.next, little, name);
  const varName = new TextDecoder("latin1").decode(nameElement.data);
  const className = NUMERIC_CLASSES[cls];
  if (!className) {
    throw new Error(
      `${name}: variable '${varName}' is a ${
        OTHER_CLASSES[cls] ?? `class ${cls}`
      }; only numeric arrays are read`,
    );
  }
  if (word & 0x800) throw new Error(`${name}: variable '${varName}' is complex; only real arrays are read`);
  if (dimsElement.type !== 5 || dimsElement.data.length % 4 !== 0) {
    throw new Error(`${name}: variable '${varName}' has corrupt dimensions`);
  }
  const dv = new DataView(dimsElement.data.buffer, dimsElement.data.byteOffset, dimsElement.data.length);
  const dims = Array.from({ length: dimsElement.data.length / 4 }, (_, i) => dv.getInt32(4 * i, little));
  if (dims.some((d) => d < 0)) {
    throw new Error(`${name}: variable '${varName}' has negative dimensions [${dims}]`);
  }
  const real = readElement(bytes, nameElement.next, little, name);
  const type = MI_TYPES[real.type];
  if (!type) {
    throw new Error(`${name}: variable '${varName}' stores its values as type ${real.type}; not read here`);
  }
  const count = dims.reduce((a, b) => a * b, 1);
  if (real.data.length !== count * type.size) {
    throw new Error(
      `${name}: variable '${varName}' [${dims}] needs ${
        count * type.size
      } bytes of ${type.name}, has ${real.data.length}`,
    );
  }
  return { varName, array: { className, dims, data: values(real.data, type.name, count, little) } };
}

/** The values of a real part, in their stored type. */
function values(data: Uint8Array, type: string, count: number, little: boolean): ArrayLike<number> {
  if (type === "uint8") return data;
  if (type === "int8") return new Int8Array(data.buffer, data.byteOffset, count);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const read: Record<string, (i: number) => number> = {
    int16: (i) => view.getInt16(2 * i, little),
    uint16: (i) => view.getUint16(2 * i, little),
    int32: (i) => view.getInt32(4 * i, little),
    uint32: (i) => view.getUint32(4 * i, little),
    single: (i) => view.getFloat32(4 * i, little),
    double: (i) => view.getFloat64(8 * i, little),
  };
  return Float64Array.from({ length: count }, (_, i) => read[type](i));
}
