//! Bad input: one clear error with the manifest's file:line.

use std::path::Path;

use kmm_series::base::{self, BaseError, BaseSpec};
use kmm_series::manifest;

use super::{copy_dir, fixtures, make_base};

/// Copies the fixture repo to a temporary directory, applies `edit` to its
/// series.toml and returns the directory.
fn edited(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    edited_file("patches/series.toml", edit)
}

/// Like [`edited`], for any file of the fixture repo.
fn edited_file(file: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("repo"), dir.path());
    let p = dir.path().join(file);
    let s = std::fs::read_to_string(&p).unwrap();
    let new = edit(s.clone());
    assert_ne!(new, s, "the edit changed nothing");
    std::fs::write(&p, new).unwrap();
    dir
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

fn load_err(dir: &Path) -> String {
    manifest::load(&dir.join("patches/series.toml"), dir)
        .unwrap_err()
        .to_string()
}

fn gen_err(dir: &Path) -> String {
    let m = manifest::load(&dir.join("patches/series.toml"), dir).unwrap();
    let fx = make_base();
    kmm_series::generate(&m, &fx.base).unwrap_err().to_string()
}

fn toml_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("patches/series.toml")).unwrap()
}

#[test]
fn unknown_source_file() {
    let d = edited(|s| s.replace("src/selftest.c", "src/nope.c"));
    let e = load_err(d.path());
    let line = line_of(&toml_of(d.path()), "src/nope.c");
    assert!(
        e.contains(&format!(
            "series.toml:{line}: unknown source file \"src/nope.c\""
        )),
        "{e}"
    );
}

#[test]
fn fragment_that_does_not_apply() {
    let d = edited_file("patches/fragments/long.diff", |s| {
        s.replace(" line 12\n", " line twelve\n")
    });
    let e = gen_err(d.path());
    let op_line = line_of(&toml_of(d.path()), "long.diff") - 2;
    assert_eq!(
        toml_of(d.path()).lines().nth(op_line - 1),
        Some("[[commit.op]]")
    );
    assert!(e.contains("long.diff:3: hunk does not apply"), "{e}");
    assert!(e.contains(&format!("series.toml:{op_line})")), "{e}");
}

#[test]
fn move_of_missing_symbol() {
    let d = edited(|s| {
        s.replace(
            "\"helper_one\", \"walker\"",
            "\"helper_one\", \"no_such_fn\"",
        )
    });
    let e = gen_err(d.path());
    // Operation errors point at the operation's [[commit.op]] header.
    let op_line = line_of(&toml_of(d.path()), "kind = \"move\"") - 1;
    assert!(
        e.contains(&format!(
            "series.toml:{op_line}: move from virt/kvm/main.c:"
        )),
        "{e}"
    );
    assert!(e.contains("no_such_fn"), "{e}");
}

#[test]
fn duplicate_subjects() {
    let d = edited(|s| {
        s.replace(
            "KVM: Stop the walk at the end of the range",
            "KVM: Move walker() and helper_one() into virt/kvm/mm.c",
        )
    });
    let e = load_err(d.path());
    let text = toml_of(d.path());
    let second = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("KVM: Move walker()"))
        .nth(1)
        .unwrap()
        .0
        + 1;
    assert!(
        e.contains(&format!("series.toml:{second}: duplicate subject")),
        "{e}"
    );
}

#[test]
fn malformed_toml() {
    let d = edited(|s| s.replace("version = 1\n", "version = 1\nrfc = \n"));
    let e = load_err(d.path());
    assert!(e.contains("series.toml:3: malformed TOML"), "{e}");
}

#[test]
fn bad_subject_is_located() {
    let d = edited(|s| s.replace("KVM: Stop the walk", "stop the walk"));
    let e = load_err(d.path());
    let line = line_of(&toml_of(d.path()), "stop the walk");
    assert!(e.contains(&format!("series.toml:{line}: subject")), "{e}");
}

fn spec(tarball: &Path, sha: &str) -> BaseSpec {
    BaseSpec {
        package: "linux-source-6.1".into(),
        version: "6.1.192-2".into(),
        tarball: tarball.to_path_buf(),
        sha256: sha.into(),
        commit: "0".repeat(40),
        tree: "0".repeat(40),
    }
}

#[test]
fn missing_base_package() {
    let cache = tempfile::tempdir().unwrap();
    let e = base::provide(
        &spec(Path::new("/nonexistent/linux-source-6.1.tar.xz"), "x"),
        cache.path(),
    )
    .unwrap_err();
    assert!(matches!(e, BaseError::Missing { .. }));
    assert!(
        e.to_string().contains("apt-get install linux-source-6.1"),
        "{e}"
    );
}

#[test]
fn wrong_tarball_hash() {
    let cache = tempfile::tempdir().unwrap();
    let t = cache.path().join("fake.tar.xz");
    std::fs::write(&t, b"not the tarball").unwrap();
    let e = base::provide(&spec(&t, "abc"), &cache.path().join("c")).unwrap_err();
    assert!(matches!(e, BaseError::WrongHash { .. }), "{e}");
    assert!(
        !cache.path().join("c").exists(),
        "nothing may be written on a bad hash"
    );
}

#[test]
fn mail_needs_get_maintainer_in_the_base() {
    let d = edited(|s| s.replace("[base]", "[mail]\ncc = [\"list@example.org\"]\n\n[base]"));
    let e = gen_err(d.path());
    let line = line_of(&toml_of(d.path()), "[mail]");
    assert!(
        e.contains(&format!(
            "series.toml:{line}: the base tree has no scripts/get_maintainer.pl"
        )),
        "{e}"
    );
}

#[test]
fn bad_addresses_are_located() {
    let d = edited(|s| {
        s.replace(
            "[base]",
            "[mail]\nget_maintainer = false\ncc = [\"Nobody <nowhere>\"]\n\n[base]",
        )
    });
    let e = load_err(d.path());
    let line = line_of(&toml_of(d.path()), "Nobody");
    assert!(
        e.contains(&format!(
            "series.toml:{line}: [mail] cc address \"Nobody <nowhere>\""
        )),
        "{e}"
    );
    // Per-commit addresses need a [mail] table.
    let d = edited(|s| {
        s.replace(
            "trailers = [\"Suggested-by",
            "cc = [\"x@example.org\"]\ntrailers = [\"Suggested-by",
        )
    });
    assert!(load_err(d.path()).contains("has no [mail]"));
}

#[test]
fn changelogs_must_name_a_reroll() {
    let d = edited(|s| {
        s.replace(
            "signature = \"kmm\"\n",
            "signature = \"kmm\"\nchangelog.v2 = [\"Too early.\"]\n",
        )
    });
    let e = load_err(d.path());
    let line = line_of(&toml_of(d.path()), "Too early");
    assert!(
        e.contains(&format!(
            "series.toml:{line}: changelog key \"v2\" must name a re-roll of this series, v2..=v1"
        )),
        "{e}"
    );
}

#[test]
fn review_trailers_are_checked() {
    let d = edited(|s| {
        s.replace(
            "trailers = [\"Suggested-by",
            "review = [\"Looks-good-to: me\"]\ntrailers = [\"Suggested-by",
        )
    });
    let e = load_err(d.path());
    let line = line_of(&toml_of(d.path()), "Looks-good-to");
    assert!(
        e.contains(&format!(
            "series.toml:{line}: review trailer \"Looks-good-to: me\""
        )),
        "{e}"
    );
}
