//! The entry points and renderings, beyond the snapshots.

use std::path::Path;

use ktap::{parse_reader, parse_str};

use crate::corpus::parse_file;

/// Feeding line by line, through a reader, or all at once agrees.
#[test]
fn entry_points_agree() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let from_reader = parse_reader(&bytes[..]);
        assert_eq!(parse_str(&text), from_reader, "{}", path.display());
        let mut parser = ktap::Parser::new();
        for line in bytes.split(|&b| b == b'\n') {
            parser.feed_bytes(line);
        }
        let mut by_line = parser.finish();
        // A trailing newline yields one extra (empty) line when split by
        // hand; only end-of-input line numbers may differ.
        for (a, b) in by_line.diagnostics.iter_mut().zip(&from_reader.diagnostics) {
            a.line = a.line.min(b.line);
        }
        assert_eq!(by_line, from_reader, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 10, "corpus has only {seen} files");
}

/// The JSON form gives every test its full path.
#[test]
fn json_has_paths() {
    let report =
        parse_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/nested_kunit.log"));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let sizes = &json["tests"][0]["subtests"][2];
    assert_eq!(sizes["path"], "kvm_mm_map/map_sizes");
    assert_eq!(sizes["subtests"][2]["path"], "kvm_mm_map/map_sizes/1G");
    assert_eq!(sizes["subtests"][2]["status"], "skip");
    assert_eq!(sizes["subtests"][2]["directive"], "SKIP no 1G pages");
    assert_eq!(json["failed"], true);
}

/// A real 6.1 TCG boot with KVM built as modules (the kvm-mm config):
/// the built-in suites print their KTAP block at boot; /init loads kvm.ko
/// later, whose KUnit suites print `    KTAP version 1`/`# Subtest:`
/// blocks with no top-level header and number their result lines on from
/// the boot block (`ok 8 kvm_mm`, lib/kunit/test.c's
/// kunit_suite_counter); then /init's own TAP follows. The module's
/// suites are top-level tests like the built-in ones, after them.
#[test]
fn kvm_module_kunit_suites_after_the_boot_block() {
    let report =
        parse_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/kvm_modules_6_1.log"));
    let top: Vec<(&str, u32, ktap::Status)> = report
        .tests
        .iter()
        .map(|t| (t.name.as_str(), t.number, t.status))
        .collect();
    use ktap::Status::Pass;
    assert_eq!(
        top,
        [
            ("kunit_executor_test", 1, Pass),
            ("kunit-try-catch-test", 2, Pass),
            ("kunit-resource-test", 3, Pass),
            ("kunit-log-test", 4, Pass),
            ("kunit_status", 5, Pass),
            ("string-stream-test", 6, Pass),
            ("example", 7, Pass),
            ("kvm_mm", 8, Pass),
            ("kvm_mm_walker", 9, Pass),
            ("kvm_modules", 1, Pass),
            ("kselftest", 2, Pass),
        ]
    );
    let kvm_mm = &report.tests[7];
    assert_eq!(kvm_mm.subtests.len(), 8);
    assert_eq!(kvm_mm.subtests[0].name, "kvm_mm_inval_point_test");
    assert_eq!(kvm_mm.subtests[0].subtests.len(), 22);
    assert_eq!(
        kvm_mm.subtests[7].directive.as_deref(),
        Some("SKIP CONFIG_KVM_MM_RUST is off")
    );
    assert_eq!(report.tests[8].subtests.len(), 7);
    // The /init lines around insmod are kept as log, not tests.
    assert!(kvm_mm
        .log
        .iter()
        .any(|l| l == "KMM-BOOT: insmod /lib/modules/kvm.ko"));
    assert!(!report.failed());
    // Nothing worse than the note that /init's TAP restarts the numbering.
    assert!(
        report
            .diagnostics
            .iter()
            .all(|d| d.severity == ktap::Severity::Info),
        "{:?}",
        report.diagnostics
    );
}
