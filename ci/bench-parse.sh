#!/bin/sh
# Benchmark: `kmm parse` against the kernel's own `kunit.py parse` on the
# same synthetic KTAP log (default 100000 tests). Prints wall time and
# peak RSS of each and the counts both report. Needs the base tarball
# (for kunit.py) and GNU time.
set -eu
cd "$(dirname "$0")/.."
n=${1:-100000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo build --release --quiet -p kmm -p ktap --examples
./target/release/examples/gen_big "$n" > "$tmp/big.log"
tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$tmp" --wildcards '*/tools/testing/kunit/*'
echo "log: $(wc -l < "$tmp/big.log") lines, $(wc -c < "$tmp/big.log") bytes, $n tests"
/usr/bin/time -f "kmm parse:      %e s, %M KB max RSS" ./target/release/kmm parse "$tmp/big.log" | tail -n 1 || true
/usr/bin/time -f "kmm parse json: %e s, %M KB max RSS" ./target/release/kmm parse --format json "$tmp/big.log" | tail -c 100 | tr -d '\n' || true
echo
(cd "$tmp"/linux-source-6.1/tools/testing/kunit &&
	/usr/bin/time -f "kunit.py parse: %e s, %M KB max RSS" python3 kunit.py parse "$tmp/big.log" | tail -n 1) || true
