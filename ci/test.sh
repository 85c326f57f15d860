#!/bin/sh
# The project's test command (README.md; .ci/run calls it): installs what
# is missing, then checks formatting and lints, runs every cargo test
# (including `kmm series check` on the real series) and `kmm ci`: build,
# boot and test the base and every commit of the series in QEMU against
# the committed snapshots.
set -eu
cd "$(dirname "$0")/.."
sh ci/setup.sh
PATH="${KMM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/kmm/venv}/bin:$PATH"
export PATH
export INSTA_UPDATE=no
# The KUnit parser corpus is read from the base tarball, not committed.
sh tools/ktap/tests/fetch-kunit-corpus.sh
# The CI engine definitions (.gitlab-ci.yml, the GitHub workflow).
sh ci/engines-check.sh
cargo fmt --all --check
cargo fmt --manifest-path kvm-mm/Cargo.toml --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace 2>&1
# The kernel-side Rust policy: host tests, then the in-kernel toolchain
# (Debian's rustc 1.63) compiling it as Kbuild does, panic-free.
cargo test --manifest-path kvm-mm/Cargo.toml 2>&1
cargo clippy --manifest-path kvm-mm/Cargo.toml --all-targets --quiet -- -D warnings
sh kvm-mm/check-rustc-1.63.sh
cargo build --release --quiet -p kmm
# Every boot config builds KVM as modules, which /init loads once the TSC
# calibration is final: no boot races it (README.md, "Tests in the guest").
./target/release/kmm ci --junit target/kmm-ci-junit.xml
# The Rust-for-Linux build (LLVM=-14, rustc 1.63) at every commit that
# touches Rust and at the tip, where the kvm_mm KUnit suite checks the Rust
# policy against the C one in-kernel and the tip's policy plans run with
# the Rust classifier deciding.
./target/release/kmm ci --config rust --touching '*.rs' --tip-plan rust-tip --junit target/kmm-ci-rust-junit.xml
# Build rows, what the kernel test robot builds first, at the tip: every
# target of ci/targets.toml (`--target builds`): the other KVM
# architectures (arm64, riscv, powerpc, mips, s390: generic KVM code
# without x86's gfn_to_pfn cache) and the x86 config shapes KVM=m/KUNIT=m
# and KVM=y/KUNIT=m. About 6 min per target cold on 2 cores, 20-30 s
# warm. Every target at every commit that touches what it compiles is
# `kmm ci --target builds` without --commits, which does not fit next to
# the boots in .ci/run's 90 minutes on a cold 2-core machine.
./target/release/kmm ci --commits tip --target builds --junit target/kmm-ci-builds-junit.xml

# The same matrix fanned out on a real CI engine: .gitlab-ci.yml under
# gitlab-ci-local (shell executor, --concurrency 2) over the base and the
# first two patches; its merged report must equal one kmm ci process over
# those rows, and an edited snapshot must fail its report job by name.
sh ci/gitlab-local.sh
