//! `Report::write_kunit_json` against the real `kunit.py parse --json` of
//! Linux 6.1 (extracted from the base tarball) on the kernel's own KUnit
//! test logs: byte-identical output, except on the two logs where the
//! parsers differ on purpose (see the crate docs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const TARBALL: &str = "/usr/src/linux-source-6.1.tar.xz";

/// Logs whose results differ from kunit.py's by design (crate docs).
const DIFFERENT: [(&str, &str); 2] = [
    (
        "test_is_test_passed-kselftest.log",
        "kselftest's nested `# ` TAP becomes subtests here",
    ),
    (
        "test_is_test_passed-no_tests_no_plan.log",
        "a `# Subtest:` header without subtests is a test case here, not \"no tests run\"",
    ),
];

/// tools/testing/kunit of the base, extracted once.
fn kunit_tool() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        if !Path::new(TARBALL).exists() {
            return None;
        }
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ktap-kunit-tool");
        let dir = root.join("linux-source-6.1/tools/testing/kunit");
        if !dir.join("kunit.py").exists() {
            std::fs::create_dir_all(&root).unwrap();
            let st = Command::new("tar")
                .arg("-xJf")
                .arg(TARBALL)
                .arg("-C")
                .arg(&root)
                .args(["--wildcards", "*/tools/testing/kunit/*.py"])
                .status()
                .unwrap();
            assert!(st.success());
        }
        Some(dir)
    })
    .as_deref()
}

#[test]
fn kunit_json_equals_kunit_py() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kunit-corpus");
    let (Some(tool), true) = (kunit_tool(), corpus.is_dir()) else {
        eprintln!("skipping: needs {TARBALL} and tests/fetch-kunit-corpus.sh's corpus");
        return;
    };
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 20, "{} logs", logs.len());
    let mut same = 0;
    for log in &logs {
        let name = log.file_name().unwrap().to_string_lossy().into_owned();
        let out = Command::new("python3")
            .current_dir(tool)
            .args(["kunit.py", "parse", "--json"])
            .arg(log)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // kunit.py prints its human report first, then the JSON.
        let theirs = &text[text.find("\n{").map_or(0, |i| i + 1)..];
        let bytes = std::fs::read(log).unwrap();
        let report = ktap::parse_reader(&bytes[..]);
        let mut ours = Vec::new();
        report.write_kunit_json(&mut ours).unwrap();
        let ours = String::from_utf8(ours).unwrap();
        let expected_different = DIFFERENT.iter().any(|(n, _)| *n == name);
        if expected_different {
            assert_ne!(
                ours.trim_end(),
                theirs.trim_end(),
                "{name} now agrees: drop it from DIFFERENT"
            );
        } else {
            assert_eq!(ours.trim_end(), theirs.trim_end(), "{name}");
            same += 1;
        }
    }
    assert_eq!(same, logs.len() - DIFFERENT.len());
}
