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

/// The base tree's get_maintainer.pl, run offline on the real patch 1:
/// the KVM maintainer in To:, the lists in Cc:, the same on every run.
#[test]
fn get_maintainer_addresses_the_real_series() {
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
    let gm = kmm_series::maintainers::GetMaintainer::extract(&b.repo, &b.tree)
        .unwrap()
        .expect("linux-source-6.1 has scripts/get_maintainer.pl");
    let (_, files) = kmm_series::generate(&m, &b).unwrap();
    let r = gm.recipients("p.patch", &files[1].text).unwrap();
    let show =
        |v: &[kmm_series::manifest::Address]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert!(
        show(&r.to).contains(&"Paolo Bonzini <pbonzini@redhat.com>".to_string()),
        "{r:?}"
    );
    assert!(
        show(&r.cc).contains(&"kvm@vger.kernel.org".to_string()),
        "{r:?}"
    );
    assert!(r.to.iter().all(|a| !r.cc.contains(a)));
    assert_eq!(gm.recipients("p.patch", &files[1].text).unwrap(), r);
}
