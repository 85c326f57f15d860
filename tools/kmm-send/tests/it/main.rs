//! kmm-send against real clients: `git send-email` talking to a real SMTP
//! server (aiosmtpd) on 127.0.0.1, and `git am` of what it received.
//!
//! The tests skip, saying why, only where git-email or aiosmtpd is not
//! installed; ci/setup.sh installs both, so CI never skips.

#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)] // Integration tests: a failed unwrap is a failed assertion.

mod sink;

use std::path::{Path, PathBuf};
use std::process::Command;

use sink::{header, Sink};

/// Runs git with a clean configuration and returns its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "A U Thor")
        .env("GIT_AUTHOR_EMAIL", "author@example.org")
        .env("GIT_COMMITTER_NAME", "A U Thor")
        .env("GIT_COMMITTER_EMAIL", "author@example.org")
        .env("GIT_AUTHOR_DATE", "2026-11-25T09:00:00+00:00")
        .env("GIT_COMMITTER_DATE", "2026-11-25T09:00:00+00:00")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A repository with a base and two commits, and their patches with a
/// cover letter as `git format-patch` writes them.
struct Series {
    dir: tempfile::TempDir,
    files: Vec<PathBuf>,
    /// The trees of the two commits.
    trees: Vec<String>,
}

fn series() -> Series {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("repo");
    std::fs::create_dir(&r).unwrap();
    git(&r, &["init", "-q", "-b", "base"]);
    std::fs::write(r.join("a.c"), "int a;\n").unwrap();
    git(&r, &["add", "a.c"]);
    git(&r, &["commit", "-q", "-m", "Base"]);
    git(&r, &["checkout", "-q", "-b", "series"]);
    std::fs::write(r.join("a.c"), "int a;\nint b;\n").unwrap();
    git(
        &r,
        &[
            "commit",
            "-q",
            "-a",
            "-m",
            "KVM: Add b",
            "-m",
            "From here on b exists.\n\nSigned-off-by: A U Thor <author@example.org>",
        ],
    );
    std::fs::write(r.join("c.c"), "int c;\n").unwrap();
    git(&r, &["add", "c.c"]);
    git(
        &r,
        &[
            "commit",
            "-q",
            "-m",
            "KVM: Add c",
            "-m",
            "Because.\n\nReviewed-by: Re Viewer <rv@example.org>\n\
             Signed-off-by: A U Thor <author@example.org>",
        ],
    );
    git(
        &r,
        &[
            "config",
            "branch.series.description",
            "KVM: Add b and c\n\nTwo variables.",
        ],
    );
    let out = dir.path().join("out");
    git(
        &r,
        &[
            "format-patch",
            "-q",
            "--cover-letter",
            "--cover-from-description=subject",
            "--base=base",
            "--to=Maint Ainer <maint@example.org>",
            "--cc=list@example.org",
            "-o",
            out.to_str().unwrap(),
            "base..series",
        ],
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let trees = ["series~1", "series"]
        .iter()
        .map(|c| {
            git(&r, &["rev-parse", &format!("{c}^{{tree}}")])
                .trim()
                .to_string()
        })
        .collect();
    Series { dir, files, trees }
}

/// The git configuration of the (test) sender, instead of the user's.
fn sender_config(dir: &Path) -> PathBuf {
    let p = dir.join("gitconfig");
    std::fs::write(
        &p,
        "[user]\n\tname = A U Thor\n\temail = author@example.org\n\
         [sendemail]\n\tsmtpDomain = localhost\n",
    )
    .unwrap();
    p
}

fn send_command(s: &Series, port: u16, confirm: bool) -> Command {
    send_files(s, &s.files, port, confirm)
}

fn send_files(s: &Series, files: &[PathBuf], port: u16, confirm: bool) -> Command {
    let config = [
        "sendemail.smtpServer=127.0.0.1".to_string(),
        format!("sendemail.smtpServerPort={port}"),
    ];
    let mut c = kmm_send::command(s.dir.path(), files, confirm, &config, &[]).unwrap();
    c.env("GIT_CONFIG_GLOBAL", sender_config(s.dir.path()))
        .env("GIT_CONFIG_NOSYSTEM", "1");
    c
}

/// Collects what a send prints.
#[derive(Default)]
struct Lines(Vec<String>);

impl kmm_send::Watch for Lines {
    fn line(&mut self, line: &str) -> std::io::Result<()> {
        self.0.push(line.to_string());
        Ok(())
    }
    fn note(&mut self, _: &str) {}
    fn stop(&mut self) -> Option<kmm_send::Stop> {
        None
    }
}

macro_rules! require_clients {
    () => {
        if let Some(why) = sink::unavailable() {
            eprintln!("skipping: {why}; ci/setup.sh installs it, so CI never skips");
            return;
        }
    };
}

#[test]
fn git_send_email_delivers_and_git_am_rebuilds_the_trees() {
    require_clients!();
    let s = series();
    let server = Sink::start();
    let mut w = Lines::default();
    let run = kmm_send::send_email(send_command(&s, server.port, true), &mut w).unwrap();
    let lines = w.0;
    assert!(run.success, "{}", run.stderr);
    assert!(lines.iter().any(|l| l == "OK. Log says:"), "{lines:?}");
    let got = server.wait_for(3);
    assert_eq!(run.logged.len(), 3);
    // What send-email logged is what the server received.
    for (l, m) in run.logged.iter().zip(&got) {
        assert_eq!(
            header(m, "Message-ID").as_deref(),
            Some(l.message_id.as_str())
        );
    }
    assert!(run.logged[0]
        .subject
        .starts_with("[PATCH 0/2] KVM: Add b and c"));
    // The cover letter is the thread root.
    assert_eq!(run.logged[0].in_reply_to, None);
    for l in &run.logged[1..] {
        assert_eq!(
            l.in_reply_to.as_deref(),
            Some(run.logged[0].message_id.as_str())
        );
    }
    // To:/Cc: of the patch, and (git send-email's default) the people
    // named in its trailers.
    let rcpt = server.recipients(2);
    for a in ["maint@example.org", "list@example.org", "rv@example.org"] {
        assert!(rcpt.iter().any(|r| r == a), "{a} not in {rcpt:?}");
    }

    // git am of what the server received gives the same trees.
    let mbox = s.dir.path().join("received.mbox");
    std::fs::write(&mbox, kmm_send::mbox::from_messages(&got[1..])).unwrap();
    let r = s.dir.path().join("repo");
    git(&r, &["checkout", "-q", "-b", "applied", "base"]);
    git(
        &r,
        &["am", "-q", "--patch-format=mboxrd", mbox.to_str().unwrap()],
    );
    for (i, c) in ["applied~1", "applied"].iter().enumerate() {
        let tree = git(&r, &["rev-parse", &format!("{c}^{{tree}}")]);
        assert_eq!(tree.trim(), s.trees[i]);
    }
    let msg = git(&r, &["log", "-1", "--format=%an <%ae>%n%B", "applied"]);
    assert!(
        msg.starts_with("A U Thor <author@example.org>\nKVM: Add c\n"),
        "{msg}"
    );
    assert!(
        msg.contains("Reviewed-by: Re Viewer <rv@example.org>"),
        "{msg}"
    );
}

#[test]
fn a_dry_run_sends_nothing() {
    require_clients!();
    let s = series();
    let server = Sink::start();
    let run =
        kmm_send::send_email(send_command(&s, server.port, false), &mut Lines::default()).unwrap();
    assert!(run.success, "{}", run.stderr);
    assert_eq!(run.logged.len(), 3);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(server.messages().is_empty());
}

#[test]
fn a_refused_connection_fails_without_logging_a_send() {
    require_clients!();
    let s = series();
    // A port of 127.0.0.1 that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = kmm_send::send_email(send_command(&s, port, true), &mut Lines::default()).unwrap();
    assert!(!run.success);
    assert!(run.logged.is_empty());
    assert!(!run.stderr.trim().is_empty());
}

#[test]
fn one_mail_per_run_keeps_the_planned_ids_and_thread() {
    require_clients!();
    let s = series();
    let server = Sink::start();
    // What kmm send does: every mail gets its Message-ID and thread
    // headers first, then goes out alone.
    let ids = [
        "<planned-1@example.org>",
        "<planned-2@example.org>",
        "<planned-3@example.org>",
    ];
    let parent = "<v1-cover@example.org>".to_string();
    for (i, f) in s.files.iter().enumerate() {
        let mut thread = vec![parent.clone()];
        if i > 0 {
            thread.push(ids[0].to_string());
        }
        let text = std::fs::read_to_string(f).unwrap();
        let copy = s.dir.path().join(format!("copy-{i}.patch"));
        std::fs::write(&copy, kmm_send::with_headers(&text, ids[i], &thread)).unwrap();
        let run = kmm_send::send_email(
            send_files(&s, &[copy], server.port, true),
            &mut Lines::default(),
        )
        .unwrap();
        assert!(run.success, "{}", run.stderr);
        assert_eq!(run.logged.len(), 1);
        assert_eq!(run.logged[0].message_id, ids[i]);
        assert!(!run.logged[0].dry);
    }
    let got = server.wait_for(3);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(header(m, "Message-ID").as_deref(), Some(ids[i]));
        let (irt, refs) = if i == 0 {
            (parent.clone(), parent.clone())
        } else {
            (ids[0].to_string(), format!("{parent} {}", ids[0]))
        };
        assert_eq!(header(m, "In-Reply-To"), Some(irt));
        assert_eq!(
            header(m, "References").map(|r| r.split_whitespace().collect::<Vec<_>>().join(" ")),
            Some(refs)
        );
    }
}
