#!/usr/bin/env bash
# emberlm setup: installs the Debian packages the project builds with, builds
# it (Release, into build/), and runs the main job: text generation.
#
#   bash scripts/setup.sh            # install, build, then generate text
#   bash scripts/setup.sh --no-run   # install and build only
#
# Safe to re-run: installed packages and finished build steps are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

run_main=1
for a in "$@"; do
  case "$a" in
    --no-run) run_main=0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

packages=(build-essential cmake pkg-config libeigen3-dev libsentencepiece-dev libxsimd-dev
          libboost-test-dev libpcre2-dev libicu-dev python3 python3-numpy python3-jinja2 abigail-tools)
# The Node binding's tests need node and npm; Debian's unless some are already installed.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
. scripts/apt-packages.sh
install_missing setup "${packages[@]}"

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"

if [ "$run_main" = 1 ]; then
  bash scripts/demo.sh
fi
