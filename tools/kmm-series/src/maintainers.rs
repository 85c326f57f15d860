//! To: and Cc: of every patch: the base tree's `scripts/get_maintainer.pl`
//! run on the patch, plus the additions and removals of `[mail]` and of the
//! commit in series.toml. The cover letter gets the union.
//!
//! `get_maintainer.pl` runs offline and deterministically: kmm extracts
//! only `MAINTAINERS`, `.mailmap` and the script from the base tree into a
//! scratch directory (which is also `$HOME`, so no user
//! `.get_maintainer.conf` or `.get_maintainer.ignore` is read) and runs it
//! there with [`GET_MAINTAINER_ARGS`]: `--no-tree` (the scratch directory
//! is not a whole tree), `--no-git --no-git-fallback` (no signers from the
//! commit history, which is local and slow), `--no-fixes` (no history
//! look-ups of `Fixes:` commits) and `--no-rolestats` (bare addresses).
//! To: is the maintainers (`--no-l --no-r`), Cc: the reviewers and lists
//! (`--no-m`), less anyone already in To:.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::manifest::{Address, CommitSpec, MailSpec, Manifest, ManifestError};
use crate::repo::{GitError, Repo};

/// What can go wrong while preparing or running `get_maintainer.pl`.
#[derive(Debug, thiserror::Error)]
pub enum MaintainersError {
    /// `[mail]` asks for the script, but the base tree lacks it.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Reading the script or `MAINTAINERS` from the base tree failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The script failed or printed something that is not an address.
    #[error("scripts/get_maintainer.pl: {0}")]
    Tool(String),
    /// Writing the scratch copy failed.
    #[error("{path}: {what}: {source}")]
    Io {
        /// File involved.
        path: std::path::PathBuf,
        /// What kmm was doing.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The flags every `get_maintainer.pl` run gets (see the module docs).
pub const GET_MAINTAINER_ARGS: [&str; 5] = [
    "--no-tree",
    "--no-git",
    "--no-git-fallback",
    "--no-fixes",
    "--no-rolestats",
];
/// The extra flags of the To: run: maintainers only.
pub const TO_ARGS: [&str; 2] = ["--no-l", "--no-r"];
/// The extra flag of the Cc: run: reviewers and lists.
pub const CC_ARGS: [&str; 1] = ["--no-m"];

/// The files of the base tree `get_maintainer.pl` needs, and whether each
/// is required.
const FILES: [(&str, bool); 3] = [
    ("scripts/get_maintainer.pl", true),
    ("MAINTAINERS", true),
    (".mailmap", false),
];

/// Who a mail is addressed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    /// The To: addresses, in order.
    pub to: Vec<Address>,
    /// The Cc: addresses, in order, none of them also in `to`.
    pub cc: Vec<Address>,
}

impl Recipients {
    /// De-duplicates (by address, first wins), drops `remove`, and drops
    /// from Cc: whoever is in To:.
    fn finish(to: Vec<Address>, cc: Vec<Address>, remove: &[Address]) -> Recipients {
        let mut seen: BTreeSet<String> = remove.iter().map(Address::key).collect();
        let mut keep = |a: &Address| seen.insert(a.key());
        let to: Vec<Address> = to.into_iter().filter(|a| keep(a)).collect();
        let cc: Vec<Address> = cc.into_iter().filter(|a| keep(a)).collect();
        Recipients { to, cc }
    }

    /// The union of several patches' recipients, for the cover letter.
    pub fn union(all: &[Recipients]) -> Recipients {
        let to = all.iter().flat_map(|r| r.to.iter().cloned()).collect();
        let cc = all.iter().flat_map(|r| r.cc.iter().cloned()).collect();
        Recipients::finish(to, cc, &[])
    }
}

/// `get_maintainer.pl` and its data, extracted from the base tree into a
/// scratch directory that is removed on drop.
#[derive(Debug)]
pub struct GetMaintainer {
    dir: kmm_scratch::Scratch,
}

impl GetMaintainer {
    /// Extracts the script, `MAINTAINERS` and `.mailmap` from `tree`;
    /// `Ok(None)` when the tree has no `get_maintainer.pl` or no
    /// `MAINTAINERS`.
    pub fn extract(repo: &dyn Repo, tree: &str) -> Result<Option<GetMaintainer>, MaintainersError> {
        let dir =
            kmm_scratch::Scratch::new("get_maintainer").map_err(|source| MaintainersError::Io {
                path: std::env::temp_dir(),
                what: "create a scratch directory",
                source,
            })?;
        for (path, required) in FILES {
            let Some((data, _)) = repo.read_path(tree, path)? else {
                if required {
                    return Ok(None);
                }
                continue;
            };
            let p = dir.path().join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|source| MaintainersError::Io {
                    path: parent.to_path_buf(),
                    what: "create directory",
                    source,
                })?;
            }
            std::fs::write(&p, data).map_err(|source| MaintainersError::Io {
                path: p.clone(),
                what: "write",
                source,
            })?;
        }
        Ok(Some(GetMaintainer { dir }))
    }

    /// Runs the script on one patch with the flags of one role.
    fn run(&self, patch: &Path, role: &[&str]) -> Result<Vec<Address>, MaintainersError> {
        let out = Command::new("perl")
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .arg("scripts/get_maintainer.pl")
            .args(GET_MAINTAINER_ARGS)
            .args(role)
            .arg(patch)
            .output()
            .map_err(|e| MaintainersError::Tool(format!("cannot run perl: {e}; install perl")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(MaintainersError::Tool(format!(
                "exited with {}: {}",
                out.status,
                err.lines().last().unwrap_or("").trim()
            )));
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                Address::parse(l).ok_or_else(|| {
                    MaintainersError::Tool(format!("printed {l:?}, which is not an address"))
                })
            })
            .collect()
    }

    /// The maintainers (To:) and reviewers and lists (Cc:) of a patch.
    pub fn recipients(&self, name: &str, patch_text: &str) -> Result<Recipients, MaintainersError> {
        let p = self.dir.path().join(name);
        std::fs::write(&p, patch_text).map_err(|source| MaintainersError::Io {
            path: p.clone(),
            what: "write",
            source,
        })?;
        let to = self.run(&p, &TO_ARGS)?;
        let cc = self.run(&p, &CC_ARGS)?;
        Ok(Recipients::finish(to, cc, &[]))
    }
}

/// Prepares `get_maintainer.pl` for a manifest: `None` when `[mail]` is
/// absent or says `get_maintainer = false`.
pub fn prepare(
    m: &Manifest,
    repo: &dyn Repo,
    base_tree: &str,
) -> Result<Option<GetMaintainer>, MaintainersError> {
    let Some(mail) = m.mail.as_ref().filter(|mail| mail.get_maintainer) else {
        return Ok(None);
    };
    match GetMaintainer::extract(repo, base_tree)? {
        Some(gm) => Ok(Some(gm)),
        None => Err(ManifestError {
            file: m.path.clone(),
            line: mail.line,
            message: "the base tree has no scripts/get_maintainer.pl or MAINTAINERS; \
                      set get_maintainer = false in [mail] and list the addresses"
                .into(),
        }
        .into()),
    }
}

/// One patch's recipients: what `get_maintainer.pl` found (if it runs),
/// then `[mail]`'s and the commit's additions, less `[mail] remove`.
pub fn for_patch(mail: &MailSpec, found: Recipients, commit: Option<&CommitSpec>) -> Recipients {
    let mut to = found.to;
    let mut cc = found.cc;
    to.extend(mail.to.iter().cloned());
    cc.extend(mail.cc.iter().cloned());
    if let Some(c) = commit {
        to.extend(c.to.iter().cloned());
        cc.extend(c.cc.iter().cloned());
    }
    Recipients::finish(to, cc, &mail.remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[test]
    fn merges_dedups_and_removes() {
        let mail = MailSpec {
            get_maintainer: true,
            to: vec![a("Extra To <extra@example.org>")],
            cc: vec![a("list@example.org"), a("PB <PBonzini@redhat.com>")],
            remove: vec![a("linux-kernel@vger.kernel.org")],
            line: 1,
        };
        let found = Recipients {
            to: vec![a("Paolo Bonzini <pbonzini@redhat.com>")],
            cc: vec![a("kvm@vger.kernel.org"), a("linux-kernel@vger.kernel.org")],
        };
        let r = for_patch(&mail, found, None);
        let show = |v: &[Address]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            show(&r.to),
            [
                "Paolo Bonzini <pbonzini@redhat.com>",
                "Extra To <extra@example.org>"
            ]
        );
        assert_eq!(show(&r.cc), ["kvm@vger.kernel.org", "list@example.org"]);
        let other = Recipients {
            to: vec![a("kvm@vger.kernel.org")],
            cc: vec![a("x@example.org")],
        };
        let u = Recipients::union(&[r, other]);
        assert_eq!(
            show(&u.to),
            [
                "Paolo Bonzini <pbonzini@redhat.com>",
                "Extra To <extra@example.org>",
                "kvm@vger.kernel.org"
            ]
        );
        assert_eq!(show(&u.cc), ["list@example.org", "x@example.org"]);
    }
}
