//! `kmm send` and `kmm series reroll` end to end, with real clients:
//! generate -> check -> `kmm send --confirm` through the real
//! `git send-email` to a real SMTP server (aiosmtpd) on 127.0.0.1 ->
//! `git am` of what it received gives the generator's trees -> b4 accepts
//! the thread; then a v2 re-roll of a small change, with changelog,
//! range-diff and review trailers, sent in reply to v1.
//!
//! The base is a small tarball made of the real linux-source-6.1 files
//! the tools read (MAINTAINERS, get_maintainer.pl, checkpatch.pl and its
//! data, two KVM Makefiles), so that get_maintainer, checkpatch and git am
//! are the real ones without checking out a whole kernel tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::{kmm, stderr};

#[path = "../../../kmm-send/tests/it/sink.rs"]
#[allow(dead_code)]
mod sink;

use sink::{header, Sink};

const TARBALL: &str = "/usr/src/linux-source-6.1.tar.xz";

/// The real files the mini base carries.
const REAL: [&str; 8] = [
    "MAINTAINERS",
    ".mailmap",
    "scripts/checkpatch.pl",
    "scripts/spelling.txt",
    "scripts/const_structs.checkpatch",
    "scripts/get_maintainer.pl",
    "virt/kvm/Makefile.kvm",
    "arch/x86/kvm/Makefile",
];

/// The real files, extracted once into the target directory.
fn real_files() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kmm-send-linux-6.1-files");
        if dir.join(REAL[REAL.len() - 1]).exists() {
            return dir;
        }
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let st = Command::new("tar")
            .arg("-xJf")
            .arg(TARBALL)
            .arg("-C")
            .arg(tmp.path())
            .args(REAL.iter().map(|f| format!("linux-source-6.1/{f}")))
            .status()
            .unwrap();
        assert!(st.success());
        let _ = std::fs::rename(tmp.path().join("linux-source-6.1"), &dir);
        dir
    })
}

/// Why the test cannot run here, if it cannot.
pub(crate) fn unavailable() -> Option<String> {
    if !Path::new(TARBALL).exists() {
        return Some(format!(
            "{TARBALL} is absent (apt-get install linux-source-6.1)"
        ));
    }
    if !sink::runs("b4", &["--version"]) {
        return Some("b4 is not installed (pip install b4)".into());
    }
    sink::unavailable()
}

const MANIFEST: &str = r#"[series]
version = 1
subject = "KVM: Say what the KVM Makefiles build"
author = "A U Thor <author@example.org>"
date = "2026-11-25T09:00:00+00:00"
body = """
Two comments, to show kmm send at work.
"""

[mail]
get_maintainer = true
cc = ["Extra Reader <reader@example.org>"]
remove = ["linux-kernel@vger.kernel.org"]

[base]
package = "linux-source-6.1"
version = "test"
tarball = "TARBALL"
sha256 = "SHA"
commit = "COMMIT"
tree = "TREE"

[[commit]]
subject = "KVM: Say what Makefile.kvm builds"
body = """
Name the part of KVM that the file builds.
"""

[[commit.op]]
kind = "patch"
fragment = "patches/fragments/virt.diff"

[[commit]]
subject = "KVM: x86: Say what the x86 KVM Makefile builds"
body = """
Name the part of KVM that the file builds.
"""

[[commit.op]]
kind = "patch"
fragment = "patches/fragments/x86.diff"
"#;

const VIRT_DIFF: &str = "--- a/virt/kvm/Makefile.kvm
+++ b/virt/kvm/Makefile.kvm
@@ -1,4 +1,5 @@
 # SPDX-License-Identifier: GPL-2.0
 #
 # Makefile for Kernel-based Virtual Machine module
+# (the architecture-independent part)
 #
";

const X86_DIFF: &str = "--- a/arch/x86/kvm/Makefile
+++ b/arch/x86/kvm/Makefile
@@ -1,3 +1,4 @@
 # SPDX-License-Identifier: GPL-2.0
+# Makefile for KVM on x86
 
 ccflags-y += -I $(srctree)/arch/x86/kvm
";

/// A kvm-mm-like repository on a mini base of real files, pinned with
/// `kmm base --pin`; returns (dir, repo, cache).
pub(crate) fn send_repo() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("linux-source-6.1");
    for f in REAL {
        let to = src.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(real_files().join(f), &to).unwrap();
    }
    // What checkpatch.pl looks for at the top of a kernel tree.
    for f in [
        "COPYING",
        "CREDITS",
        "Kbuild",
        "Makefile",
        "README",
        "Documentation/index.rst",
        "include/Kbuild",
        "drivers/Makefile",
        "fs/Makefile",
        "init/Makefile",
        "ipc/Makefile",
        "kernel/Makefile",
        "lib/Makefile",
    ] {
        let to = src.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(&to, "# Placeholder of the kmm send test's mini base.\n").unwrap();
    }
    let tarball = d.path().join("mini.tar.xz");
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
    std::fs::write(repo.join("patches/fragments/virt.diff"), VIRT_DIFF).unwrap();
    std::fs::write(repo.join("patches/fragments/x86.diff"), X86_DIFF).unwrap();
    let manifest = MANIFEST.replace("TARBALL", &tarball.display().to_string());
    std::fs::write(repo.join("patches/series.toml"), &manifest).unwrap();
    let cache = d.path().join("cache");
    let out = kmm(&["base", "--pin"], &repo, &cache);
    assert!(out.status.success(), "{}", stderr(&out));
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
    (d, repo, cache)
}

/// kmm with a sender's git configuration in place of the user's.
fn kmm_cmd(args: &[&str], repo: &Path, cache: &Path, sender: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmm"));
    c.args(args)
        .arg("--repo")
        .arg(repo)
        .arg("--cache")
        .arg(cache)
        .env("GIT_CONFIG_GLOBAL", sender)
        .env("GIT_CONFIG_NOSYSTEM", "1");
    c
}

/// Runs kmm with a sender's git configuration in place of the user's.
fn kmm_as_sender(args: &[&str], repo: &Path, cache: &Path, sender: &Path) -> Output {
    kmm_cmd(args, repo, cache, sender).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// Runs git in `dir` with a clean configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_COMMITTER_NAME", "Ap Plier")
        .env("GIT_COMMITTER_EMAIL", "applier@example.org")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cache repository of the mini base.
fn cache_repo(cache: &Path) -> PathBuf {
    cache.join("linux-source-6.1-test.git")
}

/// `git am` of the received patch mails onto the base in a worktree of the
/// cache repository; asserts that every tree is the generator's
/// (`kmm/vN`), and returns the worktree.
fn am_received(cache: &Path, mails: &[Vec<u8>], version: u32, scratch: &Path) -> PathBuf {
    let git_dir = cache_repo(cache);
    let mbox = scratch.join(format!("received-v{version}.mbox"));
    std::fs::write(&mbox, kmm_send::mbox::from_messages(mails)).unwrap();
    let wt = scratch.join(format!("am-v{version}"));
    git(
        &git_dir,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            wt.to_str().unwrap(),
            "base",
        ],
    );
    git(
        &wt,
        &["am", "-q", "--patch-format=mboxrd", mbox.to_str().unwrap()],
    );
    let n = mails.len();
    for i in 0..n {
        let back = n - 1 - i;
        let ours = git(&wt, &["rev-parse", &format!("HEAD~{back}^{{tree}}")]);
        let gen = git(
            &git_dir,
            &["rev-parse", &format!("kmm/v{version}~{back}^{{tree}}")],
        );
        assert_eq!(ours, gen, "patch {} of v{version}", i + 1);
        let who = git(
            &wt,
            &["log", "-1", "--format=%an <%ae>", &format!("HEAD~{back}")],
        );
        assert_eq!(who.trim(), "A U Thor <author@example.org>");
    }
    wt
}

/// `b4 am` (offline) on a local mbox of the whole thread, run in a git
/// worktree at the base; returns its output and the .mbx it wrote.
fn b4_am(thread: &[Vec<u8>], cover_id: &str, wt: &Path, scratch: &Path) -> (String, String) {
    let mbox = scratch.join("thread.mbox");
    std::fs::write(&mbox, kmm_send::mbox::from_messages(thread)).unwrap();
    let out_dir = scratch.join("b4-out");
    let _ = std::fs::remove_dir_all(&out_dir);
    let home = scratch.join("b4-home");
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new("b4")
        .current_dir(wt)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args(["--offline-mode", "am", "--no-cover", "-m"])
        .arg(&mbox)
        .arg("-o")
        .arg(&out_dir)
        .arg(cover_id.trim_matches(|c| c == '<' || c == '>'))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "b4 am failed:\n{text}");
    let mbx: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "mbx"))
        .collect();
    assert_eq!(mbx.len(), 1, "{text}");
    (text, std::fs::read_to_string(&mbx[0]).unwrap())
}

fn assert_b4_complete(text: &str, patches: usize, base: &str) {
    assert!(
        text.contains(&format!("Total patches: {patches}")),
        "{text}"
    );
    for bad in ["missing", "incomplete", "not known", "ERROR"] {
        assert!(!text.contains(bad), "b4 says {bad:?}:\n{text}");
    }
    // b4 found the base-commit in the tree and bases the series on it.
    assert!(
        text.lines()
            .any(|l| l.trim().starts_with("git checkout -b ") && l.trim().ends_with(base)),
        "{text}"
    );
}

#[test]
fn generate_check_send_am_b4_and_reroll_with_real_clients() {
    if let Some(why) = unavailable() {
        eprintln!("skipping: {why}; ci/setup.sh installs it, so CI never skips");
        return;
    }
    let (d, repo, cache) = send_repo();
    let scratch = d.path();
    let sender = scratch.join("sender.gitconfig");
    std::fs::write(
        &sender,
        "[user]\n\tname = A U Thor\n\temail = author@example.org\n\
         [sendemail]\n\tsmtpDomain = localhost\n",
    )
    .unwrap();
    let server = Sink::start();
    let port = server.port.to_string();
    let smtp = [
        "-c",
        "sendemail.smtpServer=127.0.0.1",
        "-c",
        &format!("sendemail.smtpServerPort={port}"),
    ];
    let run = |args: &[&str]| kmm_as_sender(args, &repo, &cache, &sender);
    let send = |extra: &[&str]| {
        let mut a = vec!["send"];
        a.extend(smtp);
        a.extend(extra);
        run(&a)
    };

    // Generate and check: real git am and checkpatch on the mini base.
    ok(&run(&["series", "generate"]));
    ok(&run(&["series", "check"]));
    let v1_cover =
        std::fs::read_to_string(repo.join("patches/v1/0000-cover-letter.patch")).unwrap();
    let v1_p1 = std::fs::read_to_string(
        repo.join("patches/v1/0001-KVM-Say-what-Makefile.kvm-builds.patch"),
    )
    .unwrap();
    // get_maintainer: patch 1 (virt/kvm) goes to the KVM maintainer, patch
    // 2 (arch/x86/kvm) also to the x86 ones; the cover letter to all.
    assert!(
        v1_p1.contains("To: Paolo Bonzini <pbonzini@redhat.com>\nCc: kvm@vger.kernel.org,\n    Extra Reader <reader@example.org>\n\n"),
        "{v1_p1}"
    );
    assert!(
        v1_cover.contains("    Sean Christopherson <seanjc@google.com>,\n"),
        "{v1_cover}"
    );
    assert!(
        !v1_cover.contains("linux-kernel@vger.kernel.org"),
        "removed in [mail]"
    );
    let status = stdout(&run(&["series", "status"]));
    assert!(
        status.contains("   1    ")
            && status.contains("        To: Paolo Bonzini <pbonzini@redhat.com>\n"),
        "{status}"
    );
    assert!(status.contains("sent    v1: not sent"), "{status}");

    // A dry run shows everything and sends nothing.
    let out = send(&[]);
    ok(&out);
    assert!(
        stdout(&out).contains("Dry-OK. Log says:"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("dry run: 3 message(s) would be sent"));
    assert!(!repo.join("patches/sent").exists());

    // The real send.
    let out = send(&["--confirm"]);
    ok(&out);
    let got = server.wait_for(3);
    let record = std::fs::read_to_string(repo.join("patches/sent/v1.toml")).unwrap();
    let ids: Vec<String> = got
        .iter()
        .map(|m| header(m, "Message-ID").unwrap())
        .collect();
    for id in &ids {
        assert!(
            record.contains(&format!("message_id = \"{id}\"")),
            "{record}"
        );
    }
    assert!(record.contains("complete = true"), "{record}");
    assert!(header(&got[0], "Subject")
        .unwrap()
        .starts_with("[PATCH v1 0/2] KVM: Say what"));
    assert_eq!(header(&got[0], "In-Reply-To"), None);
    for m in &got[1..] {
        assert_eq!(
            header(m, "In-Reply-To").as_ref(),
            Some(&ids[0]),
            "the cover letter is the root"
        );
    }
    let rcpt = server.recipients(2);
    for a in [
        "pbonzini@redhat.com",
        "seanjc@google.com",
        "kvm@vger.kernel.org",
        "reader@example.org",
    ] {
        assert!(rcpt.iter().any(|r| r == a), "{a} not in {rcpt:?}");
    }
    // git am of what the server received: the generator's trees.
    let wt = am_received(&cache, &got[1..], 1, scratch);
    // b4 finds the whole series, with its base.
    let base = git(&cache_repo(&cache), &["rev-parse", "base"]);
    let (text, _) = b4_am(&got, &ids[0], &wt, scratch);
    assert_b4_complete(&text, 2, base.trim());

    // Sent once, never again.
    let out = send(&["--confirm"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("v1 was already sent"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&run(&["series", "status"])).contains("sent    v1: sent "));

    // Re-roll: v1 stays as it was sent.
    let v1_before =
        std::fs::read_to_string(repo.join("patches/v1/0000-cover-letter.patch")).unwrap();
    ok(&run(&["series", "reroll"]));
    let manifest = std::fs::read_to_string(repo.join("patches/series.toml")).unwrap();
    assert!(manifest.starts_with("[series]\nversion = 2\n"));
    // A re-roll must say what changed before it can be checked or sent.
    let out = run(&["series", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("changelog: v2 has no changelog"),
        "{}",
        stdout(&out)
    );
    let out = send(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not sending"), "{}", stderr(&out));

    // The small change, the changelog and the reviewer's trailer.
    std::fs::write(
        repo.join("patches/fragments/virt.diff"),
        VIRT_DIFF.replace("(the architecture-independent part)", "(its generic part)"),
    )
    .unwrap();
    let manifest = manifest
        .replacen(
            "body = \"\"\"\nTwo comments",
            "changelog.v2 = [\"Collect the review of patch 2.\"]\nbody = \"\"\"\nTwo comments",
            1,
        )
        .replacen(
            "subject = \"KVM: Say what Makefile.kvm builds\"\n",
            "subject = \"KVM: Say what Makefile.kvm builds\"\n\
             changelog.v2 = [\"Shorten the comment (Re Viewer).\"]\n",
            1,
        )
        .replacen(
            "subject = \"KVM: x86: Say what the x86 KVM Makefile builds\"\n",
            "subject = \"KVM: x86: Say what the x86 KVM Makefile builds\"\n\
             review = [\"Reviewed-by: Re Viewer <rv@example.org>\"]\n",
            1,
        );
    std::fs::write(repo.join("patches/series.toml"), &manifest).unwrap();
    ok(&run(&["series", "generate"]));
    ok(&run(&["series", "check"]));
    assert_eq!(
        std::fs::read_to_string(repo.join("patches/v1/0000-cover-letter.patch")).unwrap(),
        v1_before
    );
    let cover = std::fs::read_to_string(repo.join("patches/v2/0000-cover-letter.patch")).unwrap();
    let v1_id = ids[0].trim_matches(|c| c == '<' || c == '>');
    assert!(
        cover.contains(&format!(
            "Changes in v2:\n\
             - Collect the review of patch 2.\n\
             - Patch 1: Shorten the comment (Re Viewer).\n\
             - Link to v1: https://lore.kernel.org/r/{v1_id}\n"
        )),
        "{cover}"
    );
    assert!(cover.contains("\nRange-diff against v1:\n1:  "), "{cover}");
    assert!(
        cover.contains("    -+# (the architecture-independent part)\n    ++# (its generic part)\n"),
        "{cover}"
    );
    assert!(
        cover.contains("    +    Reviewed-by: Re Viewer <rv@example.org>\n"),
        "{cover}"
    );
    let p1 = std::fs::read_to_string(
        repo.join("patches/v2/0001-KVM-Say-what-Makefile.kvm-builds.patch"),
    )
    .unwrap();
    assert!(p1.contains("Subject: [PATCH v2 1/2]"), "{p1}");
    assert!(
        p1.contains("---\nChanges in v2:\n- Shorten the comment (Re Viewer).\n\n virt/kvm/Makefile.kvm | 1 +\n"),
        "{p1}"
    );

    // v2 goes out in reply to v1's cover letter.
    let out = send(&["--confirm", "--reply-to-previous"]);
    ok(&out);
    let all = server.wait_for(6);
    let v2 = &all[3..];
    let v2_ids: Vec<String> = v2
        .iter()
        .map(|m| header(m, "Message-ID").unwrap())
        .collect();
    assert_eq!(header(&v2[0], "In-Reply-To").as_ref(), Some(&ids[0]));
    for m in &v2[1..] {
        assert_eq!(header(m, "In-Reply-To").as_ref(), Some(&v2_ids[0]));
    }
    let record = std::fs::read_to_string(repo.join("patches/sent/v2.toml")).unwrap();
    assert!(
        record.contains(&format!("in_reply_to = \"{}\"", ids[0])),
        "{record}"
    );
    let wt = am_received(&cache, &v2[1..], 2, scratch);
    let msg = git(&wt, &["log", "-1", "--format=%B"]);
    assert!(
        msg.trim_end().ends_with(
            "Reviewed-by: Re Viewer <rv@example.org>\nSigned-off-by: A U Thor <author@example.org>"
        ),
        "{msg}"
    );
    let (text, mbx) = b4_am(v2, &v2_ids[0], &wt, scratch);
    assert_b4_complete(&text, 2, base.trim());
    // b4 keeps the trailer, on patch 2 only.
    assert_eq!(
        mbx.matches("Reviewed-by: Re Viewer <rv@example.org>")
            .count(),
        1,
        "{mbx}"
    );
    let p2_at = mbx.find("Subject: [PATCH v2 2/2]").unwrap();
    assert!(mbx[p2_at..].contains("Reviewed-by: Re Viewer"), "{mbx}");
}

#[test]
fn send_refuses_bad_requests_with_exit_2() {
    let (d, repo) = super::mini_repo();
    let cache = d.path().join("cache");
    // Import the base first: its progress line is not part of the errors.
    let out = kmm(&["base"], &repo, &cache);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let one_line = |args: &[&str], needle: &str| {
        let out = kmm(args, &repo, &cache);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let e = stderr(&out);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.starts_with("kmm: error: ") && e.contains(needle), "{e}");
    };
    one_line(&["send", "--version", "v3"], "series.toml is at v1");
    one_line(&["send", "--version", "three"], "is not a version");
    one_line(&["send", "-c", "novalue"], "write KEY=VALUE");
    one_line(&["send", "--reply-to-previous"], "v1 is the first version");
    one_line(
        &["send", "--reply-to-previous", "--in-reply-to", "<a@b>"],
        "cannot be used with",
    );
    // A stale (never generated) series is not sent: exit 1, findings.
    let out = kmm(&["send"], &repo, &cache);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("stale: "), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("kmm: not sending"),
        "{}",
        stderr(&out)
    );
    // A re-roll needs the current version generated first.
    one_line(&["series", "reroll"], "run `kmm series generate` first");
    assert!(!repo.join("patches/v2").exists());
    // The placeholder author cannot really send.
    let p = repo.join("patches/series.toml");
    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, s.replace("a@example.org", "a@kvm-mm.invalid")).unwrap();
    one_line(&["send", "--confirm"], "set [series] author");
}

/// A generated and checked v1 of the mini series, and a sender.
struct Ready {
    d: tempfile::TempDir,
    repo: PathBuf,
    cache: PathBuf,
    sender: PathBuf,
}

impl Ready {
    fn new() -> Ready {
        let (d, repo, cache) = send_repo();
        let sender = d.path().join("sender.gitconfig");
        std::fs::write(
            &sender,
            "[user]\n\tname = A U Thor\n\temail = author@example.org\n\
             [sendemail]\n\tsmtpDomain = localhost\n",
        )
        .unwrap();
        let r = Ready {
            d,
            repo,
            cache,
            sender,
        };
        ok(&r.run(&["series", "generate"]));
        ok(&r.run(&["series", "check"]));
        r
    }

    fn run(&self, args: &[&str]) -> Output {
        kmm_as_sender(args, &self.repo, &self.cache, &self.sender)
    }

    /// `kmm send --confirm` to `server`, with `extra` arguments.
    fn send_cmd(&self, server: &Sink, extra: &[&str]) -> Command {
        let port = format!("sendemail.smtpServerPort={}", server.port);
        let mut a = vec![
            "send",
            "--confirm",
            "-c",
            "sendemail.smtpServer=127.0.0.1",
            "-c",
            &port,
        ];
        a.extend(extra);
        let mut c = kmm_cmd(&a, &self.repo, &self.cache, &self.sender);
        // Scratch files of kmm and its leftovers, apart from other tests'.
        let tmp = self.d.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        c.env("TMPDIR", tmp);
        c
    }

    fn record(&self) -> Option<kmm_series::sent::SentRecord> {
        kmm_series::sent::read(&self.repo.join("patches/sent/v1.toml")).unwrap()
    }

    /// Nothing of kmm's scratch is left in its temporary directory.
    fn assert_no_scratch(&self) {
        let left: Vec<_> = std::fs::read_dir(self.d.path().join("tmp"))
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

/// The one `kmm: error:` line of a failed run (notes may precede it).
fn error_line(o: &Output) -> String {
    let e = stderr(o);
    let errors: Vec<&str> = e
        .lines()
        .filter(|l| l.starts_with("kmm: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{e}");
    errors[0].to_string()
}

/// The Message-IDs of received mails.
fn ids_of(mails: &[Vec<u8>]) -> Vec<String> {
    mails
        .iter()
        .map(|m| header(m, "Message-ID").unwrap())
        .collect()
}

/// The record says exactly what the servers received: these mails, in
/// order, sent; the rest pending.
fn assert_record_matches(r: &kmm_series::sent::SentRecord, received: &[String]) {
    use kmm_series::sent::State;
    let sent: Vec<&str> = r
        .messages
        .iter()
        .filter(|m| m.state == State::Sent)
        .map(|m| m.message_id.as_str())
        .collect();
    assert_eq!(
        sent,
        received.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(r.messages[sent.len()..]
        .iter()
        .all(|m| m.state == State::Pending));
    assert_eq!(r.complete, sent.len() == r.messages.len());
}

macro_rules! require_clients {
    () => {
        if let Some(why) = unavailable() {
            eprintln!("skipping: {why}; ci/setup.sh installs it, so CI never skips");
            return;
        }
    };
}

#[test]
fn a_send_cut_by_the_server_resumes_with_the_rest_and_never_twice() {
    require_clients!();
    let r = Ready::new();
    let any = Sink::start();

    // Options that would make the record lie are refused before anything.
    for (extra, needle) in [
        (&["--", "--dry-run"][..], "is the dry run"),
        (
            &["--", "--to=x@example.org"],
            "recipients come from series.toml",
        ),
        (&["-c", "sendemail.bcc=x@example.org"], "to whom"),
    ] {
        let out = r.send_cmd(&any, extra).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(error_line(&out).contains(needle), "{}", stderr(&out));
    }
    assert!(r.record().is_none());
    assert!(any.messages().is_empty());

    // Another kmm send of v1 is running: refused, nothing sent.
    {
        use nix::fcntl::{Flock, FlockArg};
        let lock = r.repo.join("patches/sent/.v1.lock");
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        let f = std::fs::File::create(&lock).unwrap();
        let _held = Flock::lock(f, FlockArg::LockExclusive).unwrap();
        let out = r.send_cmd(&any, &[]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            error_line(&out).contains("another `kmm send --confirm` of this version is running"),
            "{}",
            stderr(&out)
        );
    }
    assert!(r.record().is_none());
    assert!(any.messages().is_empty());

    // The server goes away after two mails.
    let cut = Sink::start_with(Some(2), 0.0);
    let out = r.send_cmd(&cut, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = error_line(&out);
    assert!(e.contains("on 0002-KVM-x86-Say-what"), "{e}");
    assert!(
        e.contains("2 of 3 message(s) of v1 sent, recorded in ")
            && e.contains("`kmm send --confirm` sends the other 1"),
        "{e}"
    );
    let first = cut.wait_for(2);
    let rec = r.record().unwrap();
    assert_record_matches(&rec, &ids_of(&first));
    assert!(stdout(&r.run(&["series", "status"])).contains("sent    v1: PARTLY sent "));
    // Not frozen: a re-roll of a half-sent version would lose the rest.
    r.assert_no_scratch();

    // The server is back: the rest goes out, in the same thread.
    let back = Sink::start();
    let out = r.send_cmd(&back, &[]).output().unwrap();
    ok(&out);
    assert!(
        stderr(&out).contains("kmm: resuming v1: 2 of 3 message(s) went out on "),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("sent 3 message(s) (1 now, the rest before)"));
    let rest = back.wait_for(1);
    let mut all = first.clone();
    all.extend(rest);
    let ids = ids_of(&all);
    assert_record_matches(&r.record().unwrap(), &ids);
    assert_eq!(header(&all[2], "In-Reply-To").as_ref(), Some(&ids[0]));
    // What the list got is the series, whole.
    am_received(&r.cache, &all[1..], 1, r.d.path());

    // Never twice.
    let out = r.send_cmd(&back, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(error_line(&out).contains("v1 was already sent"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(back.messages().len(), 1);
    r.assert_no_scratch();
}

#[test]
fn a_closed_stdout_stops_the_send_after_the_mail_in_flight() {
    require_clients!();
    use std::io::{BufRead as _, BufReader, Read as _};
    let r = Ready::new();
    let server = Sink::start();
    // `kmm send --confirm | head -3`
    let mut child = r
        .send_cmd(&server, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..3 {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
    }
    drop(out);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(141), "{err}");
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("kmm: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Whatever was in flight finished; nothing after it started.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let got = server.messages();
    assert!((1..3).contains(&got.len()), "{}", got.len());
    assert!(
        errors[0].contains(&format!(
            "standard output was closed: {} of 3 message(s) of v1 sent",
            got.len()
        )),
        "{err}"
    );
    assert_record_matches(&r.record().unwrap(), &ids_of(&got));
    r.assert_no_scratch();
    // And the rest follows.
    ok(&r.send_cmd(&server, &[]).output().unwrap());
    let all = server.wait_for(3);
    assert_record_matches(&r.record().unwrap(), &ids_of(&all));
}

#[test]
fn ctrl_c_finishes_the_mail_in_flight_and_sigkill_leaves_it_unknown() {
    require_clients!();
    use std::os::unix::process::CommandExt as _;
    let r = Ready::new();
    // Each mail takes a second at the server.
    let server = Sink::start_with(None, 1.0);
    // (1 s: long enough to signal kmm while a mail is out.)
    // Ctrl-C: SIGINT to the terminal's whole process group.
    let child = r
        .send_cmd(&server, &[])
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    server.wait_for_at_least(1);
    let pgid = child.id() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(-pgid), nix::sys::signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let e = error_line(&out);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let got = server.messages();
    assert!(
        e.contains(&format!(
            "interrupted by SIGINT: {} of 3 message(s) of v1 sent",
            got.len()
        )),
        "{e}"
    );
    assert_record_matches(&r.record().unwrap(), &ids_of(&got));
    r.assert_no_scratch();
    let sent_before = got.len();
    if sent_before == 3 {
        return;
    }

    // SIGKILL while a mail is out: kmm cannot know whether it went.
    let mut child = r
        .send_cmd(&server, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while r.record().is_none_or(|rec| rec.in_flight().is_none()) {
        assert!(t.elapsed().as_secs() < 60, "no mail went in flight");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Let its git send-email reach the server, most of the time.
    std::thread::sleep(std::time::Duration::from_millis(600));
    child.kill().unwrap();
    child.wait().unwrap();
    // An orphaned git send-email finishes its mail, if it had started.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let rec = r.record().unwrap();
    let unknown = rec.in_flight().unwrap().message_id.clone();
    let went = ids_of(&server.messages()).contains(&unknown);
    let out = r.send_cmd(&server, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        error_line(&out).contains("--in-flight sent"),
        "{}",
        stderr(&out)
    );
    // The user looks for it on the list and says what they found.
    let answer = if went { "sent" } else { "unsent" };
    ok(&r
        .send_cmd(&server, &["--in-flight", answer])
        .output()
        .unwrap());
    let all = server.wait_for(3);
    assert_record_matches(&r.record().unwrap(), &ids_of(&all));
    // A leftover of the killed run is gone after the next one.
    r.assert_no_scratch();
}
