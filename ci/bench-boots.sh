#!/bin/sh
# Benchmark (not run by CI): how often a TCG boot runs KVM at a TSC rate
# below the host's. For each config, `kmm test` builds COMMIT and packs
# its initramfs once (that run boots too; its result is not counted), then
# the same bzImage and initramfs are booted N more times with kmm-boot's
# QEMU settings (examples/boot_image.rs). Per boot and in total it counts
# the consoles' "user requested TSC rate below hardware speed" lines and
# the kvm_clock_test and xen_shinfo_test failures, and the boots where KVM
# initialised ("kvm: Nested Virtualization enabled") before the refined TSC
# calibration: those are exposed, and fail when the early calibration was
# more than KVM's tsc_tolerance_ppm (250) below the refined one.
#
#   ci/bench-boots.sh [-n N] [-c COMMIT] [-p PLAN] CONFIG...
#   ci/bench-boots.sh -n 30 kvm-mm kvm-mm-builtin
#
# Every build and boot takes the shared lock /tmp/kmm-build.lock (two
# cores: never two kernel builds or boots at once), one command at a
# time. $KMM is the kmm binary (default target/release/kmm), $BOOT the
# boot_image example (built if missing), $OUT the directory for the
# images and consoles (default a new temporary directory, kept).
set -eu
cd "$(dirname "$0")/.."
n=10 commit=tip plan=commit
while getopts n:c:p: o; do
	case $o in
	n) n=$OPTARG ;;
	c) commit=$OPTARG ;;
	p) plan=$OPTARG ;;
	*) echo "usage: $0 [-n N] [-c COMMIT] [-p PLAN] CONFIG..." >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-n N] [-c COMMIT] [-p PLAN] CONFIG..." >&2; exit 2; }
. ci/bench-lib.sh
# The plan's extra kernel command line (`cmdline = [...]` in the plan).
cmdline=$(sed -n 's/^cmdline *= *\[\(.*\)\]/\1/p' "selftests/plans/$plan.toml" | tr -d '",')

summary=
for config in "$@"; do
	dir=$out/$config
	bench_pack "$commit" "$config" "$plan"
	below_boots=0 clock=0 xen=0 unclean=0 exposed=0
	i=1
	while [ "$i" -le "$n" ]; do
		log=$dir/console-$i.log
		# shellcheck disable=SC2086 # the command-line words split on purpose
		res=$(flock "$lock" "$boot" "$dir/bzImage" "$dir/initramfs.cpio" "$log" $cmdline 2>&1) ||
			unclean=$((unclean + 1))
		below=$(grep -c 'user requested TSC rate below hardware speed' "$log" || true)
		c=$(grep -cE 'not ok [0-9]+ selftests: kvm: kvm_clock_test' "$log" || true)
		x=$(grep -cE 'not ok [0-9]+ selftests: kvm: xen_shinfo_test' "$log" || true)
		final=$(grep -o 'KMM-BOOT: TSC calibration final after [0-9.]*s' "$log" | head -n 1 || true)
		# Early and refined tsc_khz, and whether KVM read the early one.
		tsc=$(awk '
			/tsc: Detected [0-9.]+ MHz/ && !e { for (i = 1; i < NF; i++) if ($i == "Detected") e = $(i + 1) }
			/Refined TSC clocksource calibration:/ { r = $NF; sub(/MHz/, "", r); if (r == "") r = $(NF - 1); rl = NR }
			/kvm: Nested Virtualization enabled/ && !k { k = NR }
			END {
				if (r == "") { print "no refined calibration"; exit }
				order = (k && k < rl) ? "KVM before the refinement" : "KVM after the refinement"
				printf "early %s MHz, refined %s MHz (%+.0f ppm), %s\n", e, r, (r - e) / e * 1e6, order
			}' "$log")
		case $tsc in *"KVM before"*) exposed=$((exposed + 1)) ;; esac
		[ "$below" -eq 0 ] || below_boots=$((below_boots + 1))
		[ "$c" -eq 0 ] || clock=$((clock + 1))
		[ "$x" -eq 0 ] || xen=$((xen + 1))
		echo "   boot $i: $res; below-hw lines $below; kvm_clock_test fail $c; xen_shinfo_test fail $x; $tsc${final:+; $final}"
		i=$((i + 1))
	done
	line="$config @ $commit: $n boots, $exposed with KVM initialised before the refined TSC calibration, $below_boots with \"below hardware speed\", $clock kvm_clock_test failures, $xen xen_shinfo_test failures, $unclean unclean"
	echo "== $line"
	summary="$summary$line
"
done
echo "== summary (consoles in $out)"
printf '%s' "$summary"
