#!/usr/bin/env bash
# The test command of README.md: fetches the real test model (idempotent), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-models.sh >/dev/null
cargo test --workspace --locked
