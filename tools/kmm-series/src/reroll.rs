//! Re-rolls: `kmm series reroll` moves series.toml to the next version and
//! writes its patches, leaving the previous version's `patches/vN` frozen.
//!
//! A re-roll's cover letter carries the `git range-diff` of the previous
//! version against this one, so the previous version's commits must be in
//! the cache repository on every machine. They are rebuilt from the frozen
//! mails with git's own plumbing, as `git am` would apply them
//! (`git mailinfo`, `git apply --cached` on a scratch index,
//! `git commit-tree` as the mail's author at the mail's date), and each
//! rebuilt commit must have the id in its mail's `From <id>` line: that
//! proves `patches/vN` is still what was generated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::base::Base;
use crate::check;
use crate::generate::{self, GenCommit, GenError, History};
use crate::manifest::{self, Manifest, ManifestError};
use crate::repo::Repo;
use crate::sent;

/// A previous version, rebuilt in the cache repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    /// Its number.
    pub version: u32,
    /// Its base commit (`base-commit:` of its cover letter).
    pub base: String,
    /// Its commits, in order.
    pub commits: Vec<String>,
}

impl Previous {
    /// The last commit (the base for an empty series).
    pub fn tip(&self) -> &str {
        self.commits.last().map_or(&self.base, String::as_str)
    }
}

fn git(git_dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("--git-dir")
        .arg(git_dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    c
}

/// Runs `c` with `input` on stdin and returns its stdout, or its stderr's
/// last line as the error.
fn run(c: &mut Command, input: Option<&[u8]>) -> Result<String, String> {
    c.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("cannot run git: {e}"))?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        std::io::Write::write_all(&mut stdin, data).map_err(|e| format!("write to git: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("wait for git: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Rebuilds version `v` of the series from `patches/vN` in the cache
/// repository and points `kmm/vN` at it.
pub fn rebuild(m: &Manifest, base: &Base, v: u32) -> Result<Previous, GenError> {
    let dir = m.version_dir(v);
    let fail = |message: String| GenError::Previous {
        dir: dir.clone(),
        message,
    };
    if !dir.is_dir() {
        return Err(fail(format!(
            "missing; v{} is diffed against the frozen patches of v{v}: restore them with git",
            m.version
        )));
    }
    let files = generate::read_dir(&dir)?;
    let (cover, patches) = match files.split_first() {
        Some((c, rest)) if c.name == "0000-cover-letter.patch" => (c, rest),
        _ => return Err(fail("no 0000-cover-letter.patch".into())),
    };
    let base_commit = cover
        .text
        .lines()
        .find_map(|l| l.strip_prefix("base-commit: "))
        .map(|s| s.trim().to_string())
        .ok_or_else(|| fail("the cover letter has no `base-commit:` line".into()))?;
    if !base.repo.has(&base_commit) {
        return Err(fail(format!(
            "its base {base_commit} is not in the cache repository {}",
            base.repo.git_dir().display()
        )));
    }
    let git_dir = base.repo.git_dir();
    let scratch = kmm_scratch::Scratch::new("rebuild").map_err(|source| GenError::Io {
        path: std::env::temp_dir(),
        what: "create a scratch directory",
        source,
    })?;
    let s = scratch.path();
    let index = s.join("index");
    let mut parent = base_commit.clone();
    let mut commits = Vec::new();
    for (i, f) in patches.iter().enumerate() {
        let n = i + 1;
        let at = |what: &str, e: String| fail(format!("{} ({what}): {e}", f.name));
        let expect = f
            .text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("From "))
            .and_then(|l| l.split(' ').next())
            .filter(|id| id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| fail(format!("{}: no `From <commit id>` first line", f.name)))?
            .to_string();
        let info = run(
            git(git_dir)
                .arg("mailinfo")
                .arg(s.join("msg"))
                .arg(s.join("patch")),
            Some(f.text.as_bytes()),
        )
        .map_err(|e| at("git mailinfo", e))?;
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                .unwrap_or("")
                .to_string()
        };
        let (name, email, date) = (field("Author"), field("Email"), field("Date"));
        let body = std::fs::read_to_string(s.join("msg")).map_err(|e| at("read", e.to_string()))?;
        let message = run(
            git(git_dir).arg("stripspace"),
            Some(format!("{}\n\n{body}", field("Subject")).as_bytes()),
        )
        .map_err(|e| at("git stripspace", e))?;
        let indexed = || {
            let mut c = git(git_dir);
            c.env("GIT_INDEX_FILE", &index);
            c
        };
        run(indexed().args(["read-tree", &parent]), None).map_err(|e| at("git read-tree", e))?;
        run(
            indexed().args(["apply", "--cached"]).arg(s.join("patch")),
            None,
        )
        .map_err(|e| at("git apply", e))?;
        let tree = run(indexed().arg("write-tree"), None).map_err(|e| at("git write-tree", e))?;
        let id = run(
            git(git_dir)
                .args(["commit-tree", tree.trim(), "-p", &parent])
                .env("GIT_AUTHOR_NAME", &name)
                .env("GIT_AUTHOR_EMAIL", &email)
                .env("GIT_AUTHOR_DATE", &date)
                .env("GIT_COMMITTER_NAME", &name)
                .env("GIT_COMMITTER_EMAIL", &email)
                .env("GIT_COMMITTER_DATE", &date),
            Some(message.as_bytes()),
        )
        .map_err(|e| at("git commit-tree", e))?;
        let id = id.trim().to_string();
        if id != expect {
            return Err(fail(format!(
                "patch {n} rebuilds as commit {id}, its mail says {expect}; \
                 patches/v{v} is frozen: restore it with git"
            )));
        }
        commits.push(id.clone());
        parent = id;
    }
    base.repo
        .set_ref(&format!("refs/heads/kmm/v{v}"), &parent)
        .map_err(GenError::Git)?;
    Ok(Previous {
        version: v,
        base: base_commit,
        commits,
    })
}

/// `git range-diff` of `prev` against `base..tip`, as
/// `git format-patch --range-diff` prints it in a cover letter.
pub fn range_diff(
    git_dir: &Path,
    prev: &Previous,
    base: &str,
    tip: &str,
) -> Result<String, GenError> {
    run(
        git(git_dir).args([
            "-c",
            "core.abbrev=12",
            "range-diff",
            "--no-color",
            "--no-notes",
            // format-patch's default: find the correspondence with the
            // previous iteration even for heavily changed patches.
            "--creation-factor=999",
            &format!("{}..{}", prev.base, prev.tip()),
            &format!("{base}..{tip}"),
        ]),
        None,
    )
    .map_err(|message| GenError::Tool {
        tool: "git range-diff".into(),
        message,
    })
}

/// What earlier versions add to this version's mails: the range-diff
/// against the previous version (rebuilt from its frozen patches) and the
/// Message-IDs of the cover letters sent so far.
pub fn history(m: &Manifest, base: &Base, commits: &[GenCommit]) -> Result<History, GenError> {
    let mut h = History::default();
    if m.version < 2 {
        return Ok(h);
    }
    let prev = rebuild(m, base, m.version - 1)?;
    let tip = commits
        .last()
        .map_or(base.commit.as_str(), |c| c.id.as_str());
    h.range_diff = Some((
        prev.version,
        range_diff(base.repo.git_dir(), &prev, &base.commit, tip)?,
    ));
    let mut covers = BTreeMap::new();
    for v in 1..m.version {
        if let Some(r) = sent::read(&sent::path(m, v))? {
            if let Some(id) = r.cover_id() {
                covers.insert(v, id.to_string());
            }
        }
    }
    h.sent_covers = covers;
    Ok(h)
}

/// What [`reroll`] did.
#[derive(Debug, Clone)]
pub struct Rerolled {
    /// The frozen version.
    pub from: u32,
    /// The new version.
    pub to: u32,
    /// The new version's directory.
    pub dir: PathBuf,
    /// Number of patches in it (without the cover letter).
    pub patches: usize,
    /// Whether the frozen version was sent (`patches/sent/vN.toml`).
    pub sent: bool,
}

/// What can stop a re-roll.
#[derive(Debug, thiserror::Error)]
pub enum RerollError {
    /// patches/vN is not what series.toml generates.
    #[error(
        "{}: not what series.toml generates; a re-roll freezes it as it is, so run \
         `kmm series generate` first (or undo the edits to series.toml)",
        dir.display()
    )]
    Stale {
        /// The current version's directory.
        dir: PathBuf,
    },
    /// The next version's directory exists already.
    #[error("{}: already exists; remove it or finish that re-roll", dir.display())]
    Exists {
        /// The next version's directory.
        dir: PathBuf,
    },
    /// The manifest with the new version is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Generating either version failed.
    #[error(transparent)]
    Gen(#[from] GenError),
    /// Writing series.toml failed.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What kmm was doing.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Starts the next version: checks that `patches/vN` is what series.toml
/// generates, writes `patches/vN+1` and sets `version = N+1` in
/// series.toml (the rest of the file is kept byte for byte). Nothing is
/// written when a step fails.
pub fn reroll(m: &Manifest, base: &Base) -> Result<Rerolled, RerollError> {
    let dir = m.out_dir();
    let (_, files) = crate::generate(m, base)?;
    let on_disk = generate::read_dir(&dir).unwrap_or_default();
    if on_disk.is_empty() || !check::stale(&dir, &files, &on_disk).is_empty() {
        return Err(RerollError::Stale { dir });
    }
    let next = m.version + 1;
    let new_dir = m.version_dir(next);
    if new_dir.exists() {
        return Err(RerollError::Exists { dir: new_dir });
    }
    let io = |path: &Path, what| {
        let path = path.to_path_buf();
        move |source| RerollError::Io { path, what, source }
    };
    let text = std::fs::read_to_string(&m.path).map_err(io(&m.path, "read"))?;
    let span = m.version_span.clone();
    let new_text = format!("{}{next}{}", &text[..span.start], &text[span.end..]);
    let new_m = manifest::parse(&new_text, &m.path, &m.root)?;
    let (commits, new_files) = crate::generate(&new_m, base)?;
    generate::write_dir(&new_dir, &new_files)?;
    let parent = m.path.parent().unwrap_or(Path::new("."));
    let written = tempfile::Builder::new()
        .prefix(&kmm_scratch::hidden_prefix("series"))
        .tempfile_in(parent)
        .map_err(io(parent, "create temporary file"))
        .and_then(|mut t| {
            std::io::Write::write_all(&mut t, new_text.as_bytes()).map_err(io(&m.path, "write"))?;
            t.persist(&m.path)
                .map_err(|e| io(&m.path, "move into place")(e.error))
        });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&new_dir);
        return Err(e);
    }
    Ok(Rerolled {
        from: m.version,
        to: next,
        dir: new_dir,
        patches: commits.len(),
        sent: sent::read(&sent::path(m, m.version))
            .map_err(GenError::from)?
            .is_some_and(|r| r.sent() > 0),
    })
}
