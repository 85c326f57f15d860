# Sourced by the boot benchmarks (ci/bench-boots.sh, ci/bench-stress.sh)
# after their options: the shared lock, binaries and directories.
#   $lock  /tmp/kmm-build.lock: every build and boot holds it (two cores:
#          never two kernel builds or boots at once)
#   $kmm   the kmm binary ($KMM, default target/release/kmm)
#   $boot  the boot_image example ($BOOT), built if missing
#   $cache the kmm cache directory
#   $out   $OUT, or a new directory /tmp/<name>.XXXXXX, kept
# bench_pack COMMIT CONFIG PLAN: `kmm test` builds COMMIT and packs its
# initramfs (that run's result is not counted), then the image and the
# initramfs are copied into $out/$2/. With $bench_repo set, kmm builds
# that repository's series (`kmm --repo`) instead of this one's.
lock=/tmp/kmm-build.lock
kmm=${KMM:-target/release/kmm}
boot=${BOOT:-target/release/examples/boot_image}
cache=${KMM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kmm}
out=${OUT:-$(mktemp -d "/tmp/$(basename "$0" .sh).XXXXXX")}
[ -x "$boot" ] || cargo build --release --quiet -p kmm-boot --example boot_image

bench_pack() {
	mkdir -p "$out/$2"
	echo "== $2: kmm test --commit $1 --config $2 --plan $3 (build, pack); consoles in $out/$2"
	flock "$lock" "$kmm" ${bench_repo:+--repo "$bench_repo"} test --commit "$1" --config "$2" --plan "$3" \
		>"$out/$2/kmm-test.log" 2>&1 ||
		echo "   (kmm test exit $?: a new or changed snapshot is fine here; see $out/$2/kmm-test.log)"
	cp "$cache/work/build-$2/arch/x86/boot/bzImage" "$out/$2/bzImage"
	cp "$cache/work/initramfs-$2.cpio" "$out/$2/initramfs.cpio"
}
