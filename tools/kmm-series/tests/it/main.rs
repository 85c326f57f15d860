//! Integration tests of the series generator on fixture repositories made
//! by `tests/fixtures/make_base.sh`, compared with the real git.

#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)] // Integration tests: a failed unwrap is a failed assertion.
mod base_import;
mod errors;
mod format_patch;
mod real_series;

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
