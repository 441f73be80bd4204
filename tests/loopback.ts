/**
 * A stand-in for a dataset's official site: files served on 127.0.0.1 with their MD5s, so the
 * download path (fetch, checksum, cache) is tested on machines without internet.
 */

import { createHash } from "node:crypto";

/** Gzips bytes (as the official sites ship IDX files). */
export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Serves `files` (path -> bytes) on 127.0.0.1 while `fn` runs; any other path is a 404. */
export async function withFileServer(
  files: Record<string, Uint8Array>,
  fn: (baseUrl: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const body = files[new URL(request.url).pathname];
    return body ? new Response(body as Uint8Array<ArrayBuffer>) : new Response("no", { status: 404 });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

/** The MD5 of bytes, in hex (as the datasets publish it). */
export const md5 = (b: Uint8Array): string => createHash("md5").update(b).digest("hex");

/**
 * Serves `images` and `labels` (IDX bytes) gzipped as `t10k-*-ubyte.gz` on 127.0.0.1 while `fn` runs,
 * with the base URL and the MD5s a dataset's `official` entry takes.
 */
export async function withTestSplitServer(
  images: Uint8Array,
  labels: Uint8Array,
  fn: (site: { baseUrl: string; md5: Record<string, string> }) => Promise<void>,
): Promise<void> {
  const files: Record<string, Uint8Array> = {
    "/t10k-images-idx3-ubyte.gz": await gzip(images),
    "/t10k-labels-idx1-ubyte.gz": await gzip(labels),
  };
  await withFileServer(files, (baseUrl) =>
    fn({
      baseUrl,
      md5: {
        "t10k-images-idx3-ubyte": md5(files["/t10k-images-idx3-ubyte.gz"]),
        "t10k-labels-idx1-ubyte": md5(files["/t10k-labels-idx1-ubyte.gz"]),
      },
    }));
}
