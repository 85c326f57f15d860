//! The base tree: Debian's `linux-source-6.1` tarball imported into a cached
//! bare repository as one commit with fixed metadata, so that its id is the
//! same on every machine.
//!
//! The import writes into a temporary directory beside the cache and renames
//! it into place only when the commit's tree matches the pinned tree id, so an
//! interrupted or failed import leaves nothing behind that a later run could
//! mistake for a good cache.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::mail::Timestamp;
use crate::repo::{GitRepo, Ident, Repo};

/// What the base is and how to check it, from `[base]` in series.toml.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSpec {
    /// Debian package that ships the tarball.
    pub package: String,
    /// Debian version of that package the pins were taken from.
    pub version: String,
    /// Path of the tarball.
    pub tarball: PathBuf,
    /// sha256 of the tarball.
    pub sha256: String,
    /// Commit id of the imported base (fixed metadata makes it stable).
    pub commit: String,
    /// Tree id of the imported base.
    pub tree: String,
}

impl BaseSpec {
    /// The base commit's title: package and version.
    pub fn title(&self) -> String {
        format!("{} {}", self.package, self.version)
    }
}

/// What can go wrong while providing the base.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    /// The tarball is not there.
    #[error(
        "{path}: no such file; install it with `apt-get install {package}` \
         (after `apt-get update`)"
    )]
    Missing {
        /// Tarball path.
        path: PathBuf,
        /// Package to install.
        package: String,
    },
    /// The tarball's hash is not the pinned one.
    #[error(
        "{path}: sha256 is {actual}, series.toml pins {expected} ({package} {version}); \
         install that version or update [base] in patches/series.toml"
    )]
    WrongHash {
        /// Tarball path.
        path: PathBuf,
        /// Hash found.
        actual: String,
        /// Hash pinned.
        expected: String,
        /// Package.
        package: String,
        /// Version pinned.
        version: String,
    },
    /// The import produced another tree than the pinned one.
    #[error(
        "importing {path} gave tree {actual}, series.toml pins {expected}; \
         the tarball's contents differ from the pinned base"
    )]
    WrongTree {
        /// Tarball path.
        path: PathBuf,
        /// Tree produced.
        actual: String,
        /// Tree pinned.
        expected: String,
    },
    /// The cache exists but does not hold the pinned commit.
    #[error(
        "{}: the cached base repository is damaged or stale ({detail}); \
         remove it with `rm -rf {}` and run `kmm base` to import the tarball again",
        cache.display(),
        cache.display()
    )]
    CorruptCache {
        /// Cache path.
        cache: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// Reading the tarball failed.
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
    /// A git operation failed.
    #[error(transparent)]
    Git(#[from] crate::repo::GitError),
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, BaseError>;

/// Fixed identity and time of the base commit. Changing any of these
/// changes the pinned commit id.
pub fn base_ident() -> Ident {
    Ident {
        name: "kmm base import".into(),
        email: "kmm@kvm-mm.invalid".into(),
        // The Debian 6.1.192-2 upload is from 2026; the date is a constant,
        // not the import time, so that the commit id is reproducible.
        time: Timestamp {
            seconds: 1_735_689_600,
            offset_minutes: 0,
        },
    }
}

/// The default cache directory: `$XDG_CACHE_HOME/kmm` or `~/.cache/kmm`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KMM_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("kmm");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache").join("kmm")
}

/// Computes the sha256 of a file, hex encoded.
pub fn sha256_file(path: &Path) -> Result<String> {
    let io = |what| {
        move |source| BaseError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let mut f = File::open(path).map_err(io("open"))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io("read"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Statistics of one import, for the user.
#[derive(Debug, Clone, Default)]
pub struct ImportStats {
    /// Files (blobs) written.
    pub files: usize,
    /// Bytes of file content.
    pub bytes: u64,
}

/// The provided base: its repository and ids.
#[derive(Debug)]
pub struct Base {
    /// The cache repository.
    pub repo: GitRepo,
    /// Base commit id.
    pub commit: String,
    /// Base tree id.
    pub tree: String,
    /// Set when this call imported the tarball (a cold cache).
    pub imported: Option<ImportStats>,
}

/// Path of the cached bare repository for a base.
pub fn cache_repo_path(cache_dir: &Path, spec: &BaseSpec) -> PathBuf {
    cache_dir.join(format!("{}-{}.git", spec.package, spec.version))
}

/// Opens the cached base, importing the tarball first when there is no cache.
pub fn provide(spec: &BaseSpec, cache_dir: &Path) -> Result<Base> {
    let path = cache_repo_path(cache_dir, spec);
    if path.exists() {
        return open_cached(spec, &path);
    }
    if !spec.tarball.exists() {
        return Err(BaseError::Missing {
            path: spec.tarball.clone(),
            package: spec.package.clone(),
        });
    }
    let actual = sha256_file(&spec.tarball)?;
    if actual != spec.sha256 {
        return Err(BaseError::WrongHash {
            path: spec.tarball.clone(),
            actual,
            expected: spec.sha256.clone(),
            package: spec.package.clone(),
            version: spec.version.clone(),
        });
    }
    std::fs::create_dir_all(cache_dir).map_err(|source| BaseError::Io {
        path: cache_dir.to_path_buf(),
        what: "create cache directory",
        source,
    })?;
    let tmp =
        kmm_scratch::Scratch::new_in(cache_dir, "import").map_err(|source| BaseError::Io {
            path: cache_dir.to_path_buf(),
            what: "create temporary directory",
            source,
        })?;
    let (commit, tree, stats) = import_into(&spec.tarball, tmp.path(), &spec.title())?;
    if tree != spec.tree {
        return Err(BaseError::WrongTree {
            path: spec.tarball.clone(),
            actual: tree,
            expected: spec.tree.clone(),
        });
    }
    if commit != spec.commit {
        return Err(BaseError::CorruptCache {
            cache: path,
            detail: format!(
                "import made commit {commit}, series.toml pins {}",
                spec.commit
            ),
        });
    }
    match std::fs::rename(tmp.path(), &path) {
        Ok(()) => {
            // Renamed away: nothing is left for the guard to delete.
            tmp.keep();
            let mut base = open_cached(spec, &path)?;
            base.imported = Some(stats);
            Ok(base)
        }
        // Another kmm (a parallel test, a second terminal) imported the
        // same tarball first: its cache is as good as ours once verified,
        // and the guard deletes our copy.
        Err(_) if path.is_dir() => open_cached(spec, &path),
        Err(source) => Err(BaseError::Io {
            path: path.clone(),
            what: "move the imported repository into place",
            source,
        }),
    }
}

/// How much of the cached base [`verify`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Every tree of the pinned commit and one blob in [`BLOB_SAMPLE`].
    Trees,
    /// Every tree and every blob, each hashed as it is read.
    Full,
}

/// [`Depth::Trees`] reads one blob in this many.
pub const BLOB_SAMPLE: usize = 64;

/// What [`verify`] read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verified {
    /// Trees read.
    pub trees: usize,
    /// Blobs in the trees.
    pub blobs: usize,
    /// Blobs read (and hashed by libgit2's strict verification).
    pub blobs_read: usize,
}

/// Reads the objects the pinned tree needs from the cache, so that a
/// damaged cache is reported here, in the base's terms, and not as a raw
/// libgit2 error in the middle of a generate.
pub fn verify(b: &Base, depth: Depth) -> Result<Verified> {
    let corrupt = |detail: String| BaseError::CorruptCache {
        cache: b.repo.git_dir().to_path_buf(),
        detail,
    };
    let raw = b.repo.raw();
    let odb = raw.odb().map_err(|e| corrupt(e.message().to_string()))?;
    let mut v = Verified::default();
    let root = git2::Oid::from_str(&b.tree).map_err(|e| corrupt(e.message().to_string()))?;
    let mut stack = vec![(String::new(), root)];
    while let Some((path, id)) = stack.pop() {
        let tree = raw.find_tree(id).map_err(|e| {
            corrupt(format!(
                "tree {id} of {} cannot be read: {}",
                if path.is_empty() { "/" } else { &path },
                e.message()
            ))
        })?;
        v.trees += 1;
        for entry in tree.iter() {
            let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
            let p = if path.is_empty() {
                name
            } else {
                format!("{path}/{name}")
            };
            match entry.kind() {
                Some(git2::ObjectType::Tree) => stack.push((p, entry.id())),
                Some(git2::ObjectType::Blob) => {
                    v.blobs += 1;
                    if depth == Depth::Full || v.blobs % BLOB_SAMPLE == 1 {
                        odb.read(entry.id()).map_err(|e| {
                            corrupt(format!(
                                "blob {} of {p} cannot be read: {}",
                                entry.id(),
                                e.message()
                            ))
                        })?;
                        v.blobs_read += 1;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(v)
}

fn open_cached(spec: &BaseSpec, path: &Path) -> Result<Base> {
    let corrupt = |detail: String| BaseError::CorruptCache {
        cache: path.to_path_buf(),
        detail,
    };
    let repo = GitRepo::open(path).map_err(|e| corrupt(e.to_string()))?;
    if !repo.has(&spec.commit) {
        return Err(corrupt(format!("commit {} is missing", spec.commit)));
    }
    let tree = repo
        .tree_of(&spec.commit)
        .map_err(|e| corrupt(e.to_string()))?;
    if tree != spec.tree {
        return Err(corrupt(format!(
            "commit has tree {tree}, expected {}",
            spec.tree
        )));
    }
    Ok(Base {
        repo,
        commit: spec.commit.clone(),
        tree,
        imported: None,
    })
}

/// A directory being assembled from tarball entries.
#[derive(Default)]
struct Dir {
    entries: BTreeMap<Vec<u8>, Node>,
}

enum Node {
    Blob(git2::Oid, git2::FileMode),
    Dir(Dir),
}

impl Dir {
    fn insert(&mut self, path: &[&[u8]], node: Node) {
        match path {
            [] => {}
            [name] => {
                self.entries.insert(name.to_vec(), node);
            }
            [first, rest @ ..] => {
                let child = self
                    .entries
                    .entry(first.to_vec())
                    .or_insert_with(|| Node::Dir(Dir::default()));
                if let Node::Dir(d) = child {
                    d.insert(rest, node);
                }
            }
        }
    }

    fn write(
        &self,
        repo: &git2::Repository,
    ) -> std::result::Result<Option<git2::Oid>, git2::Error> {
        let mut tb = repo.treebuilder(None)?;
        for (name, node) in &self.entries {
            let name = String::from_utf8_lossy(name);
            match node {
                Node::Blob(id, mode) => {
                    tb.insert(name.as_ref(), *id, i32::from(*mode))?;
                }
                Node::Dir(d) => {
                    if let Some(id) = d.write(repo)? {
                        tb.insert(name.as_ref(), id, i32::from(git2::FileMode::Tree))?;
                    }
                }
            }
        }
        if tb.is_empty() {
            return Ok(None);
        }
        tb.write().map(Some)
    }
}

/// Imports a `.tar.xz` into a new bare repository at `dest` as one commit on
/// `refs/heads/base`, stripping the tarball's top-level directory. Returns
/// the commit id, the tree id and statistics.
pub fn import_into(
    tarball: &Path,
    dest: &Path,
    title: &str,
) -> Result<(String, String, ImportStats)> {
    let io = |what| {
        move |source| BaseError::Io {
            path: tarball.to_path_buf(),
            what,
            source,
        }
    };
    let repo = GitRepo::init_bare(dest)?;
    let raw = repo.raw();
    let gerr = |what: &str| {
        let what = what.to_string();
        move |source| BaseError::Git(crate::repo::GitError { what, source })
    };
    let file = File::open(tarball).map_err(io("open"))?;
    let xz = xz2::read::XzDecoder::new_multi_decoder(BufReader::with_capacity(1 << 20, file));
    let mut archive = tar::Archive::new(xz);
    let mut root = Dir::default();
    let mut stats = ImportStats::default();
    // Hard links refer to earlier entries by their path in the archive.
    let mut by_path: BTreeMap<Vec<u8>, (git2::Oid, git2::FileMode)> = BTreeMap::new();
    let mut buf = Vec::new();
    for entry in archive.entries().map_err(io("read archive"))? {
        let mut entry = entry.map_err(io("read archive entry"))?;
        let full = entry.path_bytes().into_owned();
        let rel: Vec<&[u8]> = full
            .split(|b| *b == b'/')
            .skip(1)
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        if rel.is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        let node = if kind.is_file() {
            buf.clear();
            entry
                .read_to_end(&mut buf)
                .map_err(io("read file from archive"))?;
            let mode = entry.header().mode().map_err(io("read file mode"))?;
            let mode = if mode & 0o111 != 0 {
                git2::FileMode::BlobExecutable
            } else {
                git2::FileMode::Blob
            };
            let id = raw.blob(&buf).map_err(gerr("write blob"))?;
            stats.files += 1;
            stats.bytes += buf.len() as u64;
            (id, mode)
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let id = raw.blob(&target).map_err(gerr("write symlink"))?;
            (id, git2::FileMode::Link)
        } else if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            match by_path.get(&target) {
                Some(n) => *n,
                None => continue,
            }
        } else {
            continue;
        };
        by_path.insert(full.clone(), node);
        root.insert(&rel, Node::Blob(node.0, node.1));
    }
    let tree = root
        .write(raw)
        .map_err(gerr("write trees"))?
        .ok_or_else(|| BaseError::Io {
            path: tarball.to_path_buf(),
            what: "import",
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "the archive is empty"),
        })?
        .to_string();
    let commit = repo.commit(
        &tree,
        None,
        &base_ident(),
        &format!(
            "Import {title}\n\nImported by kmm with fixed metadata so that the commit id is\nreproducible on every machine.\n"
        ),
    )?;
    repo.set_ref("refs/heads/base", &commit)?;
    Ok((commit, tree, stats))
}
