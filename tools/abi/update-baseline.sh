#!/usr/bin/env bash
# Regenerates capi/abi/libember.abi, the ABI baseline test_abi compares with.
# Run it on purpose only:
#   - after adding to the C ABI (new functions, fields appended to a
#     size-prefixed struct), so later changes are checked against them too;
#   - after a deliberate break, together with bumping EMBER_ABI_VERSION in
#     capi/ember.h and CMakeLists.txt.
# Then commit capi/abi/libember.abi with the change. Needs abigail-tools.
#
#   bash tools/abi/update-baseline.sh [BUILD_DIR]   # default: build
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
cmake --build "$build" --target ember ember_abi_twin
exec bash "$root/tools/abi/check-abi.sh" --update "$build/tests/abi/libember.so" "$build/libember.so" "$build/tests/abi"
