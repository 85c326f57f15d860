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
