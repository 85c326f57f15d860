//! Re-rolls: v1 frozen, v2 with changelogs, review trailers and the
//! range-diff against v1 rebuilt from its mails.

use kmm_series::generate::{self, PatchFile};
use kmm_series::reroll::{self, RerollError};
use kmm_series::{check, sent};

use super::{fixture_copy, load_at, make_base};

fn write_v1(dir: &std::path::Path, fx: &super::Fixture) -> Vec<PatchFile> {
    let m = load_at(dir);
    let (_, files) = kmm_series::generate(&m, &fx.base).unwrap();
    generate::write_dir(&m.out_dir(), &files).unwrap();
    files
}

#[test]
fn reroll_freezes_v1_and_writes_v2() {
    let repo = fixture_copy(|s| s);
    let fx = make_base();
    let v1 = write_v1(repo.path(), &fx);
    let before = std::fs::read_to_string(repo.path().join("patches/series.toml")).unwrap();
    let m = load_at(repo.path());
    let r = reroll::reroll(&m, &fx.base).unwrap();
    assert_eq!((r.from, r.to, r.patches, r.sent), (1, 2, 3, false));
    // Only the version changed in series.toml; v1 is as it was.
    let after = std::fs::read_to_string(repo.path().join("patches/series.toml")).unwrap();
    assert_eq!(after, before.replacen("version = 1\n", "version = 2\n", 1));
    assert_eq!(
        generate::read_dir(&repo.path().join("patches/v1")).unwrap(),
        v1
    );
    // v2 is what the new manifest generates, and says it is a v2.
    let m2 = load_at(repo.path());
    let (_, files) = kmm_series::generate(&m2, &fx.base).unwrap();
    assert_eq!(generate::read_dir(&r.dir).unwrap(), files);
    let cover = &files[0].text;
    assert!(cover.contains("Subject: [RFC PATCH v2 0/3]"), "{cover}");
    assert!(cover.contains("Range-diff against v1:\n1:  "), "{cover}");
    // Nothing changed yet, so the range-diff pairs equal patches and the
    // check asks for a changelog.
    assert!(!cover.contains(" ! "), "{cover}");
    let f = check::changelog(&m2);
    assert_eq!(f.len(), 1);
    assert!(
        f[0].message.contains("v2 has no changelog"),
        "{}",
        f[0].message
    );
}

#[test]
fn reroll_refuses_a_stale_or_finished_version() {
    let repo = fixture_copy(|s| s);
    let fx = make_base();
    let m = load_at(repo.path());
    // Never generated.
    assert!(matches!(
        reroll::reroll(&m, &fx.base),
        Err(RerollError::Stale { .. })
    ));
    write_v1(repo.path(), &fx);
    // Edited after generation: v1 would not be what was generated.
    let p = repo.path().join("patches/series.toml");
    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, s.replace("Stop there.", "Stop.")).unwrap();
    let e = reroll::reroll(&load_at(repo.path()), &fx.base).unwrap_err();
    assert!(
        e.to_string().contains("run `kmm series generate` first"),
        "{e}"
    );
    std::fs::write(&p, &s).unwrap();
    std::fs::create_dir(repo.path().join("patches/v2")).unwrap();
    assert!(matches!(
        reroll::reroll(&load_at(repo.path()), &fx.base),
        Err(RerollError::Exists { .. })
    ));
    assert_eq!(std::fs::read_to_string(&p).unwrap(), s);
}

/// Bumps the version of the manifest at `dir` to 2 and applies `edit`.
fn to_v2(dir: &std::path::Path, edit: impl Fn(String) -> String) {
    let p = dir.join("patches/series.toml");
    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, edit(s.replacen("version = 1\n", "version = 2\n", 1))).unwrap();
}

#[test]
fn v1_is_rebuilt_from_its_mails_on_a_fresh_base() {
    let repo = fixture_copy(|s| s);
    let a = make_base();
    write_v1(repo.path(), &a);
    let v1_tip = a.base.repo.resolve("refs/heads/kmm/v1").unwrap();
    to_v2(repo.path(), |s| s.replace("Stop there.", "Stop."));
    let m = load_at(repo.path());
    // A repository that never saw v1 (a new machine, a fresh cache).
    let b = make_base();
    assert!(b.base.repo.resolve("refs/heads/kmm/v1").is_err());
    let on_b = kmm_series::generate(&m, &b.base).unwrap();
    assert_eq!(b.base.repo.resolve("refs/heads/kmm/v1").unwrap(), v1_tip);
    assert_eq!(kmm_series::generate(&m, &a.base).unwrap(), on_b);
    let cover = &on_b.1[0].text;
    assert!(cover.contains(" = 1:  "), "{cover}");
    assert!(cover.contains("3:  "), "{cover}");
    assert!(cover.contains(" ! 3:  "), "{cover}");
    assert!(cover.contains("-    Nothing stops the walk past range->end today. Stop there.\n"));
}

#[test]
fn a_tampered_frozen_version_is_an_error() {
    let repo = fixture_copy(|s| s);
    let fx = make_base();
    write_v1(repo.path(), &fx);
    to_v2(repo.path(), |s| s);
    let v1 = repo.path().join("patches/v1");
    let name = generate::read_dir(&v1).unwrap()[1].name.clone();
    let p = v1.join(&name);
    let t = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, t.replace("No functional change", "No change")).unwrap();
    let e = kmm_series::generate(&load_at(repo.path()), &fx.base)
        .unwrap_err()
        .to_string();
    assert!(e.contains("patches/v1: patch 1 rebuilds as commit"), "{e}");
    assert!(e.contains("restore it with git"), "{e}");
    std::fs::remove_dir_all(&v1).unwrap();
    let e = kmm_series::generate(&load_at(repo.path()), &fx.base)
        .unwrap_err()
        .to_string();
    assert!(e.contains("patches/v1: missing"), "{e}");
}

#[test]
fn changelogs_review_trailers_and_links_land_in_the_right_places() {
    let repo = fixture_copy(|s| s);
    let fx = make_base();
    write_v1(repo.path(), &fx);
    to_v2(repo.path(), |s| {
        s.replace(
            "signature = \"kmm\"\n",
            "signature = \"kmm\"\nchangelog.v2 = [\"Rebase onto nothing.\"]\n",
        )
        .replace(
            "trailers = [\"Suggested-by: Some One <some@example.org>\"]\n",
            "trailers = [\"Suggested-by: Some One <some@example.org>\"]\n\
             review = [\"Reviewed-by: Re Viewer <rv@example.org>\", \
             \"Tested-by: Tess Ter <tt@example.org>\"]\n\
             changelog.v2 = [\"Keep helper_one() static\\n(Re Viewer).\"]\n",
        )
    });
    // v1 was sent: the v2 cover letter links to it.
    let m = load_at(repo.path());
    let record = sent::SentRecord {
        version: 1,
        complete: true,
        date: "Wed, 25 Nov 2026 10:00:00 +0000".into(),
        in_reply_to: None,
        messages: vec![sent::SentMessage {
            file: "0000-cover-letter.patch".into(),
            subject: "[RFC PATCH v1 0/3] x".into(),
            message_id: "<v1-cover@example.org>".into(),
            state: sent::State::Sent,
            sha256: None,
        }],
    };
    sent::write(&sent::path(&m, 1), &record).unwrap();
    let (commits, files) = kmm_series::generate(&m, &fx.base).unwrap();
    let cover = &files[0].text;
    assert!(
        cover.contains(
            "Changes in v2:\n\
             - Rebase onto nothing.\n\
             - Patch 1: Keep helper_one() static\n  (Re Viewer).\n\
             - Link to v1: https://lore.kernel.org/r/v1-cover@example.org\n\n"
        ),
        "{cover}"
    );
    let p1 = &files[1].text;
    assert!(
        p1.contains(
            "Suggested-by: Some One <some@example.org>\n\
             Reviewed-by: Re Viewer <rv@example.org>\n\
             Tested-by: Tess Ter <tt@example.org>\n\
             Signed-off-by: A. U. Thor <author@example.org>\n\
             ---\n\
             Changes in v2:\n\
             - Keep helper_one() static\n  (Re Viewer).\n\n \
             .../path/that/goes/on/"
        ),
        "{p1}"
    );
    assert!(!files[2].text.contains("Reviewed-by"));
    assert!(check::changelog(&m).is_empty());
    // git am takes the trailers into the commits and ignores the
    // changelog under the `---`: the ids are the generator's.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for f in files.iter().skip(1) {
        let p = dir.path().join(&f.name);
        std::fs::write(&p, &f.text).unwrap();
        paths.push(p);
    }
    let wt = check::Worktree::add(fx.base.repo.git_dir(), &fx.base.commit).unwrap();
    let findings = check::git_am(&m, &wt, &paths, &commits).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
}
