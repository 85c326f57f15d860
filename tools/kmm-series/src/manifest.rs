//! `patches/series.toml`: the series definition.
//!
//! Parsing keeps the byte spans of every value so that each semantic error
//! (an unknown source file, a duplicate subject) names the manifest's
//! `file:line` like a compiler would.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::base::BaseSpec;
use crate::mail::Timestamp;

/// An error in the manifest, located at `file:line`.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct ManifestError {
    /// The manifest (or fragment) file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong and what to do.
    pub message: String,
}

/// Maps byte offsets of a text to 1-based line numbers.
#[derive(Debug, Clone)]
pub struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    /// Indexes the line starts of `text`.
    pub fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    /// The 1-based line holding byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    series: RawSeries,
    base: BaseSpec,
    mail: Option<Spanned<RawMail>>,
    #[serde(default)]
    checkpatch: Vec<Spanned<RawAllow>>,
    #[serde(default)]
    commit: Vec<Spanned<RawCommit>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    #[serde(default = "default_true")]
    get_maintainer: bool,
    #[serde(default)]
    to: Vec<Spanned<String>>,
    #[serde(default)]
    cc: Vec<Spanned<String>>,
    #[serde(default)]
    remove: Vec<Spanned<String>>,
}

fn default_true() -> bool {
    true
}

type RawChangelog = BTreeMap<String, Vec<Spanned<String>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    version: Spanned<u32>,
    #[serde(default)]
    rfc: bool,
    subject: Spanned<String>,
    body: String,
    author: Spanned<String>,
    date: Spanned<String>,
    #[serde(default = "default_signature")]
    signature: String,
    #[serde(default)]
    changelog: RawChangelog,
}

fn default_signature() -> String {
    "kmm".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    commit: usize,
    #[serde(rename = "type")]
    kind: String,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommit {
    subject: Spanned<String>,
    body: String,
    #[serde(default)]
    trailers: Vec<Spanned<String>>,
    #[serde(default)]
    review: Vec<Spanned<String>>,
    #[serde(default)]
    to: Vec<Spanned<String>>,
    #[serde(default)]
    cc: Vec<Spanned<String>>,
    #[serde(default)]
    changelog: RawChangelog,
    #[serde(default)]
    op: Vec<Spanned<RawOp>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOp {
    kind: Spanned<String>,
    src: Option<Spanned<String>>,
    dst: Option<Spanned<String>>,
    fragment: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    symbols: Option<Vec<Spanned<String>>>,
    after: Option<String>,
    before: Option<String>,
    after_line: Option<String>,
    before_line: Option<String>,
    #[serde(default)]
    drop_static: bool,
    path: Option<Spanned<String>>,
}

/// Where moved items go in the destination file (the C item finder's
/// anchor, used as is).
pub use kmm_csym::Anchor;

/// One step that builds a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Add or replace `dst` with the repo file `src`.
    Add {
        /// Repo-relative source path.
        src: String,
        /// Kernel path.
        dst: String,
    },
    /// Apply a unified-diff fragment (path relative to the manifest).
    Patch {
        /// Repo-relative fragment path.
        fragment: String,
    },
    /// Move named top-level C items from one kernel file to another.
    Move {
        /// Source kernel path.
        from: String,
        /// Destination kernel path.
        to: String,
        /// Symbols, as `kmm_csym::find` takes them.
        symbols: Vec<String>,
        /// Insertion point.
        anchor: Anchor,
        /// Drop the `static` storage class of moved functions/variables.
        drop_static: bool,
    },
    /// Delete a kernel file.
    Remove {
        /// Kernel path.
        path: String,
    },
}

/// An operation with the manifest line it came from.
#[derive(Debug, Clone)]
pub struct LocatedOp {
    /// The operation.
    pub op: Op,
    /// 1-based line in the manifest.
    pub line: usize,
}

/// A mail address: `Name <email>` or a bare `email`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Display name, if any.
    pub name: Option<String>,
    /// The address itself.
    pub email: String,
}

impl Address {
    /// Parses `Name <email>` or a bare `email` (no spaces, one `@`).
    pub fn parse(s: &str) -> Option<Address> {
        let s = s.trim();
        if s.contains('<') {
            let (name, email) = parse_ident(s)?;
            return Some(Address {
                name: Some(name),
                email,
            });
        }
        let ok = s.matches('@').count() == 1
            && !s.starts_with('@')
            && !s.ends_with('@')
            && !s.contains(|c: char| c.is_whitespace() || matches!(c, '>' | ',' | '"'));
        ok.then(|| Address {
            name: None,
            email: s.to_string(),
        })
    }

    /// The address compared case-insensitively, for de-duplication.
    pub fn key(&self) -> String {
        self.email.to_ascii_lowercase()
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n} <{}>", self.email),
            None => f.write_str(&self.email),
        }
    }
}

/// `[mail]`: who the series is addressed to.
#[derive(Debug, Clone)]
pub struct MailSpec {
    /// Run the base tree's `scripts/get_maintainer.pl` on every patch.
    pub get_maintainer: bool,
    /// Added to the To: of every patch and of the cover letter.
    pub to: Vec<Address>,
    /// Added to the Cc: of every patch and of the cover letter.
    pub cc: Vec<Address>,
    /// Never addressed, whoever lists them (compared by address).
    pub remove: Vec<Address>,
    /// 1-based line of the `[mail]` table.
    pub line: usize,
}

/// What changed in one version, for the changelogs of a re-roll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The version that made the changes (2 for "Changes in v2").
    pub version: u32,
    /// One entry per change, as written in series.toml.
    pub items: Vec<String>,
}

/// One commit of the series.
#[derive(Debug, Clone)]
pub struct CommitSpec {
    /// Subject line.
    pub subject: String,
    /// Body (paragraphs, without trailers).
    pub body: String,
    /// Trailers, ending with the author's Signed-off-by; review trailers
    /// (`review = [...]`) come right before it.
    pub trailers: Vec<String>,
    /// Operations in order.
    pub ops: Vec<LocatedOp>,
    /// 1-based line of the `[[commit]]` table.
    pub line: usize,
    /// Added to this patch's To: (and the cover letter's).
    pub to: Vec<Address>,
    /// Added to this patch's Cc: (and the cover letter's).
    pub cc: Vec<Address>,
    /// This patch's changelog, newest version first.
    pub changelog: Vec<Changes>,
}

impl CommitSpec {
    /// The full commit message: subject, body and trailers.
    pub fn message(&self) -> String {
        let mut m = format!("{}\n\n", self.subject);
        let body = self.body.trim();
        if !body.is_empty() {
            m.push_str(body);
            m.push_str("\n\n");
        }
        for t in &self.trailers {
            m.push_str(t);
            m.push('\n');
        }
        m
    }
}

/// A checkpatch message accepted for one commit, with the reason.
#[derive(Debug, Clone)]
pub struct Allow {
    /// 1-based commit number.
    pub commit: usize,
    /// checkpatch message type, e.g. `LONG_LINE`.
    pub kind: String,
    /// Why it is accepted.
    pub reason: String,
}

/// The validated series definition.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Path of series.toml.
    pub path: PathBuf,
    /// Repository root (sources are relative to it).
    pub root: PathBuf,
    /// Version number (v1, v2, ...).
    pub version: u32,
    /// Whether the series is an RFC.
    pub rfc: bool,
    /// Cover letter subject.
    pub subject: String,
    /// Cover letter body.
    pub body: String,
    /// Author name.
    pub author_name: String,
    /// Author email.
    pub author_email: String,
    /// Author and committer date of every commit and of the cover letter.
    pub date: Timestamp,
    /// Mail signature (the text after `-- `).
    pub signature: String,
    /// The base tree.
    pub base: BaseSpec,
    /// Accepted checkpatch messages.
    pub allow: Vec<Allow>,
    /// The commits, in order.
    pub commits: Vec<CommitSpec>,
    /// `[mail]`; `None` when the table is absent (no To:/Cc: headers).
    pub mail: Option<MailSpec>,
    /// Series-wide changelog (`[series] changelog`), newest version first.
    pub changelog: Vec<Changes>,
    /// Byte range of the `version` value in the manifest text.
    pub version_span: Range<usize>,
}

impl Manifest {
    /// The `[...]` prefix of patch subjects, without the numbers.
    pub fn prefix(&self) -> String {
        let rfc = if self.rfc { "RFC " } else { "" };
        format!("{rfc}PATCH v{}", self.version)
    }

    /// The directory of generated patches: `patches/vN`.
    pub fn out_dir(&self) -> PathBuf {
        self.dir().join(format!("v{}", self.version))
    }

    /// The directory holding series.toml.
    pub fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// The branch the generated commits go to in the cache repository.
    pub fn branch(&self) -> String {
        format!("refs/heads/kmm/v{}", self.version)
    }

    /// The directory of version `v`'s patches: `patches/vN`.
    pub fn version_dir(&self, v: u32) -> PathBuf {
        self.dir().join(format!("v{v}"))
    }
}

/// The review trailers `review = [...]` accepts.
pub const REVIEW_TRAILERS: [&str; 3] = ["Reviewed-by", "Acked-by", "Tested-by"];

/// Splits `Name <email>`.
pub fn parse_ident(s: &str) -> Option<(String, String)> {
    let open = s.find('<')?;
    let close = s.rfind('>')?;
    if close < open || close != s.len() - 1 {
        return None;
    }
    let name = s[..open].trim();
    let email = s[open + 1..close].trim();
    if name.is_empty() || email.is_empty() || !email.contains('@') {
        return None;
    }
    Some((name.to_string(), email.to_string()))
}

/// Reads a text file that must be UTF-8; the error is a [`ManifestError`]
/// at the line of the first bad byte, or at line 1 when the file cannot be
/// read. `what` names the file in messages ("the series manifest").
pub fn read_text(path: &Path, what: &str) -> Result<String, ManifestError> {
    let bytes = std::fs::read(path).map_err(|e| ManifestError {
        file: path.to_path_buf(),
        line: 1,
        message: format!("cannot read {what}: {e}"),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
        let start = bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        ManifestError {
            file: path.to_path_buf(),
            line,
            message: format!(
                "{what} is not UTF-8 (byte 0x{:02x} at column {}); save it as UTF-8",
                bytes[at],
                at - start + 1
            ),
        }
    })
}

/// Reads and validates `series.toml`. `root` is the repository root that
/// `src` and `fragment` paths are relative to.
pub fn load(path: &Path, root: &Path) -> Result<Manifest, ManifestError> {
    let text = read_text(path, "the series manifest")?;
    parse(&text, path, root)
}

/// Parses and validates manifest text (see [`load`]).
pub fn parse(text: &str, path: &Path, root: &Path) -> Result<Manifest, ManifestError> {
    let lines = Lines::new(text);
    let err = |offset: usize, message: String| ManifestError {
        file: path.to_path_buf(),
        line: lines.line(offset),
        message,
    };
    let raw: RawManifest = toml::from_str(text).map_err(|e| {
        let off = e.span().map_or(0, |s| s.start);
        err(off, format!("malformed TOML: {}", e.message().trim_end()))
    })?;

    let s = &raw.series;
    let (author_name, author_email) = parse_ident(s.author.get_ref()).ok_or_else(|| {
        err(
            s.author.span().start,
            format!(
                "author {:?} is not of the form `Name <email>`",
                s.author.get_ref()
            ),
        )
    })?;
    let date = Timestamp::parse_rfc3339(s.date.get_ref()).ok_or_else(|| {
        err(
            s.date.span().start,
            format!(
                "date {:?} is not RFC 3339 (write e.g. 2026-11-25T09:00:00+00:00)",
                s.date.get_ref()
            ),
        )
    })?;
    if *s.version.get_ref() == 0 {
        return Err(err(
            s.version.span().start,
            "version must be 1 or more".into(),
        ));
    }
    check_subject(s.subject.get_ref(), false).map_err(|m| err(s.subject.span().start, m))?;

    let version = *s.version.get_ref();
    // Changelog errors point at the first entry, or at `at` (the table
    // holding the changelog) for an empty list.
    let changelog_of = |raw: &RawChangelog, at: usize| -> Result<Vec<Changes>, ManifestError> {
        let mut out = Vec::new();
        for (key, items) in raw {
            let off = items.first().map_or(at, |i| i.span().start);
            let v = key
                .strip_prefix('v')
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| (2..=version).contains(n))
                .ok_or_else(|| {
                    err(
                        off,
                        format!(
                            "changelog key {key:?} must name a re-roll of this series, \
                             v2..=v{version}; `kmm series reroll` moves to the next version"
                        ),
                    )
                })?;
            if items.is_empty() {
                return Err(err(off, format!("changelog.{key} is empty")));
            }
            if let Some(i) = items.iter().find(|i| i.get_ref().trim().is_empty()) {
                return Err(err(
                    i.span().start,
                    format!("changelog.{key} has an empty entry"),
                ));
            }
            out.push(Changes {
                version: v,
                items: items
                    .iter()
                    .map(|i| i.get_ref().trim().to_string())
                    .collect(),
            });
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.version));
        Ok(out)
    };
    let addresses = |list: &[Spanned<String>], what: &str| -> Result<Vec<Address>, ManifestError> {
        list.iter()
            .map(|a| {
                Address::parse(a.get_ref()).ok_or_else(|| {
                    err(
                        a.span().start,
                        format!(
                            "{what} address {:?} is neither `Name <email>` nor `email`",
                            a.get_ref()
                        ),
                    )
                })
            })
            .collect()
    };
    let mail = match &raw.mail {
        None => None,
        Some(mt) => {
            let r = mt.get_ref();
            Some(MailSpec {
                get_maintainer: r.get_maintainer,
                to: addresses(&r.to, "[mail] to")?,
                cc: addresses(&r.cc, "[mail] cc")?,
                remove: addresses(&r.remove, "[mail] remove")?,
                line: lines.line(mt.span().start),
            })
        }
    };
    let series_changelog = changelog_of(&s.changelog, s.version.span().start)?;

    let sob = format!("Signed-off-by: {} <{}>", author_name, author_email);
    let mut seen = BTreeSet::new();
    let mut commits = Vec::new();
    for c in &raw.commit {
        let line = lines.line(c.span().start);
        let c = c.get_ref();
        let subj = c.subject.get_ref();
        check_subject(subj, true).map_err(|m| err(c.subject.span().start, m))?;
        if !seen.insert(subj.clone()) {
            return Err(err(
                c.subject.span().start,
                format!("duplicate subject {subj:?}; every commit needs its own subject"),
            ));
        }
        let mut trailers = Vec::new();
        for t in &c.trailers {
            let tv = t.get_ref();
            let ok = tv
                .split_once(": ")
                .is_some_and(|(k, v)| !k.is_empty() && !k.contains(' ') && !v.trim().is_empty());
            if !ok {
                return Err(err(
                    t.span().start,
                    format!("trailer {tv:?} is not of the form `Key: value`"),
                ));
            }
            trailers.push(tv.clone());
        }
        let mut review = Vec::new();
        for t in &c.review {
            let tv = t.get_ref().trim();
            let ok = tv.split_once(": ").is_some_and(|(k, v)| {
                REVIEW_TRAILERS.contains(&k) && parse_ident(v.trim()).is_some()
            });
            if !ok {
                return Err(err(
                    t.span().start,
                    format!(
                        "review trailer {tv:?} should read `Reviewed-by: Name <email>` \
                         (or Acked-by, Tested-by)"
                    ),
                ));
            }
            if trailers.iter().chain(&review).any(|x| x == tv) {
                return Err(err(
                    t.span().start,
                    format!("trailer {tv:?} is given twice"),
                ));
            }
            review.push(tv.to_string());
        }
        match trailers.iter().position(|t| *t == sob) {
            Some(at) => {
                trailers.splice(at..at, review);
            }
            None => {
                trailers.extend(review);
                trailers.push(sob.clone());
            }
        }
        let (to, cc) = (
            addresses(&c.to, "commit to")?,
            addresses(&c.cc, "commit cc")?,
        );
        if mail.is_none() && !(to.is_empty() && cc.is_empty()) {
            return Err(err(
                c.subject.span().start,
                format!(
                    "commit {subj:?} lists to/cc addresses but the manifest has no [mail] \
                     table; add one (get_maintainer = false to use only the listed addresses)"
                ),
            ));
        }
        if c.op.is_empty() {
            return Err(err(
                c.subject.span().start,
                format!("commit {subj:?} has no [[commit.op]]; an empty commit is not a patch"),
            ));
        }
        let mut ops = Vec::new();
        for o in &c.op {
            let op_line = lines.line(o.span().start);
            ops.push(LocatedOp {
                op: convert_op(o.get_ref(), root, &|off, m| err(off, m))?,
                line: op_line,
            });
        }
        commits.push(CommitSpec {
            subject: subj.clone(),
            body: c.body.clone(),
            trailers,
            ops,
            line,
            to,
            cc,
            changelog: changelog_of(&c.changelog, c.subject.span().start)?,
        });
    }
    if commits.is_empty() {
        return Err(err(0, "the series has no [[commit]]".into()));
    }
    let mut allow = Vec::new();
    for a in &raw.checkpatch {
        let av = a.get_ref();
        if av.commit == 0 || av.commit > commits.len() {
            return Err(err(
                a.span().start,
                format!(
                    "[[checkpatch]] names commit {}, the series has 1..={}",
                    av.commit,
                    commits.len()
                ),
            ));
        }
        if av.reason.trim().is_empty() {
            return Err(err(a.span().start, "[[checkpatch]] needs a reason".into()));
        }
        allow.push(Allow {
            commit: av.commit,
            kind: av.kind.clone(),
            reason: av.reason.clone(),
        });
    }
    Ok(Manifest {
        path: path.to_path_buf(),
        root: root.to_path_buf(),
        version: *s.version.get_ref(),
        rfc: s.rfc,
        subject: s.subject.get_ref().clone(),
        body: s.body.clone(),
        author_name,
        author_email,
        date,
        signature: s.signature.clone(),
        base: raw.base,
        allow,
        commits,
        mail,
        changelog: series_changelog,
        version_span: s.version.span(),
    })
}

/// Checks a subject line: ASCII, at most 75 characters, and for commits a
/// `KVM:`-style `prefix: Summary` shape.
pub fn check_subject(subject: &str, commit: bool) -> Result<(), String> {
    if subject.is_empty() {
        return Err("empty subject".into());
    }
    if !subject.is_ascii() {
        return Err(format!("subject {subject:?} is not ASCII"));
    }
    let n = subject.chars().count();
    if n > 75 {
        return Err(format!(
            "subject {subject:?} is {n} characters long; the limit is 75"
        ));
    }
    if commit {
        let Some((prefix, rest)) = subject.rsplit_once(": ") else {
            return Err(format!(
                "subject {subject:?} has no subsystem prefix; write e.g. `KVM: x86: Do the thing`"
            ));
        };
        let prefix_ok = prefix
            .split(": ")
            .all(|p| !p.is_empty() && !p.contains("  "));
        let starts_upper = rest.chars().next().is_some_and(|c| c.is_ascii_uppercase());
        if !prefix_ok || !starts_upper || rest.ends_with('.') {
            return Err(format!(
                "subject {subject:?} should read `prefix: Imperative summary` with a capital \
                 letter and no trailing period"
            ));
        }
        if !(prefix == "KVM" || prefix.starts_with("KVM: ") || prefix.starts_with("mm")) {
            return Err(format!(
                "subject {subject:?} should start with a `KVM:` (or `mm/...:`) prefix"
            ));
        }
    }
    Ok(())
}

fn convert_op(
    o: &RawOp,
    root: &Path,
    err: &dyn Fn(usize, String) -> ManifestError,
) -> Result<Op, ManifestError> {
    let at = o.kind.span().start;
    let need = |v: &Option<Spanned<String>>, name: &str| -> Result<String, ManifestError> {
        v.as_ref()
            .map(|s| s.get_ref().clone())
            .ok_or_else(|| err(at, format!("op kind {:?} needs `{name}`", o.kind.get_ref())))
    };
    let kernel_path = |v: &Option<Spanned<String>>, name: &str| -> Result<String, ManifestError> {
        let p = need(v, name)?;
        if p.starts_with('/') || p.split('/').any(|c| c == ".." || c.is_empty()) {
            let off = v.as_ref().map_or(at, |s| s.span().start);
            return Err(err(
                off,
                format!("`{name}` = {p:?} must be a relative kernel path"),
            ));
        }
        Ok(p)
    };
    let repo_file = |v: &Option<Spanned<String>>, name: &str| -> Result<String, ManifestError> {
        let p = need(v, name)?;
        let off = v.as_ref().map_or(at, |s| s.span().start);
        if p.split('/').any(|c| c == "..") || p.starts_with('/') {
            return Err(err(
                off,
                format!("`{name}` = {p:?} must stay inside the repository"),
            ));
        }
        if !root.join(&p).is_file() {
            return Err(err(
                off,
                format!(
                    "unknown source file {p:?} (no such file under {})",
                    root.display()
                ),
            ));
        }
        Ok(p)
    };
    match o.kind.get_ref().as_str() {
        "add" => Ok(Op::Add {
            src: repo_file(&o.src, "src")?,
            dst: kernel_path(&o.dst, "dst")?,
        }),
        "patch" => Ok(Op::Patch {
            fragment: repo_file(&o.fragment, "fragment")?,
        }),
        "remove" => Ok(Op::Remove {
            path: kernel_path(&o.path, "path")?,
        }),
        "move" => {
            let symbols = o
                .symbols
                .as_ref()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| err(at, "op kind \"move\" needs a non-empty `symbols`".into()))?
                .iter()
                .map(|s| s.get_ref().clone())
                .collect();
            let anchors = [
                o.after.clone().map(Anchor::After),
                o.before.clone().map(Anchor::Before),
                o.after_line.clone().map(Anchor::AfterLine),
                o.before_line.clone().map(Anchor::BeforeLine),
            ];
            let mut given = anchors.into_iter().flatten();
            let anchor = given.next().unwrap_or(Anchor::End);
            if given.next().is_some() {
                return Err(err(
                    at,
                    "give at most one of after, before, after_line, before_line".into(),
                ));
            }
            Ok(Op::Move {
                from: kernel_path(&o.from, "from")?,
                to: kernel_path(&o.to, "to")?,
                symbols,
                anchor,
                drop_static: o.drop_static,
            })
        }
        other => Err(err(
            at,
            format!("unknown op kind {other:?}; use add, patch, move or remove"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_is_reported_at_its_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("series.toml");
        std::fs::write(&p, b"[series]\nversion = 1\nsubject = \"a \xff\"\n").unwrap();
        let e = read_text(&p, "the series manifest").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(
            e.message
                .contains("not UTF-8 (byte 0xff at column 14); save it as UTF-8"),
            "{}",
            e.message
        );
        let e = read_text(&d.path().join("missing"), "the fragment").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.starts_with("cannot read the fragment: "));
    }

    #[test]
    fn lines_are_one_based() {
        let l = Lines::new("a\nbc\n\nd");
        assert_eq!(l.line(0), 1);
        assert_eq!(l.line(2), 2);
        assert_eq!(l.line(3), 2);
        assert_eq!(l.line(5), 3);
        assert_eq!(l.line(6), 4);
    }

    #[test]
    fn subjects() {
        assert!(check_subject("KVM: Move the walker", true).is_ok());
        assert!(check_subject("KVM: selftests: Add pfncache_invalidate_test", true).is_ok());
        assert!(check_subject("KVM: x86: fix it.", true).is_err());
        assert!(check_subject("Fix it", true).is_err());
        assert!(check_subject("net: Fix it", true).is_err());
        assert!(check_subject(&format!("KVM: {}", "A".repeat(80)), true).is_err());
    }

    #[test]
    fn idents() {
        assert_eq!(
            parse_ident("A U Thor <a@x.org>"),
            Some(("A U Thor".into(), "a@x.org".into()))
        );
        assert_eq!(parse_ident("nobody"), None);
        assert_eq!(parse_ident("<a@x>"), None);
    }
}
