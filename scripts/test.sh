#!/usr/bin/env bash
# The test command of README.md: installs what the tests need (scripts/setup.sh: the real test
# model, Chromium; idempotent), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --locked
