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

/// One message that was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentMessage {
    /// The patch file, e.g. `0000-cover-letter.patch`.
    pub file: String,
    /// Its subject as sent.
    pub subject: String,
    /// Its `Message-ID`, with the angle brackets.
    pub message_id: String,
}

/// The record of one version's send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentRecord {
    /// The version sent.
    pub version: u32,
    /// Whether every file of the version was sent (false after a send that
    /// failed part-way).
    pub complete: bool,
    /// The `Date:` git send-email gave the first message.
    pub date: String,
    /// The Message-ID the cover letter replied to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// The messages in the order they were sent, the cover letter first.
    #[serde(rename = "message")]
    pub messages: Vec<SentMessage>,
}

impl SentRecord {
    /// The cover letter's Message-ID, the root of the thread.
    pub fn cover_id(&self) -> Option<&str> {
        self.messages
            .iter()
            .find(|m| m.file.starts_with("0000-"))
            .map(|m| m.message_id.as_str())
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
        "# Written by `kmm send --confirm` after a real send: the Message-IDs of\n\
         # v{}. `kmm send` refuses to send this version again; the next version's\n\
         # cover letter links to it and `kmm send --reply-to-previous` replies to it.\n\
         {body}",
        record.version
    );
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create directory"))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kmm-sent-")
        .tempfile_in(dir)
        .map_err(io("create temporary file"))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(io("write"))?;
    tmp.persist(path)
        .map_err(|e| SentError::Io {
            path: path.to_path_buf(),
            what: "move into place",
            source: e.error,
        })
        .map(|_| ())
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
            complete: true,
            date: "Wed, 25 Nov 2026 10:30:15 +0000".into(),
            in_reply_to: None,
            messages: vec![
                SentMessage {
                    file: "0000-cover-letter.patch".into(),
                    subject: "[PATCH v1 0/1] KVM: A series".into(),
                    message_id: "<1@example.org>".into(),
                },
                SentMessage {
                    file: "0001-KVM-A.patch".into(),
                    subject: "[PATCH v1 1/1] KVM: A".into(),
                    message_id: "<2@example.org>".into(),
                },
            ],
        };
        write(&p, &r).unwrap();
        assert_eq!(read(&p).unwrap(), Some(r.clone()));
        assert_eq!(r.cover_id(), Some("<1@example.org>"));
        std::fs::write(&p, "version = \"x\"\n").unwrap();
        assert!(matches!(read(&p), Err(SentError::Malformed { .. })));
    }
}
