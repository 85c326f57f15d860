#!/bin/sh
# The project's test command (README.md; .ci/run calls it): installs what
# is missing, then checks formatting, lints and runs every test, including
# `kmm series check` on the real series.
set -eu
cd "$(dirname "$0")/.."
sh ci/setup.sh
export INSTA_UPDATE=no
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace 2>&1
