#!/bin/sh
# The project's test command (README.md; .ci/run calls it): installs what
# is missing, then checks formatting and lints, runs every cargo test
# (including `kmm series check` on the real series) and `kmm ci`: build,
# boot and test the base and every commit of the series in QEMU against
# the committed snapshots.
set -eu
cd "$(dirname "$0")/.."
sh ci/setup.sh
export INSTA_UPDATE=no
# The KUnit parser corpus is read from the base tarball, not committed.
sh tools/ktap/tests/fetch-kunit-corpus.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace 2>&1
cargo build --release --quiet -p kmm
./target/release/kmm ci --junit target/kmm-ci-junit.xml
