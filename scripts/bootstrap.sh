#!/usr/bin/env bash
# Install what citywall needs, once: Debian packages (if missing) and the Python virtualenv in .venv.
# Safe to run every time: it checks first and does nothing when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  python3 python3-venv
  redis-server mosquitto                          # the embedded bus and MQTT broker
  python3-gi gir1.2-gst-rtsp-server-1.0           # the demo cameras' RTSP server
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav
  chromium                                        # tests drive the wall in headless Chromium
  espeak-ng sox                                   # voice guidance: speech synthesis, audio checks
  fonts-noto-cjk                                  # Chinese text on the wall in the headless browser
  postgresql                                      # the production case store (tests start it for real)
  ffmpeg                                          # the relay CPU benchmark's baseline (ffmpeg -c copy)
)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
ULTRALYTICS_VERSION=8.4.190   # learning/: train + ONNX export checked with this release (learning/README.md)
stamp=.venv/.citywall-installed
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: preparing the Python environment in .venv" >&2
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test,dev,learning]"
  # ultralytics without its own requirements (they name opencv-python, which shares cv2/ with the contrib wheel);
  # what it needs to train and export ONNX on the CPU is in the learning extra.
  .venv/bin/python -m pip install -q --no-deps "ultralytics==$ULTRALYTICS_VERSION"
  # The project needs OpenCV's contrib wheel (OpenCV 5 keeps the HOG people detector there); a plain
  # opencv-python-headless left by an older install shares the cv2 folder with it: remove it, restore contrib.
  if .venv/bin/python -m pip show -q opencv-python-headless >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall -q -y opencv-python-headless
    .venv/bin/python -m pip install -q --force-reinstall --no-deps opencv-contrib-python-headless
  fi
  echo "$want" > "$stamp"
fi
