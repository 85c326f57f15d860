#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Compare ktap's counts with the kernel's own KUnit parser (kunit.py).

For every log given (default: tests/kunit-corpus/*.log and tests/corpus/*.log)
print passed/failed/skipped as counted by ktap (`cargo run --example parse --
--counts`) and by kunit_parser.parse_run_tests from Linux 6.1's
tools/testing/kunit, extracted from /usr/src/linux-source-6.1.tar.xz unless
KUNIT_TOOL_DIR points at an extracted tools/testing/kunit (KTAP_PARSE_BIN may
name a prebuilt `parse` example binary). kunit.py counts
"crashed" separately; it is folded into "failed" here, as ktap folds
crashed/missing/timeout/error into "failed".

Exit status: 0 when every log agrees, 1 otherwise (see the crate docs for the
known, deliberate differences).
"""

import glob
import io
import os
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def kunit_tool_dir(tmp):
    given = os.environ.get("KUNIT_TOOL_DIR")
    if given:
        return given
    tarball = "/usr/src/linux-source-6.1.tar.xz"
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers()
                   if "/tools/testing/kunit/" in m.name and m.name.endswith(".py")]
        tar.extractall(tmp, members=members)
    return glob.glob(os.path.join(tmp, "*", "tools", "testing", "kunit"))[0]


def kunit_counts(kunit_parser, path):
    # kunit_parser prints through kunit_printer.stdout; silence it.
    kunit_parser.stdout._output = io.StringIO()
    with open(path, errors="replace") as f:
        test = kunit_parser.parse_run_tests(f.readlines())
    c = test.counts
    return c.passed, c.failed + c.crashed, c.skipped


def ktap_counts(path):
    # KTAP_PARSE_BIN: a prebuilt `parse` example, to skip `cargo run`.
    binary = os.environ.get("KTAP_PARSE_BIN")
    cmd = [binary] if binary else \
        ["cargo", "run", "-q", "-j1", "-p", "ktap", "--example", "parse", "--"]
    out = subprocess.run(cmd + ["--counts", path],
                         check=True, capture_output=True, text=True, cwd=HERE).stdout.split()
    passed, failed, skipped, _total = map(int, out)
    return passed, failed, skipped


def main():
    logs = sys.argv[1:] or sorted(glob.glob(os.path.join(HERE, "kunit-corpus", "*.log"))) \
        + sorted(glob.glob(os.path.join(HERE, "corpus", "*.log")))
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, kunit_tool_dir(tmp))
        import kunit_parser  # noqa: E402
        disagree = 0
        print(f"{'log':48} {'ktap p/f/s':>12} {'kunit.py p/f/s':>15}")
        for path in logs:
            ours = ktap_counts(path)
            theirs = kunit_counts(kunit_parser, path)
            mark = "" if ours == theirs else "  <- differs"
            disagree += ours != theirs
            fmt = lambda c: "/".join(map(str, c))
            print(f"{os.path.basename(path):48} {fmt(ours):>12} {fmt(theirs):>15}{mark}")
        print(f"{len(logs) - disagree} agree, {disagree} differ")
        return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
