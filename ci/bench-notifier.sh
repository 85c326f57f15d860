#!/bin/sh
# The cost of an MMU notifier event on a range outside guest memory and on
# one inside it, with many gfn_to_pfn caches, before and after the series,
# in one run:
#
#   sh ci/bench-notifier.sh [-I] [-r ROUNDS] [-C CONFIG] [-k COMMITS] [-p POLICY] [VCPUS] [ITERATIONS]
#
# builds the base, the last commit before "KVM: Walk the gfn_to_pfn caches
# only for ranges in guest memory", that commit and the tip (or the
# COMMITS given with -k, e.g. -k "base 13 14 tip") with `kmm build
# --config CONFIG` (default kvm-mm), builds pfncache_stress_test from the
# tip, and boots the kernels under QEMU TCG ROUNDS times (default 5),
# interleaved (base, before, walk, tip, base, ...), so that a slow spell of
# the host hits every kernel alike. Each boot runs `pfncache_stress_test -c
# -v VCPUS -i ITERATIONS`: the ns per mprotect() of a page outside guest
# memory, and of a guest memory page that no cache uses, without caches and
# with three caches per vCPU. Prints each boot, then per kernel the median
# and the range over the rounds, and the ratios of the medians.
# -p POLICY boots with kvm.pfncache_inval=POLICY (e.g. split; default: the
# kernel's default, start); a kernel without the parameter ignores it.
# With CONFIG_KVM=m, /init loads irqbypass, kvm and kvm-amd once the TSC
# calibration is final, as kmm-boot does.
# Timing under TCG: compare kernels within one run, not across machines.
# TCG's wall clock weighs some instructions far more than hardware does
# and moves with the host's load by 10 % from boot to boot. -I runs QEMU
# with -icount shift=0 on one vCPU instead: the guest clock then advances
# one ns per guest instruction, so the figures are instructions executed
# per mprotect(), the same on every run (one round is enough).
# Builds and boots hold /tmp/kmm-build.lock: never two at once.
set -eu
cd "$(dirname "$0")/.."
rounds=5 config=kvm-mm kernels= icount= policy=
accel="-smp 2"
while getopts Ir:C:k:p: o; do
	case $o in
	I) icount=1 accel="-smp 1 -icount shift=0,sleep=off" ;;
	r) rounds=$OPTARG ;;
	C) config=$OPTARG ;;
	k) kernels=$OPTARG ;;
	p) policy=$OPTARG ;;
	*) echo "usage: $0 [-I] [-r ROUNDS] [-C CONFIG] [-k COMMITS] [-p POLICY] [VCPUS] [ITERATIONS]" >&2; exit 2 ;;
	esac
done
unit=ns
[ -z "$icount" ] || unit="instructions"
shift $((OPTIND - 1))
vcpus=${1:-64}
iterations=${2:-20000}
kmm=./target/release/kmm
lock=/tmp/kmm-build.lock
[ -x "$kmm" ] || cargo build --release --quiet -p kmm

# The patch that adds the memslot check, by subject, in the current version.
version=$(sed -n '/^\[series\]/,/^\[/s/^version = \([0-9]*\)/\1/p' patches/series.toml)
walk=$(ls "patches/v$version" | sed -n 's/^\([0-9]*\)-KVM-Walk-the-gfn_to_pfn-caches-only.*/\1/p')
[ -n "$walk" ] || { echo "bench-notifier: no 'Walk the gfn_to_pfn caches' patch in patches/v$version" >&2; exit 2; }
walk=$(echo "$walk" | sed "s/^0*//")
before_walk=$((walk - 1))
[ -n "$kernels" ] || kernels="base $before_walk $walk tip"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

cache=${KMM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kmm}
src=$cache/work/src
build=$cache/work/build-$config

for c in $kernels; do
	img=$(flock "$lock" "$kmm" build --config "$config" --commit "$c" |
		sed -n 's/^built .*; \(.*bzImage\)$/\1/p')
	[ -f "$img" ] || { echo "bench-notifier: kmm build --config $config --commit $c gave no bzImage" >&2; exit 1; }
	mkdir -p "$tmp/k-$c/lib"
	cp "$img" "$tmp/k-$c/bzImage"
	if grep -q '^CONFIG_KVM=m' "$build/.config"; then
		for m in virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko; do
			[ -f "$build/$m" ] || { echo "bench-notifier: $build/$m: missing; CONFIG_KVM=m but no module" >&2; exit 1; }
			cp "$build/$m" "$tmp/k-$c/lib/"
		done
	fi
done

# Build the test from the tip, statically: check the tip out unless it was
# the last kernel built (-k may end elsewhere).
case " $kernels " in
*" tip ") ;;
*) flock "$lock" "$kmm" build --config "$config" --commit tip >/dev/null ;;
esac
flock "$lock" make -s -C "$src" O="$build" headers_install
mkdir -p "$tmp/st"
flock "$lock" make -s -C "$src/tools/testing/selftests/kvm" OUTPUT="$tmp/st" \
	INSTALL_HDR_PATH="$build/usr" KHDR_INCLUDES="-isystem $build/usr/include" \
	EXTRA_CFLAGS="-static" \
	"$tmp/st/x86_64/pfncache_stress_test"

for c in $kernels; do
	root=$tmp/root-$c
	mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev"
	cp /bin/busybox "$tmp/st/x86_64/pfncache_stress_test" "$root/bin/"
	cp -r "$tmp/k-$c/lib" "$root/lib"
	cat >"$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
if [ -f /lib/kvm.ko ]; then
	# KVM reads tsc_khz when it loads: wait for the refined calibration.
	cs=/sys/devices/system/clocksource/clocksource0/available_clocksource
	i=0
	while grep -q tsc-early \$cs && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done
	insmod /lib/irqbypass.ko || echo "bench: insmod irqbypass failed"
	insmod /lib/kvm.ko ${policy:+pfncache_inval=$policy} || echo "bench: insmod kvm failed"
	insmod /lib/kvm-amd.ko || echo "bench: insmod kvm-amd failed"
fi
echo "bench: policy \$(cat /sys/module/kvm/parameters/pfncache_inval 2>/dev/null || echo none)"
/bin/pfncache_stress_test -c -v $vcpus -i $iterations
poweroff -f
INIT
	chmod +x "$root/init"
	(cd "$root" && find . | cpio -o -H newc 2>/dev/null) >"$tmp/initramfs-$c.cpio"
done

pat='s/.*notifier cost: \([0-9]*\) ns without caches, \([0-9]*\) ns with \([0-9]*\) caches'
r=1
while [ "$r" -le "$rounds" ]; do
	for c in $kernels; do
		# shellcheck disable=SC2086 # $accel is several words
		flock "$lock" timeout 900 qemu-system-x86_64 -accel tcg -cpu max $accel -m 2G \
			-nographic -no-reboot -kernel "$tmp/k-$c/bzImage" \
			-initrd "$tmp/initramfs-$c.cpio" \
			-append "console=ttyS0 tsc=reliable panic=-1 quiet${policy:+ kvm.pfncache_inval=$policy}" \
			>"$tmp/log-$c-$r" 2>&1 || true
		out=$(grep -v ', inside' "$tmp/log-$c-$r" | sed -n "$pat.*/\\1 \\2 \\3/p")
		inside=$(grep ', inside' "$tmp/log-$c-$r" | sed -n "$pat.*/\\1 \\2/p")
		[ -n "$out" ] && [ -n "$inside" ] || { echo "bench-notifier: no result from the $c kernel (round $r):" >&2; tail -20 "$tmp/log-$c-$r" >&2; exit 1; }
		echo "$c $out $inside" >>"$tmp/results"
		pol=$(grep -ao 'bench: policy [a-z_]*' "$tmp/log-$c-$r" | head -1 | sed 's/^bench: policy //')
		set -- $out $inside
		echo "round $r, $c (policy ${pol:-?}): outside guest memory $1 $unit without caches, $2 with $3 caches; inside $4 without, $5 with"
	done
	r=$((r + 1))
done

# Per kernel and column, the median over the rounds (the lower middle for
# an even count) and the range.
for c in $kernels; do
	line=$c
	for col in 2 3 5 6; do
		v=$(awk -v k="$c" -v f="$col" '$1 == k { print $f }' "$tmp/results" | sort -n)
		n=$(echo "$v" | wc -l)
		med=$(echo "$v" | sed -n "$(((n + 1) / 2))p")
		line="$line $med $(echo "$v" | head -1) $(echo "$v" | tail -1)"
	done
	echo "$line" >>"$tmp/medians"
done
awk -v rounds="$rounds" -v unit="$unit" '
	{ k = $1; order[NR] = k
	  ow[k] = $2; owr[k] = $3 "-" $4; oc[k] = $5; ocr[k] = $6 "-" $7
	  iw[k] = $8; iwr[k] = $9 "-" $10; ic[k] = $11; icr[k] = $12 "-" $13 }
	END {
		printf "medians of %d rounds (range), %s per mprotect():\n", rounds, unit
		for (i = 1; i <= NR; i++) {
			k = order[i]
			printf "%s: outside %d (%s) without caches, %d (%s) with; inside %d (%s) without, %d (%s) with\n",
			       k, ow[k], owr[k], oc[k], ocr[k], iw[k], iwr[k], ic[k], icr[k]
		}
		b = order[1]; t = order[NR]
		printf "outside, with caches, %s / %s: %.2f\n", b, t, oc[b] / oc[t]
		printf "inside, with caches, %s / %s: %.2f\n", b, t, ic[b] / ic[t]
		printf "inside, without caches, %s / %s: %.2f\n", b, t, iw[b] / iw[t]
		printf "cost of the caches (with - without): outside %s %d, %s %d; inside %s %d, %s %d\n",
		       b, oc[b] - ow[b], t, oc[t] - ow[t], b, ic[b] - iw[b], t, ic[t] - iw[t]
	}' "$tmp/medians"
