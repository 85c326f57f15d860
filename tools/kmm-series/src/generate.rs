//! From the manifest to commits (on the base, in the cache repository) and
//! from commits to `git format-patch --cover-letter --base` mbox files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::fragment;
use crate::mail::{self, FileStat, Summary};
use crate::maintainers::{self, Recipients};
use crate::manifest::{Changes, CommitSpec, Manifest, ManifestError, Op};
use crate::repo::{FileDiff, GitError, Ident, Repo, TreeEdit};
use crate::sent::ARCHIVE_URL;

/// What can go wrong while generating.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// An operation failed; located at its manifest line.
    #[error(transparent)]
    Op(#[from] ManifestError),
    /// A git operation failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// A tool kmm runs (`git range-diff`) failed.
    #[error("{tool}: {message}")]
    Tool {
        /// The tool.
        tool: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// The previous version's patches, which a re-roll diffs against,
    /// are missing or do not rebuild.
    #[error("{}: {message}", dir.display())]
    Previous {
        /// `patches/vN` of the previous version.
        dir: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A send record could not be read.
    #[error(transparent)]
    Sent(#[from] crate::sent::SentError),
    /// `get_maintainer.pl` could not be prepared or run.
    #[error(transparent)]
    Maintainers(#[from] maintainers::MaintainersError),
    /// Writing the output failed.
    #[error("{path}: {what}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// What kmm was doing.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A generated commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenCommit {
    /// Commit id.
    pub id: String,
    /// Tree id.
    pub tree: String,
    /// Subject line.
    pub subject: String,
}

/// One output file of the series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchFile {
    /// File name, e.g. `0001-KVM-Move-the-walker.patch`.
    pub name: String,
    /// Mbox text.
    pub text: String,
}

type Overlay = BTreeMap<String, Option<(Vec<u8>, u32)>>;

struct Files<'a> {
    repo: &'a dyn Repo,
    tree: String,
    overlay: Overlay,
}

impl Files<'_> {
    fn read(&self, path: &str) -> Result<Option<(Vec<u8>, u32)>, GitError> {
        match self.overlay.get(path) {
            Some(v) => Ok(v.clone()),
            None => self.repo.read_path(&self.tree, path),
        }
    }

    fn read_text(
        &self,
        path: &str,
        fail: &dyn Fn(String) -> ManifestError,
    ) -> Result<Option<(String, u32)>, GenError> {
        match self.read(path)? {
            None => Ok(None),
            Some((b, mode)) => match String::from_utf8(b) {
                Ok(s) => Ok(Some((s, mode))),
                Err(_) => Err(fail(format!("{path} is not UTF-8 text")).into()),
            },
        }
    }

    fn write(&mut self, path: &str, text: String, mode: u32) {
        self.overlay
            .insert(path.to_string(), Some((text.into_bytes(), mode)));
    }
}

fn apply_op(m: &Manifest, files: &mut Files<'_>, op: &Op, line: usize) -> Result<(), GenError> {
    let fail = |message: String| ManifestError {
        file: m.path.clone(),
        line,
        message,
    };
    match op {
        Op::Add { src, dst } => {
            let p = m.root.join(src);
            let data = std::fs::read(&p).map_err(|e| fail(format!("cannot read {src}: {e}")))?;
            let mode = files.read(dst)?.map_or(0o100644, |(_, m)| m);
            files.overlay.insert(dst.clone(), Some((data, mode)));
        }
        Op::Remove { path } => {
            if files.read(path)?.is_none() {
                return Err(fail(format!("cannot remove {path}: no such file in the tree")).into());
            }
            files.overlay.insert(path.clone(), None);
        }
        Op::Patch { fragment: frag } => {
            let fpath = m.root.join(frag);
            let text = match std::fs::metadata(&fpath) {
                Err(e) => return Err(fail(format!("cannot read fragment {frag}: {e}")).into()),
                Ok(_) => crate::manifest::read_text(&fpath, "the fragment")?,
            };
            let at = |e: fragment::FragmentError| ManifestError {
                file: fpath.clone(),
                line: e.line,
                message: format!(
                    "{} (fragment used at {}:{line})",
                    e.message,
                    m.path.display()
                ),
            };
            for fp in fragment::parse(&text).map_err(at)? {
                let cur = files.read_text(&fp.path, &fail)?;
                let mode = cur.as_ref().map_or(0o100644, |c| c.1);
                match fragment::apply(&fp, cur.as_ref().map(|c| c.0.as_str())).map_err(at)? {
                    Some(new) => files.write(&fp.path, new, mode),
                    None => {
                        files.overlay.insert(fp.path.clone(), None);
                    }
                }
            }
        }
        Op::Move {
            from,
            to,
            symbols,
            anchor,
            drop_static,
        } => {
            if from == to {
                return Err(fail(format!("move from {from} to itself")).into());
            }
            let (src, src_mode) = files.read_text(from, &fail)?.ok_or_else(|| {
                fail(format!("cannot move from {from}: no such file in the tree"))
            })?;
            let (dst, dst_mode) = files.read_text(to, &fail)?.ok_or_else(|| {
                fail(format!(
                    "cannot move into {to}: no such file; create it first with an `add` op"
                ))
            })?;
            let syms: Vec<&str> = symbols.iter().map(String::as_str).collect();
            let (new_src, mut texts) =
                kmm_csym::cut(&src, &syms).map_err(|e| fail(format!("move from {from}: {e}")))?;
            if *drop_static {
                texts = texts.iter().map(|t| kmm_csym::drop_static(t)).collect();
            }
            let at = anchor.clone();
            let new_dst = kmm_csym::insert(&dst, &texts, at)
                .map_err(|e| fail(format!("move into {to}: {e}")))?;
            files.write(from, new_src, src_mode);
            files.write(to, new_dst, dst_mode);
        }
    }
    Ok(())
}

/// The identity every generated commit is authored and committed with.
pub fn ident(m: &Manifest) -> Ident {
    Ident {
        name: m.author_name.clone(),
        email: m.author_email.clone(),
        time: m.date,
    }
}

/// Builds the series' commits on `base` and points the version's branch
/// in the repository at the tip.
pub fn build_commits(
    m: &Manifest,
    repo: &dyn Repo,
    base: &str,
) -> Result<Vec<GenCommit>, GenError> {
    let mut parent = base.to_string();
    let mut tree = repo.tree_of(base)?;
    let who = ident(m);
    let mut out = Vec::new();
    for c in &m.commits {
        let mut files = Files {
            repo,
            tree: tree.clone(),
            overlay: Overlay::new(),
        };
        for op in &c.ops {
            apply_op(m, &mut files, &op.op, op.line)?;
        }
        let edits: Vec<TreeEdit> = files
            .overlay
            .into_iter()
            .map(|(p, v)| match v {
                Some((data, mode)) => TreeEdit::Upsert(p, data, mode),
                None => TreeEdit::Remove(p),
            })
            .collect();
        let new_tree = repo.edit_tree(&tree, &edits)?;
        if new_tree == tree {
            return Err(ManifestError {
                file: m.path.clone(),
                line: c.line,
                message: format!("commit {:?} changes nothing", c.subject),
            }
            .into());
        }
        let id = repo.commit(&new_tree, Some(&parent), &who, &c.message())?;
        out.push(GenCommit {
            id: id.clone(),
            tree: new_tree.clone(),
            subject: c.subject.clone(),
        });
        parent = id;
        tree = new_tree;
    }
    repo.set_ref(&m.branch(), &parent)?;
    Ok(out)
}

/// `format-patch`'s file name for patch `n`: the subject sanitized to
/// `[A-Za-z0-9._-]`, the whole name at most 64 bytes with `.patch`.
pub fn patch_file_name(n: usize, subject: &str) -> String {
    let mut slug = String::new();
    let mut space = 2u8;
    let b = subject.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' {
            if space == 1 {
                slug.push('-');
            }
            space = 0;
            slug.push(char::from(c));
            if c == b'.' {
                while b.get(i + 1) == Some(&b'.') {
                    i += 1;
                }
            }
        } else {
            space |= 1;
        }
        i += 1;
    }
    while slug.ends_with('.') || slug.ends_with('-') {
        slug.pop();
    }
    let mut name = format!("{n:04}-{slug}");
    name.truncate(64 - ".patch".len() - 1);
    name.push_str(".patch");
    name
}

fn stats(diffs: &[FileDiff]) -> (Vec<FileStat>, Vec<Summary>) {
    let files = diffs
        .iter()
        .map(|d| FileStat {
            path: d.path.clone(),
            added: d.added,
            deleted: d.deleted,
        })
        .collect();
    let summary = diffs
        .iter()
        .filter_map(|d| match (d.old_mode, d.new_mode) {
            (0, n) => Some(Summary::Create(n, d.path.clone())),
            (o, 0) => Some(Summary::Delete(o, d.path.clone())),
            (o, n) if o != n => Some(Summary::Mode(o, n, d.path.clone())),
            _ => None,
        })
        .collect();
    (files, summary)
}

fn headers(
    m: &Manifest,
    id: &str,
    prefix: &str,
    subject: &str,
    eight_bit: bool,
    to: Option<&Recipients>,
) -> String {
    let mut h = String::new();
    let _ = writeln!(h, "From {id} Mon Sep 17 00:00:00 2001");
    let _ = writeln!(h, "{}", mail::from_header(&m.author_name, &m.author_email));
    let _ = writeln!(h, "Date: {}", m.date.rfc2822());
    let _ = writeln!(h, "{}", mail::subject_header(prefix, subject));
    if eight_bit {
        h.push_str("MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n");
    }
    if let Some(r) = to {
        h.push_str(&mail::address_header("To", &r.to));
        h.push_str(&mail::address_header("Cc", &r.cc));
    }
    h.push('\n');
    h
}

/// What earlier versions add to a re-roll's mails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// `git range-diff` of the previous version against this one, with
    /// the previous version's number.
    pub range_diff: Option<(u32, String)>,
    /// The cover letters' Message-IDs of the versions sent so far.
    pub sent_covers: BTreeMap<u32, String>,
}

fn push_items(out: &mut String, items: &[String], lead: &str) {
    for item in items {
        for (i, line) in item.lines().enumerate() {
            let line = line.trim_end();
            if i == 0 {
                let _ = writeln!(out, "- {lead}{line}");
            } else if line.is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
}

/// A patch's changelog, printed between `---` and the diffstat: one
/// `Changes in vN:` paragraph per version, newest first.
pub fn patch_changelog(changes: &[Changes]) -> String {
    let mut out = String::new();
    for c in changes {
        let _ = writeln!(out, "Changes in v{}:", c.version);
        push_items(&mut out, &c.items, "");
        out.push('\n');
    }
    out
}

/// The cover letter's changelog: for each version from the newest down to
/// 2, the series-wide entries, then each patch's entries as `Patch N:`,
/// then a link to the previous version when it was sent.
pub fn cover_changelog(m: &Manifest, history: &History) -> String {
    let mut out = String::new();
    for v in (2..=m.version).rev() {
        let mut section = String::new();
        let of = |cl: &[Changes]| -> Vec<String> {
            cl.iter()
                .filter(|c| c.version == v)
                .flat_map(|c| c.items.clone())
                .collect()
        };
        push_items(&mut section, &of(&m.changelog), "");
        for (i, c) in m.commits.iter().enumerate() {
            push_items(
                &mut section,
                &of(&c.changelog),
                &format!("Patch {}: ", i + 1),
            );
        }
        if let Some(id) = history.sent_covers.get(&(v - 1)) {
            let id = id.trim_start_matches('<').trim_end_matches('>');
            let _ = writeln!(section, "- Link to v{}: {ARCHIVE_URL}{id}", v - 1);
        }
        if !section.is_empty() {
            let _ = write!(out, "Changes in v{v}:\n{section}\n");
        }
    }
    out
}

fn check_text(m: &Manifest, c: &CommitSpec, diffs: &[FileDiff]) -> Result<(), GenError> {
    if let Some(d) = diffs.iter().find(|d| d.binary) {
        return Err(ManifestError {
            file: m.path.clone(),
            line: c.line,
            message: format!("{} is binary; a mailed series carries text only", d.path),
        }
        .into());
    }
    Ok(())
}

/// Renders the cover letter and the patches of already built commits, as
/// a first version (no range-diff, no links to earlier versions).
pub fn render(
    m: &Manifest,
    repo: &dyn Repo,
    base: &str,
    commits: &[GenCommit],
) -> Result<Vec<PatchFile>, GenError> {
    render_with(m, repo, base, commits, &History::default())
}

/// Renders the cover letter and the patches of already built commits with
/// what earlier versions add (changelog links, range-diff); runs
/// `get_maintainer.pl` for the To:/Cc: headers when `[mail]` asks for it.
pub fn render_with(
    m: &Manifest,
    repo: &dyn Repo,
    base: &str,
    commits: &[GenCommit],
    history: &History,
) -> Result<Vec<PatchFile>, GenError> {
    let total = commits.len();
    let prefix = m.prefix();
    let sig = format!("-- \n{}\n\n", m.signature);
    let width = total.to_string().len();
    let base_tree = repo.tree_of(base)?;
    let gm = maintainers::prepare(m, repo, &base_tree)?;

    // The patches first: the cover letter's To:/Cc: is their union.
    let mut patches = Vec::new();
    let mut all_to = Vec::new();
    let mut parent_tree = base_tree.clone();
    for (i, (c, spec)) in commits.iter().zip(&m.commits).enumerate() {
        let diffs = repo.diff(&parent_tree, &c.tree)?;
        check_text(m, spec, &diffs)?;
        let (fs, sum) = stats(&diffs);
        let msg = spec.message();
        let rest = msg.split_once("\n\n").map_or("", |(_, r)| r).to_string();
        let n = i + 1;
        let changes = patch_changelog(&spec.changelog);
        let eight_bit = !rest.is_ascii() || !changes.is_ascii();
        let mut body = rest;
        body.push_str("---\n");
        body.push_str(&changes);
        body.push_str(&mail::diffstat(&fs, &sum));
        body.push('\n');
        for d in &diffs {
            body.push_str(&d.patch);
        }
        body.push_str(&sig);
        let subject_prefix = format!("{prefix} {n:0width$}/{total}");
        let head =
            |to: Option<&Recipients>| headers(m, &c.id, &subject_prefix, &c.subject, eight_bit, to);
        let name = patch_file_name(n, &c.subject);
        let text = match &m.mail {
            None => format!("{}{body}", head(None)),
            Some(mail) => {
                let found = match &gm {
                    Some(gm) => gm.recipients(&name, &format!("{}{body}", head(None)))?,
                    None => Recipients::default(),
                };
                let r = maintainers::for_patch(mail, found, Some(spec));
                let text = format!("{}{body}", head(Some(&r)));
                all_to.push(r);
                text
            }
        };
        patches.push(PatchFile { name, text });
        parent_tree = c.tree.clone();
    }

    let tip = commits.last().map_or(base, |c| c.id.as_str());
    let tip_tree = commits.last().map_or(base_tree.clone(), |c| c.tree.clone());
    let all = repo.diff(&base_tree, &tip_tree)?;
    let (fs, sum) = stats(&all);
    let subjects: Vec<String> = commits.iter().map(|c| c.subject.clone()).collect();
    let body = m.body.trim();
    let changelog = cover_changelog(m, history);
    let cover_rcpt = m.mail.as_ref().map(|mail| {
        let union = Recipients::union(&all_to);
        // A series without patches still reaches [mail]'s addresses.
        maintainers::for_patch(mail, union, None)
    });
    let mut cover = headers(
        m,
        tip,
        &format!("{prefix} {:0width$}/{total}", 0),
        &m.subject,
        !body.is_ascii() || !changelog.is_ascii(),
        cover_rcpt.as_ref(),
    );
    if !body.is_empty() {
        cover.push_str(body);
        cover.push_str("\n\n");
    }
    cover.push_str(&changelog);
    cover.push_str(&mail::shortlog(&m.author_name, &subjects));
    cover.push_str(&mail::diffstat(&fs, &sum));
    cover.push('\n');
    if let Some((v, rd)) = &history.range_diff {
        let _ = write!(cover, "Range-diff against v{v}:\n{rd}");
    }
    let _ = write!(cover, "\nbase-commit: {base}\n{sig}");
    let mut out = vec![PatchFile {
        name: "0000-cover-letter.patch".into(),
        text: cover,
    }];
    out.extend(patches);
    Ok(out)
}

/// Replaces `dir` with exactly `files`: written to a temporary directory
/// beside it and exchanged with `dir` in one rename
/// ([`kmm_scratch::swap_dir`]), so `dir` is the old or the new directory
/// whenever the process stops, never missing or half-written.
pub fn write_dir(dir: &Path, files: &[PatchFile]) -> Result<(), GenError> {
    let io = |path: &Path, what| {
        let path = path.to_path_buf();
        move |source| GenError::Io { path, what, source }
    };
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent, "create directory"))?;
    let tmp = kmm_scratch::Scratch::new_in(parent, "new")
        .map_err(io(parent, "create temporary directory"))?;
    for f in files {
        let p = tmp.path().join(&f.name);
        std::fs::write(&p, &f.text).map_err(io(&p, "write"))?;
    }
    kmm_scratch::swap_dir(tmp, dir).map_err(io(dir, "move into place"))
}

/// Reads a directory of `.patch` files as [`PatchFile`]s, sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<PatchFile>, GenError> {
    let io = |what| {
        let path = dir.to_path_buf();
        move |source| GenError::Io { path, what, source }
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io("read directory"))? {
        let e = e.map_err(io("read directory"))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".patch") {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).map_err(io("read patch"))?;
        out.push(PatchFile { name, text });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_format_patch() {
        assert_eq!(
            patch_file_name(
                1,
                "KVM: selftests: Add a really quite long subject line that hits 75 chars"
            ),
            "0001-KVM-selftests-Add-a-really-quite-long-subject-line-t.patch"
        );
        assert_eq!(
            patch_file_name(12, "KVM: x86: Fix ... dots.."),
            "0012-KVM-x86-Fix-.-dots.patch"
        );
    }
}
