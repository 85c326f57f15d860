//! A streaming, never-failing parser for KTAP v1 and kselftest TAP 13.
//!
//! KTAP is the test output format of KUnit and kselftest, specified in the
//! kernel's `Documentation/dev-tools/ktap.rst`. This crate turns a console
//! log holding such output into a tree of [`Node`]s with a [`Status`] each,
//! plus [`Diagnostic`]s about anything odd in the input.
//!
//! ```
//! let log = "\
//! [    0.712345] KTAP version 1
//! [    0.712346] 1..1
//! [    0.712347]     KTAP version 1
//! [    0.712348]     # Subtest: kvm_mm
//! [    0.712349]     1..3
//! [    0.712350]     ok 1 map_basic
//! [    0.712351]     # unmap_range: EXPECTATION FAILED at mm.c:42
//! [    0.712352]     not ok 2 unmap_range
//! [    0.712353]     ok 3 huge_pages # SKIP no THP
//! [    0.712354] not ok 1 kvm_mm
//! ";
//! let report = ktap::parse_str(log);
//! assert!(report.failed());
//! let failed = report.find("kvm_mm/unmap_range").unwrap();
//! assert_eq!(failed.status, ktap::Status::Fail);
//! assert_eq!(failed.log, ["# unmap_range: EXPECTATION FAILED at mm.c:42"]);
//! assert_eq!(report.render_human().lines().last(), Some("1 passed, 1 failed, 1 skipped"));
//! ```
//!
//! # Design
//!
//! - **Parsing never fails.** Every entry point returns a [`Report`]; input
//!   that is not KTAP becomes diagnostics, never an error or a panic.
//! - **Streaming.** [`Report::write_json`] streams the JSON report
//!   without building it in memory. [`Parser`] is a push parser; it keeps one frame per open
//!   test and never the raw lines, so its memory is bounded by the nesting
//!   depth (at most 64 levels are followed) plus the result tree. Kept log
//!   lines are capped per test ([`Options::max_log_lines`], first and last
//!   halves kept) and at 1024 bytes each.
//! - **Nesting by position.** A line's position is its number of `# `
//!   prefixes (kselftest's runner prefixes a test's own TAP output with
//!   `# `), then its indentation (any width; tabs go to multiples of 8). A
//!   version line or `# Subtest:` header deeper than the innermost open
//!   test opens a subtest; a result line belongs to the innermost open test
//!   at or above its position and closes anything nested deeper. Subtests
//!   that are not indented at all are followed the way `kunit.py` does: by
//!   the plan count, or by a result line repeating the header's name.
//!   Output with no top-level header (a KUnit module loaded after boot
//!   prints indented suites whose result lines are not indented) is
//!   nested as printed; if the first version line is indented and its
//!   unnamed test is still open at the end, the indentation was a console
//!   prefix and that test becomes the top level.
//! - **Prefixes.** printk timestamps (`[    1.234567] `, with an optional
//!   caller id `[    T1]` and syslog level `<6>`) are stripped from every
//!   line. Whatever precedes the first version line is a console prefix and
//!   is stripped from later lines that carry it, as `kunit.py` does.
//! - **Crashes.** `Kernel panic - not syncing` ends the input. When the
//!   input ends (or panics) with tests open, they are [`Status::Crashed`];
//!   the test that was running (the next one its parent's plan expects) is
//!   `crashed` as well, and later planned tests are [`Status::Missing`].
//!   A test the kselftest runner announced (`# selftests: kvm: NAME`) but
//!   that never reported keeps that name, crashed or missing, and
//!   [`Report::render_human`] says `crashed in: <path>`. A run of missing
//!   tests (the rest of a plan, a numbering gap) is one [`Node`] standing
//!   for `number..=last` ([`Node::last`], path `#N..#M`), so a plan of
//!   `1..1000000` costs one node; [`Counts`] count every test of it.
//!   `BUG:`/`Oops:` lines are noted, but as the kernel may survive them,
//!   parsing goes on: if KTAP output resumes, the reported results stand.
//!   If the top level ends early without such evidence, the unreported
//!   tests are only `missing`.
//! - **Logs.** Diagnostic (`# …`) and unknown lines go to the log of the
//!   test they precede, dedented to its level and passed through [`redact`]
//!   so that addresses do not make snapshots unstable.
//!
//! # Status semantics
//!
//! `SKIP` gives [`Status::Skip`] whether `ok` or `not ok`. `TODO` gives
//! [`Status::Todo`] for both `ok` and `not ok`: as in TAP, a TODO test's
//! failure is expected and does not fail the run. `XFAIL`, `TIMEOUT` and
//! `ERROR` map to their statuses; directives are matched case-insensitively
//! and unknown ones (kselftest's `# exit=1`) fall back to `ok`/`not ok`.
//! A suite's status is the one its result line reports; if it says `ok`
//! while a subtest failed, a warning is emitted. [`Report::failed`] is true
//! when any test is fail, timeout, error, crashed or missing.
//!
//! # Testing
//!
//! `tests/it` snapshots ([`Report`] as JSON, and [`Report::render_human`])
//! every log of `tests/corpus/` and of the kernel's KUnit test logs, which
//! the repository does not hold: `tests/fetch-kunit-corpus.sh` extracts
//! them from `/usr/src/linux-source-6.1.tar.xz` into `tests/kunit-corpus/`
//! (or `$KTAP_KUNIT_CORPUS`); without them that test prints `skipping: …`.
//! `examples/gen_big.rs` writes a large synthetic log for throughput
//! measurements, `examples/parse.rs` prints a report.
//!
//! # kunit.py's JSON
//!
//! [`Report::write_kunit_json`] writes the schema of `kunit.py parse
//! --json` (KernelCI's test API), so that consumers of kunit.py's results
//! can read kmm's. `tests/it/kunit_json.rs` runs the real kunit.py of the
//! base tarball on the kernel's 22 KUnit test logs: the output is
//! byte-identical on 20, and differs on the two logs of the first and
//! sixth items below.
//!
//! # Differences from `kunit.py parse` (Linux 6.1)
//!
//! `tests/compare-kunit.py` compares pass/fail/skip counts with the kernel's
//! `kunit_parser` (crashed folded into failed). 21 of the 22 logs of the
//! kernel's `tools/testing/kunit/test_data` agree; the exception
//! (`test_is_test_passed-kselftest.log`, first item below) and the
//! differences on this crate's own corpus are deliberate:
//!
//! - `kunit.py` ignores indentation and `# `-prefixed kselftest output; here
//!   a kselftest test's nested TAP (`# TAP version 13`, `# ok 1 …`) becomes
//!   subtests, so such logs have more (leaf) tests.
//! - `kunit.py` knows only the `SKIP` directive, and only in upper case;
//!   here `TODO`, `XFAIL`, `TIMEOUT` and `ERROR` have their own statuses and
//!   all directives are case-insensitive.
//! - `kunit.py` stops after the first top-level plan is complete; here a
//!   later KTAP stream (a KUnit module loaded after boot) is parsed too.
//! - When a suite reports more results than its plan, `kunit.py` hands the
//!   extra results to the parent; here they stay in the suite, with a
//!   warning.
//! - Planned tests never reported are `missing` (and the one that was
//!   running `crashed`); `kunit.py` calls all of them crashed. Both count as
//!   failed.
//! - A test with a `# Subtest:` header but no subtests is a test case with
//!   its result line's status; `kunit.py` reports "no tests run".
//! - `kunit.py` stops at `List of all partitions:`; here that is an unknown
//!   line, and only a panic ends the input.

#![forbid(unsafe_code)]

mod line;
mod log;
mod parser;
mod report;

use std::io::BufRead;

pub use crate::line::redact;
pub use crate::parser::{Options, Parser};
pub use crate::report::{
    Counts, Diagnostic, Iter, Node, Report, Severity, Status, TestRef, KUNIT_JSON_RUN,
};

/// Parses a whole log held in memory.
pub fn parse_str(input: &str) -> Report {
    let mut parser = Parser::new();
    for line in input.lines() {
        parser.feed_line(line);
    }
    parser.finish()
}

/// Parses a log from a reader, line by line; invalid UTF-8 is replaced and
/// read errors end the input with an error diagnostic.
pub fn parse_reader<R: BufRead>(reader: R) -> Report {
    let mut parser = Parser::new();
    parser.feed_reader(reader);
    parser.finish()
}
