#!/usr/bin/env bash
# The project's test command (README.md): installs test dependencies, then runs
# every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo test --workspace --release
