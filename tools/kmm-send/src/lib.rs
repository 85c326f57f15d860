//! `kmm send`: mails `patches/vN` with the real `git send-email`, once, and
//! only after every check of `kmm series check` passed.
//!
//! - **Dry run by default.** Without `confirm`, `git send-email --dry-run`
//!   shows what would be sent (every header, every recipient) and nothing
//!   is recorded.
//! - **The user's own configuration.** SMTP server, identity, credentials,
//!   `sendemail.*` settings: all come from the user's git configuration
//!   (or `-c KEY=VALUE`), as for a `git send-email` run by hand. kmm only
//!   fixes what makes the run non-interactive and the thread right:
//!   [`FIXED_ARGS`].
//! - **Never stale, never twice.** The series must pass
//!   [`kmm_series::check::run`] first, and a version with a record in
//!   `patches/sent/` is refused.
//! - **One thread.** The cover letter is the thread root and every patch
//!   replies to it; a re-roll can reply to the previous version's cover
//!   letter ([`Reply::Previous`]).
//! - **Recorded.** After a real send the Message-IDs that
//!   `git send-email` logged are written to `patches/sent/vN.toml`
//!   ([`kmm_series::sent`]), also after a send that failed part-way.
//!
//! ```no_run
//! use std::path::Path;
//! let m = kmm_series::manifest::load(Path::new("patches/series.toml"), Path::new("."))?;
//! let base = kmm_series::base::provide(&m.base, &kmm_series::base::default_cache_dir())?;
//! let outcome = kmm_send::send(&m, &base, &kmm_send::Options::default(), &mut |l| println!("{l}"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod mbox;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kmm_series::base::Base;
use kmm_series::check::{self, CheckError, Finding};
use kmm_series::generate::{self, GenError};
use kmm_series::manifest::Manifest;
use kmm_series::sent::{self, SentError, SentMessage, SentRecord};

/// The `git send-email` options kmm always passes: no prompts (kmm's own
/// `--confirm` is the confirmation), no editor, the cover letter as the
/// thread root with every patch replying to it, and files taken as files.
pub const FIXED_ARGS: [&str; 6] = [
    "--confirm=never",
    "--no-annotate",
    "--thread",
    "--no-chain-reply-to",
    "--no-format-patch",
    "--8bit-encoding=UTF-8",
];

/// Where the cover letter goes in the thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reply {
    /// A new thread.
    #[default]
    None,
    /// In reply to this Message-ID.
    To(String),
    /// In reply to the previous version's cover letter, from its record.
    Previous,
}

/// What `kmm send` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The version to send; the manifest's (the current one) when `None`.
    pub version: Option<u32>,
    /// Really send (otherwise `git send-email --dry-run`).
    pub confirm: bool,
    /// Where the cover letter goes in the thread.
    pub reply: Reply,
    /// `KEY=VALUE` settings passed as `git -c KEY=VALUE send-email`.
    pub git_config: Vec<String>,
    /// Further `git send-email` options, after kmm's own.
    pub extra_args: Vec<String>,
}

/// One message as `git send-email` logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// `Subject:` as sent.
    pub subject: String,
    /// `Message-ID:` as sent, with the angle brackets.
    pub message_id: String,
    /// `In-Reply-To:`, if any.
    pub in_reply_to: Option<String>,
    /// `Date:` as sent.
    pub date: String,
    /// The envelope recipients (`RCPT TO:`); empty when sent through a
    /// sendmail command, which logs none.
    pub recipients: Vec<String>,
}

/// What [`send`] did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The checks found problems; nothing was sent.
    Refused(Vec<Finding>),
    /// `git send-email --dry-run` ran; nothing was sent or recorded.
    DryRun(Vec<Logged>),
    /// Everything was sent and recorded.
    Sent {
        /// The record written.
        record: PathBuf,
        /// The messages, the cover letter first.
        messages: Vec<Logged>,
    },
}

/// What can stop a send.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Only the current version can be checked, so only it is sent.
    #[error(
        "--version v{asked}: series.toml is at v{current}; only the current version can be \
         checked and sent"
    )]
    NotCurrent {
        /// The version asked for.
        asked: u32,
        /// The manifest's version.
        current: u32,
    },
    /// The version has a send record.
    #[error(
        "{}: v{version} was {} sent on {date}; a sent version is frozen: \
         `kmm series reroll` starts the next one",
        path.display(),
        if *complete { "already" } else { "partly" }
    )]
    AlreadySent {
        /// The record.
        path: PathBuf,
        /// The version.
        version: u32,
        /// When it was sent.
        date: String,
        /// Whether every message went out.
        complete: bool,
    },
    /// `Reply::Previous` without a sent previous version.
    #[error("--reply-to-previous: {why}; pass --in-reply-to <Message-ID> instead")]
    NoPrevious {
        /// Why there is no cover letter to reply to.
        why: String,
    },
    /// The cover letter has no To: and so nobody to send to.
    #[error(
        "{}: no To: header; list the recipients in [mail] of series.toml \
         (get_maintainer = true, to = [...]) and run `kmm series generate`",
        file.display()
    )]
    NoRecipients {
        /// The cover letter.
        file: PathBuf,
    },
    /// A real send with the placeholder author of series.toml.
    #[error(
        "the series author <{email}> cannot receive mail, and patches must be signed off by \
         their sender: set [series] author in series.toml to your own name and address \
         before a real send"
    )]
    Undeliverable {
        /// The author's address.
        email: String,
    },
    /// A `-c` setting without `=`.
    #[error("-c {0:?}: write KEY=VALUE, e.g. -c sendemail.smtpServer=smtp.example.org")]
    BadConfig(String),
    /// The checks could not run.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// Reading the patches failed.
    #[error(transparent)]
    Gen(#[from] GenError),
    /// A record could not be read or written.
    #[error(transparent)]
    Record(#[from] SentError),
    /// `git` could not be started.
    #[error("cannot run git send-email: {source}; install git and git-email")]
    Spawn {
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `git send-email` failed.
    #[error(
        "git send-email failed ({status}) after sending {sent} of {total} message(s): {detail}{}",
        match record {
            Some(p) => format!("; what was sent is recorded in {}", p.display()),
            None => String::new(),
        }
    )]
    Failed {
        /// Its exit status.
        status: String,
        /// Messages sent (or dry-sent) before it stopped.
        sent: usize,
        /// Messages to send.
        total: usize,
        /// Its last error line, with a hint.
        detail: String,
        /// The partial record written, if anything was really sent.
        record: Option<PathBuf>,
    },
}

/// The result of one `git send-email` run.
#[derive(Debug, Clone)]
pub struct Run {
    /// Whether it exited 0.
    pub success: bool,
    /// Its exit status, for messages.
    pub status: String,
    /// The messages it logged as (dry-)sent, in order.
    pub logged: Vec<Logged>,
    /// Its standard error.
    pub stderr: String,
}

/// Parses the `OK. Log says:` / `Dry-OK. Log says:` blocks that
/// `git send-email` prints for every message it (dry-)sends.
pub fn parse_log(stdout: &str) -> Vec<Logged> {
    let mut out = Vec::new();
    let mut lines = stdout.lines().peekable();
    while let Some(l) = lines.next() {
        if l != "OK. Log says:" && l != "Dry-OK. Log says:" {
            continue;
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut recipients = Vec::new();
        while let Some(&l) = lines.peek() {
            if l.starts_with("Result:") || l == "OK. Log says:" || l == "Dry-OK. Log says:" {
                break;
            }
            lines.next();
            if let Some(r) = l.strip_prefix("RCPT TO:") {
                recipients.push(r.trim_matches(|c| c == '<' || c == '>').to_string());
            } else if l.starts_with([' ', '\t']) {
                if let Some((_, v)) = headers.last_mut() {
                    v.push(' ');
                    v.push_str(l.trim());
                }
            } else if let Some((k, v)) = l.split_once(": ") {
                headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| {
            headers
                .iter()
                .find(|(hk, _)| hk == k)
                .map(|(_, v)| v.clone())
        };
        if let Some(message_id) = get("message-id") {
            out.push(Logged {
                subject: get("subject").unwrap_or_default(),
                message_id,
                in_reply_to: get("in-reply-to"),
                date: get("date").unwrap_or_default(),
                recipients,
            });
        }
    }
    out
}

/// Whether `kv` reads `KEY=VALUE` with a non-empty key.
fn is_setting(kv: &str) -> bool {
    kv.split_once('=').is_some_and(|(k, _)| !k.is_empty())
}

/// The `git` command line that sends `files` (see [`FIXED_ARGS`]).
pub fn command(
    cwd: &Path,
    files: &[PathBuf],
    confirm: bool,
    in_reply_to: Option<&str>,
    git_config: &[String],
    extra_args: &[String],
) -> Result<Command, SendError> {
    let mut c = Command::new("git");
    c.current_dir(cwd);
    for kv in git_config {
        if !is_setting(kv) {
            return Err(SendError::BadConfig(kv.clone()));
        }
        c.arg("-c").arg(kv);
    }
    c.arg("send-email").args(FIXED_ARGS);
    if !confirm {
        c.arg("--dry-run");
    }
    if let Some(id) = in_reply_to {
        c.arg(format!("--in-reply-to={id}"));
    }
    c.args(extra_args).args(files);
    Ok(c)
}

/// Runs `git send-email` (see [`command`]), passing every line it prints
/// to `on_line` as it comes.
pub fn send_email(
    mut cmd: Command,
    interactive: bool,
    on_line: &mut dyn FnMut(&str),
) -> Result<Run, SendError> {
    // A real send may need the user's terminal (SMTP password prompts go
    // through git's credential helpers); a dry run never does.
    cmd.stdin(if interactive {
        Stdio::inherit()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| SendError::Spawn { source })?;
    let stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let mut stdout = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            on_line(&line);
            stdout.push_str(&line);
            stdout.push('\n');
        }
    }
    let status = child.wait().map_err(|source| SendError::Spawn { source })?;
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Run {
        success: status.success(),
        status: status.to_string(),
        logged: parse_log(&stdout),
        stderr,
    })
}

fn failure_detail(stderr: &str) -> String {
    let last = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no message");
    if stderr.contains("is not a git command") {
        format!("{last}; install git-email (apt-get install git-email)")
    } else if stderr.contains("Can't locate") {
        format!(
            "{last}; install the perl modules git send-email needs \
             (apt-get install git-email libio-socket-ssl-perl libauthen-sasl-perl)"
        )
    } else {
        last.to_string()
    }
}

fn normalize_id(id: &str) -> String {
    format!(
        "<{}>",
        id.trim().trim_start_matches('<').trim_end_matches('>')
    )
}

/// Checks the series, then sends (or dry-sends) the current version's
/// patches with `git send-email` and records a real send.
///
/// `on_line` gets `git send-email`'s output as it runs.
pub fn send(
    m: &Manifest,
    base: &Base,
    opts: &Options,
    on_line: &mut dyn FnMut(&str),
) -> Result<Outcome, SendError> {
    let v = opts.version.unwrap_or(m.version);
    if v != m.version {
        return Err(SendError::NotCurrent {
            asked: v,
            current: m.version,
        });
    }
    let record_path = sent::path(m, v);
    if let Some(r) = sent::read(&record_path)? {
        return Err(SendError::AlreadySent {
            path: record_path,
            version: v,
            date: r.date,
            complete: r.complete,
        });
    }
    let in_reply_to = match &opts.reply {
        Reply::None => None,
        Reply::To(id) => Some(normalize_id(id)),
        Reply::Previous => {
            if v < 2 {
                return Err(SendError::NoPrevious {
                    why: format!("v{v} is the first version"),
                });
            }
            let path = sent::path(m, v - 1);
            let rec = sent::read(&path)?;
            match rec.as_ref().and_then(SentRecord::cover_id) {
                Some(id) => Some(id.to_string()),
                None => {
                    return Err(SendError::NoPrevious {
                        why: format!(
                            "v{} has no record of a sent cover letter ({})",
                            v - 1,
                            path.display()
                        ),
                    })
                }
            }
        }
    };
    if opts.confirm && m.author_email.to_ascii_lowercase().ends_with(".invalid") {
        return Err(SendError::Undeliverable {
            email: m.author_email.clone(),
        });
    }
    for kv in &opts.git_config {
        if !is_setting(kv) {
            return Err(SendError::BadConfig(kv.clone()));
        }
    }

    let report = check::run(m, base)?;
    if !report.findings.is_empty() {
        return Ok(Outcome::Refused(report.findings));
    }

    let dir = m.out_dir();
    let files = generate::read_dir(&dir)?;
    let cover = dir.join("0000-cover-letter.patch");
    let has_to = files
        .first()
        .and_then(|f| check::header_value(&f.text, "To"))
        .is_some_and(|t| !t.trim().is_empty());
    if !has_to {
        return Err(SendError::NoRecipients { file: cover });
    }
    let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(&f.name)).collect();
    let cmd = command(
        &m.root,
        &paths,
        opts.confirm,
        in_reply_to.as_deref(),
        &opts.git_config,
        &opts.extra_args,
    )?;
    let run = send_email(cmd, opts.confirm, on_line)?;
    let total = files.len();
    let sent_n = run.logged.len().min(total);
    if !opts.confirm {
        if !run.success {
            return Err(SendError::Failed {
                status: run.status,
                sent: sent_n,
                total,
                detail: failure_detail(&run.stderr),
                record: None,
            });
        }
        return Ok(Outcome::DryRun(run.logged));
    }
    let complete = run.success && run.logged.len() == total;
    let mut record = None;
    if !run.logged.is_empty() {
        let rec = SentRecord {
            version: v,
            complete,
            date: run.logged[0].date.clone(),
            in_reply_to: in_reply_to.clone(),
            messages: files
                .iter()
                .zip(&run.logged)
                .map(|(f, l)| SentMessage {
                    file: f.name.clone(),
                    subject: l.subject.clone(),
                    message_id: l.message_id.clone(),
                })
                .collect(),
        };
        sent::write(&record_path, &rec)?;
        record = Some(record_path.clone());
    }
    if !complete {
        let detail = if run.success {
            "could not read every Message-ID from its log (was --quiet given?)".to_string()
        } else {
            failure_detail(&run.stderr)
        };
        return Err(SendError::Failed {
            status: run.status,
            sent: sent_n,
            total,
            detail,
            record,
        });
    }
    Ok(Outcome::Sent {
        record: record_path,
        messages: run.logged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
/tmp/p/0000-cover-letter.patch
(mbox) Adding to: P <p@x.org> from line 'To: P <p@x.org>'
OK. Log says:
Server: 127.0.0.1
MAIL FROM:<sender@example.org>
RCPT TO:<p@x.org>
RCPT TO:<c@x.org>
From: Send Er <sender@example.org>
To: P <p@x.org>
Cc: X <x@example.org>,
\tc@x.org
Subject: [PATCH 0/2] Cover
 subject
Date: Wed, 25 Nov 2026 10:30:15 +0000
Message-ID: <20261125103017.1426-1-sender@example.org>
X-Mailer: git-send-email 2.47.3

Result: 250
Dry-OK. Log says:
Sendmail: /usr/sbin/sendmail -i p@x.org
From: Send Er <sender@example.org>
Subject: [PATCH 1/2] Add a
Date: Wed, 25 Nov 2026 10:30:16 +0000
Message-ID: <20261125103017.1426-2-sender@example.org>
In-Reply-To: <20261125103017.1426-1-sender@example.org>
References: <20261125103017.1426-1-sender@example.org>

Result: OK
";

    #[test]
    fn parses_the_log_of_each_message() {
        let l = parse_log(LOG);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].subject, "[PATCH 0/2] Cover subject");
        assert_eq!(
            l[0].message_id,
            "<20261125103017.1426-1-sender@example.org>"
        );
        assert_eq!(l[0].recipients, ["p@x.org", "c@x.org"]);
        assert_eq!(l[0].in_reply_to, None);
        assert_eq!(l[1].date, "Wed, 25 Nov 2026 10:30:16 +0000");
        assert_eq!(
            l[1].in_reply_to.as_deref(),
            Some("<20261125103017.1426-1-sender@example.org>")
        );
        assert!(l[1].recipients.is_empty());
    }

    #[test]
    fn command_line_is_fixed_and_dry_by_default() {
        let files = [PathBuf::from("/p/0000-cover-letter.patch")];
        let c = command(
            Path::new("/"),
            &files,
            false,
            Some("<a@b>"),
            &["sendemail.smtpServer=127.0.0.1".into()],
            &["--identity=work".into()],
        )
        .unwrap();
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[..3],
            ["-c", "sendemail.smtpServer=127.0.0.1", "send-email"]
        );
        assert!(args.contains(&"--dry-run".to_string()));
        assert!(args.contains(&"--in-reply-to=<a@b>".to_string()));
        assert_eq!(args.last().unwrap(), "/p/0000-cover-letter.patch");
        let c = command(Path::new("/"), &files, true, None, &[], &[]).unwrap();
        assert!(!c.get_args().any(|a| a == "--dry-run"));
        assert!(matches!(
            command(Path::new("/"), &files, true, None, &["novalue".into()], &[]),
            Err(SendError::BadConfig(_))
        ));
    }

    #[test]
    fn ids_get_angle_brackets() {
        assert_eq!(normalize_id("a@b"), "<a@b>");
        assert_eq!(normalize_id(" <a@b> "), "<a@b>");
    }
}
