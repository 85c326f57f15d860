//! `patches/sent/vN.toml`: what `kmm send --confirm` sent, so that a
//! version is never sent twice and the next version can refer to it (the
//! cover letter's `Link to vN:`, `kmm send --reply-to-previous`).
//!
//! The record is written by `kmm-send` after a real send and read here by
//! the generator, which is why its format lives in this crate.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;

/// Where cover letters of sent versions are archived (`Link to vN:`).
pub const ARCHIVE_URL: &str = "https://lore.kernel.org/r/";

/// What can go wrong with a record.
#[derive(Debug, thiserror::Error)]
pub enum SentError {
    /// The record could not be read or written.
    #[error("{path}: {what}: {source}")]
    Io {
        /// The record.
        path: PathBuf,
        /// What kmm was doing.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The record is not valid TOML of the expected shape.
    #[error("{path}: malformed send record ({message}); it is written by `kmm send --confirm`, restore it with git")]
    Malformed {
        /// The record.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// What became of one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// `git send-email` reported it sent (exit status 0 for this mail
    /// alone). Records written before states existed hold only these.
    #[default]
    Sent,
    /// Its `git send-email` was running when kmm stopped without a chance
    /// to see the outcome (SIGKILL, a crash): maybe sent, maybe not.
    Sending,
    /// Not sent yet.
    Pending,
}

/// One message of a send: planned, in flight or sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentMessage {
    /// The patch file, e.g. `0000-cover-letter.patch`.
    pub file: String,
    /// Its subject.
    pub subject: String,
    /// Its `Message-ID`, with the angle brackets, given by kmm before the
    /// send (git send-email keeps it), so that a resumed send threads the
    /// rest to the same cover letter.
    pub message_id: String,
    /// What became of it.
    #[serde(default)]
    pub state: State,
    /// The sha256 of the file as planned: a resumed send refuses a file
    /// that changed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The record of one version's send, written before the first message
/// goes out and after each one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentRecord {
    /// The version sent.
    pub version: u32,
    /// Whether every message was sent.
    pub complete: bool,
    /// When the send started (RFC 2822).
    pub date: String,
    /// The Message-ID the cover letter replies to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// The messages in sending order, the cover letter first.
    #[serde(rename = "message")]
    pub messages: Vec<SentMessage>,
}

impl SentRecord {
    /// The cover letter's Message-ID if the cover letter was sent: the
    /// root of the thread.
    pub fn cover_id(&self) -> Option<&str> {
        self.messages
            .iter()
            .find(|m| m.file.starts_with("0000-") && m.state == State::Sent)
            .map(|m| m.message_id.as_str())
    }

    /// How many messages were sent.
    pub fn sent(&self) -> usize {
        self.messages
            .iter()
            .filter(|m| m.state == State::Sent)
            .count()
    }

    /// The message whose outcome is unknown, if any.
    pub fn in_flight(&self) -> Option<&SentMessage> {
        self.messages.iter().find(|m| m.state == State::Sending)
    }

    /// One line on the state of the send, for `kmm series status`.
    pub fn summary(&self) -> String {
        let n = self.messages.len();
        let sent = self.sent();
        if self.complete {
            format!("sent {}", self.date)
        } else if let Some(m) = self.in_flight() {
            format!(
                "PARTLY sent {} ({sent} of {n}; unknown whether {} went out)",
                self.date, m.file
            )
        } else {
            format!("PARTLY sent {} ({sent} of {n})", self.date)
        }
    }
}

/// The record of version `v` of the series: `patches/sent/vN.toml`.
pub fn path(m: &Manifest, v: u32) -> PathBuf {
    m.dir().join("sent").join(format!("v{v}.toml"))
}

/// Reads a record; `None` when the version was never sent.
pub fn read(path: &Path) -> Result<Option<SentRecord>, SentError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SentError::Io {
                path: path.to_path_buf(),
                what: "read",
                source,
            })
        }
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| SentError::Malformed {
            path: path.to_path_buf(),
            message: e.message().trim_end().to_string(),
        })
}

/// Writes a record through a temporary file renamed into place.
pub fn write(path: &Path, record: &SentRecord) -> Result<(), SentError> {
    let io = |what| {
        let path = path.to_path_buf();
        move |source| SentError::Io { path, what, source }
    };
    let body = toml::to_string_pretty(record).map_err(|e| SentError::Malformed {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let text = format!(
        "# Written by `kmm send --confirm` before the first mail and after each\n\
         # one: the Message-IDs of v{} and which mails went out. `kmm send`\n\
         # refuses to send a sent mail again; the next version's cover letter\n\
         # links to it and `kmm send --reply-to-previous` replies to it.\n\
         {body}",
        record.version
    );
    // Synced before it replaces the old record: the record is what stops
    // a second send, so it must survive a crash that follows.
    kmm_scratch::write_atomic(path, text.as_bytes()).map_err(io("write"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sent/v1.toml");
        assert_eq!(read(&p).unwrap(), None);
        let r = SentRecord {
            version: 1,
            complete: false,
            date: "Wed, 25 Nov 2026 10:30:15 +0000".into(),
            in_reply_to: None,
            messages: vec![
                SentMessage {
                    file: "0000-cover-letter.patch".into(),
                    subject: "[PATCH v1 0/1] KVM: A series".into(),
                    message_id: "<1@example.org>".into(),
                    state: State::Sent,
                    sha256: Some("ab".into()),
                },
                SentMessage {
                    file: "0001-KVM-A.patch".into(),
                    subject: "[PATCH v1 1/1] KVM: A".into(),
                    message_id: "<2@example.org>".into(),
                    state: State::Pending,
                    sha256: None,
                },
            ],
        };
        write(&p, &r).unwrap();
        assert_eq!(read(&p).unwrap(), Some(r.clone()));
        assert_eq!(r.cover_id(), Some("<1@example.org>"));
        assert_eq!(r.sent(), 1);
        assert_eq!(
            r.summary(),
            "PARTLY sent Wed, 25 Nov 2026 10:30:15 +0000 (1 of 2)"
        );
        // A record from before per-message states: every message was sent.
        std::fs::write(
            &p,
            "version = 1\ncomplete = true\ndate = \"d\"\n[[message]]\n\
             file = \"0000-cover-letter.patch\"\nsubject = \"s\"\nmessage_id = \"<1@x>\"\n",
        )
        .unwrap();
        let old = read(&p).unwrap().unwrap();
        assert_eq!(old.messages[0].state, State::Sent);
        assert_eq!(old.cover_id(), Some("<1@x>"));
        // A cover letter that did not go out is no thread root.
        let mut unsent = r.clone();
        unsent.messages[0].state = State::Sending;
        assert_eq!(unsent.cover_id(), None);
        assert!(unsent
            .summary()
            .contains("unknown whether 0000-cover-letter.patch went out"));
        std::fs::write(&p, "version = \"x\"\n").unwrap();
        assert!(matches!(read(&p), Err(SentError::Malformed { .. })));
    }
}
