//! The tarball import against git's own idea of the same tree.

use std::process::Command;

use super::git;

fn make_tarball(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("linux-source-6.1");
    std::fs::create_dir_all(src.join("scripts")).unwrap();
    std::fs::create_dir_all(src.join("virt/kvm")).unwrap();
    std::fs::create_dir_all(src.join("empty/dir")).unwrap();
    std::fs::write(src.join("Makefile"), "VERSION = 6\n").unwrap();
    std::fs::write(src.join("virt/kvm/kvm_main.c"), "int x;\n").unwrap();
    std::fs::write(src.join("scripts/checkpatch.pl"), "#!/usr/bin/perl\n").unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(src.join("scripts/checkpatch.pl"))
        .status()
        .unwrap();
    std::os::unix::fs::symlink("../Makefile", src.join("virt/Makefile.link")).unwrap();
    std::fs::hard_link(src.join("Makefile"), src.join("Makefile.hard")).unwrap();
    let t = dir.join("src.tar.xz");
    let st = Command::new("tar")
        .current_dir(dir)
        .args(["-cJf"])
        .arg(&t)
        .arg("linux-source-6.1")
        .status()
        .unwrap();
    assert!(st.success());
    t
}

#[test]
fn import_matches_git_and_is_reproducible() {
    let d = tempfile::tempdir().unwrap();
    let t = make_tarball(d.path());
    let (c1, t1, stats) =
        kmm_series::base::import_into(&t, &d.path().join("a.git"), "fixture 1").unwrap();
    let (c2, t2, _) =
        kmm_series::base::import_into(&t, &d.path().join("b.git"), "fixture 1").unwrap();
    assert_eq!((&c1, &t1), (&c2, &t2));
    assert_eq!(stats.files, 3);
    // git's own tree of the same files.
    let src = d.path().join("linux-source-6.1");
    git(&src, &["init", "-q"]);
    git(&src, &["add", "-A"]);
    let theirs = git(&src, &["write-tree"]);
    assert_eq!(t1, theirs.trim());
}
