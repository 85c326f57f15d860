//! `kmm send`: mails `patches/vN` with the real `git send-email`, once,
//! and only after every check of `kmm series check` passed.
//!
//! - **Dry run by default.** Without `confirm`, `git send-email --dry-run`
//!   shows what would be sent (every header, every recipient, the planned
//!   Message-IDs) and nothing is recorded.
//! - **The user's own configuration.** SMTP server, identity, credentials,
//!   `sendemail.*` settings come from the user's git configuration (or
//!   `-c KEY=VALUE`), as for a `git send-email` run by hand. kmm fixes what
//!   makes the run non-interactive and the thread right ([`FIXED_ARGS`]),
//!   and refuses options and settings that change whether or to whom mail
//!   goes ([`check_args`]): the record must be the truth.
//! - **The record comes first.** Before the first mail, kmm gives every
//!   mail its Message-ID (git send-email keeps one it finds in the file)
//!   and writes `patches/sent/vN.toml` with every mail `pending`. Each mail
//!   then goes out alone, through its own `git send-email` run: `sending`
//!   is recorded before it, and `sent` after it only when that run exited
//!   0 (with `LC_ALL=C`, its log must show the planned Message-ID). No
//!   outcome is read from translated log lines.
//! - **Interrupted sends resume.** A send that stops (SMTP error, SIGINT
//!   or SIGTERM, stdout closed) finishes the mail in flight, records, and
//!   says how many went. `kmm send --confirm` then sends the rest with
//!   their planned Message-IDs, so they join the same thread, and says it
//!   is resuming; it refuses if a file changed since. A mail left
//!   `sending` by a kill that could not be caught (SIGKILL) is unknown:
//!   the user looks it up on the list and says `--in-flight sent|unsent`.
//!   A send that sent nothing leaves no record.
//! - **Never twice.** A version whose record is complete is refused.
//!
//! ```no_run
//! use std::path::Path;
//! let m = kmm_series::manifest::load(Path::new("patches/series.toml"), Path::new("."))?;
//! let base = kmm_series::base::provide(&m.base, &kmm_series::base::default_cache_dir())?;
//! let mut watch = kmm_send::Print;
//! let outcome = kmm_send::send(&m, &base, &kmm_send::Options::default(), &mut watch)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod mbox;

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use kmm_series::base::Base;
use kmm_series::check::{self, CheckError, Finding};
use kmm_series::generate::{self, GenError, PatchFile};
use kmm_series::manifest::Manifest;
use kmm_series::sent::{self, SentError, SentMessage, SentRecord, State};
use sha2::Digest as _;

/// The `git send-email` options kmm always passes: no prompts (kmm's own
/// `--confirm` is the confirmation), no editor, threading from the
/// headers kmm writes, and files taken as files.
pub const FIXED_ARGS: [&str; 6] = [
    "--confirm=never",
    "--no-annotate",
    "--thread",
    "--no-chain-reply-to",
    "--no-format-patch",
    "--8bit-encoding=UTF-8",
];

/// `git send-email` options accepted after `--`: they choose how mail is
/// delivered and who sends it, never whether or to whom. `true`: the
/// option takes a value (`--opt=V` or `--opt V`).
pub const ALLOWED_ARGS: [(&str, bool); 21] = [
    ("--identity", true),
    ("--from", true),
    ("--envelope-sender", true),
    ("--smtp-server", true),
    ("--smtp-server-port", true),
    ("--smtp-server-option", true),
    ("--smtp-user", true),
    ("--smtp-pass", true),
    ("--smtp-encryption", true),
    ("--smtp-ssl", false),
    ("--smtp-ssl-cert-path", true),
    ("--smtp-domain", true),
    ("--smtp-auth", true),
    ("--no-smtp-auth", false),
    ("--smtp-debug", true),
    ("--sendmail-cmd", true),
    ("--xmailer", false),
    ("--no-xmailer", false),
    ("--transfer-encoding", true),
    ("--validate", false),
    ("--no-validate", false),
];

/// `sendemail.*` settings refused with `-c`: they change whether or to
/// whom mail goes, or the threading kmm records. (Standing settings in
/// the user's own configuration apply, as for a send by hand.)
pub const REFUSED_SETTINGS: [&str; 14] = [
    "to",
    "cc",
    "bcc",
    "tocmd",
    "cccmd",
    "headercmd",
    "suppresscc",
    "suppressfrom",
    "signedoffbycc",
    "cccover",
    "tocover",
    "chainreplyto",
    "thread",
    "confirm",
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
    /// Further `git send-email` options, after kmm's own
    /// ([`ALLOWED_ARGS`]).
    pub extra_args: Vec<String>,
    /// What became of a mail whose outcome a previous, killed send could
    /// not see: `Some(true)` it was sent, `Some(false)` it was not.
    pub in_flight: Option<bool>,
}

/// Why a send stopped before its last mail.
#[derive(Debug)]
pub enum Stop {
    /// A signal came; the mail in flight was finished.
    Signal(nix::sys::signal::Signal),
    /// Standard output could not be written (a closed pipe, a full disk).
    Output(std::io::Error),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Signal(s) => write!(f, "interrupted by {s}"),
            Stop::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                write!(f, "standard output was closed")
            }
            Stop::Output(e) => write!(f, "cannot write standard output ({e})"),
        }
    }
}

/// What [`send`] reports as it goes, and how it learns to stop.
pub trait Watch {
    /// A line `git send-email` printed. An error (stdout closed or full)
    /// stops the send after the mail in flight.
    fn line(&mut self, line: &str) -> std::io::Result<()>;
    /// A step of kmm's own: resuming, sending mail i of n.
    fn note(&mut self, note: &str);
    /// Whether to stop before the next mail (a signal came).
    fn stop(&mut self) -> Option<Stop>;
    /// Mails start (`true`) or stopped (`false`) going out: from here a
    /// signal must let the mail in flight finish, and [`Watch::stop`]
    /// reports it.
    fn sending(&mut self, _on: bool) {}
}

/// A [`Watch`] that prints lines to stdout and notes to stderr and never
/// stops early.
#[derive(Debug, Default)]
pub struct Print;

impl Watch for Print {
    fn line(&mut self, line: &str) -> std::io::Result<()> {
        use std::io::Write as _;
        writeln!(std::io::stdout(), "{line}")
    }
    fn note(&mut self, note: &str) {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "kmm: {note}");
    }
    fn stop(&mut self) -> Option<Stop> {
        None
    }
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
    /// Logged by a dry run (`Dry-OK. Log says:`): nothing went out.
    pub dry: bool,
}

/// What [`send`] did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The checks found problems; nothing was sent.
    Refused(Vec<Finding>),
    /// `git send-email --dry-run` ran; nothing was sent or recorded.
    DryRun(Vec<Logged>),
    /// Every message is sent and recorded.
    Sent {
        /// The record.
        record: PathBuf,
        /// The messages of the version, the cover letter first.
        messages: Vec<SentMessage>,
        /// How many of them this run sent (fewer when it resumed).
        now: usize,
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
    /// The version was sent, all of it.
    #[error(
        "{}: v{version} was already sent on {date}; a sent version is frozen: \
         `kmm series reroll` starts the next one",
        path.display()
    )]
    AlreadySent {
        /// The record.
        path: PathBuf,
        /// The version.
        version: u32,
        /// When it was sent.
        date: String,
    },
    /// A killed send left a mail whose outcome is unknown.
    #[error(
        "{}: kmm was killed while sending {file}, so whether it went out is unknown; look for \
         it on the list ({}{}) and run `kmm send --confirm --in-flight sent` if it is there, \
         `--in-flight unsent` if not",
        path.display(),
        sent::ARCHIVE_URL,
        message_id.trim_matches(|c| c == '<' || c == '>')
    )]
    InFlight {
        /// The record.
        path: PathBuf,
        /// The mail.
        file: String,
        /// Its Message-ID.
        message_id: String,
    },
    /// Another `kmm send --confirm` of this version is running.
    #[error(
        "{}: another `kmm send --confirm` of this version is running; wait for it, then \
         `kmm series status` says what went out",
        lock.display()
    )]
    Busy {
        /// Its lock file.
        lock: PathBuf,
    },
    /// `--in-flight` without a mail in flight.
    #[error("--in-flight: {why}; drop the option")]
    NothingInFlight {
        /// Why it does not apply.
        why: String,
    },
    /// A partly sent version's file is not what was sent.
    #[error(
        "{}: v{version} was partly sent and {file} changed since; the rest must belong to \
         what went out: restore patches/v{version} (git checkout), or `kmm series reroll`",
        path.display()
    )]
    Changed {
        /// The record.
        path: PathBuf,
        /// The version.
        version: u32,
        /// The file that differs (or is missing or new).
        file: String,
    },
    /// Resuming with a different thread than planned.
    #[error(
        "{}: the cover letter was planned {planned}; resume without --in-reply-to and \
         --reply-to-previous",
        path.display()
    )]
    ReplyChanged {
        /// The record.
        path: PathBuf,
        /// What the record plans.
        planned: String,
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
    /// A `-c` setting or an option after `--` that kmm does not pass on.
    #[error("{arg:?}: {why}")]
    Refused {
        /// The argument.
        arg: String,
        /// Why, and what to do instead.
        why: String,
    },
    /// The checks could not run.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// Reading the patches failed.
    #[error(transparent)]
    Gen(#[from] GenError),
    /// A record could not be read or written.
    #[error(transparent)]
    Record(#[from] SentError),
    /// The per-mail copies could not be written.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What kmm was doing.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `git` could not be started.
    #[error("cannot run git send-email: {source}; install git and git-email")]
    Spawn {
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `git send-email --dry-run` failed.
    #[error("git send-email --dry-run failed ({status}): {detail}")]
    DryRunFailed {
        /// Its exit status.
        status: String,
        /// Its last error line, with a hint.
        detail: String,
    },
    /// The send stopped before its last mail; the record says which went.
    #[error(
        "{why}: {sent} of {total} message(s) of v{version} sent, recorded in {}; \
         `kmm send --confirm` sends the other {}",
        record.display(),
        total - sent
    )]
    Stopped {
        /// Why.
        why: StopWhy,
        /// The version.
        version: u32,
        /// Messages sent, by this run and earlier ones.
        sent: usize,
        /// Messages of the version.
        total: usize,
        /// The record.
        record: PathBuf,
    },
    /// The send stopped before any mail went out; no record is left.
    #[error("{why}: nothing was sent and nothing recorded")]
    NothingSent {
        /// Why.
        why: StopWhy,
    },
}

/// Why a real send stopped.
#[derive(Debug)]
pub enum StopWhy {
    /// `git send-email` failed on one mail (which was then not sent).
    Failed {
        /// The mail.
        file: String,
        /// Its exit status.
        status: String,
        /// Its last error line, with a hint.
        detail: String,
    },
    /// A signal or a closed stdout; the mail in flight was finished.
    Stop(Stop),
    /// git send-email sent a mail under another Message-ID than planned
    /// (recorded as sent, under the ID it used).
    OtherId {
        /// The mail.
        file: String,
        /// The planned ID.
        planned: String,
        /// The ID in its log.
        logged: String,
    },
}

impl std::fmt::Display for StopWhy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopWhy::Failed {
                file,
                status,
                detail,
            } => write!(f, "git send-email failed ({status}) on {file}: {detail}"),
            StopWhy::Stop(s) => write!(f, "{s}"),
            StopWhy::OtherId {
                file,
                planned,
                logged,
            } => write!(
                f,
                "git send-email sent {file} as {logged}, not as the planned {planned} \
                 (a sendemail hook or an old git?); stopped so the thread stays whole"
            ),
        }
    }
}

/// The result of one `git send-email` run.
#[derive(Debug)]
pub struct Run {
    /// Whether it exited 0.
    pub success: bool,
    /// Its exit status, for messages.
    pub status: String,
    /// The messages it logged as (dry-)sent, in order.
    pub logged: Vec<Logged>,
    /// Its standard error.
    pub stderr: String,
    /// The error of the first line [`Watch::line`] could not show.
    pub output_error: Option<std::io::Error>,
}

/// Parses the `OK. Log says:` / `Dry-OK. Log says:` blocks that
/// `git send-email` prints for every message it (dry-)sends (untranslated:
/// kmm runs it with `LC_ALL=C`).
pub fn parse_log(stdout: &str) -> Vec<Logged> {
    let is_start = |l: &str| l == "OK. Log says:" || l == "Dry-OK. Log says:";
    let mut out = Vec::new();
    let mut lines = stdout.lines().peekable();
    while let Some(l) = lines.next() {
        if !is_start(l) {
            continue;
        }
        let dry = l.starts_with("Dry-");
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut recipients = Vec::new();
        while let Some(&l) = lines.peek() {
            if l.starts_with("Result:") || is_start(l) {
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
                dry,
            });
        }
    }
    out
}

/// Checks the `-c` settings and the options after `--`: only those that
/// choose how mail is delivered pass ([`ALLOWED_ARGS`],
/// [`REFUSED_SETTINGS`]).
pub fn check_args(git_config: &[String], extra_args: &[String]) -> Result<(), SendError> {
    for kv in git_config {
        let Some((key, _)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(SendError::BadConfig(kv.clone()));
        };
        let key = key.to_ascii_lowercase();
        let last = key.rsplit('.').next().unwrap_or("");
        if key.starts_with("sendemail.") && REFUSED_SETTINGS.contains(&last) {
            return Err(SendError::Refused {
                arg: kv.clone(),
                why: "it changes to whom or whether mail goes, which kmm records; set \
                      recipients in [mail] of series.toml and run `kmm series generate`"
                    .into(),
            });
        }
    }
    let mut args = extra_args.iter();
    while let Some(a) = args.next() {
        let name = a.split_once('=').map_or(a.as_str(), |(n, _)| n);
        match ALLOWED_ARGS.iter().find(|(n, _)| *n == name) {
            Some((_, takes_value)) => {
                if *takes_value && !a.contains('=') && args.next().is_none() {
                    return Err(SendError::Refused {
                        arg: a.clone(),
                        why: "needs a value".into(),
                    });
                }
            }
            None if name == "--dry-run" => {
                return Err(SendError::Refused {
                    arg: a.clone(),
                    why: "kmm send without --confirm is the dry run, and records nothing".into(),
                })
            }
            None => {
                return Err(SendError::Refused {
                    arg: a.clone(),
                    why: format!(
                        "not passed to git send-email: only options that choose how mail is \
                         delivered are ({}); recipients come from series.toml",
                        ALLOWED_ARGS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                })
            }
        }
    }
    Ok(())
}

/// The `git` command line that sends `files`, each with the Message-ID and
/// threading headers kmm wrote into it (see [`FIXED_ARGS`]). It runs with
/// `LC_ALL=C`, no terminal prompts, no stdin, and in a process group of
/// its own, so a Ctrl-C meant for kmm does not cut a mail in half.
pub fn command(
    cwd: &Path,
    files: &[PathBuf],
    confirm: bool,
    git_config: &[String],
    extra_args: &[String],
) -> Result<Command, SendError> {
    check_args(git_config, extra_args)?;
    let mut c = Command::new("git");
    c.current_dir(cwd);
    for kv in git_config {
        c.arg("-c").arg(kv);
    }
    c.arg("send-email").args(FIXED_ARGS);
    if !confirm {
        c.arg("--dry-run");
    }
    c.args(extra_args).args(files);
    c.env("LC_ALL", "C")
        .env("LANGUAGE", "C")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .process_group(0);
    Ok(c)
}

/// Runs `git send-email` (see [`command`]), passing every line it prints
/// to `watch` as it comes.
pub fn send_email(mut cmd: Command, watch: &mut dyn Watch) -> Result<Run, SendError> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
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
    let mut output_error = None;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            // Once stdout is gone, keep reading: the mail must finish.
            if output_error.is_none() {
                if let Err(e) = watch.line(&line) {
                    output_error = Some(e);
                }
            }
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
        output_error,
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
    } else if stderr.contains("terminal prompts disabled") {
        format!(
            "{last}; kmm send never prompts: give git the SMTP password through a credential \
             helper or sendemail.smtpPass"
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

fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `secs` since the epoch as an RFC 2822 date in UTC and as the compact
/// stamp git send-email puts in Message-IDs.
fn dates(secs: u64) -> (String, String) {
    let secs = i64::try_from(secs).unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil(days);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let wd = WD[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let mon = MON[usize::try_from(mo - 1).unwrap_or(0)];
    (
        format!("{wd}, {d:02} {mon} {y} {h:02}:{mi:02}:{s:02} +0000"),
        format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}"),
    )
}

/// The Message-IDs of a new send, git send-email's shape:
/// `<stamp.pid-N-sender>`.
fn plan_ids(n: usize, stamp: &str, sender: &str) -> Vec<String> {
    (1..=n)
        .map(|i| format!("<{stamp}.{}-{i}-{sender}>", std::process::id()))
        .collect()
}

/// `text` (a patch file as `git format-patch` writes it) with
/// `Message-ID`, `In-Reply-To` and `References` added at the end of its
/// header.
pub fn with_headers(text: &str, message_id: &str, in_reply_to: &[String]) -> String {
    let end = text.find("\n\n").map_or(text.len(), |i| i + 1);
    let mut h = format!("Message-ID: {message_id}\n");
    if let Some(parent) = in_reply_to.last() {
        h.push_str(&format!(
            "In-Reply-To: {parent}\nReferences: {}\n",
            in_reply_to.join(" ")
        ));
    }
    format!("{}{h}{}", &text[..end], &text[end..])
}

/// The thread a message replies into: the cover letter's parent (if any)
/// and, for a patch, the cover letter.
fn thread_of(i: usize, rec: &SentRecord) -> Vec<String> {
    let mut refs: Vec<String> = rec.in_reply_to.iter().cloned().collect();
    if i > 0 {
        if let Some(c) = rec.messages.first() {
            refs.push(c.message_id.clone());
        }
    }
    refs
}

/// Takes `patches/sent/.vN.lock` for the time of a real send; another
/// `kmm send --confirm` of the same version is refused while it is held.
fn lock_version(record: &Path) -> Result<kmm_scratch::FileLock, SendError> {
    let name = record.file_name().unwrap_or_default().to_string_lossy();
    let path = record.with_file_name(format!(".{}.lock", name.trim_end_matches(".toml")));
    match kmm_scratch::try_lock_file(&path) {
        Ok(Some(l)) => Ok(l),
        Ok(None) => Err(SendError::Busy { lock: path }),
        Err(source) => Err(SendError::Io {
            path,
            what: "lock the send record",
            source,
        }),
    }
}

/// The cover letter's parent asked for by `opts.reply`.
fn wanted_parent(m: &Manifest, v: u32, opts: &Options) -> Result<Option<String>, SendError> {
    Ok(match &opts.reply {
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
    })
}

/// The record to send from: a partly sent version's (checked against the
/// files and the options), or a new plan.
fn plan(
    v: u32,
    opts: &Options,
    wanted: Option<String>,
    sender: &str,
    files: &[PatchFile],
    existing: Option<SentRecord>,
    path: &Path,
) -> Result<SentRecord, SendError> {
    if let Some(mut rec) = existing {
        match (rec.in_flight().is_some(), opts.in_flight) {
            (true, None) => {
                let f = rec
                    .in_flight()
                    .map(|f| (f.file.clone(), f.message_id.clone()));
                let (file, message_id) = f.unwrap_or_default();
                return Err(SendError::InFlight {
                    path: path.to_path_buf(),
                    file,
                    message_id,
                });
            }
            (true, Some(went)) => {
                for msg in &mut rec.messages {
                    if msg.state == State::Sending {
                        msg.state = if went { State::Sent } else { State::Pending };
                    }
                }
            }
            (false, Some(_)) => {
                return Err(SendError::NothingInFlight {
                    why: format!("{} has no mail of unknown outcome", path.display()),
                })
            }
            (false, None) => {}
        }
        if rec.sent() > 0 {
            let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
            let planned: Vec<&str> = rec.messages.iter().map(|x| x.file.as_str()).collect();
            for (f, msg) in files.iter().zip(&rec.messages) {
                if f.name != msg.file || msg.sha256.as_deref() != Some(&sha256_hex(&f.text)) {
                    return Err(SendError::Changed {
                        path: path.to_path_buf(),
                        version: v,
                        file: f.name.clone(),
                    });
                }
            }
            if names.len() != planned.len() {
                let odd = names
                    .iter()
                    .chain(&planned)
                    .find(|n| !names.contains(n) || !planned.contains(n))
                    .map_or_else(String::new, |n| (*n).to_string());
                return Err(SendError::Changed {
                    path: path.to_path_buf(),
                    version: v,
                    file: odd,
                });
            }
            if opts.reply != Reply::None && wanted != rec.in_reply_to {
                return Err(SendError::ReplyChanged {
                    path: path.to_path_buf(),
                    planned: match &rec.in_reply_to {
                        Some(id) => format!("in reply to {id}"),
                        None => "as a new thread".into(),
                    },
                });
            }
            return Ok(rec);
        }
        // Nothing went out: plan afresh, from today's files.
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (date, stamp) = dates(now);
    let ids = plan_ids(files.len(), &stamp, sender);
    Ok(SentRecord {
        version: v,
        complete: false,
        date,
        in_reply_to: wanted,
        messages: files
            .iter()
            .zip(ids)
            .map(|(f, message_id)| SentMessage {
                file: f.name.clone(),
                subject: check::header_value(&f.text, "Subject").unwrap_or_default(),
                message_id,
                state: State::Pending,
                sha256: Some(sha256_hex(&f.text)),
            })
            .collect(),
    })
}

/// Checks the series, then sends (or dry-sends) the current version's
/// patches with `git send-email`, one mail per run, recording each.
pub fn send(
    m: &Manifest,
    base: &Base,
    opts: &Options,
    watch: &mut dyn Watch,
) -> Result<Outcome, SendError> {
    let v = opts.version.unwrap_or(m.version);
    if v != m.version {
        return Err(SendError::NotCurrent {
            asked: v,
            current: m.version,
        });
    }
    check_args(&opts.git_config, &opts.extra_args)?;
    let record_path = sent::path(m, v);
    // One send of a version at a time: a second one would read the first
    // one's record half-way and send its pending mails too.
    let _lock = if opts.confirm {
        Some(lock_version(&record_path)?)
    } else {
        None
    };
    let existing = sent::read(&record_path)?;
    if let Some(r) = &existing {
        if r.complete {
            return Err(SendError::AlreadySent {
                path: record_path,
                version: v,
                date: r.date.clone(),
            });
        }
    }
    if opts.in_flight.is_some() && existing.is_none() {
        return Err(SendError::NothingInFlight {
            why: format!("v{v} has no send record"),
        });
    }
    if opts.confirm && m.author_email.to_ascii_lowercase().ends_with(".invalid") {
        return Err(SendError::Undeliverable {
            email: m.author_email.clone(),
        });
    }

    // A bad request is refused before the checks take their time.
    let wanted = wanted_parent(m, v, opts)?;
    let report = check::run(m, base)?;
    if !report.findings.is_empty() {
        return Ok(Outcome::Refused(report.findings));
    }
    let dir = m.out_dir();
    let files = generate::read_dir(&dir)?;
    let has_to = files
        .first()
        .and_then(|f| check::header_value(&f.text, "To"))
        .is_some_and(|t| !t.trim().is_empty());
    if !has_to {
        return Err(SendError::NoRecipients {
            file: dir.join("0000-cover-letter.patch"),
        });
    }
    let mut rec = plan(
        v,
        opts,
        wanted,
        &m.author_email,
        &files,
        existing,
        &record_path,
    )?;

    // The mails as they go out: with their Message-ID and thread headers.
    let scratch = kmm_scratch::Scratch::new("send").map_err(|source| SendError::Io {
        path: std::env::temp_dir(),
        what: "create a scratch directory",
        source,
    })?;
    let mut copies = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let p = scratch.path().join(&f.name);
        let text = with_headers(&f.text, &rec.messages[i].message_id, &thread_of(i, &rec));
        std::fs::write(&p, text).map_err(|source| SendError::Io {
            path: p.clone(),
            what: "write",
            source,
        })?;
        copies.push(p);
    }

    if !opts.confirm {
        let cmd = command(&m.root, &copies, false, &opts.git_config, &opts.extra_args)?;
        let run = send_email(cmd, watch)?;
        if !run.success {
            return Err(SendError::DryRunFailed {
                status: run.status,
                detail: failure_detail(&run.stderr),
            });
        }
        return Ok(Outcome::DryRun(run.logged));
    }

    let total = files.len();
    let before = rec.sent();
    if before > 0 {
        watch.note(&format!(
            "resuming v{v}: {before} of {total} message(s) went out on {}; sending the other {} \
             with their planned Message-IDs",
            rec.date,
            total - before
        ));
    }
    // From the first write of the record, a signal waits for a safe point.
    watch.sending(true);
    let r = sent::write(&record_path, &rec)
        .map_err(SendError::from)
        .and_then(|()| send_each(&mut rec, &record_path, &files, &copies, opts, m, watch));
    watch.sending(false);
    let now = r?;
    Ok(Outcome::Sent {
        record: record_path,
        now,
        messages: rec.messages,
    })
}

/// Sends every mail of `rec` that is not sent yet, one `git send-email`
/// run each, recording before and after; returns how many it sent.
fn send_each(
    rec: &mut SentRecord,
    record_path: &Path,
    files: &[PatchFile],
    copies: &[PathBuf],
    opts: &Options,
    m: &Manifest,
    watch: &mut dyn Watch,
) -> Result<usize, SendError> {
    let v = rec.version;
    let total = files.len();
    let before = rec.sent();
    let stopped = |rec: &SentRecord, why: StopWhy| {
        if rec.sent() == 0 && rec.in_flight().is_none() {
            // Nothing went out: no record, so nothing is frozen.
            match std::fs::remove_file(record_path) {
                Ok(()) => SendError::NothingSent { why },
                Err(source) => SendError::Record(SentError::Io {
                    path: record_path.to_path_buf(),
                    what: "remove the record of a send that sent nothing",
                    source,
                }),
            }
        } else {
            SendError::Stopped {
                why,
                version: v,
                sent: rec.sent(),
                total,
                record: record_path.to_path_buf(),
            }
        }
    };
    for i in 0..total {
        if rec.messages[i].state == State::Sent {
            continue;
        }
        if let Some(s) = watch.stop() {
            return Err(stopped(rec, StopWhy::Stop(s)));
        }
        watch.note(&format!("sending {}/{total}: {}", i + 1, files[i].name));
        rec.messages[i].state = State::Sending;
        sent::write(record_path, rec)?;
        let cmd = command(
            &m.root,
            &copies[i..=i],
            true,
            &opts.git_config,
            &opts.extra_args,
        )?;
        let run = send_email(cmd, watch)?;
        if !run.success {
            rec.messages[i].state = State::Pending;
            sent::write(record_path, rec)?;
            let why = StopWhy::Failed {
                file: files[i].name.clone(),
                status: run.status,
                detail: failure_detail(&run.stderr),
            };
            return Err(stopped(rec, why));
        }
        rec.messages[i].state = State::Sent;
        let logged = run.logged.iter().find(|l| !l.dry);
        let other = logged.filter(|l| l.message_id != rec.messages[i].message_id);
        if let Some(l) = other {
            let planned = std::mem::replace(&mut rec.messages[i].message_id, l.message_id.clone());
            sent::write(record_path, rec)?;
            let why = StopWhy::OtherId {
                file: files[i].name.clone(),
                planned,
                logged: l.message_id.clone(),
            };
            return Err(stopped(rec, why));
        }
        rec.complete = rec.sent() == total;
        sent::write(record_path, rec)?;
        if let Some(e) = run.output_error {
            if !rec.complete {
                return Err(stopped(rec, StopWhy::Stop(Stop::Output(e))));
            }
        }
    }
    // Also when nothing was left to send (`--in-flight sent` on the last).
    rec.complete = rec.sent() == total;
    sent::write(record_path, rec)?;
    Ok(rec.sent() - before)
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
        assert!(!l[0].dry && l[1].dry);
    }

    #[test]
    fn command_line_is_fixed_and_dry_by_default() {
        let files = [PathBuf::from("/p/0000-cover-letter.patch")];
        let c = command(
            Path::new("/"),
            &files,
            false,
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
        assert_eq!(args.last().unwrap(), "/p/0000-cover-letter.patch");
        let env: Vec<_> = c.get_envs().collect();
        assert!(env.contains(&(
            std::ffi::OsStr::new("LC_ALL"),
            Some(std::ffi::OsStr::new("C"))
        )));
        let c = command(Path::new("/"), &files, true, &[], &[]).unwrap();
        assert!(!c.get_args().any(|a| a == "--dry-run"));
        assert!(matches!(
            command(Path::new("/"), &files, true, &["novalue".into()], &[]),
            Err(SendError::BadConfig(_))
        ));
    }

    #[test]
    fn only_delivery_options_pass() {
        let ok = |c: &[&str], a: &[&str]| {
            let c: Vec<String> = c.iter().map(|s| s.to_string()).collect();
            let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            check_args(&c, &a)
        };
        assert!(ok(
            &["sendemail.smtpServer=x", "user.email=a@b"],
            &[
                "--smtp-server",
                "x",
                "--smtp-server-port=25",
                "--identity=w",
                "--no-validate"
            ]
        )
        .is_ok());
        for (c, a, needle) in [
            (&[][..], &["--dry-run"][..], "is the dry run"),
            (&[], &["--to=x@y"], "recipients come from series.toml"),
            (&[], &["--quiet"], "not passed"),
            (&[], &["extra.patch"], "not passed"),
            (&[], &["--smtp-server"], "needs a value"),
            (&["sendemail.bcc=x@y"], &[], "to whom"),
            (&["sendemail.work.to=x@y"], &[], "to whom"),
            (&["sendEmail.SuppressCc=all"], &[], "to whom"),
        ] {
            let e = ok(c, a).unwrap_err().to_string();
            assert!(e.contains(needle), "{c:?} {a:?}: {e}");
        }
    }

    #[test]
    fn headers_go_at_the_end_of_the_header() {
        let t = "From 1 Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\nSubject: [PATCH 1/1] x\n\nbody\n\nmore\n";
        let got = with_headers(t, "<2@b>", &["<0@b>".into(), "<1@b>".into()]);
        assert_eq!(
            got,
            "From 1 Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\nSubject: [PATCH 1/1] x\n\
             Message-ID: <2@b>\nIn-Reply-To: <1@b>\nReferences: <0@b> <1@b>\n\nbody\n\nmore\n"
        );
        let got = with_headers(t, "<1@b>", &[]);
        assert!(got.contains("x\nMessage-ID: <1@b>\n\nbody"));
    }

    #[test]
    fn dates_are_rfc_2822_in_utc() {
        assert_eq!(
            dates(0),
            (
                "Thu, 01 Jan 1970 00:00:00 +0000".into(),
                "19700101000000".into()
            )
        );
        // date -u -d @1795992615 -R
        assert_eq!(dates(1_795_992_615).0, "Sun, 29 Nov 2026 22:50:15 +0000");
        assert_eq!(dates(951_782_400).0, "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn ids_get_angle_brackets() {
        assert_eq!(normalize_id("a@b"), "<a@b>");
        assert_eq!(normalize_id(" <a@b> "), "<a@b>");
    }
}
