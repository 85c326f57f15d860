//! The kmm binary: exit codes, one-line errors, nothing half-written.

#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)] // Integration tests: a failed unwrap is a failed assertion.
mod interrupt;
mod send;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kmm(args: &[&str], repo: &Path, cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kmm"))
        .args(args)
        .arg("--repo")
        .arg(repo)
        .arg("--cache")
        .arg(cache)
        .output()
        .unwrap()
}

/// A kvm-mm-like repository on a tiny tarball base; returns (dir, repo).
fn mini_repo() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("linux-source-6.1");
    std::fs::create_dir_all(src.join("virt/kvm")).unwrap();
    std::fs::write(
        src.join("virt/kvm/kvm_main.c"),
        "int a;\n\nstatic int f(void)\n{\n\treturn 0;\n}\n",
    )
    .unwrap();
    std::fs::write(
        src.join("virt/kvm/kvm_mm.h"),
        "#ifndef A\n#define A\n\n#endif /* A */\n",
    )
    .unwrap();
    let tarball = d.path().join("src.tar.xz");
    assert!(Command::new("tar")
        .current_dir(d.path())
        .arg("-cJf")
        .arg(&tarball)
        .arg("linux-source-6.1")
        .status()
        .unwrap()
        .success());
    let repo = d.path().join("repo");
    std::fs::create_dir_all(repo.join("patches/fragments")).unwrap();
    std::fs::write(
        repo.join("patches/fragments/a.diff"),
        "--- a/virt/kvm/kvm_main.c\n+++ b/virt/kvm/kvm_main.c\n@@ -1 +1,2 @@\n int a;\n+int b;\n",
    )
    .unwrap();
    let manifest = format!(
        r#"[series]
version = 1
subject = "KVM: A small series"
author = "A U Thor <a@example.org>"
date = "2026-11-25T09:00:00+00:00"
body = "Body."

[base]
package = "linux-source-6.1"
version = "test"
tarball = "{}"
sha256 = "SHA"
commit = "COMMIT"
tree = "TREE"

[[commit]]
subject = "KVM: Add b"
body = "Because."

[[commit.op]]
kind = "patch"
fragment = "patches/fragments/a.diff"
"#,
        tarball.display()
    );
    std::fs::write(repo.join("patches/series.toml"), &manifest).unwrap();
    // Pin the base with `kmm base --pin`, as a developer would.
    let out = kmm(&["base", "--pin"], &repo, &d.path().join("cache"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pins = String::from_utf8(out.stdout).unwrap();
    let get = |k: &str| {
        pins.lines()
            .find_map(|l| l.strip_prefix(&format!("{k} = \"")))
            .unwrap()
            .trim_end_matches('"')
            .to_string()
    };
    let manifest = manifest
        .replace("SHA", &get("sha256"))
        .replace("COMMIT", &get("commit"))
        .replace("TREE", &get("tree"));
    std::fs::write(repo.join("patches/series.toml"), manifest).unwrap();
    (d, repo)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn generate_writes_the_series_and_is_reproducible() {
    let (d, repo) = mini_repo();
    let cache = d.path().join("cache");
    let out = kmm(&["series", "generate"], &repo, &cache);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let a = std::fs::read_to_string(repo.join("patches/v1/0001-KVM-Add-b.patch")).unwrap();
    assert!(a.contains("Subject: [PATCH v1 1/1] KVM: Add b"));
    let out = kmm(&["series", "generate"], &repo, &cache);
    assert_eq!(out.status.code(), Some(0));
    let b = std::fs::read_to_string(repo.join("patches/v1/0001-KVM-Add-b.patch")).unwrap();
    assert_eq!(a, b);
    let out = kmm(&["series", "status"], &repo, &cache);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("KVM: Add b") && s.contains("up to date"), "{s}");
}

#[test]
fn bad_input_exits_2_with_one_line_and_writes_nothing() {
    let (d, repo) = mini_repo();
    let cache = d.path().join("cache");
    assert_eq!(
        kmm(&["series", "generate"], &repo, &cache).status.code(),
        Some(0)
    );
    let before = std::fs::read_to_string(repo.join("patches/v1/0001-KVM-Add-b.patch")).unwrap();
    // A fragment that no longer applies.
    std::fs::write(
        repo.join("patches/fragments/a.diff"),
        "--- a/virt/kvm/kvm_main.c\n+++ b/virt/kvm/kvm_main.c\n@@ -1 +1,2 @@\n int z;\n+int b;\n",
    )
    .unwrap();
    let out = kmm(&["series", "generate"], &repo, &cache);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with("kmm: error: ") && e.contains("a.diff:3: hunk does not apply"),
        "{e}"
    );
    let after = std::fs::read_to_string(repo.join("patches/v1/0001-KVM-Add-b.patch")).unwrap();
    assert_eq!(before, after);
    let entries: Vec<_> = std::fs::read_dir(repo.join("patches")).unwrap().collect();
    assert_eq!(
        entries.len(),
        3,
        "no temporary directory may be left behind"
    );
}

#[test]
fn wrong_tarball_hash_exits_2() {
    let (d, repo) = mini_repo();
    let p = repo.join("patches/series.toml");
    let s = std::fs::read_to_string(&p).unwrap();
    let line = s
        .lines()
        .find(|l| l.starts_with("sha256 = "))
        .unwrap()
        .to_string();
    std::fs::write(&p, s.replace(&line, "sha256 = \"0000\"")).unwrap();
    let out = kmm(&["base"], &repo, &d.path().join("cache"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("sha256 is"), "{}", stderr(&out));
    assert!(!d
        .path()
        .join("cache")
        .join("linux-source-6.1-test.git")
        .exists());
}

#[test]
fn missing_manifest_and_usage_errors_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let out = kmm(&["series", "generate"], d.path(), d.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no patches/series.toml"));
    let out = Command::new(env!("CARGO_BIN_EXE_kmm"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn parse_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let ok = d.path().join("ok.log");
    std::fs::write(&ok, "KTAP version 1\n1..1\nok 1 a\n").unwrap();
    let bad = d.path().join("bad.log");
    std::fs::write(&bad, "KTAP version 1\n1..2\nok 1 a\nnot ok 2 b\n").unwrap();
    let run = |p: &Path| {
        Command::new(env!("CARGO_BIN_EXE_kmm"))
            .arg("parse")
            .arg(p)
            .output()
            .unwrap()
    };
    assert_eq!(run(&ok).status.code(), Some(0));
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed, 1 failed"));
    let out = Command::new(env!("CARGO_BIN_EXE_kmm"))
        .args(["parse", "--format", "json"])
        .arg(&bad)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tests"][1]["path"], "b");
    assert_eq!(v["tests"][1]["status"], "fail");
}

#[test]
fn a_crash_while_replacing_the_patches_never_leaves_them_missing() {
    let (d, repo) = mini_repo();
    let cache = d.path().join("cache");
    assert_eq!(
        kmm(&["series", "generate"], &repo, &cache).status.code(),
        Some(0)
    );
    let p = repo.join("patches/fragments/a.diff");
    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, s.replace("+int b;", "+int c;")).unwrap();
    // Killed right after the exchange, before the old directory is gone.
    let out = Command::new(env!("CARGO_BIN_EXE_kmm"))
        .args(["series", "generate", "--repo"])
        .arg(&repo)
        .arg("--cache")
        .arg(&cache)
        .env("KMM_TEST_CRASH", "after-exchange")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "{}", stderr(&out));
    let patch = std::fs::read_to_string(repo.join("patches/v1/0001-KVM-Add-b.patch")).unwrap();
    assert!(patch.contains("+int c;"), "{patch}");
    let left: Vec<String> = std::fs::read_dir(repo.join("patches"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kmm-"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    // The old directory, now under the scratch name, goes with the next run.
    let out = kmm(&["series", "status"], &repo, &cache);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("removed 1 temporary item(s) that an interrupted kmm left in "),
        "{}",
        stderr(&out)
    );
    assert!(!repo.join("patches").join(&left[0]).exists());
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
}

#[test]
fn a_damaged_cache_is_one_error_line_that_says_how_to_rebuild() {
    let (d, repo) = mini_repo();
    let cache = d.path().join("cache");
    let out = kmm(&["base"], &repo, &cache);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let git_dir = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "git"))
        .unwrap();
    let object = |spec: &str| {
        let id = Command::new("git")
            .arg("--git-dir")
            .arg(&git_dir)
            .args(["rev-parse", spec])
            .output()
            .unwrap();
        let id = String::from_utf8(id.stdout).unwrap().trim().to_string();
        git_dir.join("objects").join(&id[..2]).join(&id[2..])
    };
    let one_line = |args: &[&str], needle: &str| {
        let out = kmm(args, &repo, &cache);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let e = stderr(&out);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.contains("the cached base repository is damaged")
                && e.contains(needle)
                && e.contains("and run `kmm base` to import the tarball again"),
            "{e}"
        );
    };
    // A blob: only the full check reads every one.
    let blob = object("base:virt/kvm/kvm_mm.h");
    std::fs::remove_file(&blob).unwrap();
    one_line(&["base", "--verify"], "of virt/kvm/kvm_mm.h cannot be read");
    // A tree: every command sees it, before generate trips over it.
    std::fs::remove_file(object("base:virt/kvm")).unwrap();
    one_line(&["base"], "of virt/kvm cannot be read");
    one_line(&["series", "generate"], "rm -rf ");
    assert!(!repo.join("patches/v1").exists());
}

#[test]
fn a_closed_or_full_stdout_is_one_error_line_not_a_panic() {
    let (d, repo) = mini_repo();
    let cache = d.path().join("cache");
    assert_eq!(
        kmm(&["series", "generate"], &repo, &cache).status.code(),
        Some(0)
    );
    let log = d.path().join("f.log");
    std::fs::write(&log, "KTAP version 1\n1..1\nok 1 a\n").unwrap();
    let log = log.to_str().unwrap();
    let with_stdout = |args: &[&str], stdout: std::process::Stdio| {
        Command::new(env!("CARGO_BIN_EXE_kmm"))
            .args(args)
            .arg("--repo")
            .arg(&repo)
            .arg("--cache")
            .arg(&cache)
            .stdout(stdout)
            .output()
            .unwrap()
    };
    for args in [&["parse", log][..], &["series", "status"]] {
        // `kmm ... | head -0`: the reader is gone before kmm writes.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = with_stdout(args, writer.into());
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {e}");
        assert_eq!(
            e,
            "kmm: error: standard output was closed (broken pipe); stopped writing\n"
        );
        // `kmm ... > /dev/full`
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = with_stdout(args, full.into());
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.starts_with("kmm: error: cannot write standard output: No space left on device"),
            "{e}"
        );
    }
    // A bare `kmm` shows its usage; a directory is not a log.
    let out = Command::new(env!("CARGO_BIN_EXE_kmm")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Usage: kmm [OPTIONS] <COMMAND>"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_kmm"))
        .args(["parse"])
        .arg(d.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
}

#[test]
fn progress_is_shown_on_a_terminal_only() {
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("skipping: script(1) is not installed (apt-get install bsdutils)");
        return;
    }
    let (d, repo) = mini_repo();
    let cmd = |cache: &str| {
        format!(
            "{} base --repo {} --cache {}",
            env!("CARGO_BIN_EXE_kmm"),
            repo.display(),
            d.path().join(cache).display()
        )
    };
    // script(1) runs it on a pseudo-terminal.
    let out = Command::new("script")
        .args(["-qefc", &cmd("tty-cache"), "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("\r\x1b[Kkmm: importing "), "{shown:?}");
    let out = kmm(&["base"], &repo, &d.path().join("pipe-cache"));
    assert_eq!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains("importing"), "{}", stderr(&out));
}

#[test]
fn ci_report_merges_results_and_names_a_missing_row() {
    let d = tempfile::tempdir().unwrap();
    let spec = |label: &str| {
        serde_json::json!({
            "id": format!("{label}/kvm-mm/commit"), "label": label, "commit": "abc",
            "target": "kvm-mm", "plan": "commit", "boot": true, "main": true,
            "refresh": [], "warning_dirs": ["virt/kvm/"], "snapshot": null
        })
    };
    let list = serde_json::json!({
        "version": 1, "config": "kvm-mm", "whole": false,
        "rows": [spec("0000-base"), spec("0001-KVM-a")]
    });
    std::fs::write(d.path().join("list.json"), list.to_string()).unwrap();
    let row = |label: &str, warnings: serde_json::Value| {
        serde_json::json!({
            "id": format!("{label}/kvm-mm/commit"),
            "row": {
                "label": label, "commit": "abc", "target": "kvm-mm", "config": "kvm-mm",
                "plan": "commit", "build": "ok", "error": null, "kvm_warnings": 0,
                "new_warnings": [], "boot": "powered off", "tests": "1/1", "failures": [],
                "splats": [], "snapshot": "match", "snapshot_diff": null, "flaky": null,
                "retries": [], "seconds": 1.0, "first_ktap_secs": null, "failed": false
            },
            "warnings": warnings
        })
    };
    let job = d.path().join("rows-kvm-mm");
    std::fs::create_dir(&job).unwrap();
    std::fs::write(
        job.join("0000-base__kvm-mm__commit.result.json"),
        row("0000-base", serde_json::json!([])).to_string(),
    )
    .unwrap();
    let report = |dir: &Path| {
        Command::new(env!("CARGO_BIN_EXE_kmm"))
            .current_dir(d.path())
            .args(["ci", "report"])
            .arg(dir)
            .arg("--junit")
            .arg(d.path().join("junit.xml"))
            .output()
            .unwrap()
    };
    // Patch 1's job did not finish: its row fails by name.
    let out = report(d.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("    FAILED 0001-KVM-a/kvm-mm/commit: build: no result for row 0001-KVM-a/kvm-mm/commit"),
        "{text}"
    );
    let junit = std::fs::read_to_string(d.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains("tests=\"2\"") && junit.contains("failures=\"1\""),
        "{junit}"
    );
    // With it, and a W=1 warning it adds in virt/kvm/: the report counts it.
    std::fs::write(
        job.join("0001-KVM-a__kvm-mm__commit.result.json"),
        row(
            "0001-KVM-a",
            serde_json::json!([{"file": "virt/kvm/a.c", "line": 7, "message": "unused"}]),
        )
        .to_string(),
    )
    .unwrap();
    let out = report(d.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("FAILED 0001-KVM-a/kvm-mm/commit: adds W=1 warning: virt/kvm/a.c:7: unused"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A result of a row the list does not have is an error.
    std::fs::write(
        job.join("0009-x__kvm-mm__commit.result.json"),
        row("0009-x", serde_json::json!([])).to_string(),
    )
    .unwrap();
    let out = report(d.path());
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("0009-x/kvm-mm/commit: a result for a row that is not in the list"),
        "{e}"
    );
}
