#!/bin/sh
# Benchmark (not run by CI): where the refresh retries of
# pfncache_stress_test come from, under the default policy (start) and
# under split.
#
#   ci/bench-retry-causes.sh [-n N] [-C CONFIG]
#
# A retry means that an invalidation's walk of the caches cleared the
# refresh's needs_invalidation flag while it looked the pfn up. Which walk
# (invalidate_range_start() or ->invalidate_range()) and for which MMU
# notifier event is not in the per-VM stats, so this script builds the
# committed series' tip with ci/retry-causes.diff on top (a scratch
# worktree of this repository whose last commit gets that diff as one more
# op; the diff is never part of the series), packs the `pfncache-stress`
# plan (the stress test alone) and boots it N times per policy (default
# 8), alternating start and split, with kvm_amd.npt=0 as the plans do.
# Per boot it prints the stress test's retries from its stats and the
# logged retries by hook and event, and checks that the two agree; per
# policy the totals.
# Every build and boot takes /tmp/kmm-build.lock.
set -eu
cd "$(dirname "$0")/.."
n=8 config=kvm-mm
while getopts n:C: o; do
	case $o in
	n) n=$OPTARG ;;
	C) config=$OPTARG ;;
	*) echo "usage: $0 [-n N] [-C CONFIG]" >&2; exit 2 ;;
	esac
done
. ci/bench-lib.sh
repo=$(pwd)

wt=$(mktemp -d /tmp/kmm-retry-causes.XXXXXX)
cleanup() {
	git -C "$repo" worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
	git -C "$repo" worktree prune
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
git worktree add --quiet --force --detach "$wt" HEAD
cp ci/retry-causes.diff "$wt/patches/fragments/zz-retry-causes.diff"
cat >>"$wt/patches/series.toml" <<'EOF'

[[commit.op]]
kind = "patch"
fragment = "patches/fragments/zz-retry-causes.diff"
EOF

bench_repo=$wt
bench_pack tip "$config" pfncache-stress
dir=$out/$config
# The packing run's console must show the test's stats, or the diff did
# not apply or the build failed.
console=$(sed -n 's/.*boot \.\.\. console \(.*\.log\)$/\1/p' "$dir/kmm-test.log" | tail -1)
[ -n "$console" ] && grep -aq 'pfncache stats:' "$console" ||
	{ echo "bench-retry-causes: the instrumented tip did not build or boot; see $dir/kmm-test.log" >&2; exit 1; }

# enum mmu_notifier_event of 6.1, in order.
events="unmap clear protection_vma protection_page soft_dirty release migrate exclusive"
i=1
: >"$dir/causes"
while [ "$i" -le "$n" ]; do
	for policy in start split; do
		log=$dir/console-$policy-$i.log
		# shellcheck disable=SC2046 # no word for start, one for split
		flock "$lock" "$boot" "$dir/bzImage" "$dir/initramfs.cpio" "$log" kvm_amd.npt=0 \
			$( [ "$policy" = split ] && echo kvm.pfncache_inval=split) >/dev/null 2>&1 || true
		stats=$(grep -a 'pfncache stats:' "$log" | tail -1 | sed -n 's/.*retries=\([0-9]*\).*/\1/p')
		# One "POLICY hook/event" line per logged retry.
		grep -ao 'gpc-retry: hook [a-z_]* event [0-9]*' "$log" |
			awk -v p="$policy" -v names="$events" 'BEGIN { split(names, e, " ") }
				{ print p, $3 "/" e[$5 + 1] }' >"$dir/causes-$policy-$i"
		cat "$dir/causes-$policy-$i" >>"$dir/causes"
		logged=$(wc -l <"$dir/causes-$policy-$i" | tr -d ' ')
		causes=$(awk '{ c[$2]++ } END { for (k in c) printf "%s %d, ", k, c[k] }' "$dir/causes-$policy-$i")
		agree=ok
		[ "${stats:-x}" = "$logged" ] || agree="MISMATCH (stats ${stats:-missing}, logged $logged)"
		echo "   boot $i, $policy: retries ${stats:--} ($agree): ${causes:-none}"
		echo "$policy ${stats:--} $logged" >>"$dir/results"
	done
	i=$((i + 1))
done

for policy in start split; do
	total=$(awk -v p="$policy" '$1 == p && $2 != "-" { s += $2 } END { print s + 0 }' "$dir/results")
	by=$(awk -v p="$policy" '$1 == p { c[$2]++ } END { for (k in c) printf "%s %d, ", k, c[k] }' "$dir/causes")
	echo "== $policy: $n boots, $total retries; by hook/event: ${by:-none}"
done
