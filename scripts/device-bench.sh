#!/usr/bin/env bash
# The benchmark on the lent GPU machine (an H100 with NVIDIA's Vulkan driver), in one call.
#
#   here:   scripts/device-bench.sh --prepare
#           downloads the Vulkan loader .debs into .gl/ and builds the release CLI into .bench/
#           (both git-ignored; the machine has no network and no Rust toolchain to rely on)
#   there:  run(command="scripts/device-bench.sh", carry=[".gl", ".bench"])
#           unpacks the loader, runs `quantscope bench --synthetic --json` (the default model's
#           shapes with random weights: the 98 MB model file cannot travel) and writes
#           $OUT/bench.json and $OUT/bench.log
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ "${1:-}" == "--prepare" ]]; then
    mkdir -p .gl .bench /tmp/amd64/partial
    grep -qx '/.bench/' .git/info/exclude 2>/dev/null || echo '/.bench/' >> .git/info/exclude
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    # shellcheck disable=SC2086
    apt-get $o update -qq
    # shellcheck disable=SC2086
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
    cargo build --release --bin quantscope
    cp target/release/quantscope .bench/quantscope
    echo "prepared: .gl/ ($(ls .gl | wc -l) packages) and .bench/quantscope"
    exit 0
fi

out="${OUT:-target/device-bench}"
mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[[ -f "$icd" ]] && export VK_DRIVER_FILES="$icd"
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv > "$out/gpu.txt" 2>&1 || true
.bench/quantscope bench --synthetic --json > "$out/bench.json" 2> >(tee "$out/bench.log" >&2)
echo "wrote $out/bench.json"
