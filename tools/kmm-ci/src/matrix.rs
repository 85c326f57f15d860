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

/// Whether `path` matches `pattern`, a glob with `*` (any run of
/// characters, `/` included) and `?` (one character), tried against the
/// whole path and against its file name.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    fn glob(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
            Some(('?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
        }
    }
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

/// What a matrix run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The rows, commit by commit: boot rows, then build rows.
    pub rows: Vec<Row>,
    /// The snapshot files the boot rows compared against.
    pub expected_snapshots: Vec<PathBuf>,
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

/// Runs the matrix over `commits` with `choices` (from [`choose`]):
/// commit by commit, boot rows first, then the build rows. An error of
/// one row (a failed build, a boot that could not run) is that row's
/// result; the run goes on.
pub fn run(
    setup: &Setup,
    m: &Matrix,
    commits: &[Commit],
    choices: &[Choice],
    progress: &mut dyn FnMut(&str),
) -> Outcome {
    let mut rows = Vec::new();
    let mut expected = Vec::new();
    // The previous build of each target: its warnings are what the next
    // row is compared with. For the boot config it is the last main
    // plan's build, which its `also` plans reuse.
    let mut last: BTreeMap<String, Built> = BTreeMap::new();
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
                expected.push(setup.snapshot_file(&boot.spec.name, &plan.name, &c.label));
                let prev = last.get(&boot.spec.name);
                let job = Job {
                    label: &c.label,
                    commit: &c.id,
                    spec: &boot.spec,
                    plan,
                    prebuilt: if j == 0 { None } else { prev },
                    refresh: &refresh,
                };
                match crate::test_commit(setup, &job, progress) {
                    Ok(run) => {
                        // New warnings are the main plan's business; the
                        // build is the same for the others.
                        let row = if j == 0 {
                            Row::from_run(&run, &plan.name, prev, &dirs)
                        } else {
                            Row::from_run(&run, &plan.name, None, &dirs)
                        };
                        report(progress, &row);
                        if j == 0 {
                            last.insert(boot.spec.name.clone(), run.built);
                        }
                        rows.push(row);
                    }
                    Err(e) => {
                        let row = Row::from_error(&c.label, &c.id, &boot.spec.name, &plan.name, &e);
                        report(progress, &row);
                        rows.push(row);
                    }
                }
            }
        }
        for name in &ch.builds {
            let Some(spec) = m.builds.iter().find(|s| &s.name == name) else {
                continue;
            };
            let refresh = refresh_dirs(commits, ch.commit, next_of(i, name));
            let dirs = warning_dirs(spec, c);
            progress(&format!("{}: build [{name}] ...", c.label));
            let row = match setup.ws.build_with(&c.id, spec, &refresh) {
                Ok(built) => {
                    let row = Row::from_build(&c.label, &built, last.get(name), &dirs);
                    last.insert(name.clone(), built);
                    row
                }
                Err(e) => {
                    Row::from_error(&c.label, &c.id, name, crate::BUILD_PLAN, &CiError::Build(e))
                }
            };
            progress(&format!(
                "{}: [{name}] built in {:.0}s",
                c.label, row.seconds
            ));
            report(progress, &row);
            rows.push(row);
        }
    }
    Outcome {
        rows,
        expected_snapshots: expected,
    }
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
}
