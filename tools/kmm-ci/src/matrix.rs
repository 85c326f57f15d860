//! The `kmm ci` matrix: which targets run at which commit, and the run.
//!
//! A matrix has two kinds of rows. Boot rows are the x86 boot config
//! (`kvm-mm`, or `--config`): every commit is built, booted under the
//! commit plan (the tip under the tip plan, then the plans its `also`
//! names, reusing its build) and compared with its snapshot. Build rows
//! are the targets of `ci/targets.toml` (other architectures, other x86
//! config shapes): built to a linked `vmlinux` (and `modules`), never
//! booted, at the commits whose diff touches what they compile
//! ([`selects`]). Both fail on a build, link or modpost error and on a
//! W=1 warning the commit adds, against the previous row of the same
//! target, in the KVM directories and in the directories it touches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kmm_build::{Built, ConfigSpec};

use crate::{CiError, Job, Plan, Result, Row, Setup};

/// The build targets' file, relative to the repository root.
pub const TARGETS_FILE: &str = "ci/targets.toml";

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargets {
    target: Vec<RawTarget>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: String,
    arch: String,
    #[serde(default)]
    cross_compile: String,
    fragments: Vec<String>,
    goals: Vec<String>,
}

/// Reads the build targets of `ci/targets.toml`: each one a [`ConfigSpec`]
/// with its `ARCH=`, `CROSS_COMPILE=`, make goals and its own ccache,
/// whose fragments (in `configs_dir`) are merged onto `tinyconfig`.
pub fn load_targets(file: &Path, configs_dir: &Path) -> Result<Vec<ConfigSpec>> {
    let bad = |message: String| CiError::Plan {
        path: file.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| bad(format!("cannot read the build targets: {e}")))?;
    let raw: RawTargets =
        toml::from_str(&text).map_err(|e| bad(format!("malformed: {}", e.message())))?;
    let mut out: Vec<ConfigSpec> = Vec::new();
    for t in raw.target {
        if out.iter().any(|o| o.name == t.name) {
            return Err(bad(format!("target {:?} is defined twice", t.name)));
        }
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !valid(&t.name) || !valid(&t.arch) {
            return Err(bad(format!(
                "target {:?} (arch {:?}): names are letters, digits, - and _",
                t.name, t.arch
            )));
        }
        if t.goals.is_empty() || t.fragments.is_empty() {
            return Err(bad(format!(
                "target {:?} needs fragments and goals",
                t.name
            )));
        }
        let mut fragments = Vec::new();
        for f in &t.fragments {
            let p = configs_dir.join(f);
            if !p.is_file() {
                return Err(bad(format!(
                    "target {:?}: no fragment {}",
                    t.name,
                    p.display()
                )));
            }
            fragments.push(p);
        }
        out.push(ConfigSpec {
            name: t.name,
            fragments,
            make_args: Vec::new(),
            arch: Some(t.arch),
            cross_compile: t.cross_compile,
            goals: t.goals,
            own_ccache: true,
        });
    }
    Ok(out)
}

/// The config named `name` for `kmm build`/`kmm test`: a build target of
/// `ci/targets.toml` under `repo_root`, else a boot config of `ci/configs`.
pub fn spec_named(repo_root: &Path, name: &str) -> Result<ConfigSpec> {
    let configs = repo_root.join("ci/configs");
    let targets = repo_root.join(TARGETS_FILE);
    if targets.is_file() {
        if let Some(t) = load_targets(&targets, &configs)?
            .into_iter()
            .find(|t| t.name == name)
        {
            return Ok(t);
        }
    }
    Ok(kmm_build::config_spec(&configs, name)?)
}

/// The `--target` name of every build target.
pub const ALL_BUILDS: &str = "builds";

/// Resolves `--target` names: the boot config's name (`kvm-mm`), a build
/// target's, or `builds` for every build target. No name means the boot
/// config alone. Returns whether boot rows are wanted and the build
/// targets, in the order of `builds`.
pub fn resolve_targets(
    names: &[String],
    boot: &str,
    builds: &[ConfigSpec],
) -> Result<(bool, Vec<ConfigSpec>)> {
    if names.is_empty() {
        return Ok((true, Vec::new()));
    }
    for n in names {
        if n != boot && n != ALL_BUILDS && !builds.iter().any(|b| &b.name == n) {
            let mut known = vec![format!("{boot} (boot)")];
            known.extend(builds.iter().map(|b| b.name.clone()));
            known.push(format!("{ALL_BUILDS} (every build target)"));
            return Err(CiError::UnknownTarget {
                name: n.clone(),
                known: known.join(", "),
            });
        }
    }
    let want = |n: &str| names.iter().any(|x| x == n || x == ALL_BUILDS);
    Ok((
        names.iter().any(|n| n == boot),
        builds.iter().filter(|b| want(&b.name)).cloned().collect(),
    ))
}

/// What a path a commit touches asks to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Nothing a kernel build compiles (`tools/`, `Documentation/`).
    Nothing,
    /// Code of one architecture (`arch/<dir>/`).
    Arch(String),
    /// Code every architecture compiles (`virt/kvm/`, `include/`, `mm/`,
    /// the top-level Makefile, ...).
    Generic,
}

/// The scope of a path relative to the kernel tree.
pub fn scope(path: &str) -> Scope {
    let mut parts = path.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("tools" | "Documentation"), Some(_), _) => Scope::Nothing,
        (Some("arch"), Some(a), Some(_)) => Scope::Arch(a.to_string()),
        _ => Scope::Generic,
    }
}

/// Whether a commit touching `paths` gets a row of a target that builds
/// `arch/<srcarch>`: some path is generic or under that architecture.
pub fn selects<S: AsRef<str>>(paths: &[S], srcarch: &str) -> bool {
    paths.iter().any(|p| match scope(p.as_ref()) {
        Scope::Nothing => false,
        Scope::Generic => true,
        Scope::Arch(a) => a == srcarch,
    })
}

/// The directories of `paths`, with a trailing slash, without repeats
/// (a top-level file gives the empty string, the whole tree).
pub fn dirs_of<S: AsRef<str>>(paths: &[S]) -> Vec<String> {
    let mut out: Vec<String> = paths
        .iter()
        .map(|p| {
            p.as_ref()
                .rsplit_once('/')
                .map_or_else(String::new, |(d, _)| format!("{d}/"))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether `s` matches the glob `p`: `*` any run of characters, `/`
/// included, `?` one character.
fn glob(p: &[char], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some(('*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some(('?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// Whether `path` matches `pattern`, a glob with `*` (any run of
/// characters, `/` included) and `?` (one character), tried against the
/// whole path and against its file name.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let name = path.rsplit('/').next().unwrap_or(path);
    [path, name]
        .iter()
        .any(|x| glob(&p, &x.chars().collect::<Vec<_>>()))
}

/// One commit as the matrix sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Label: `0000-base`, or the patch's file name without `.patch`.
    pub label: String,
    /// Commit id.
    pub id: String,
    /// The paths its diff against its parent touches (none for the base).
    pub paths: Vec<String>,
}

/// The x86 boot part of a matrix.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The boot config.
    pub spec: ConfigSpec,
    /// The plan of every commit but the last.
    pub commit_plan: Plan,
    /// The plan of the last commit.
    pub tip_plan: Plan,
    /// The plans the two name in `also`, by name.
    pub also: BTreeMap<String, Plan>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// The boot rows' config and plans, if boot rows are wanted.
    pub boot: Option<Boot>,
    /// The build targets wanted, in order.
    pub builds: Vec<ConfigSpec>,
}

/// The targets chosen for one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Index into the commits.
    pub commit: usize,
    /// Whether it gets boot rows.
    pub boot: bool,
    /// The build targets it gets (names), in the matrix's order.
    pub builds: Vec<String>,
    /// Why: `base`, `tip`, or the directories that decided it.
    pub why: String,
}

/// Keeps the commits whose diff touches a path matching one of
/// `patterns`, and the last one (the tip); all of them when `patterns` is
/// empty.
pub fn touching(commits: Vec<Commit>, patterns: &[String]) -> Vec<Commit> {
    if patterns.is_empty() {
        return commits;
    }
    let n = commits.len();
    commits
        .into_iter()
        .enumerate()
        .filter(|(i, c)| {
            i + 1 == n
                || c.paths
                    .iter()
                    .any(|p| patterns.iter().any(|pat| path_matches(pat, p)))
        })
        .map(|(_, c)| c)
        .collect()
}

/// Chooses the targets of each commit. The base (a commit touching
/// nothing) and the tip (`tip` is its index, if it is in `commits`) get
/// every build target, as references for the others and as the result;
/// any other commit gets the targets whose architecture it touches
/// ([`selects`]). Every commit gets boot rows when the matrix has them.
pub fn choose(m: &Matrix, commits: &[Commit], tip: Option<usize>) -> Vec<Choice> {
    commits
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let all = c.paths.is_empty() || tip == Some(i);
            let builds: Vec<String> = m
                .builds
                .iter()
                .filter(|t| all || selects(&c.paths, t.srcarch()))
                .map(|t| t.name.clone())
                .collect();
            let why = if c.paths.is_empty() {
                "base: every target".to_string()
            } else if tip == Some(i) {
                "tip: every target".to_string()
            } else {
                let mut scopes: Vec<String> = dirs_of(&c.paths)
                    .into_iter()
                    .map(|d| {
                        let top: Vec<&str> = d.split('/').take(2).collect();
                        match scope(&d) {
                            Scope::Arch(_) => format!("{}/", top.join("/")),
                            _ => format!("{}/", top[0]),
                        }
                    })
                    .collect();
                scopes.dedup();
                if builds.is_empty() && !m.builds.is_empty() {
                    format!("touches only {}", scopes.join(" "))
                } else {
                    format!("touches {}", scopes.join(" "))
                }
            };
            Choice {
                commit: i,
                boot: m.boot.is_some(),
                builds,
                why,
            }
        })
        .collect()
}

/// One line per commit: the label, its targets and why.
pub fn render_choice(commits: &[Commit], choices: &[Choice], boot: Option<&str>) -> String {
    let mut s = String::new();
    for ch in choices {
        let mut targets: Vec<String> = Vec::new();
        if ch.boot {
            targets.push(format!("{} (boot)", boot.unwrap_or("boot")));
        }
        targets.extend(ch.builds.iter().cloned());
        let targets = if targets.is_empty() {
            "no target".to_string()
        } else {
            targets.join(" ")
        };
        s.push_str(&format!(
            "{}: {} ({})\n",
            commits[ch.commit].label, targets, ch.why
        ));
    }
    s
}

/// The directories whose objects a target rebuilds at the commit at
/// `at`: the ones it touches, and the ones the next commit of the same
/// target touches, so that the warnings the next row is compared with
/// were printed by this one.
fn refresh_dirs(commits: &[Commit], at: usize, next: Option<usize>) -> Vec<String> {
    let mut d = dirs_of(&commits[at].paths);
    if let Some(n) = next {
        d.extend(dirs_of(&commits[n].paths));
    }
    d.sort();
    d.dedup();
    d.retain(|d| !d.is_empty());
    d
}

/// The directories whose new warnings fail a row of `spec` at `commit`.
fn warning_dirs(spec: &ConfigSpec, commit: &Commit) -> Vec<String> {
    let mut d = spec.kvm_dirs();
    d.extend(dirs_of(&commit.paths));
    d.sort();
    d.dedup();
    d
}

/// One row of the matrix, before it runs: what `kmm ci --list` prints and
/// `--row` selects. Everything a row needs is here, so rows run in any
/// order, in any process, on any machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowSpec {
    /// Stable id: `<label>/<target>/<plan>`.
    pub id: String,
    /// The commit's label (`0000-base`, `0003-KVM-...`).
    pub label: String,
    /// The commit id.
    pub commit: String,
    /// The boot config or build target.
    pub target: String,
    /// The plan, or `build` for a build target.
    pub plan: String,
    /// A boot row (else a build row).
    pub boot: bool,
    /// Its new W=1 warnings count: the main plan of a boot commit, or a
    /// build row. The `also` plans at the same commit share its build.
    pub main: bool,
    /// Directories whose objects its build rebuilds (see `refresh_dirs`).
    pub refresh: Vec<String>,
    /// Directories whose new warnings fail it.
    pub warning_dirs: Vec<String>,
    /// The snapshot it compares with (boot rows), relative to the
    /// repository, as every CI job has its own checkout.
    pub snapshot: Option<PathBuf>,
}

fn relative(root: &Path, p: PathBuf) -> PathBuf {
    p.strip_prefix(root).map(Path::to_path_buf).unwrap_or(p)
}

/// The rows of a matrix, in the order one process runs them: commit by
/// commit, boot rows (main plan, then its `also` plans), then build rows.
pub fn list(setup: &Setup, m: &Matrix, commits: &[Commit], choices: &[Choice]) -> Vec<RowSpec> {
    let next_of = |i: usize, target: &str| {
        choices[i + 1..]
            .iter()
            .find(|c| {
                if m.boot.as_ref().is_some_and(|b| b.spec.name == target) {
                    c.boot
                } else {
                    c.builds.iter().any(|b| b == target)
                }
            })
            .map(|c| c.commit)
    };
    let mut out = Vec::new();
    for (i, ch) in choices.iter().enumerate() {
        let c = &commits[ch.commit];
        let is_last = i + 1 == choices.len();
        if let (Some(boot), true) = (&m.boot, ch.boot) {
            let main_plan = if is_last {
                &boot.tip_plan
            } else {
                &boot.commit_plan
            };
            let refresh = refresh_dirs(commits, ch.commit, next_of(i, &boot.spec.name));
            let dirs = warning_dirs(&boot.spec, c);
            let plans_here = std::iter::once(main_plan)
                .chain(main_plan.also.iter().filter_map(|n| boot.also.get(n)));
            for (j, plan) in plans_here.enumerate() {
                out.push(RowSpec {
                    id: format!("{}/{}/{}", c.label, boot.spec.name, plan.name),
                    label: c.label.clone(),
                    commit: c.id.clone(),
                    target: boot.spec.name.clone(),
                    plan: plan.name.clone(),
                    boot: true,
                    main: j == 0,
                    refresh: refresh.clone(),
                    warning_dirs: dirs.clone(),
                    snapshot: Some(relative(
                        &setup.repo_root,
                        setup.snapshot_file(&boot.spec.name, &plan.name, &c.label),
                    )),
                });
            }
        }
        for name in &ch.builds {
            let Some(spec) = m.builds.iter().find(|s| &s.name == name) else {
                continue;
            };
            out.push(RowSpec {
                id: format!("{}/{name}/{}", c.label, crate::BUILD_PLAN),
                label: c.label.clone(),
                commit: c.id.clone(),
                target: name.clone(),
                plan: crate::BUILD_PLAN.into(),
                boot: false,
                main: true,
                refresh: refresh_dirs(commits, ch.commit, next_of(i, name)),
                warning_dirs: warning_dirs(spec, c),
                snapshot: None,
            });
        }
    }
    out
}

/// Shard `i` of `n` (1-based) of a list: a contiguous run of rows, so
/// consecutive commits of a target build incrementally on one machine.
pub fn shard(rows: &[RowSpec], i: usize, n: usize) -> &[RowSpec] {
    if n == 0 || i == 0 || i > n {
        return &[];
    }
    let len = rows.len();
    &rows[(i - 1) * len / n..i * len / n]
}

/// What one row produced: everything the matrix needs, written by
/// `kmm ci --results DIR` and merged by `kmm ci report`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RowResult {
    /// The row's id (see [`RowSpec::id`]).
    pub id: String,
    /// The row, its new warnings not yet counted (that needs the previous
    /// row of its target: [`finish`]).
    pub row: Row,
    /// Every W=1 warning its build printed (complete for its KVM and
    /// refresh directories).
    pub warnings: Vec<kmm_build::Warning>,
}

/// Runs `rows` (from [`list`]) in order; `done` gets each result as it
/// comes (to write it at once). A row's error (a failed build, a boot
/// that could not run) is its result; the run goes on.
pub fn run_rows(
    setup: &Setup,
    m: &Matrix,
    rows: &[RowSpec],
    progress: &mut dyn FnMut(&str),
    done: &mut dyn FnMut(&RowResult),
) -> Vec<RowResult> {
    let mut out = Vec::new();
    // The build of the last main boot row, for the `also` plans after it.
    let mut last_boot: Option<Built> = None;
    for r in rows {
        // One row at a time per workspace, also across processes (two CI
        // jobs on one runner): they share its worktree and build dirs.
        let lock = setup.ws.lock(&mut |p| {
            progress(&format!(
                "{}: waiting for the build workspace ({} is held by another kmm)",
                r.id,
                p.display()
            ));
        });
        let lock = match lock {
            Ok(l) => l,
            Err(e) => {
                let result = error_result(r, &CiError::Build(e));
                report(progress, &result.row);
                done(&result);
                out.push(result);
                continue;
            }
        };
        let result = if r.boot {
            run_boot_row(setup, m, r, &mut last_boot, progress)
        } else {
            run_build_row(setup, m, r, progress)
        };
        drop(lock);
        report(progress, &result.row);
        done(&result);
        out.push(result);
    }
    out
}

fn error_result(r: &RowSpec, e: &CiError) -> RowResult {
    RowResult {
        id: r.id.clone(),
        row: Row::from_error(&r.label, &r.commit, &r.target, &r.plan, e),
        warnings: Vec::new(),
    }
}

fn run_boot_row(
    setup: &Setup,
    m: &Matrix,
    r: &RowSpec,
    last_boot: &mut Option<Built>,
    progress: &mut dyn FnMut(&str),
) -> RowResult {
    let Some(boot) = m.boot.as_ref().filter(|b| b.spec.name == r.target) else {
        return error_result(r, &CiError::NoRow(r.id.clone()));
    };
    let plan = [&boot.commit_plan, &boot.tip_plan]
        .into_iter()
        .find(|p| p.name == r.plan)
        .or_else(|| boot.also.get(&r.plan));
    let Some(plan) = plan else {
        return error_result(r, &CiError::NoRow(r.id.clone()));
    };
    // An `also` plan reuses the main plan's build of the same commit.
    let prebuilt = last_boot
        .as_ref()
        .filter(|b| !r.main && b.commit == r.commit && b.config == r.target);
    let job = Job {
        label: &r.label,
        commit: &r.commit,
        spec: &boot.spec,
        plan,
        prebuilt,
        refresh: &r.refresh,
    };
    match crate::test_commit(setup, &job, progress) {
        Ok(run) => {
            let row = Row::from_run(&run, &r.plan, None, &r.warning_dirs);
            let warnings = run.built.warnings.clone();
            if r.main {
                *last_boot = Some(run.built);
            }
            RowResult {
                id: r.id.clone(),
                row,
                warnings,
            }
        }
        Err(e) => error_result(r, &e),
    }
}

fn run_build_row(
    setup: &Setup,
    m: &Matrix,
    r: &RowSpec,
    progress: &mut dyn FnMut(&str),
) -> RowResult {
    let Some(spec) = m.builds.iter().find(|s| s.name == r.target) else {
        return error_result(r, &CiError::NoRow(r.id.clone()));
    };
    progress(&format!("{}: build [{}] ...", r.label, r.target));
    let result = match setup.ws.build_with(&r.commit, spec, &r.refresh) {
        Ok(built) => RowResult {
            id: r.id.clone(),
            row: Row::from_build(&r.label, &built, None, &r.warning_dirs),
            warnings: built.warnings,
        },
        Err(e) => error_result(r, &CiError::Build(e)),
    };
    progress(&format!(
        "{}: [{}] built in {:.0}s",
        r.label, r.target, result.row.seconds
    ));
    result
}

/// Why results cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A result for a row the list does not have.
    #[error("{0}: a result for a row that is not in the list; were the results and the list made by the same `kmm ci` arguments and series?")]
    Unknown(String),
    /// Two results for one row.
    #[error("{0}: two results for one row; pass each row's results once")]
    Twice(String),
}

/// Merges results into the matrix, in list order: a row without a result
/// fails ("no result"), and each main row's W=1 warnings are compared with
/// the previous main row of its target that has a result. This is the one
/// way rows become a matrix, for one process and for `kmm ci report`.
pub fn finish(
    list: &[RowSpec],
    results: Vec<RowResult>,
) -> std::result::Result<Vec<Row>, MergeError> {
    let mut by_id: BTreeMap<String, RowResult> = BTreeMap::new();
    for r in results {
        if !list.iter().any(|s| s.id == r.id) {
            return Err(MergeError::Unknown(r.id));
        }
        if by_id.contains_key(&r.id) {
            return Err(MergeError::Twice(r.id));
        }
        by_id.insert(r.id.clone(), r);
    }
    let mut prev: BTreeMap<&str, Vec<kmm_build::Warning>> = BTreeMap::new();
    let mut rows = Vec::new();
    for s in list {
        let Some(res) = by_id.remove(&s.id) else {
            let mut row = Row::from_error(
                &s.label,
                &s.commit,
                &s.target,
                &s.plan,
                &CiError::NoResult(s.id.clone()),
            );
            row.error = Some(format!("no result for row {}", s.id));
            rows.push(row);
            continue;
        };
        let mut row = res.row;
        if s.main && row.build == "ok" {
            if let Some(p) = prev.get(s.target.as_str()) {
                let pick = |w: &[kmm_build::Warning]| -> Vec<kmm_build::Warning> {
                    w.iter()
                        .filter(|w| kmm_build::in_dirs(w, &s.warning_dirs))
                        .cloned()
                        .collect()
                };
                row.new_warnings = kmm_build::new_warnings(&pick(p), &pick(&res.warnings))
                    .iter()
                    .map(|w| format!("{}:{}: {}", w.file, w.line, w.message))
                    .collect();
                row.failed |= !row.new_warnings.is_empty();
            }
            prev.insert(s.target.as_str(), res.warnings);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// What `kmm ci` was asked to run.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The boot config (a name in ci/configs).
    pub config: &'a str,
    /// `--target` names (empty: the boot config alone).
    pub targets: &'a [String],
    /// Plan of every commit but the tip.
    pub commit_plan: &'a str,
    /// Plan of the tip.
    pub tip_plan: &'a str,
    /// `--commits FROM..TO` (0 is the base; `usize::MAX` for the tip).
    pub commits: Option<(usize, usize)>,
    /// `--touching` patterns.
    pub touching: &'a [String],
}

/// `--commits tip`: the last commit, whatever its number.
pub const TIP: usize = usize::MAX;

/// A matrix ready to run.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The targets and plans.
    pub matrix: Matrix,
    /// The commits in range.
    pub commits: Vec<Commit>,
    /// The targets chosen for each.
    pub choices: Vec<Choice>,
    /// The rows, in order.
    pub rows: Vec<RowSpec>,
    /// Whether the rows boot the whole series (then stale snapshots
    /// count).
    pub whole: bool,
}

/// Builds the matrix of `req` over `all` (the version's commits, the base
/// first) for the repository at `setup.repo_root`.
pub fn prepare(setup: &Setup, req: &Request<'_>, all: Vec<Commit>) -> Result<Prepared> {
    let root = &setup.repo_root;
    let configs = root.join("ci/configs");
    let all_builds = load_targets(&root.join(TARGETS_FILE), &configs)?;
    let (boot_rows, builds) = resolve_targets(req.targets, req.config, &all_builds)?;
    let boot = if boot_rows {
        let plans = root.join("selftests/plans");
        let commit_plan = crate::load_plan(&plans, req.commit_plan)?;
        let tip_plan = crate::load_plan(&plans, req.tip_plan)?;
        // A plan's `also` plans run at the same commit, after it.
        let mut also = BTreeMap::new();
        for name in commit_plan.also.iter().chain(&tip_plan.also) {
            if !also.contains_key(name) {
                also.insert(name.clone(), crate::load_plan(&plans, name)?);
            }
        }
        Some(Boot {
            spec: kmm_build::config_spec(&configs, req.config)?,
            commit_plan,
            tip_plan,
            also,
        })
    } else {
        None
    };
    let matrix = Matrix { boot, builds };
    let tip_id = all.last().map(|c| c.id.clone());
    let last = all.len().saturating_sub(1);
    let range = req.commits.map(|(from, to)| {
        if from == TIP {
            (last, last)
        } else {
            (from, to)
        }
    });
    if let Some((from, to)) = range {
        if to >= all.len() {
            return Err(CiError::BadRange {
                from,
                to,
                patches: all.len().saturating_sub(1),
            });
        }
    }
    let in_range = |i: usize| range.is_none_or(|(from, to)| (from..=to).contains(&i));
    let commits: Vec<Commit> = all
        .into_iter()
        .enumerate()
        .filter(|(i, _)| in_range(*i))
        .map(|(_, c)| c)
        .collect();
    let commits = touching(commits, req.touching);
    let tip = commits.iter().position(|c| Some(&c.id) == tip_id.as_ref());
    let choices = choose(&matrix, &commits, tip);
    let rows = list(setup, &matrix, &commits, &choices);
    let whole = matrix.boot.is_some() && req.commits.is_none() && req.touching.is_empty();
    Ok(Prepared {
        matrix,
        commits,
        choices,
        rows,
        whole,
    })
}

/// Which rows to run: `all`, ids from the list, or a shard.
pub fn select(
    rows: &[RowSpec],
    ids: &[String],
    shard_of: Option<(usize, usize)>,
) -> Result<Vec<RowSpec>> {
    if let Some((i, n)) = shard_of {
        return Ok(shard(rows, i, n).to_vec());
    }
    if ids.is_empty() || ids.iter().any(|i| i == "all") {
        return Ok(rows.to_vec());
    }
    let is_pattern = |id: &str| id.contains(['*', '?']);
    let matches = |id: &str, r: &RowSpec| {
        if is_pattern(id) {
            glob(
                &id.chars().collect::<Vec<_>>(),
                &r.id.chars().collect::<Vec<_>>(),
            )
        } else {
            r.id == id
        }
    };
    // An exact id must exist; a pattern may match nothing (the CI job of a
    // target this list has no rows of).
    for id in ids.iter().filter(|i| !is_pattern(i)) {
        if !rows.iter().any(|r| &r.id == id) {
            return Err(CiError::NoRow(id.clone()));
        }
    }
    // In list order, whatever the order asked.
    Ok(rows
        .iter()
        .filter(|r| ids.iter().any(|id| matches(id, r)))
        .cloned()
        .collect())
}

fn report(progress: &mut dyn FnMut(&str), row: &Row) {
    progress(&format!(
        "{} [{}]: {}",
        row.label,
        row.target,
        if row.failed {
            format!("FAILED: {}", row.reason())
        } else {
            "ok".into()
        }
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(label: &str, paths: &[&str]) -> Commit {
        Commit {
            label: label.into(),
            id: format!("id-{label}"),
            paths: paths.iter().map(|p| (*p).to_string()).collect(),
        }
    }

    fn target(name: &str, arch: &str) -> ConfigSpec {
        ConfigSpec {
            arch: Some(arch.into()),
            own_ccache: true,
            goals: vec!["vmlinux".into()],
            ..ConfigSpec::host(name, Vec::new(), Vec::new())
        }
    }

    fn matrix() -> Matrix {
        Matrix {
            boot: None,
            builds: vec![
                target("arm64", "arm64"),
                target("riscv", "riscv"),
                target("x86-kunit-m", "x86_64"),
            ],
        }
    }

    #[test]
    fn scopes_of_paths() {
        assert_eq!(scope("virt/kvm/kvm_mm.h"), Scope::Generic);
        assert_eq!(scope("include/linux/kvm_host.h"), Scope::Generic);
        assert_eq!(scope("mm/mmu_notifier.c"), Scope::Generic);
        assert_eq!(scope("Makefile"), Scope::Generic);
        assert_eq!(scope("arch/x86/kvm/Kconfig"), Scope::Arch("x86".into()));
        assert_eq!(scope("arch/arm64/kvm/mmu.c"), Scope::Arch("arm64".into()));
        assert_eq!(
            scope("tools/testing/selftests/kvm/Makefile"),
            Scope::Nothing
        );
        assert_eq!(scope("Documentation/virt/kvm/api.rst"), Scope::Nothing);
        // A file named like a directory is still generic.
        assert_eq!(scope("arch/Kconfig"), Scope::Generic);
        assert_eq!(scope("tools"), Scope::Generic);
    }

    #[test]
    fn selection_from_touched_paths() {
        assert!(selects(&["virt/kvm/pfncache.c"], "arm64"));
        assert!(selects(&["arch/x86/kvm/Kconfig"], "x86"));
        assert!(!selects(&["arch/x86/kvm/Kconfig"], "arm64"));
        assert!(!selects(
            &[
                "tools/testing/selftests/kvm/x86_64/a.c",
                "Documentation/a.rst"
            ],
            "x86"
        ));
        // One generic path among arch and tools paths selects everything.
        assert!(selects(
            &["arch/x86/kvm/Kconfig", "virt/kvm/kvm_mm.h", "tools/x"],
            "riscv"
        ));
        let none: [&str; 0] = [];
        assert!(!selects(&none, "x86"));
    }

    #[test]
    fn choices_per_commit() {
        let m = matrix();
        let commits = vec![
            commit("0000-base", &[]),
            commit(
                "0001-generic",
                &["virt/kvm/kvm_mm.h", "virt/kvm/kvm_main.c"],
            ),
            commit("0002-x86", &["arch/x86/kvm/Kconfig"]),
            commit("0003-selftest", &["tools/testing/selftests/kvm/Makefile"]),
            commit("0004-tip-selftest", &["tools/testing/selftests/kvm/x.c"]),
        ];
        let ch = choose(&m, &commits, Some(4));
        let names = |i: usize| ch[i].builds.join(" ");
        assert_eq!(names(0), "arm64 riscv x86-kunit-m");
        assert_eq!(names(1), "arm64 riscv x86-kunit-m");
        assert_eq!(names(2), "x86-kunit-m");
        assert_eq!(names(3), "");
        assert_eq!(names(4), "arm64 riscv x86-kunit-m");
        let text = render_choice(&commits, &ch, None);
        assert_eq!(
            text,
            "0000-base: arm64 riscv x86-kunit-m (base: every target)\n\
             0001-generic: arm64 riscv x86-kunit-m (touches virt/)\n\
             0002-x86: x86-kunit-m (touches arch/x86/)\n\
             0003-selftest: no target (touches only tools/)\n\
             0004-tip-selftest: arm64 riscv x86-kunit-m (tip: every target)\n"
        );
        // Without the tip in the list, a tools-only last commit gets nothing.
        let ch = choose(&m, &commits[3..4], None);
        assert!(ch[0].builds.is_empty());
        // Boot rows are at every commit.
        let mut b = matrix();
        b.boot = Some(Boot {
            spec: ConfigSpec::host("kvm-mm", Vec::new(), Vec::new()),
            commit_plan: plan("commit"),
            tip_plan: plan("tip"),
            also: BTreeMap::new(),
        });
        let ch = choose(&b, &commits, Some(4));
        assert!(ch.iter().all(|c| c.boot));
        assert_eq!(
            render_choice(&commits, &ch[3..4], Some("kvm-mm")),
            "0003-selftest: kvm-mm (boot) (touches only tools/)\n"
        );
    }

    fn plan(name: &str) -> Plan {
        Plan {
            name: name.into(),
            timeout: None,
            tests: Vec::new(),
            cmdline: Vec::new(),
            expect_failures: None,
            also: Vec::new(),
        }
    }

    #[test]
    fn refreshed_and_compared_directories() {
        let commits = vec![
            commit("a", &["mm/mmu_notifier.c", "include/linux/mmu_notifier.h"]),
            commit("b", &["tools/x/y.c"]),
            commit("c", &["virt/kvm/kvm_main.c", "Makefile"]),
        ];
        assert_eq!(
            refresh_dirs(&commits, 0, Some(2)),
            ["include/linux/", "mm/", "virt/kvm/"]
        );
        assert_eq!(refresh_dirs(&commits, 2, None), ["virt/kvm/"]);
        let spec = target("arm64", "arm64");
        assert_eq!(
            warning_dirs(&spec, &commits[0]),
            ["arch/arm64/kvm/", "include/linux/", "mm/", "virt/kvm/"]
        );
        // A top-level file makes the whole tree count.
        assert!(warning_dirs(&spec, &commits[2]).contains(&String::new()));
    }

    #[test]
    fn touching_patterns() {
        assert!(path_matches("*.rs", "virt/kvm/kvm_mm_rs.rs"));
        assert!(path_matches("virt/kvm/*", "virt/kvm/kvm_mm.c"));
        assert!(path_matches("kvm_mm_?s.rs", "virt/kvm/kvm_mm_rs.rs"));
        assert!(!path_matches("*.rs", "virt/kvm/kvm_mm.c"));
        assert!(!path_matches("kvm_mm.c", "virt/kvm/kvm_mm.c.orig"));
        assert!(!path_matches("virt/*.h", "include/linux/virt/x.c"));
        let commits = vec![
            commit("a", &["virt/kvm/kvm_mm_rs.rs"]),
            commit("b", &["virt/kvm/kvm_mm.c"]),
            commit("c", &["tools/x.c"]),
        ];
        let kept: Vec<String> = touching(commits, &["*.rs".into()])
            .into_iter()
            .map(|c| c.label)
            .collect();
        assert_eq!(kept, ["a", "c"]);
    }

    #[test]
    fn repo_targets_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let t = load_targets(&root.join(TARGETS_FILE), &root.join("ci/configs")).unwrap();
        let names: Vec<&str> = t.iter().map(|s| s.name.as_str()).collect();
        for want in [
            "arm64",
            "riscv",
            "powerpc",
            "mips",
            "s390",
            "x86-modular",
            "x86-kunit-m",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        for s in &t {
            assert!(s.own_ccache && s.arch.is_some(), "{}", s.name);
            assert!(!s.goals.is_empty(), "{}", s.name);
        }
        let x86: Vec<&str> = t
            .iter()
            .filter(|s| s.srcarch() == "x86")
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(x86, ["x86-modular", "x86-kunit-m"]);
    }

    #[test]
    fn target_names() {
        let b = matrix().builds;
        let names = |v: &[&str]| -> Vec<String> { v.iter().map(|s| (*s).to_string()).collect() };
        let (boot, t) = resolve_targets(&[], "kvm-mm", &b).unwrap();
        assert!(boot && t.is_empty());
        let (boot, t) = resolve_targets(&names(&["x86-kunit-m", "arm64"]), "kvm-mm", &b).unwrap();
        assert!(!boot);
        // In the file's order, not the command line's.
        assert_eq!(t[0].name, "arm64");
        assert_eq!(t[1].name, "x86-kunit-m");
        let (boot, t) = resolve_targets(&names(&["kvm-mm", "builds"]), "kvm-mm", &b).unwrap();
        assert!(boot && t.len() == 3);
        let e = resolve_targets(&names(&["arm"]), "kvm-mm", &b)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown target \"arm\"; the targets are: kvm-mm (boot), arm64, riscv"),
            "{e}"
        );
    }

    #[test]
    fn malformed_targets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.config"), "").unwrap();
        let f = dir.path().join("t.toml");
        let one = "[[target]]\nname = \"a\"\narch = \"arm64\"\nfragments = [\"a.config\"]\ngoals = [\"vmlinux\"]\n";
        std::fs::write(&f, format!("{one}{one}")).unwrap();
        let e = load_targets(&f, dir.path()).unwrap_err().to_string();
        assert!(e.contains("defined twice"), "{e}");
        std::fs::write(&f, one.replace("a.config", "b.config")).unwrap();
        let e = load_targets(&f, dir.path()).unwrap_err().to_string();
        assert!(e.contains("no fragment"), "{e}");
        std::fs::write(&f, one.replace("goals", "goal")).unwrap();
        let e = load_targets(&f, dir.path()).unwrap_err().to_string();
        assert!(e.contains("malformed"), "{e}");
        std::fs::write(&f, one).unwrap();
        let t = load_targets(&f, dir.path()).unwrap();
        assert_eq!(t[0].image(), Path::new("vmlinux"));
        assert_eq!(t[0].kvm_dirs(), ["virt/kvm/", "arch/arm64/kvm/"]);
    }

    fn setup() -> Setup {
        Setup {
            ws: kmm_build::Workspace {
                git_dir: "/cache/x.git".into(),
                root: "/cache/work".into(),
                jobs: 2,
            },
            repo_root: "/repo".into(),
            snapshots: "/repo/selftests/snapshots".into(),
            accept: false,
        }
    }

    fn plan_with(name: &str, also: &[&str]) -> crate::Plan {
        let text = format!(
            "also = [{}]\n[[test]]\nname = \"kvm/x\"\n",
            also.iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
        crate::load_plan(dir.path(), name).unwrap()
    }

    fn boot_matrix() -> Matrix {
        let mut also = BTreeMap::new();
        also.insert("extra".to_string(), plan_with("extra", &[]));
        Matrix {
            boot: Some(Boot {
                spec: ConfigSpec::host("kvm-mm", Vec::new(), Vec::new()),
                commit_plan: plan_with("commit", &[]),
                tip_plan: plan_with("tip", &["extra"]),
                also,
            }),
            builds: vec![target("arm64", "arm64")],
        }
    }

    fn three() -> Vec<Commit> {
        vec![
            commit("0000-base", &[]),
            commit("0001-a", &["tools/testing/selftests/kvm/x.c"]),
            commit("0002-b", &["virt/kvm/pfncache.c"]),
        ]
    }

    #[test]
    fn rows_have_stable_ids_in_run_order() {
        let m = boot_matrix();
        let c = three();
        let ch = choose(&m, &c, Some(2));
        let rows = list(&setup(), &m, &c, &ch);
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "0000-base/kvm-mm/commit",
                "0000-base/arm64/build",
                "0001-a/kvm-mm/commit",
                "0002-b/kvm-mm/tip",
                "0002-b/kvm-mm/extra",
                "0002-b/arm64/build",
            ]
        );
        assert!(rows[3].main && !rows[4].main);
        assert_eq!(
            rows[0].snapshot.as_deref(),
            Some(Path::new(
                "selftests/snapshots/kvm-mm/commit/0000-base.snap"
            ))
        );
        // The base's arm64 build rebuilds what the next arm64 row touches.
        assert_eq!(rows[1].refresh, ["virt/kvm/"]);
        // Shards are contiguous and cover every row once.
        let mut seen = Vec::new();
        for i in 1..=4 {
            seen.extend(shard(&rows, i, 4).iter().map(|r| r.id.clone()));
        }
        assert_eq!(seen, ids);
        assert!(shard(&rows, 5, 4).is_empty());
        // --row keeps list order; an unknown id is an error.
        let picked = select(
            &rows,
            &[
                "0002-b/arm64/build".into(),
                "0000-base/kvm-mm/commit".into(),
            ],
            None,
        )
        .unwrap();
        assert_eq!(picked[0].id, "0000-base/kvm-mm/commit");
        let e = select(&rows, &["nope".into()], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope: no such row"), "{e}");
        assert_eq!(select(&rows, &["all".into()], None).unwrap().len(), 6);
        // Patterns: one CI job per target.
        let arm: Vec<String> = select(&rows, &["*/arm64/*".into()], None)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(arm, ["0000-base/arm64/build", "0002-b/arm64/build"]);
        assert!(select(&rows, &["*/s390/*".into()], None)
            .unwrap()
            .is_empty());
    }

    fn result(spec: &RowSpec, warnings: &[(&str, u32)]) -> RowResult {
        let mut row = Row::unbooted(&spec.label, &spec.commit, &spec.target, &spec.plan);
        row.build = "ok".into();
        RowResult {
            id: spec.id.clone(),
            row,
            warnings: warnings
                .iter()
                .map(|(f, l)| kmm_build::Warning {
                    file: (*f).into(),
                    line: *l,
                    message: "unused variable".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn finish_merges_in_list_order_and_counts_new_warnings() {
        let m = boot_matrix();
        let c = three();
        let rows = list(&setup(), &m, &c, &choose(&m, &c, Some(2)));
        let all = |extra: Vec<RowResult>| {
            let mut r: Vec<RowResult> = rows
                .iter()
                .map(|s| {
                    if s.label == "0002-b" && s.target == "arm64" {
                        // The tip adds a warning in what it touches.
                        result(s, &[("virt/kvm/kvm_main.c", 1), ("virt/kvm/pfncache.c", 7)])
                    } else if s.label == "0002-b" && !s.main {
                        // An also plan: shares the build, no comparison.
                        result(s, &[("virt/kvm/pfncache.c", 9)])
                    } else {
                        result(s, &[("virt/kvm/kvm_main.c", 1)])
                    }
                })
                .collect();
            // Results come in any order.
            r.reverse();
            r.extend(extra);
            r
        };
        let merged = finish(&rows, all(vec![])).unwrap();
        let failed: Vec<(String, Vec<String>)> = merged
            .iter()
            .filter(|r| r.failed)
            .map(|r| (format!("{}/{}", r.label, r.target), r.new_warnings.clone()))
            .collect();
        assert_eq!(
            failed,
            [(
                "0002-b/arm64".to_string(),
                vec!["virt/kvm/pfncache.c:7: unused variable".to_string()]
            )]
        );
        // A missing result is a failing row that names it.
        let mut some = all(vec![]);
        some.retain(|r| r.id != "0001-a/kvm-mm/commit");
        let merged = finish(&rows, some).unwrap();
        let r = merged.iter().find(|r| r.label == "0001-a").unwrap();
        assert!(r.failed);
        assert!(
            r.reason()
                .contains("no result for row 0001-a/kvm-mm/commit"),
            "{}",
            r.reason()
        );
        // A result that is not in the list, or twice, is an error.
        let stray = RowResult {
            id: "0009-x/kvm-mm/commit".into(),
            ..result(&rows[0], &[])
        };
        let e = finish(&rows, all(vec![stray])).unwrap_err().to_string();
        assert!(e.contains("0009-x/kvm-mm/commit: a result for a row that is not in the list"));
        let e = finish(&rows, all(vec![result(&rows[0], &[])]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("two results for one row"), "{e}");
    }
}
