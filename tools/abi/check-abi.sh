#!/usr/bin/env bash
# Checks libember's ABI against the committed baseline capi/abi/libember.abi.
#
#   check-abi.sh TWIN_LIB REAL_LIB WORKDIR            # the test_abi CTest test
#   check-abi.sh --update TWIN_LIB REAL_LIB WORKDIR   # rewrite the baseline (tools/abi/update-baseline.sh)
#
# TWIN_LIB is libember built again with -g (libabigail reads DWARF; the shipped
# Release library has none). The script first proves the twin is the shipped
# library: their .text sections must be byte-identical.
#
# Verdict: any change to what capi/ember.h declares fails -- a removed or
# changed function, a changed parameter or return type, a struct member moved,
# retyped or removed, an enumerator renumbered -- except what old callers
# cannot notice: new functions, and members appended at the end of the
# size-prefixed structs (capi/abi/suppressions.abignore). Those pass with a
# note asking to record them in the baseline.
# Exit: 0 compatible, 1 incompatible (or an error), 77 libabigail not installed.
set -euo pipefail
update=0
if [ "${1:-}" = "--update" ]; then update=1; shift; fi
if [ $# -ne 3 ]; then
  echo "usage: $0 [--update] TWIN_LIB REAL_LIB WORKDIR" >&2
  exit 2
fi
twin=$1 real=$2 work=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
baseline=$root/capi/abi/libember.abi
suppr=$root/capi/abi/suppressions.abignore

if ! command -v abidw >/dev/null || ! command -v abidiff >/dev/null; then
  echo "test_abi: libabigail's abidw/abidiff are not installed (Debian: apt-get install abigail-tools); skipped"
  exit 77
fi
mkdir -p "$work"

# 1. The twin carries the shipped code: identical machine code, so its ABI is libember's.
objcopy -O binary --only-section=.text "$twin" "$work/twin.text"
objcopy -O binary --only-section=.text "$real" "$work/real.text"
if ! cmp -s "$work/twin.text" "$work/real.text"; then
  echo "test_abi: the -g twin's code differs from $real; its ABI would not be libember's" >&2
  exit 1
fi

# 2. The ABI of the public header's declarations, without paths or locations.
abidw --headers-dir "$root/capi" --drop-private-types --exported-interfaces-only \
      --no-corpus-path --no-comp-dir-path --no-show-locs --no-elf-needed --no-parameter-names \
      --type-id-style hash --out-file "$work/current.abi" "$twin"

if [ "$update" = 1 ]; then
  cp "$work/current.abi" "$baseline"
  echo "wrote $baseline"
  exit 0
fi
if [ ! -f "$baseline" ]; then
  echo "test_abi: no baseline $baseline (make one with tools/abi/update-baseline.sh)" >&2
  exit 1
fi

# 3. Compatible? Additions are hidden here; everything else counts.
set +e
abidiff --no-default-suppression --suppressions "$suppr" --no-added-syms \
        "$baseline" "$work/current.abi" > "$work/incompatible.txt" 2>&1
rc=$?
set -e
if [ $((rc & 1)) -ne 0 ]; then
  cat "$work/incompatible.txt" >&2
  echo "test_abi: abidiff failed (exit $rc)" >&2
  exit 1
fi
if [ $((rc & 4)) -ne 0 ]; then
  cat "$work/incompatible.txt" >&2
  cat >&2 <<MSG
test_abi: FAILED -- this change breaks the ABI of libember.so.$(sed -n 's/^#define EMBER_ABI_VERSION \([0-9]*\).*/\1/p' "$root/capi/ember.h").
Programs built against the old capi/ember.h would misbehave with this library.
Either keep the old declaration (append fields, add a new function, deprecate
the old one), or break on purpose: bump EMBER_ABI_VERSION in capi/ember.h and
CMakeLists.txt (the SONAME follows) and run tools/abi/update-baseline.sh.
MSG
  exit 1
fi

# 4. Compatible additions: pass, but say so until the baseline records them.
set +e
abidiff --no-default-suppression "$baseline" "$work/current.abi" > "$work/all.txt" 2>&1
rc=$?
set -e
if [ $((rc & 4)) -ne 0 ]; then
  cat "$work/all.txt"
  echo "test_abi: compatible additions since the baseline; record them with tools/abi/update-baseline.sh"
fi
echo "test_abi: libember's ABI is compatible with capi/abi/libember.abi"
