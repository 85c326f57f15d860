//! Generates the kvm_mm patch series from `patches/series.toml`.
//!
//! The pipeline: [`base::provide`] imports Debian's `linux-source-6.1`
//! tarball into a cached bare repository as one reproducible commit;
//! [`generate::build_commits`] applies each commit's operations (add a
//! repo file, apply a diff fragment, move C items with `kmm-csym`) on top
//! of it with libgit2; [`generate::render`] prints the commits as
//! `git format-patch --cover-letter --base` does; [`check`] proves the
//! result with the real `git am` and `checkpatch.pl`. With `[mail]`,
//! [`maintainers`] addresses each mail with the base tree's
//! `get_maintainer.pl`; from v2 on, [`reroll`] rebuilds the previous,
//! frozen version from its mails for the cover letter's range-diff, and
//! [`sent`] holds what `kmm send` recorded.
//!
//! ```no_run
//! use std::path::Path;
//! let m = kmm_series::manifest::load(Path::new("patches/series.toml"), Path::new("."))?;
//! let base = kmm_series::base::provide(&m.base, &kmm_series::base::default_cache_dir())?;
//! let (commits, files) = kmm_series::generate(&m, &base)?;
//! println!("{} commits, {} files", commits.len(), files.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod base;
pub mod check;
pub mod fragment;
pub mod generate;
pub mod mail;
pub mod maintainers;
pub mod manifest;
pub mod repo;
pub mod reroll;
pub mod sent;

use std::path::Path;

use base::Base;
use generate::{GenCommit, GenError, PatchFile};
use manifest::Manifest;
use repo::GitError;

/// Builds the commits and renders the patch files, without writing them.
///
/// A re-roll (version 2 and up) rebuilds the previous version from its
/// frozen `patches/vN` for the cover letter's range-diff.
pub fn generate(m: &Manifest, base: &Base) -> Result<(Vec<GenCommit>, Vec<PatchFile>), GenError> {
    let commits = generate::build_commits(m, &base.repo, &base.commit)?;
    let history = reroll::history(m, base, &commits)?;
    let files = generate::render_with(m, &base.repo, &base.commit, &commits, &history)?;
    Ok((commits, files))
}

/// A commit of one version of the series, as `kmm ci` runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionCommit {
    /// `0000-base`, or the patch's file name without `.patch`
    /// (`0009-KVM-Walk-the-gfn_to_pfn-caches-only-for-ranges-in-gu`).
    pub label: String,
    /// Commit id.
    pub id: String,
    /// The paths its diff against its parent touches (none for the base).
    pub paths: Vec<String>,
}

/// The base and the commits of version `v`: the current version is
/// generated from series.toml, an older one rebuilt from its frozen
/// `patches/vN` ([`reroll::rebuild`], on the base its cover letter names)
/// and labelled by its mails' file names. Each commit comes with the
/// paths its diff touches.
pub fn version_commits(m: &Manifest, base: &Base, v: u32) -> Result<Vec<VersionCommit>, GenError> {
    let (base_id, named): (String, Vec<(String, String)>) = if v == m.version {
        let commits = generate::build_commits(m, &base.repo, &base.commit)?;
        let named = commits
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let name = generate::patch_file_name(i + 1, &c.subject);
                (name.trim_end_matches(".patch").to_string(), c.id.clone())
            })
            .collect();
        (base.commit.clone(), named)
    } else {
        let prev = reroll::rebuild(m, base, v)?;
        let files = generate::read_dir(&m.version_dir(v))?;
        let named = files
            .iter()
            .filter(|f| f.name != "0000-cover-letter.patch")
            .map(|f| f.name.trim_end_matches(".patch").to_string())
            .zip(prev.commits)
            .collect();
        (prev.base, named)
    };
    let mut parent_tree = repo::Repo::tree_of(&base.repo, &base_id)?;
    let mut out = vec![VersionCommit {
        label: "0000-base".into(),
        id: base_id,
        paths: Vec::new(),
    }];
    for (label, id) in named {
        let tree = repo::Repo::tree_of(&base.repo, &id)?;
        let paths = repo::Repo::diff(&base.repo, &parent_tree, &tree)?
            .into_iter()
            .map(|d| d.path)
            .collect();
        out.push(VersionCommit { label, id, paths });
        parent_tree = tree;
    }
    Ok(out)
}

/// What `apply` did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The branch created or moved in the target.
    pub branch: String,
    /// The tip commit.
    pub tip: String,
    /// Whether the target was created (and the branch checked out).
    pub created: bool,
}

/// Materializes the series' branch in a kernel git worktree at `dir`.
///
/// A missing `dir` becomes a new repository with the branch checked out;
/// an existing repository gets the branch (`kmm/vN`) fetched and pointed at
/// the tip, without touching its checkout.
pub fn apply(m: &Manifest, base: &Base, dir: &Path) -> Result<Applied, GitError> {
    let ctx = |what: &str| {
        let what = what.to_string();
        move |source| GitError { what, source }
    };
    let created = !dir.exists();
    let target = if created {
        git2::Repository::init(dir).map_err(ctx("create target repository"))?
    } else {
        git2::Repository::open(dir).map_err(ctx("open target repository"))?
    };
    let src = base.repo.git_dir().to_string_lossy().into_owned();
    let branch = m.branch();
    let mut remote = target
        .remote_anonymous(&src)
        .map_err(ctx("add cache remote"))?;
    let refspec = format!("+{branch}:{branch}");
    remote
        .fetch(&[refspec.as_str()], None, None)
        .map_err(ctx("fetch the series from the cache"))?;
    let tip = target
        .refname_to_id(&branch)
        .map_err(ctx("read the fetched branch"))?;
    if created {
        let obj = target.find_object(tip, None).map_err(ctx("find tip"))?;
        let mut co = git2::build::CheckoutBuilder::new();
        co.force();
        target
            .checkout_tree(&obj, Some(&mut co))
            .map_err(ctx("check out the series"))?;
        target.set_head(&branch).map_err(ctx("set HEAD"))?;
    }
    Ok(Applied {
        branch,
        tip: tip.to_string(),
        created,
    })
}
