//! The one place that talks to libgit2.
//!
//! Everything else in the crate works through [`Repo`], a small trait over
//! object ids given as hex strings, so that generation logic never touches
//! git2 types and the seam stays narrow.

use std::path::Path;

use crate::mail::Timestamp;

/// A libgit2 failure, with what kmm was doing.
#[derive(Debug, thiserror::Error)]
#[error("git: {what}: {source}")]
pub struct GitError {
    /// What kmm was doing.
    pub what: String,
    /// The libgit2 error.
    #[source]
    pub source: git2::Error,
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, GitError>;

fn ctx(what: impl Into<String>) -> impl FnOnce(git2::Error) -> GitError {
    let what = what.into();
    move |source| GitError { what, source }
}

/// An entry to write into a tree: a blob at a path, or a removal.
#[derive(Debug, Clone)]
pub enum TreeEdit {
    /// Put `data` at the path with the mode (0o100644, 0o100755, 0o120000).
    Upsert(String, Vec<u8>, u32),
    /// Remove the path.
    Remove(String),
}

/// One file's change between two trees.
#[derive(Debug, Clone)]
pub struct FileDiff {
    /// Path (old path for deletions).
    pub path: String,
    /// Mode before, 0 when the file is new.
    pub old_mode: u32,
    /// Mode after, 0 when the file is deleted.
    pub new_mode: u32,
    /// Lines added.
    pub added: usize,
    /// Lines deleted.
    pub deleted: usize,
    /// Whether libgit2 considers the file binary.
    pub binary: bool,
    /// The `diff --git` text of this file, as `git diff` prints it.
    pub patch: String,
}

/// Identity and time of a commit's author and committer.
#[derive(Debug, Clone)]
pub struct Ident {
    /// Name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// When.
    pub time: Timestamp,
}

/// The git operations kmm needs, over hex object ids.
pub trait Repo {
    /// Reads the blob at `path` in `tree`, or `None` when there is none.
    fn read_path(&self, tree: &str, path: &str) -> Result<Option<(Vec<u8>, u32)>>;
    /// Applies `edits` to `tree` and returns the new tree id.
    fn edit_tree(&self, tree: &str, edits: &[TreeEdit]) -> Result<String>;
    /// Creates a commit (without moving any ref) and returns its id.
    fn commit(&self, tree: &str, parent: Option<&str>, who: &Ident, msg: &str) -> Result<String>;
    /// Points `refname` at `id`.
    fn set_ref(&self, refname: &str, id: &str) -> Result<()>;
    /// The tree id of commit `id`.
    fn tree_of(&self, commit: &str) -> Result<String>;
    /// Whether an object with this id exists.
    fn has(&self, id: &str) -> bool;
    /// The per-file diff from tree `a` to tree `b`, with 3 lines of
    /// context, 12-digit abbreviations and the indent heuristic, as
    /// `format-patch` produces it.
    fn diff(&self, a: &str, b: &str) -> Result<Vec<FileDiff>>;
}

/// [`Repo`] over a libgit2 repository.
pub struct GitRepo {
    repo: git2::Repository,
}

impl std::fmt::Debug for GitRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitRepo")
            .field("path", &self.repo.path())
            .finish()
    }
}

fn oid(s: &str) -> Result<git2::Oid> {
    git2::Oid::from_str(s).map_err(ctx(format!("parse object id {s}")))
}

impl GitRepo {
    /// Opens an existing repository (bare or not).
    pub fn open(path: &Path) -> Result<GitRepo> {
        let repo = git2::Repository::open(path).map_err(ctx(format!("open {}", path.display())))?;
        Ok(GitRepo { repo })
    }

    /// Creates a bare repository.
    pub fn init_bare(path: &Path) -> Result<GitRepo> {
        let repo =
            git2::Repository::init_bare(path).map_err(ctx(format!("init {}", path.display())))?;
        Ok(GitRepo { repo })
    }

    /// The underlying libgit2 repository, for the few callers that need
    /// more than the trait (the base import writes objects in bulk).
    pub(crate) fn raw(&self) -> &git2::Repository {
        &self.repo
    }

    /// Path of the git directory.
    pub fn git_dir(&self) -> &Path {
        self.repo.path()
    }

    /// Resolves a ref name or id to a commit id.
    pub fn resolve(&self, spec: &str) -> Result<String> {
        let obj = self
            .repo
            .revparse_single(spec)
            .map_err(ctx(format!("resolve {spec}")))?;
        let c = obj.peel_to_commit().map_err(ctx(format!("peel {spec}")))?;
        Ok(c.id().to_string())
    }

    /// Lists the first-parent chain from `tip` back to (excluding) `base`.
    pub fn chain(&self, base: &str, tip: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut cur = oid(tip)?;
        let stop = oid(base)?;
        while cur != stop {
            out.push(cur.to_string());
            let c = self.repo.find_commit(cur).map_err(ctx("walk commits"))?;
            cur = c
                .parent_id(0)
                .map_err(ctx(format!("{cur} does not descend from {base}")))?;
        }
        out.reverse();
        Ok(out)
    }

    /// The full message of commit `id`.
    pub fn message(&self, id: &str) -> Result<String> {
        let c = self
            .repo
            .find_commit(oid(id)?)
            .map_err(ctx("find commit"))?;
        Ok(String::from_utf8_lossy(c.message_bytes()).into_owned())
    }
}

fn signature(who: &Ident) -> Result<git2::Signature<'static>> {
    let t = git2::Time::new(who.time.seconds, who.time.offset_minutes);
    git2::Signature::new(&who.name, &who.email, &t).map_err(ctx("make signature"))
}

impl Repo for GitRepo {
    fn read_path(&self, tree: &str, path: &str) -> Result<Option<(Vec<u8>, u32)>> {
        let tree = self.repo.find_tree(oid(tree)?).map_err(ctx("find tree"))?;
        let entry = match tree.get_path(Path::new(path)) {
            Ok(e) => e,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(ctx(format!("look up {path}"))(e)),
        };
        let mode = entry.filemode() as u32;
        let obj = entry
            .to_object(&self.repo)
            .map_err(ctx(format!("read {path}")))?;
        match obj.as_blob() {
            Some(b) => Ok(Some((b.content().to_vec(), mode))),
            None => Ok(None),
        }
    }

    fn edit_tree(&self, tree: &str, edits: &[TreeEdit]) -> Result<String> {
        let base = self.repo.find_tree(oid(tree)?).map_err(ctx("find tree"))?;
        let mut b = git2::build::TreeUpdateBuilder::new();
        for e in edits {
            match e {
                TreeEdit::Upsert(path, data, mode) => {
                    let id = self.repo.blob(data).map_err(ctx(format!("write {path}")))?;
                    let mode = match mode {
                        0o100755 => git2::FileMode::BlobExecutable,
                        0o120000 => git2::FileMode::Link,
                        _ => git2::FileMode::Blob,
                    };
                    b.upsert(path.as_str(), id, mode);
                }
                TreeEdit::Remove(path) => {
                    b.remove(path.as_str());
                }
            }
        }
        let id = b
            .create_updated(&self.repo, &base)
            .map_err(ctx("write tree"))?;
        Ok(id.to_string())
    }

    fn commit(&self, tree: &str, parent: Option<&str>, who: &Ident, msg: &str) -> Result<String> {
        let sig = signature(who)?;
        let tree = self.repo.find_tree(oid(tree)?).map_err(ctx("find tree"))?;
        let parents = match parent {
            Some(p) => vec![self.repo.find_commit(oid(p)?).map_err(ctx("find parent"))?],
            None => vec![],
        };
        let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let id = self
            .repo
            .commit(None, &sig, &sig, msg, &tree, &refs)
            .map_err(ctx("write commit"))?;
        Ok(id.to_string())
    }

    fn set_ref(&self, refname: &str, id: &str) -> Result<()> {
        let id = oid(id)?;
        // Another kmm (a parallel test, a second terminal) may hold the
        // ref's lock for a moment; a lock that stays is a killed git's.
        let mut tries = 0;
        loop {
            match self.repo.reference(refname, id, true, "kmm") {
                Ok(_) => return Ok(()),
                Err(e) if e.code() == git2::ErrorCode::Locked && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) if e.code() == git2::ErrorCode::Locked => {
                    let lock = self.repo.path().join(format!("{refname}.lock"));
                    return Err(ctx(format!(
                        "update {refname} (locked for 2 s; if no other kmm or git runs, \
                         remove {})",
                        lock.display()
                    ))(e));
                }
                Err(e) => return Err(ctx(format!("update {refname}"))(e)),
            }
        }
    }

    fn tree_of(&self, commit: &str) -> Result<String> {
        let c = self
            .repo
            .find_commit(oid(commit)?)
            .map_err(ctx(format!("find commit {commit}")))?;
        Ok(c.tree_id().to_string())
    }

    fn has(&self, id: &str) -> bool {
        match (git2::Oid::from_str(id), self.repo.odb()) {
            (Ok(o), Ok(odb)) => odb.exists(o),
            _ => false,
        }
    }

    fn diff(&self, a: &str, b: &str) -> Result<Vec<FileDiff>> {
        let ta = self.repo.find_tree(oid(a)?).map_err(ctx("find tree"))?;
        let tb = self.repo.find_tree(oid(b)?).map_err(ctx("find tree"))?;
        let mut opts = git2::DiffOptions::new();
        opts.context_lines(3)
            .id_abbrev(12)
            .indent_heuristic(true)
            .interhunk_lines(0);
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&ta), Some(&tb), Some(&mut opts))
            .map_err(ctx("diff trees"))?;
        let mut out = Vec::new();
        for i in 0..diff.deltas().len() {
            let Some(mut patch) = git2::Patch::from_diff(&diff, i).map_err(ctx("make patch"))?
            else {
                continue;
            };
            let delta = patch.delta();
            let path = delta
                .new_file()
                .path()
                .or_else(|| delta.old_file().path())
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mode = |f: git2::DiffFile<'_>| match f.mode() {
                git2::FileMode::Unreadable => 0,
                m => u32::try_from(i32::from(m)).unwrap_or(0),
            };
            let old_mode = mode(delta.old_file());
            let new_mode = mode(delta.new_file());
            let binary = delta.flags().is_binary();
            let (_, added, deleted) = patch.line_stats().map_err(ctx("count lines"))?;
            let buf = patch.to_buf().map_err(ctx("print patch"))?;
            out.push(FileDiff {
                path,
                old_mode,
                new_mode,
                added,
                deleted,
                binary,
                patch: String::from_utf8_lossy(&buf).into_owned(),
            });
        }
        Ok(out)
    }
}
