#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Compile src/lib.rs (the series' virt/kvm/kvm_mm_rs.rs) with the rustc that
# the 6.1 kernel builds with: Debian's /usr/bin/rustc 1.63.
#
#  1. As a plain host library, with the kernel's lints as errors.
#  2. The way Kbuild compiles a .rs object (scripts/Makefile.build,
#     Makefile): no_std and the allowed features injected, --cfg=CONFIG_RUST
#     from include/generated/rustc_cfg, panic=abort, overflow checks and
#     debug assertions on (CONFIG_RUST_OVERFLOW_CHECKS,
#     CONFIG_RUST_DEBUG_ASSERTIONS), at -O2 and -Os. The target is the
#     host's, not the kernel's generated target.json.
#  3. The objects from 2 must not call anything: no panic, no core function
#     left out of line, so nothing for modpost to resolve.
#
# Usage: sh kvm-mm/check-rustc-1.63.sh   (RUSTC=/path/to/rustc to override)
# Exit status: 0 on success, 1 on a failed check, 2 if rustc 1.63 is missing.

set -eu

here=$(cd "$(dirname "$0")" && pwd)
src="$here/src/lib.rs"
rustc=${RUSTC:-/usr/bin/rustc}

if [ ! -x "$rustc" ]; then
	echo "check-rustc-1.63: $rustc is missing; install Debian's rustc package (bookworm ships 1.63)" >&2
	exit 2
fi
version=$("$rustc" --version)
case "$version" in
"rustc 1.63."*) ;;
*)
	echo "check-rustc-1.63: $rustc is '$version', not 1.63" >&2
	exit 2
	;;
esac
if ! command -v nm >/dev/null 2>&1; then
	echo "check-rustc-1.63: nm is missing; install binutils" >&2
	exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

lints="-Dunsafe_op_in_unsafe_fn -Drust_2018_idioms -Dunreachable_pub
	-Dnon_ascii_idents -Dmissing_docs -Dwarnings"

echo "check-rustc-1.63: $version"

# 1. Host library.
mkdir "$tmp/host"
# shellcheck disable=SC2086 # $lints is a list of flags.
"$rustc" --crate-type lib --edition 2021 --crate-name kvm_mm \
	--emit=metadata,obj $lints --out-dir "$tmp/host" "$src"
echo "check-rustc-1.63: host library: ok"

# 2 and 3. Kbuild.
status=0
for opt in 2 s; do
	obj="$tmp/kvm_mm_rs-O$opt.o"
	# shellcheck disable=SC2086
	RUSTC_BOOTSTRAP=1 "$rustc" --edition 2021 $lints \
		-Zallow-features=core_ffi_c -Zcrate-attr=no_std \
		-Zcrate-attr='feature(core_ffi_c)' \
		--cfg=CONFIG_RUST --cfg=CONFIG_KVM_MM_RUST \
		-Cpanic=abort -Cembed-bitcode=n -Clto=n -Cforce-unwind-tables=n \
		-Ccodegen-units=1 -Csymbol-mangling-version=v0 \
		-Crelocation-model=static -Zfunction-sections=n \
		-Copt-level=$opt -Cdebug-assertions=y -Coverflow-checks=y \
		--crate-type rlib --crate-name kvm_mm_rs \
		--out-dir "$tmp" --emit=obj="$obj" "$src"
	undefined=$(nm -u "$obj")
	if [ -n "$undefined" ]; then
		echo "check-rustc-1.63: Kbuild -O$opt object has undefined symbols (panics or out-of-line core calls):" >&2
		echo "$undefined" >&2
		status=1
		continue
	fi
	for sym in kvm_mm_rs_inval_point kvm_mm_rs_covers_uhva \
		kvm_mm_rs_ranges_overlap kvm_mm_rs_clamp_to_slot \
		kvm_mm_rs_hva_range_to_gfn_range kvm_mm_rs_range_union; do
		if ! nm --defined-only "$obj" | grep -q " T $sym\$"; then
			echo "check-rustc-1.63: Kbuild -O$opt object does not define $sym" >&2
			status=1
		fi
	done
	[ $status -eq 0 ] && echo "check-rustc-1.63: Kbuild -O$opt object: ok, no undefined symbols"
done
exit $status
