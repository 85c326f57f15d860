//! Snapshots of the corpus logs: the typed tree as JSON, and the human
//! rendering.

use std::path::{Path, PathBuf};

use ktap::{parse_reader, Report};

/// Parses a corpus file the way a runner would: from bytes, via the reader.
pub(crate) fn parse_file(path: &Path) -> Report {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse_reader(&bytes[..])
}

/// Snapshots the typed tree (JSON) and the human rendering of one log,
/// naming the snapshots `{set}_tree` and `{set}_human`.
fn snapshot(set: &str, path: &Path) {
    let report = parse_file(path);
    insta::assert_json_snapshot!(format!("{set}_tree"), report);
    insta::assert_snapshot!(format!("{set}_human"), report.render_human());
}

#[test]
fn corpus() {
    insta::glob!("../corpus", "*.log", |path| snapshot("own", path));
}

/// Where the kernel's `tools/testing/kunit/test_data/*.log` were fetched to
/// by `tests/fetch-kunit-corpus.sh`.
fn kunit_corpus_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("KTAP_KUNIT_CORPUS") {
        Some(dir) => manifest.join(dir),
        None => manifest.join("tests/kunit-corpus"),
    }
}

#[test]
fn kunit_corpus() {
    let dir = kunit_corpus_dir();
    if !dir.is_dir() {
        eprintln!(
            "skipping: KUnit corpus {} is absent; run tools/ktap/tests/fetch-kunit-corpus.sh",
            dir.display()
        );
        return;
    }
    insta::glob!(&dir, "*.log", |path| snapshot("kunit", path));
}
