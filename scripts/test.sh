#!/usr/bin/env bash
# The project's test command (README.md): installs what the tests need, then runs
# every test in the workspace (release mode: the simulator and loopback tests move
# real volumes of data) and the independent check of the record test vectors.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo test --workspace --release
# The optional tower integration: its tests, and the balancer example (which checks
# its own outcome).
cargo test --release -p smt --features tower --test tower
cargo run --release -q -p smt --features tower --example tower_balance
# Independent verification of docs/test-vectors/records.json (Python, no SMT code).
/usr/bin/python3 scripts/check-vectors.py
