#!/usr/bin/env bash
# bench/gpu/run.sh: everything a GPU machine should tell us, in one command of at most 9 minutes
# ($GPU_BUDGET seconds: 540, or 900 when rehearsing), from what bench/gpu/pack.sh put in .gpu/ (nothing
# is fetched: the machine has no network).
#
#   bash bench/gpu/run.sh [DIR]            on the GPU machine; results in $OUT (the device tool's), else DIR
#   bash bench/gpu/run.sh --rehearse [DIR] here, on the software adapter, with tiny settings: the same stages
#                                          and the same packed files, so that the real call is not spent on a typo
#
# Stages, each with its own time limit so that one hang cannot eat the call, each logged with its time:
#   setup    Deno from .gpu/deno.xz, the Vulkan loader from .gpu/deb if the machine has none, node_modules
#   info     the adapter; fails fast unless it is a real GPU through Vulkan (tries the NVIDIA ICD if not)
#   tests    the whole suite: real hardware runs workgroups in parallel, races llvmpipe hides show up here
#   tune     the kernel tuner on the preset's training step (its choices then serve every later stage)
#   bench    matmul, the havtorn3 convolutions, the small and havtorn3 training steps (havtorn3 profiled)
#   compare  the small and havtorn3 steps against PyTorch (CUDA and CPU) on the same machine, after
#            PyTorch proves it computes our function
#   train    havtorn3 with the informative loss for a fixed time on the packed data, then ood --limit 2000
# At most 8 files come back: log.txt, summary.txt, bench.jsonl, compare.jsonl, tuning.json, metrics.jsonl,
# ood.json, profile.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
rehearse=0
if [ "${1:-}" = "--rehearse" ]; then rehearse=1; shift; fi
out=${OUT:-${1:-gpu-results}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
log=$out/log.txt
summary=$out/summary.txt
: > "$log"
: > "$summary"
work=$(mktemp -d)
started=$(date +%s)
budget=${GPU_BUDGET:-$([ $rehearse = 1 ] && echo 900 || echo 540)}
deadline=$((started + budget))
note() { echo "$*" | tee -a "$summary" "$log"; }

# stage NAME LIMIT_SECONDS COMMAND...: runs it with a time limit, output to the log; returns its status.
# A stage never runs past the call's budget: its limit shrinks to what is left, and with under 15 s left
# it is skipped.
stage() {
  local name=$1 limit=$2 t0 rc left
  shift 2
  t0=$(date +%s)
  left=$((deadline - t0))
  if [ "$left" -lt 15 ]; then
    note "$(printf '%-8s skipped: the budget of %ss is spent' "$name" "$budget")"
    return 124
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name: $* (limit ${limit}s)" >> "$log"
  timeout --kill-after=10 "$limit" "$@" >> "$log" 2>&1
  rc=$?
  note "$(printf '%-8s exit %-3s %4ss (limit %ss, %ss since start)' "$name" "$rc" "$(($(date +%s) - t0))" "$limit" "$(($(date +%s) - started))")"
  return $rc
}

if [ $rehearse = 1 ]; then
  note "rehearsal on this machine's adapter with tiny settings"
  PRESET=small; LIMIT_TESTS=400; TRAIN=(--preset tiny --time-limit 15s); OOD_LIMIT=200
  BENCH=(conv-small train-step-small-elbo); PROFILE=train-step-small-elbo; COMPARE=(small); RUNS=1
else
  PRESET=havtorn3; LIMIT_TESTS=150; TRAIN=(--preset havtorn3 --time-limit 75s); OOD_LIMIT=2000
  BENCH=(matmul conv-havtorn3 train-step-small train-step-havtorn3); PROFILE=train-step-havtorn3; COMPARE=(small havtorn3); RUNS=3
fi

# ---------------------------------------------------------------- setup
setup() {
  [ -s .gpu/deno.xz ] || { echo "no .gpu/deno.xz: run bash bench/gpu/pack.sh first (and carry .gpu)"; return 1; }
  mkdir -p "$work/bin"
  xz -d -c .gpu/deno.xz > "$work/bin/deno" && chmod +x "$work/bin/deno" || return 1
  if ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
    dpkg -x .gpu/deb/libvulkan1_*.deb "$work/vulkan" || return 1
    echo "using the carried Vulkan loader"
  fi
  if [ ! -d node_modules/.deno ]; then cp -a .gpu/node_modules node_modules || return 1; fi
  # The packed data in the cache directory, where every command (and every test) finds it.
  for set in fashion-mnist mnist; do
    mkdir -p "$HVAE_OOD_CACHE/$set"
    for f in .gpu/data/$set-*; do cp "$f" "$HVAE_OOD_CACHE/$set/${f#.gpu/data/$set-}"; done
  done
  "$work/bin/deno" --version
}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} HVAE_OOD_CACHE="$work/cache" NO_COLOR=1
export -f setup
export work rehearse log
stage setup 45 bash -c setup || { note "setup failed: see log.txt"; exit 1; }
export PATH="$work/bin:$PATH"
[ -d "$work/vulkan" ] && export LD_LIBRARY_PATH="$work/vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# ---------------------------------------------------------------- info
adapter_ok() {
  deno task info > "$work/info.json" 2>> "$log" || return 1
  cat "$work/info.json" >> "$log"
  if [ $rehearse = 1 ]; then return 0; fi
  grep -q '"isFallbackAdapter": false' "$work/info.json" && ! grep -qi 'llvmpipe\|swiftshader' "$work/info.json"
}
export -f adapter_ok
if ! stage info 30 bash -c adapter_ok; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  stage info-nv 30 bash -c adapter_ok || { note "no real GPU adapter (see log.txt); stopping"; exit 1; }
fi
note "adapter: $(grep -o '"description": "[^"]*"' "$work/info.json")"

# ---------------------------------------------------------------- the rest
stage tests "$LIMIT_TESTS" deno task test
grep -E '^(ok|FAILED) \|' "$log" | tail -n1 | tee -a "$summary"

stage tune 60 deno task tune --preset "$PRESET"
cp "$work/cache/tuning.json" "$out/tuning.json" 2>/dev/null

for filter in "${BENCH[@]}"; do
  stage bench 60 sh -c "deno task bench --filter $filter --runs $RUNS | tee -a '$out/bench.jsonl'"
done
stage profile 60 sh -c "deno task bench --filter $PROFILE --runs 1 --profile | tee -a '$out/bench.jsonl'"

for preset in "${COMPARE[@]}"; do
  # PyTorch on 16 CPU cores takes seconds per havtorn3 step: CUDA only there.
  devices=cpu,cuda
  [ "$preset" = havtorn3 ] && devices=cuda
  stage compare 90 deno task bench:compare --preset "$preset" --skip jaxjs --runs "$RUNS" \
    --torch-devices "$devices" --json "$work/compare-$preset.jsonl"
  cat "$work/compare-$preset.jsonl" >> "$out/compare.jsonl" 2>/dev/null
done

stage train 150 deno task train "${TRAIN[@]}" --loss informative --data-dir .gpu/data --out "$work/run" \
  --eval-limit "$OOD_LIMIT" --profile
cp "$work/run/metrics.jsonl" "$work/run/ood.json" "$work/run/profile.json" "$out/" 2>/dev/null
grep -E 'llr_ada|^train: time limit|^epoch 1:' "$log" | tail -n 3 >> "$summary"

note "total $(($(date +%s) - started)) s; results in $out"
rm -rf "$work"
