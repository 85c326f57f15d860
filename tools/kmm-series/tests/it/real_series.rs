//! `kmm series check` on the project's real series and base.

use std::path::Path;

#[test]
fn real_series_checks_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let m = kmm_series::manifest::load(&root.join("patches/series.toml"), &root).unwrap();
    if !m.base.tarball.exists() {
        eprintln!(
            "skipping: {} is absent (apt-get install {}); .ci/run installs it, so CI never skips",
            m.base.tarball.display(),
            m.base.package
        );
        return;
    }
    let b = kmm_series::base::provide(&m.base, &kmm_series::base::default_cache_dir()).unwrap();
    let report = kmm_series::check::run(&m, &b).unwrap();
    assert!(
        report.findings.is_empty(),
        "kmm series check found problems:\n{}",
        report
            .findings
            .iter()
            .map(|f| format!("{}: {:?}: {}\n", f.check, f.file, f.message))
            .collect::<String>()
    );
}
