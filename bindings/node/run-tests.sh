#!/usr/bin/env bash
# Runs the Node package's tests (CTest's test_node runs this): installs the
# dependencies from the npm registry first when node_modules is missing.
#   EMBER_LIBRARY=build/libember.so EMBER_CLI=build/ember bash bindings/node/run-tests.sh
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "test_node: node and npm are needed (Debian: apt-get install nodejs npm; scripts/setup.sh does it)" >&2
  exit 1
fi
if [ ! -d node_modules/koffi ] || [ ! -d node_modules/@huggingface/jinja ]; then
  npm install --no-audit --no-fund
fi
exec node --test test/emberlm.test.js test/default-model.test.js
