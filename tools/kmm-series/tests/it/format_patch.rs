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

/// `git format-patch` of `base..tip` in the fixture kernel repository with
/// the series' settings and `extra` options.
fn real_format_patch(
    kernel: &std::path::Path,
    tip: &str,
    description: &str,
    extra: &[&str],
) -> Vec<kmm_series::generate::PatchFile> {
    git(kernel, &["branch", "-f", "series", tip]);
    git(
        kernel,
        &["config", "branch.series.description", description],
    );
    let out = tempfile::tempdir().unwrap();
    let st = Command::new("git")
        .current_dir(kernel)
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
            "--cover-letter",
            "--cover-from-description=subject",
            "--base=base",
            "--signature=kmm",
        ])
        .args(extra)
        .arg("-o")
        .arg(out.path())
        .arg("base..series")
        .status()
        .unwrap();
    assert!(st.success());
    kmm_series::generate::read_dir(out.path()).unwrap()
}

/// To:/Cc: headers and a re-roll's range-diff, against the real
/// `git format-patch --to --cc --range-diff` on the same commits.
#[test]
fn recipients_and_range_diff_equal_git_format_patch() {
    let mail = "[mail]\nget_maintainer = false\n\
                to = [\"Maint Ainer <maint@example.org>\", \"list@example.org\"]\n\
                cc = [\"Re Viewer <rv@example.org>\", \"LIST@example.org\"]\n\n[base]";
    let repo = super::fixture_copy(|s| s.replace("[base]", mail));
    let fx = make_base();
    let kernel = fx.path();
    let m1 = super::load_at(repo.path());
    let (c1, f1) = kmm_series::generate(&m1, &fx.base).unwrap();
    kmm_series::generate::write_dir(&m1.out_dir(), &f1).unwrap();
    let recipients = [
        "--to=Maint Ainer <maint@example.org>",
        "--to=list@example.org",
        "--cc=Re Viewer <rv@example.org>",
    ];
    let description = format!("{}\n\n{}", m1.subject, m1.body.trim());
    let mut args = vec!["-v1"];
    args.extend(recipients);
    let theirs = real_format_patch(&kernel, &c1.last().unwrap().id, &description, &args);
    assert_eq!(theirs.len(), f1.len());
    for (ours, theirs) in f1.iter().zip(&theirs) {
        similar_asserts(&theirs.text, &ours.text, &ours.name);
    }

    // v2: one commit message changes; the cover letter says so.
    let p = repo.path().join("patches/series.toml");
    let s = std::fs::read_to_string(&p).unwrap();
    let s = s
        .replace("version = 1\n", "version = 2\n")
        .replace(
            "signature = \"kmm\"\n",
            "signature = \"kmm\"\nchangelog.v2 = [\"Say why the walk stops.\"]\n",
        )
        .replace("Stop there.", "Stop there, as the comment says.");
    std::fs::write(&p, s).unwrap();
    let m2 = super::load_at(repo.path());
    let (c2, f2) = kmm_series::generate(&m2, &fx.base).unwrap();
    assert_ne!(c1.last().unwrap().id, c2.last().unwrap().id);
    assert!(
        f2[0].text.contains("\nRange-diff against v1:\n"),
        "{}",
        f2[0].text
    );
    let description = format!(
        "{}\n\n{}\n\nChanges in v2:\n- Say why the walk stops.",
        m2.subject,
        m2.body.trim()
    );
    let mut args = vec!["-v2", "--range-diff=base..kmm/v1"];
    args.extend(recipients);
    let theirs = real_format_patch(&kernel, &c2.last().unwrap().id, &description, &args);
    assert_eq!(theirs.len(), f2.len());
    for (ours, theirs) in f2.iter().zip(&theirs) {
        similar_asserts(&theirs.text, &ours.text, &ours.name);
    }
}
