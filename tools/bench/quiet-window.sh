#!/usr/bin/env bash
# The timing benchmarks of issues 7 and 4 in one go, for a quiet machine (docs/backends.md, docs/tornado.md):
#   tools/bench/quiet-window.sh [OUT_DIR]            (default OUT_DIR: target/bench)
# 1. bin/diffquant bench-backends   (issue 7: kernels, end-to-end FP32 / fake W8A8 / cpu-int8, weight memory, bars)
# 2. bin/diffquant bench-quant      (issue 4: fake-quant W4A8 INT/FP sampling cost vs FP32, rtn calibration time)
# 3. with TORNADOVM_HOME set: tools/bench/tornado_bench.sh kernels, then sampling (each under a time limit,
#    TORNADO_KERNELS_LIMIT / TORNADO_SAMPLING_LIMIT seconds, default 420 / 240)
# The CPU benchmarks run without TORNADOVM_HOME, so their JVM has no TornadoVM flags. Every report is written as
# Markdown (.md), JSON (.json, the CPU ones) and the console log (.log) into OUT_DIR. Build first (./mvnw -q -DskipTests
# package, and for TornadoVM the test-compile that tornado_bench.sh does) so that no compilation falls into the window.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$root/target/bench}
mkdir -p "$out"
stamp() { echo "== $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg): $*"; }

stamp "bench-backends" | tee "$out/quiet-window.log"
env -u TORNADOVM_HOME "$root/bin/diffquant" bench-backends --reps 5 --out "$out/bench-backends.md" --json "$out/bench-backends.json" \
  2>&1 | tee "$out/bench-backends.log"
stamp "bench-quant" | tee -a "$out/quiet-window.log"
env -u TORNADOVM_HOME "$root/bin/diffquant" bench-quant -m "$root/assets/dit-fmnist" --out "$out/bench-quant.md" --json "$out/bench-quant.json" \
  2>&1 | tee "$out/bench-quant.log"
if [ -n "${TORNADOVM_HOME:-}" ]; then
  stamp "TornadoBench kernels" | tee -a "$out/quiet-window.log"
  timeout "${TORNADO_KERNELS_LIMIT:-420}" "$root/tools/bench/tornado_bench.sh" kernels --seconds 1 2>&1 | tee "$out/tornado-kernels.md" || \
    echo "tornado kernels: stopped (exit $?), partial table kept" | tee -a "$out/quiet-window.log"
  stamp "TornadoBench sampling" | tee -a "$out/quiet-window.log"
  timeout "${TORNADO_SAMPLING_LIMIT:-240}" "$root/tools/bench/tornado_bench.sh" sampling --steps 10 --batch 8 --model "$root/assets/dit-fmnist" \
    2>&1 | tee "$out/tornado-sampling.md" || echo "tornado sampling: stopped (exit $?), partial table kept" | tee -a "$out/quiet-window.log"
fi
stamp "done" | tee -a "$out/quiet-window.log"
