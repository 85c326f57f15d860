//! Integration tests of the series generator on fixture repositories made
//! by `tests/fixtures/make_base.sh`, compared with the real git.

#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)] // Integration tests: a failed unwrap is a failed assertion.
mod base_import;
mod errors;
mod format_patch;
mod layering;
mod real_series;
mod reroll;

use std::path::{Path, PathBuf};
use std::process::Command;

use kmm_series::base::Base;
use kmm_series::manifest::{self, Manifest};
use kmm_series::repo::GitRepo;

/// The fixture directory.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fresh fixture base repository in a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    base: Base,
}

impl Fixture {
    fn path(&self) -> PathBuf {
        self.dir.path().join("kernel")
    }
}

fn make_base() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel");
    let st = Command::new("sh")
        .arg(fixtures().join("make_base.sh"))
        .arg(&kernel)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .unwrap();
    assert!(st.success());
    let repo = GitRepo::open(&kernel).unwrap();
    let commit = repo.resolve("refs/heads/base").unwrap();
    let tree = kmm_series::repo::Repo::tree_of(&repo, &commit).unwrap();
    Fixture {
        dir,
        base: Base {
            repo,
            commit,
            tree,
            imported: None,
        },
    }
}

/// The fixture series manifest, rooted at tests/fixtures/repo.
fn fixture_manifest() -> Manifest {
    let root = fixtures().join("repo");
    manifest::load(&root.join("patches/series.toml"), &root).unwrap()
}

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// A writable copy of the fixture repo whose series.toml is `edit`ed.
fn fixture_copy(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("repo"), dir.path());
    let p = dir.path().join("patches/series.toml");
    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, edit(s)).unwrap();
    dir
}

/// Loads the manifest of a repository copy.
fn load_at(dir: &Path) -> Manifest {
    manifest::load(&dir.join("patches/series.toml"), dir).unwrap()
}

/// Runs git with a clean configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
