//! kmm's mbox output against the real `git format-patch`.

use std::process::Command;

use super::{fixture_manifest, git, make_base};

fn all_files(files: &[kmm_series::generate::PatchFile]) -> String {
    files
        .iter()
        .map(|f| format!("=== {} ===\n{}", f.name, f.text))
        .collect()
}

#[test]
fn mbox_equals_git_format_patch() {
    let fx = make_base();
    let m = fixture_manifest();
    let (commits, files) = kmm_series::generate(&m, &fx.base).unwrap();
    let kernel = fx.path();
    let tip = &commits.last().unwrap().id;
    git(&kernel, &["branch", "-f", "series", tip]);
    git(&kernel, &["checkout", "-q", "series"]);
    git(
        &kernel,
        &[
            "config",
            "branch.series.description",
            &format!("{}\n\n{}", m.subject, m.body.trim()),
        ],
    );
    let out = tempfile::tempdir().unwrap();
    let st = Command::new("git")
        .current_dir(&kernel)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_COMMITTER_DATE", "2026-11-25T09:00:00+00:00")
        .args([
            "-c",
            "user.name=A. U. Thor",
            "-c",
            "user.email=author@example.org",
            "-c",
            "core.abbrev=12",
            "format-patch",
            "-q",
            "--rfc",
            "-v1",
            "--cover-letter",
            "--cover-from-description=subject",
            "--base=base",
            "--signature=kmm",
            "-o",
        ])
        .arg(out.path())
        .arg("base..series")
        .status()
        .unwrap();
    assert!(st.success());
    let theirs = kmm_series::generate::read_dir(out.path()).unwrap();
    assert_eq!(theirs.len(), files.len());
    for (ours, theirs) in files.iter().zip(&theirs) {
        similar_asserts(&theirs.text, &ours.text, &ours.name);
    }
    // kmm keeps the version in the directory name, so its file names are
    // those of format-patch without -v.
    let plain = tempfile::tempdir().unwrap();
    git(
        &kernel,
        &[
            "format-patch",
            "-q",
            "--cover-letter",
            "-o",
            plain.path().to_str().unwrap(),
            "base..series",
        ],
    );
    let names: Vec<String> = kmm_series::generate::read_dir(plain.path())
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    let ours: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    assert_eq!(ours, names);
}

fn similar_asserts(theirs: &str, ours: &str, name: &str) {
    if theirs != ours {
        let d = similar::TextDiff::from_lines(theirs, ours)
            .unified_diff()
            .header("git format-patch", "kmm")
            .to_string();
        panic!("{name} differs from git format-patch:\n{d}");
    }
}

#[test]
fn generation_is_reproducible() {
    let a = make_base();
    let b = make_base();
    let m = fixture_manifest();
    let (ca, fa) = kmm_series::generate(&m, &a.base).unwrap();
    let (cb, fb) = kmm_series::generate(&m, &b.base).unwrap();
    assert_eq!(ca, cb);
    assert_eq!(fa, fb);
}

#[test]
fn fixture_series_snapshot() {
    let fx = make_base();
    let m = fixture_manifest();
    let (_, files) = kmm_series::generate(&m, &fx.base).unwrap();
    insta::assert_snapshot!(all_files(&files));
}

#[test]
fn git_am_reproduces_commits() {
    let fx = make_base();
    let m = fixture_manifest();
    let (commits, files) = kmm_series::generate(&m, &fx.base).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for f in files.iter().skip(1) {
        let p = dir.path().join(&f.name);
        std::fs::write(&p, &f.text).unwrap();
        paths.push(p);
    }
    let wt = kmm_series::check::Worktree::add(fx.base.repo.git_dir(), &fx.base.commit).unwrap();
    let findings = kmm_series::check::git_am(&m, &wt, &paths, &commits).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn write_dir_replaces_whole_directory() {
    let fx = make_base();
    let m = fixture_manifest();
    let (_, files) = kmm_series::generate(&m, &fx.base).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("v1");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("0009-stale.patch"), "old").unwrap();
    kmm_series::generate::write_dir(&dir, &files).unwrap();
    let back = kmm_series::generate::read_dir(&dir).unwrap();
    assert_eq!(back, files);
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("v1")]);
}
