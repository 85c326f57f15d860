//! `kmm series check`: the series on disk is what the sources generate, it
//! applies with the real `git am` to the same commits, and every patch is
//! `checkpatch.pl --strict` clean with a proper subject and Signed-off-by.

use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::{Duration, Instant};

use crate::base::Base;
use crate::generate::{self, GenCommit, GenError, PatchFile};
use crate::manifest::{check_subject, Manifest};

/// One problem found by a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Which check: `stale`, `git-am`, `checkpatch`, `subject`, `signoff`,
    /// `changelog`.
    pub check: &'static str,
    /// The patch file concerned, if any.
    pub file: Option<String>,
    /// What is wrong (may span lines, e.g. a diff).
    pub message: String,
}

/// What can stop a check from running at all (as opposed to findings).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A tool could not be started.
    #[error("cannot run {tool}: {source}; install it (see README.md)")]
    Spawn {
        /// The tool.
        tool: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Generating the series failed.
    #[error(transparent)]
    Generate(#[from] GenError),
    /// A scratch file could not be written.
    #[error("cannot write scratch file {path}: {source}")]
    Scratch {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A setup step failed.
    #[error("{what} failed: {detail}")]
    Setup {
        /// The step.
        what: String,
        /// Its output.
        detail: String,
    },
}

/// The outcome of [`run`].
#[derive(Debug, Clone)]
pub struct Report {
    /// Problems found; empty when the series is good.
    pub findings: Vec<Finding>,
    /// Number of patches checked.
    pub patches: usize,
    /// Wall time of each step, in order.
    pub timings: Vec<(&'static str, Duration)>,
}

/// Runs every check of `kmm series check`: a fresh generation against
/// patches/vN on disk, subjects and Signed-off-by, `git am` onto the base
/// in a temporary worktree (trees and commit ids must match the
/// generator's), and the base tree's `checkpatch.pl --strict`.
///
/// `git am` and checkpatch run on the freshly generated text, so they
/// check what `generate` would write even when patches/ is stale.
pub fn run(m: &Manifest, b: &Base) -> Result<Report, CheckError> {
    let mut timings = Vec::new();
    let t = Instant::now();
    let (commits, files) = crate::generate(m, b)?;
    let dir = m.out_dir();
    let on_disk = generate::read_dir(&dir).unwrap_or_default();
    let mut findings = stale(&dir, &files, &on_disk);
    findings.extend(headers(m, &files));
    findings.extend(changelog(m));
    timings.push(("generate", t.elapsed()));

    let scratch = kmm_scratch::Scratch::new("check").map_err(|source| CheckError::Scratch {
        path: std::env::temp_dir(),
        source,
    })?;
    let mut patches = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let p = scratch.path().join(&f.name);
        std::fs::write(&p, &f.text).map_err(|source| CheckError::Scratch {
            path: p.clone(),
            source,
        })?;
        if i > 0 {
            patches.push((i, p));
        }
    }
    let paths: Vec<PathBuf> = patches.iter().map(|p| p.1.clone()).collect();
    let t = Instant::now();
    let wt = Worktree::add(b.repo.git_dir(), &b.commit)?;
    timings.push(("worktree", t.elapsed()));
    let t = Instant::now();
    findings.extend(git_am(m, &wt, &paths, &commits)?);
    timings.push(("git am", t.elapsed()));
    let t = Instant::now();
    findings.extend(checkpatch(m, wt.path(), &patches)?);
    timings.push(("checkpatch", t.elapsed()));
    Ok(Report {
        findings,
        patches: commits.len(),
        timings,
    })
}

/// Compares generated files with those on disk and returns one finding per
/// difference, with a unified diff of the contents.
pub fn stale(dir: &Path, fresh: &[PatchFile], on_disk: &[PatchFile]) -> Vec<Finding> {
    let mut out = Vec::new();
    for f in fresh {
        match on_disk.iter().find(|d| d.name == f.name) {
            None => out.push(Finding {
                check: "stale",
                file: Some(f.name.clone()),
                message: format!(
                    "{} is missing; run `kmm series generate`",
                    dir.join(&f.name).display()
                ),
            }),
            Some(d) if d.text != f.text => {
                let diff = similar::TextDiff::from_lines(&d.text, &f.text)
                    .unified_diff()
                    .context_radius(3)
                    .header("on disk", "generated")
                    .to_string();
                out.push(Finding {
                    check: "stale",
                    file: Some(f.name.clone()),
                    message: format!(
                        "{} differs from a fresh generation; run `kmm series generate`\n{diff}",
                        dir.join(&f.name).display()
                    ),
                });
            }
            Some(_) => {}
        }
    }
    for d in on_disk {
        if !fresh.iter().any(|f| f.name == d.name) {
            out.push(Finding {
                check: "stale",
                file: Some(d.name.clone()),
                message: format!(
                    "{} is not generated by the manifest; run `kmm series generate`",
                    dir.join(&d.name).display()
                ),
            });
        }
    }
    out
}

/// A re-roll must say what changed: version 2 and up needs a
/// `changelog.vN` entry in `[series]` or in one of the commits.
pub fn changelog(m: &Manifest) -> Vec<Finding> {
    let v = m.version;
    let has = |cl: &[crate::manifest::Changes]| cl.iter().any(|c| c.version == v);
    if v < 2 || has(&m.changelog) || m.commits.iter().any(|c| has(&c.changelog)) {
        return Vec::new();
    }
    vec![Finding {
        check: "changelog",
        file: None,
        message: format!(
            "v{v} has no changelog: say what changed since v{} with `changelog.v{v} = [...]` \
             in [series] or in the [[commit]]s that changed",
            v - 1
        ),
    }]
}

/// Checks each patch's subject and Signed-off-by in the mbox text itself.
pub fn headers(m: &Manifest, files: &[PatchFile]) -> Vec<Finding> {
    let mut out = Vec::new();
    let sob = format!("Signed-off-by: {} <{}>", m.author_name, m.author_email);
    for f in files.iter().filter(|f| !f.name.starts_with("0000-")) {
        let subject = header_value(&f.text, "Subject");
        let title = subject
            .as_deref()
            .and_then(|s| s.split_once("] ").map(|(_, t)| t.to_string()));
        match title {
            None => out.push(Finding {
                check: "subject",
                file: Some(f.name.clone()),
                message: "no `Subject: [PATCH ...] ...` header".into(),
            }),
            Some(t) => {
                if let Err(e) = check_subject(&t, true) {
                    out.push(Finding {
                        check: "subject",
                        file: Some(f.name.clone()),
                        message: e,
                    });
                }
            }
        }
        let msg = f.text.split("\n---\n").next().unwrap_or("");
        if !msg.lines().any(|l| l == sob) {
            out.push(Finding {
                check: "signoff",
                file: Some(f.name.clone()),
                message: format!("no `{sob}` line matching the author"),
            });
        }
    }
    out
}

/// The unfolded value of a mail header.
pub fn header_value(text: &str, name: &str) -> Option<String> {
    let mut lines = text.lines();
    let prefix = format!("{name}: ");
    while let Some(l) = lines.next() {
        if l.is_empty() {
            return None;
        }
        if let Some(v) = l.strip_prefix(&prefix) {
            let mut v = v.to_string();
            for cont in lines.by_ref() {
                match cont.strip_prefix(' ') {
                    Some(c) => {
                        v.push(' ');
                        v.push_str(c);
                    }
                    None => break,
                }
            }
            return Some(v);
        }
    }
    None
}

/// A temporary worktree of the cache repository, removed on drop.
#[derive(Debug)]
pub struct Worktree {
    git_dir: PathBuf,
    dir: kmm_scratch::Scratch,
}

impl Worktree {
    /// Checks out `commit` (detached) into a new temporary worktree.
    pub fn add(git_dir: &Path, commit: &str) -> Result<Worktree, CheckError> {
        let _ = git(git_dir, None, &["worktree", "prune"]);
        let dir = kmm_scratch::Scratch::new("wt").map_err(|source| CheckError::Scratch {
            path: std::env::temp_dir(),
            source,
        })?;
        dir.worktree_of(git_dir);
        let path = dir.path().to_string_lossy().into_owned();
        let out = git(
            git_dir,
            None,
            &["worktree", "add", "--force", "--detach", &path, commit],
        )?;
        if !out.status.success() {
            return Err(CheckError::Setup {
                what: "git worktree add".into(),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(Worktree {
            git_dir: git_dir.to_path_buf(),
            dir,
        })
    }

    /// The worktree's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        let p = self.dir.path().to_string_lossy().into_owned();
        let _ = git(&self.git_dir, None, &["worktree", "remove", "--force", &p]);
        let _ = git(&self.git_dir, None, &["worktree", "prune"]);
    }
}

fn git(
    git_dir: &Path,
    work: Option<&Path>,
    args: &[&str],
) -> Result<std::process::Output, CheckError> {
    let mut c = Command::new("git");
    c.arg("--git-dir").arg(git_dir);
    if let Some(w) = work {
        c.arg("--work-tree").arg(w).current_dir(w);
    }
    c.args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    c.output().map_err(|source| CheckError::Spawn {
        tool: "git".into(),
        source,
    })
}

/// Applies the patches (not the cover letter) with the real `git am` in a
/// worktree at the base, committing as the series author at the series
/// date, and compares each resulting commit and tree with the generator's.
pub fn git_am(
    m: &Manifest,
    wt: &Worktree,
    patches: &[PathBuf],
    expect: &[GenCommit],
) -> Result<Vec<Finding>, CheckError> {
    let mut c = Command::new("git");
    c.current_dir(wt.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_COMMITTER_NAME", &m.author_name)
        .env("GIT_COMMITTER_EMAIL", &m.author_email)
        .env(
            "GIT_COMMITTER_DATE",
            format!("@{} {}", m.date.seconds, tz(m.date.offset_minutes)),
        )
        .args(["am", "--quiet", "--no-3way"])
        .args(patches);
    let out = c.output().map_err(|source| CheckError::Spawn {
        tool: "git am".into(),
        source,
    })?;
    if !out.status.success() {
        let _ = Command::new("git")
            .current_dir(wt.path())
            .args(["am", "--abort"])
            .output();
        return Ok(vec![Finding {
            check: "git-am",
            file: None,
            message: format!(
                "git am failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }]);
    }
    let rev = |args: &[&str]| -> Result<String, CheckError> {
        let o = Command::new("git")
            .current_dir(wt.path())
            .args(args)
            .output()
            .map_err(|source| CheckError::Spawn {
                tool: "git".into(),
                source,
            })?;
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let mut findings = Vec::new();
    let n = expect.len();
    for (i, e) in expect.iter().enumerate() {
        let back = n - 1 - i;
        let spec = format!("HEAD~{back}");
        let id = rev(&["rev-parse", &spec])?;
        let tree = rev(&["rev-parse", &format!("{spec}^{{tree}}")])?;
        if tree != e.tree {
            findings.push(Finding {
                check: "git-am",
                file: None,
                message: format!(
                    "patch {} ({}): git am gives tree {tree}, the generator {}",
                    i + 1,
                    e.subject,
                    e.tree
                ),
            });
        } else if id != e.id {
            findings.push(Finding {
                check: "git-am",
                file: None,
                message: format!(
                    "patch {} ({}): same tree, but git am gives commit {id}, the generator {} \
                     (the mail loses part of the message or metadata)",
                    i + 1,
                    e.subject,
                    e.id
                ),
            });
        }
    }
    Ok(findings)
}

fn tz(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    format!("{sign}{:02}{:02}", minutes.abs() / 60, minutes.abs() % 60)
}

/// Runs the tree's `scripts/checkpatch.pl --strict` on each patch and
/// returns its messages, except those accepted in the manifest.
pub fn checkpatch(
    m: &Manifest,
    tree: &Path,
    patches: &[(usize, PathBuf)],
) -> Result<Vec<Finding>, CheckError> {
    let script = tree.join("scripts/checkpatch.pl");
    let mut findings = Vec::new();
    for (n, p) in patches {
        let out = Command::new("perl")
            .current_dir(tree)
            .arg(&script)
            .args([
                "--strict",
                "--terse",
                "--show-types",
                "--no-summary",
                "--color=never",
            ])
            .arg(p)
            .output()
            .map_err(|source| CheckError::Spawn {
                tool: "perl scripts/checkpatch.pl".into(),
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let name = p
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut any = false;
        for line in text.lines() {
            let Some(kind) = message_type(line) else {
                continue;
            };
            any = true;
            if m.allow.iter().any(|a| a.commit == *n && a.kind == kind) {
                continue;
            }
            findings.push(Finding {
                check: "checkpatch",
                file: Some(name.clone()),
                message: line.to_string(),
            });
        }
        if !out.status.success() && !any {
            findings.push(Finding {
                check: "checkpatch",
                file: Some(name.clone()),
                message: format!(
                    "checkpatch.pl exited with {} without a message:\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
    }
    Ok(findings)
}

/// The message type (`LONG_LINE`) of a `--terse --show-types` line such as
/// `x.patch:12: WARNING:LONG_LINE: line length of 101 exceeds 100 columns`.
pub fn message_type(line: &str) -> Option<String> {
    for level in ["ERROR:", "WARNING:", "CHECK:"] {
        if let Some(i) = line.find(level) {
            let rest = &line[i + level.len()..];
            let kind = rest.split(':').next()?;
            if !kind.is_empty()
                && kind
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
            {
                return Some(kind.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_checkpatch_types() {
        assert_eq!(
            message_type(
                "0001-x.patch:12: WARNING:LONG_LINE: line length of 101 exceeds 100 columns"
            ),
            Some("LONG_LINE".into())
        );
        assert_eq!(
            message_type("0001-x.patch:3: CHECK:MACRO_ARG_REUSE: Macro argument reuse 'x'"),
            Some("MACRO_ARG_REUSE".into())
        );
        assert_eq!(message_type("total: 0 errors, 0 warnings"), None);
    }

    #[test]
    fn unfolds_headers() {
        let t = "From x\nSubject: [PATCH v1 1/1] KVM: a long\n subject\nDate: y\n\nbody\n";
        assert_eq!(
            header_value(t, "Subject").as_deref(),
            Some("[PATCH v1 1/1] KVM: a long subject")
        );
        assert_eq!(header_value(t, "Date").as_deref(), Some("y"));
        assert_eq!(header_value(t, "To"), None);
    }

    #[test]
    fn stale_reports_each_difference() {
        let f = |n: &str, t: &str| PatchFile {
            name: n.into(),
            text: t.into(),
        };
        let fresh = vec![f("a.patch", "1\n2\n"), f("b.patch", "x\n")];
        let disk = vec![f("a.patch", "1\n3\n"), f("c.patch", "y\n")];
        let r = stale(Path::new("patches/v1"), &fresh, &disk);
        assert_eq!(r.len(), 3);
        assert!(r[0].message.contains("-3\n+2"), "{}", r[0].message);
        assert!(r[1].message.contains("missing"));
        assert!(r[2].message.contains("not generated"));
    }
}
