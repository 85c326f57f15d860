#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Extract the kernel's own KUnit parser test logs
# (tools/testing/kunit/test_data/*.log) into tools/ktap/tests/kunit-corpus/
# (or $KTAP_KUNIT_CORPUS), for the `kunit_corpus` snapshot test. The
# repository must not hold copies of kernel files, so they are fetched here
# from Debian's linux-source-6.1 package (`apt-get install linux-source-6.1`).
#
# Usage: fetch-kunit-corpus.sh [TARBALL]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
tarball=${1:-/usr/src/linux-source-6.1.tar.xz}
case ${KTAP_KUNIT_CORPUS:-} in
'') dest=$here/kunit-corpus ;;
/*) dest=$KTAP_KUNIT_CORPUS ;;
*) dest=$here/../$KTAP_KUNIT_CORPUS ;;
esac

if [ ! -r "$tarball" ]; then
	echo "fetch-kunit-corpus: $tarball not found; install linux-source-6.1" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xJf "$tarball" -C "$tmp" --wildcards '*/tools/testing/kunit/test_data/*.log'
mkdir -p "$dest"
rm -f "$dest"/*.log
cp "$tmp"/*/tools/testing/kunit/test_data/*.log "$dest"/
echo "fetch-kunit-corpus: $(ls "$dest" | wc -l) logs in $dest"
