#!/usr/bin/env bash
# Screenshots of the real DiffQuant Studio panels for docs/ (see docs/gui.md).
#
#   tools/screenshots/take-screenshots.sh [MODEL_DIR] [OUT_DIR]
#
# MODEL_DIR: default assets/dit-fmnist when shipped, else the golden DiT-small test folder.
# OUT_DIR:   default docs/screenshots.
# Runs `bin/diffquant studio --model MODEL_DIR --screenshot OUT_DIR`: the app opens the model and goes through every panel
# with real engine work (a preset click and two edits in the layer table, a side-by-side generation, the histograms of a
# layer, the calibration and evaluation of TFMQ's methods, the perturbation sweep and per-layer sensitivity, a bit-budget
# assignment), renders each panel with Node.snapshot to OUT_DIR/studio-*.png (atomically) and exits. Calibration settings
# the screenshots use: 8 calibration images, TIAR 200 steps (see ScreenshotRun).
# Without a display it starts Xvfb on the first free display from :99 (apt-get install -y xvfb imagemagick) and, with
# ImageMagick's `import`, also grabs the whole X screen while the window is up (OUT_DIR/xvfb-desktop.png), which shows
# the real window as the window system draws it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
model=${1:-}
out=${2:-$root/docs/screenshots}
if [ -z "$model" ]; then
  if [ -f "$root/assets/dit-fmnist/config.json" ]; then model=$root/assets/dit-fmnist
  else model=$root/engine/src/test/resources/golden/dit-small; fi
fi
steps=${SCREENSHOT_STEPS:-25}
xvfb_pid=
cleanup() { [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [ -z "${DISPLAY:-}" ]; then
  command -v Xvfb >/dev/null || { echo "no DISPLAY and no Xvfb: apt-get install -y xvfb imagemagick" >&2; exit 1; }
  n=99
  while [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ]; do n=$((n + 1)); done
  Xvfb ":$n" -screen 0 1400x900x24 -nolisten tcp >/dev/null 2>&1 &
  xvfb_pid=$!
  export DISPLAY=":$n"
  sleep 2
  kill -0 "$xvfb_pid" 2>/dev/null || { echo "Xvfb did not start on :$n" >&2; exit 1; }
fi
mkdir -p "$out"
rm -f "$out"/studio-*.png
# the app keeps its window up 4 s after the last PNG so that the whole screen can be grabbed
DIFFQUANT_HEAP=${DIFFQUANT_HEAP:--Xmx4g} "$root/bin/diffquant" studio --model "$model" --screenshot "$out" \
  --screenshot-steps "$steps" --screenshot-linger 4000 &
app=$!
if command -v import >/dev/null; then
  for _ in $(seq 1 18000); do
    [ -f "$out/studio-budget-diff.png" ] && break
    kill -0 "$app" 2>/dev/null || break
    sleep 0.2
  done
  if [ -f "$out/studio-budget-diff.png" ]; then
    sleep 1
    import -window root "png:$out/xvfb-desktop.png.tmp" && mv "$out/xvfb-desktop.png.tmp" "$out/xvfb-desktop.png" || true
    rm -f "$out/xvfb-desktop.png.tmp"
  fi
fi
wait "$app"
ls -l "$out"
