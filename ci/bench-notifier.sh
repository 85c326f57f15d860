#!/bin/sh
# The cost of an MMU notifier event on a range outside guest memory and on
# one inside it, with many gfn_to_pfn caches, before and after the series,
# in one run:
#
#   sh ci/bench-notifier.sh [VCPUS] [ITERATIONS]
#
# builds the base, the last commit before "KVM: Walk the gfn_to_pfn caches
# only for ranges in guest memory", that commit and the tip with `kmm build`
# (default config), builds pfncache_stress_test from the tip, boots each
# kernel under QEMU TCG and runs `pfncache_stress_test -c -v VCPUS -i
# ITERATIONS` there:
# the ns per mprotect() of a page outside guest memory, and of a guest
# memory page that no cache uses, without caches and with three caches per
# vCPU. Prints one line per kernel and the ratios.
# Timing under TCG: compare kernels within one run, not across machines.
set -eu
cd "$(dirname "$0")/.."
vcpus=${1:-64}
iterations=${2:-20000}
kmm=./target/release/kmm
[ -x "$kmm" ] || cargo build --release --quiet -p kmm

# The patch that adds the memslot check, by subject, in the current version.
version=$(sed -n '/^\[series\]/,/^\[/s/^version = \([0-9]*\)/\1/p' patches/series.toml)
walk=$(ls "patches/v$version" | sed -n 's/^\([0-9]*\)-KVM-Walk-the-gfn_to_pfn-caches-only.*/\1/p')
[ -n "$walk" ] || { echo "bench-notifier: no 'Walk the gfn_to_pfn caches' patch in patches/v$version" >&2; exit 2; }
walk=$(echo "$walk" | sed "s/^0*//")
before_walk=$((walk - 1))
kernels="base $before_walk $walk tip"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

bzimage() {
	"$kmm" build --commit "$1" | sed -n 's/^built .*; \(.*bzImage\)$/\1/p'
}

for c in $kernels; do
	img=$(bzimage "$c")
	[ -f "$img" ] || { echo "bench-notifier: kmm build --commit $c gave no bzImage" >&2; exit 1; }
	cp "$img" "$tmp/bzImage-$c"
done

# The worktree is at the tip now: build the test there, statically.
cache=${KMM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kmm}
src=$cache/work/src
build=$cache/work/build-kvm-mm
make -s -C "$src" O="$build" headers_install
mkdir -p "$tmp/st"
make -s -C "$src/tools/testing/selftests/kvm" OUTPUT="$tmp/st" \
	INSTALL_HDR_PATH="$build/usr" KHDR_INCLUDES="-isystem $build/usr/include" \
	EXTRA_CFLAGS="-static" \
	"$tmp/st/x86_64/pfncache_stress_test"

root=$tmp/root
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev"
cp /bin/busybox "$tmp/st/x86_64/pfncache_stress_test" "$root/bin/"
cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
/bin/pfncache_stress_test -c -v $vcpus -i $iterations
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null) >"$tmp/initramfs.cpio"

for c in $kernels; do
	timeout 900 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 2G \
		-nographic -no-reboot -kernel "$tmp/bzImage-$c" \
		-initrd "$tmp/initramfs.cpio" \
		-append "console=ttyS0 tsc=reliable panic=-1 quiet" >"$tmp/log-$c" 2>&1 || true
	pat='s/.*notifier cost: \([0-9]*\) ns without caches, \([0-9]*\) ns with \([0-9]*\) caches'
	out=$(grep -v ', inside' "$tmp/log-$c" | sed -n "$pat.*/\\1 \\2 \\3/p")
	inside=$(grep ', inside' "$tmp/log-$c" | sed -n "$pat.*/\\1 \\2/p")
	[ -n "$out" ] && [ -n "$inside" ] || { echo "bench-notifier: no result from the $c kernel:" >&2; tail -20 "$tmp/log-$c" >&2; exit 1; }
	echo "$c $out $inside" >>"$tmp/results"
	set -- $out $inside
	echo "$c: outside guest memory $1 ns without caches, $2 ns with $3 caches; inside $4 ns without, $5 ns with"
done
awk '
	{ without[$1] = $2; with[$1] = $3; in_without[$1] = $5; in_with[$1] = $6; order[NR] = $1 }
	END {
		b = order[1]; t = order[NR]
		printf "outside, with caches, %s / %s: %.2f\n", b, t, with[b] / with[t]
		printf "inside, with caches, %s / %s: %.2f\n", b, t, in_with[b] / in_with[t]
		printf "cost of the caches (with - without): outside %s %d ns, %s %d ns; inside %s %d ns, %s %d ns\n",
		       b, with[b] - without[b], t, with[t] - without[t],
		       b, in_with[b] - in_without[b], t, in_with[t] - in_without[t]
	}' "$tmp/results"
