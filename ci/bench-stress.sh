#!/bin/sh
# Benchmark (not run by CI): refresh retries and waits of
# pfncache_stress_test under the default policy (start) and under split,
# over many boots of one kernel, since a single run varies a lot.
#
#   ci/bench-stress.sh [-n N] [-c COMMIT] [-C CONFIG]
#
# `kmm test --commit COMMIT --config CONFIG --plan pfncache-split` (default
# tip, kvm-mm) builds the kernel and
# packs its initramfs once (that run is not counted); then the same
# bzImage and initramfs are booted N times (default 10) per policy,
# alternating start and split, with kmm-boot's QEMU settings
# (examples/boot_image.rs). Per boot it prints the stress test's result,
# the per-VM stats it ends with (pfncache_refresh_retries and
# pfncache_refresh_waits), its successful sends and its slowest send; per
# policy the median, the range and the sum of retries and waits, and the
# median of sends and of the slowest send.
# Every build and boot takes /tmp/kmm-build.lock.
set -eu
cd "$(dirname "$0")/.."
n=10 commit=tip config=kvm-mm
while getopts n:c:C: o; do
	case $o in
	n) n=$OPTARG ;;
	c) commit=$OPTARG ;;
	C) config=$OPTARG ;;
	*) echo "usage: $0 [-n N] [-c COMMIT] [-C CONFIG]" >&2; exit 2 ;;
	esac
done
. ci/bench-lib.sh
bench_pack "$commit" "$config" pfncache-split
dir=$out/$config

i=1
while [ "$i" -le "$n" ]; do
	for policy in start split; do
		log=$dir/console-$policy-$i.log
		# kvm_amd.npt=0 as in the plans (selftests/plans/pfncache-stress.toml).
		# shellcheck disable=SC2046 # no word for start, one for split
		flock "$lock" "$boot" "$dir/bzImage" "$dir/initramfs.cpio" "$log" kvm_amd.npt=0 \
			$( [ "$policy" = split ] && echo kvm.pfncache_inval=split) >/dev/null 2>&1 || true
		# The stats the stress test prints last, and its result.
		stats=$(awk '/selftests: kvm: pfncache_stress_test/ { s = 1 }
			s && /pfncache stats:/ { l = $0 } END { print l }' "$log")
		retries=$(echo "$stats" | sed -n 's/.*retries=\([0-9]*\).*/\1/p')
		waits=$(echo "$stats" | sed -n 's/.*waits=\([0-9]*\).*/\1/p')
		result=$(grep -aoE '(not )?ok [0-9]+ selftests: kvm: pfncache_stress_test' "$log" | sed 's/ [0-9]* selftests.*//' || true)
		sends=$(sed -n 's/.*rounds: sends ok=\([0-9]*\).*slowest \([0-9]*\) us.*/\1 \2/p' "$log")
		[ -n "$sends" ] || sends="- -"
		if [ -z "$retries" ] || [ -z "$waits" ]; then
			# The test died before its stats: say how, count it.
			retries=- waits=-
			result="${result:-missing}: $(grep -a -m1 -A4 'Test Assertion Failure' "$log" | tr -s ' \n' ' ' | cut -c1-160)"
		fi
		set -- $sends
		word=$(echo "${result%%:*}" | tr ' ' -)
		echo "$policy $retries $waits $word $1 $2" >>"$dir/results"
		echo "   boot $i, $policy: retries $retries, waits $waits, sends ok $1, slowest $2 us, stress test ${result:-missing}"
	done
	i=$((i + 1))
done

for policy in start split; do
	for col in 2 3 5 6; do
		v=$(awk -v p="$policy" -v f="$col" '$1 == p && $f != "-" { print $f }' "$dir/results" | sort -n)
		c=$(echo "$v" | wc -l)
		eval "med$col=\$(echo \"\$v\" | sed -n \"\$(((c + 1) / 2))p\")"
		eval "min$col=\$(echo \"\$v\" | head -1) max$col=\$(echo \"\$v\" | tail -1)"
		eval "sum$col=\$(echo \"\$v\" | awk '{ s += \$1 } END { print s }')"
	done
	fails=$(awk -v p="$policy" '$1 == p && $4 != "ok"' "$dir/results" | wc -l)
	echo "== $policy: $n boots; retries median $med2 ($min2-$max2, sum $sum2); waits median $med3 ($min3-$max3, sum $sum3); sends ok median $med5; slowest send median $med6 us; stress test not ok in $fails"
done
