//! `kmm test` and `kmm ci`: build a commit, build its KVM selftests, pack
//! an initramfs, boot it in QEMU, parse the console as KTAP and compare
//! the result with a committed snapshot; and do that for the base and
//! every commit of the series.
//!
//! The snapshot is the redacted result tree (test paths, statuses and
//! directives; the boot outcome; the console splats by kind), stored under
//! `selftests/snapshots/<config>/<plan>/<label>.snap` in insta's format.
//! Times, addresses and log text are not in it, so it changes only when a
//! result changes.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kmm_boot::initramfs::{
    kvm_modules, Initramfs, TestCommand, TestPlan, HOST_BUSYBOX, HOST_TIMEOUT,
};
use kmm_boot::qemu::{BootReport, Machine, Qemu, QemuConfig};
use kmm_build::{Built, ConfigSpec, Workspace};

pub mod fanout;
pub mod flakes;
pub mod junit;
pub mod matrix;

/// What can stop a test run (as opposed to a failing result).
#[derive(Debug, thiserror::Error)]
pub enum CiError {
    /// The test plan is unreadable or malformed.
    #[error("{path}: {message}")]
    Plan {
        /// The plan file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Building failed.
    #[error(transparent)]
    Build(#[from] kmm_build::BuildError),
    /// Assembling the initramfs failed.
    #[error("initramfs: {0}")]
    Initramfs(#[from] kmm_boot::initramfs::InitramfsError),
    /// QEMU could not be run.
    #[error("boot: {0}")]
    Boot(#[from] kmm_boot::qemu::BootError),
    /// A selftest named by the plan was not built.
    #[error("{plan}: selftest {test} was not built (no {})", path.display())]
    MissingTest {
        /// The plan.
        plan: String,
        /// The test.
        test: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// `--target` names no target.
    #[error("unknown target {name:?}; the targets are: {known}")]
    UnknownTarget {
        /// The name asked for.
        name: String,
        /// The boot config and the build targets.
        known: String,
    },
    /// A row whose target or plan the matrix does not have.
    #[error(
        "{0}: no such row in this matrix; `kmm ci --list` (with the same arguments) shows the rows"
    )]
    NoRow(String),
    /// `--commits` beyond the series.
    #[error("--commits {from}..{to}: the series has patches 1..={patches} (0 is the base)")]
    BadRange {
        /// First commit asked for.
        from: usize,
        /// Last commit asked for.
        to: usize,
        /// Patches in the series.
        patches: usize,
    },
    /// A listed row without a result (`kmm ci report`).
    #[error("{0}: no result; its job did not run or did not finish")]
    NoResult(String),
    /// Reading or writing a snapshot failed.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, CiError>;

/// One selftest of a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanTest {
    /// Path of the binary under tools/testing/selftests/kvm
    /// (`x86_64/xen_shinfo_test`), as in kselftest-list.txt.
    pub name: String,
    /// The series adds this test: at commits before it, where it was not
    /// built, it is left out instead of being an error.
    #[serde(default)]
    pub added_by_series: bool,
}

/// A named list of KVM selftests (`selftests/plans/<name>.toml`), run in
/// the guest by the kernel's own `run_kselftest.sh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Plan name.
    pub name: String,
    /// Per-test timeout in seconds, written into the guest's
    /// `kvm/settings`; `None` keeps the tree's own settings file.
    pub timeout: Option<u32>,
    /// Tests in order.
    pub tests: Vec<PlanTest>,
    /// Extra kernel command line words (`kvm.pfncache_inval=split`).
    pub cmdline: Vec<String>,
    /// Set when tests are meant to fail under this plan (a bug shown on
    /// purpose), with the reason: failing tests then do not fail the run,
    /// the snapshot alone is the assertion.
    pub expect_failures: Option<String>,
    /// Plans that `kmm ci` runs at the same commit after this one.
    pub also: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    timeout: Option<u32>,
    #[serde(default)]
    cmdline: Vec<String>,
    expect_failures: Option<String>,
    #[serde(default)]
    also: Vec<String>,
    test: Vec<PlanTest>,
}

/// Seconds the kselftest runner gives a test when no settings file says
/// otherwise (kselftest/runner.sh).
pub const KSELFTEST_DEFAULT_TIMEOUT: u32 = 45;

/// The `timeout=` of a kselftest `settings` file.
pub fn settings_timeout(settings: &str) -> Option<u32> {
    settings
        .lines()
        .find_map(|l| l.trim().strip_prefix("timeout="))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads `<dir>/<name>.toml`.
pub fn load_plan(dir: &Path, name: &str) -> Result<Plan> {
    let path = dir.join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).map_err(|e| CiError::Plan {
        path: path.clone(),
        message: format!("cannot read the test plan: {e}"),
    })?;
    let raw: RawPlan = toml::from_str(&text).map_err(|e| CiError::Plan {
        path: path.clone(),
        message: format!("malformed plan: {}", e.message()),
    })?;
    if let Some(bad) = raw
        .cmdline
        .iter()
        .find(|w| w.is_empty() || w.contains(char::is_whitespace))
    {
        return Err(CiError::Plan {
            path,
            message: format!(
                "cmdline word {bad:?} is empty or has whitespace; give one word per entry"
            ),
        });
    }
    Ok(Plan {
        name: name.into(),
        timeout: raw.timeout,
        tests: raw.test,
        cmdline: raw.cmdline,
        expect_failures: raw.expect_failures,
        also: raw.also,
    })
}

/// How a run's result compares with its committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// Identical.
    Matched,
    /// No snapshot yet; written as `.snap.new` for review.
    New(PathBuf),
    /// Different; the diff is attached, the new one written as `.snap.new`.
    Changed {
        /// The snapshot.
        path: PathBuf,
        /// Unified diff from the committed to the new result.
        diff: String,
    },
    /// Written on purpose (`--accept`).
    Accepted(PathBuf),
}

impl SnapshotStatus {
    /// Whether this status fails a run.
    pub fn failed(&self) -> bool {
        matches!(
            self,
            SnapshotStatus::New(_) | SnapshotStatus::Changed { .. }
        )
    }
}

/// Everything one `kmm test` learned.
#[derive(Debug)]
pub struct TestRun {
    /// Label (`0000-base`, `0001-KVM-...`).
    pub label: String,
    /// Commit id.
    pub commit: String,
    /// The build.
    pub built: Built,
    /// Selftests build time.
    pub selftests_time: Duration,
    /// The boot.
    pub boot: BootReport,
    /// Time from starting QEMU to the first `KTAP version`/`TAP version`
    /// line on the console.
    pub first_ktap: Option<Duration>,
    /// The parsed console.
    pub report: ktap::Report,
    /// The redacted snapshot text.
    pub snapshot_text: String,
    /// Comparison with the committed snapshot.
    pub snapshot: SnapshotStatus,
    /// Set when the first boot's result differed from the snapshot and a
    /// second boot matched it: the first run's diff.
    pub flaky: Option<String>,
    /// The known flake (see [`flakes::KNOWN`]) that made each retry.
    pub retries: Vec<&'static str>,
    /// A flake that the boot shape removed ([`flakes::REMOVED`]) whose
    /// signature the console of a differing result shows: it is back.
    pub removed_flake: Option<&'static str>,
    /// The plan expects failing tests (see [`Plan::expect_failures`]).
    pub expect_failures: bool,
    /// Tests of the plan that the series adds later, left out here.
    pub absent: Vec<String>,
    /// The console log of the boot the result is from.
    pub console_log: PathBuf,
}

impl TestRun {
    /// Whether the boot ended cleanly (powered off, no splat).
    pub fn boot_ok(&self) -> bool {
        self.boot.is_clean()
    }

    /// Whether any test failed (or none ran). Under a plan that expects
    /// failures only an empty result counts.
    pub fn tests_failed(&self) -> bool {
        self.report.tests.is_empty() || (self.report.failed() && !self.expect_failures)
    }

    /// Whether the run as a whole failed.
    pub fn failed(&self) -> bool {
        !self.boot_ok() || self.tests_failed() || self.snapshot.failed()
    }
}

/// Paths and settings of a test run.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The build workspace.
    pub ws: Workspace,
    /// The kvm-mm repository root.
    pub repo_root: PathBuf,
    /// The snapshot directory, holding `<config>/<plan>/<label>.snap`:
    /// [`snapshot_root`] of the version under test.
    pub snapshots: PathBuf,
    /// Write the snapshot instead of comparing.
    pub accept: bool,
}

/// The snapshot directory of version `version` of the series when
/// `current` is series.toml's: `selftests/snapshots` for the current
/// version, `selftests/snapshots/v<N>` for an older one (its labels and
/// results are its own).
pub fn snapshot_root(repo_root: &Path, version: u32, current: u32) -> PathBuf {
    let dir = repo_root.join("selftests/snapshots");
    if version == current {
        dir
    } else {
        dir.join(format!("v{version}"))
    }
}

impl Setup {
    fn snapshot_path(&self, config: &str, plan: &str, label: &str) -> PathBuf {
        self.snapshots
            .join(config)
            .join(plan)
            .join(format!("{label}.snap"))
    }
}

/// Force-included into the selftests of a tree without the series' 6.1.y
/// selftest build fixes (the base, v1); see the header itself.
pub const SELFTEST_COMPAT: &str = "selftests/compat/linux-6.1.192-build.h";

/// The extra CFLAGS for the KVM selftests of the kernel tree `src`: the
/// compat header only where the tree's own test_util.h lacks
/// `TEST_ASSERT_EQ()`. From the series' build fixes on, the selftests build
/// with the kernel's own make and headers alone, as `make kselftest` in a
/// patched tree does, and a regression there fails the build.
pub fn selftest_cflags(repo_root: &Path, src: &Path) -> String {
    let test_util = src.join("tools/testing/selftests/kvm/include/test_util.h");
    let fixed =
        std::fs::read_to_string(test_util).is_ok_and(|t| t.contains("#define TEST_ASSERT_EQ("));
    if fixed {
        String::new()
    } else {
        format!("-include {}", repo_root.join(SELFTEST_COMPAT).display())
    }
}

/// One boot of [`test_commit`].
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// Label (`0000-base`, `0001-KVM-...`).
    pub label: &'a str,
    /// Commit id.
    pub commit: &'a str,
    /// The config.
    pub spec: &'a ConfigSpec,
    /// The plan.
    pub plan: &'a Plan,
    /// The build of an earlier run in the same workspace: when it is of
    /// `commit` with `spec`'s config and its image is still there, it is
    /// used as it is (with a zero build time), so that the plans run at
    /// one commit build it once. Nothing else may have built in between.
    pub prebuilt: Option<&'a Built>,
    /// Directories whose objects are rebuilt so that their W=1 warnings
    /// are printed again (see [`Workspace::build_with`]).
    pub refresh: &'a [String],
}

/// Builds, boots and checks one commit. `progress` receives one line per
/// step with the elapsed time and where the log is.
pub fn test_commit(
    setup: &Setup,
    job: &Job<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<TestRun> {
    let Job {
        label,
        commit,
        spec,
        plan,
        prebuilt,
        refresh,
    } = *job;
    let t0 = Instant::now();
    let short = commit.get(..12).unwrap_or(commit);
    let built = match prebuilt {
        Some(b) if reusable(b, commit, spec) => {
            progress(&format!(
                "{label}: build [{}] reused ({} KVM warning(s))",
                spec.name,
                b.kvm_warnings.len()
            ));
            Built {
                duration: Duration::ZERO,
                ..b.clone()
            }
        }
        _ => {
            progress(&format!("{label}: build [{}] ...", spec.name));
            let built = setup.ws.build_with(commit, spec, refresh)?;
            progress(&format!(
                "{label}: built in {:.0}s, {} KVM warning(s); log {}",
                built.duration.as_secs_f64(),
                built.kvm_warnings.len(),
                built.log.display()
            ));
            built
        }
    };
    let t = Instant::now();
    let cflags = selftest_cflags(&setup.repo_root, &setup.ws.src());
    let st = setup.ws.build_selftests(&built, &cflags)?;
    let selftests_time = t.elapsed();
    progress(&format!(
        "{label}: selftests built in {:.0}s",
        selftests_time.as_secs_f64()
    ));

    let (image, per_test, absent) = pack_initramfs(setup, &st, &built, plan)?;
    if !absent.is_empty() {
        progress(&format!(
            "{label}: not in the tree yet, left out: {}",
            absent.join(", ")
        ));
    }
    let logs = setup.ws.root.join("logs");
    let mut cfg = QemuConfig::new(&built.image);
    cfg.initrd = Some(image);
    cfg.cmdline_extra.extend(plan.cmdline.iter().cloned());
    // The runner kills a test after `per_test` seconds; QEMU gets that for
    // every test plus boot time, and may be silent for one test's time.
    let per_test = u64::from(per_test);
    let budget = (per_test + 15) * plan.tests.len() as u64;
    cfg.boot_timeout = Duration::from_secs(180 + budget);
    cfg.stall_timeout = Some(Duration::from_secs(per_test + 60));
    let console = logs.join(format!("boot-{short}-{}-{}.log", spec.name, plan.name));
    let booted = boot_once(&cfg, &console, label, t0, progress)?;
    let (mut boot, mut report, mut first_ktap) = booted;
    let mut snapshot_text = snapshot_text(&boot, &report);
    let path = setup.snapshot_path(&spec.name, &plan.name, label);
    let mut snapshot = compare_snapshot(&path, &snapshot_text, setup.accept)?;
    let mut flaky = None;
    let mut retries = Vec::new();
    let mut removed_flake = None;
    let mut used_console = console.clone();
    if let SnapshotStatus::Changed { diff, .. } = &snapshot {
        // Retries, as nextest does, but only for a known flake of the
        // environment whose signature the console shows (flakes::KNOWN):
        // any other difference fails at once. A match on a retry is
        // reported as flaky, with the flake's name, not hidden.
        let first_diff = diff.clone();
        let mut last_console = console.clone();
        let mut boot_time = boot.elapsed;
        for attempt in 1..=BOOT_RETRIES {
            let text = std::fs::read(&last_console)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let flake = match flakes::decide(&text, boot_time) {
                flakes::Retry::Again(flake) => flake,
                flakes::Retry::Capped(flake) => {
                    progress(&format!(
                        "{label}: {} again, but the row's boot time is spent ({:.0}s); not retried",
                        flake.name,
                        boot_time.as_secs_f64()
                    ));
                    break;
                }
                flakes::Retry::No { removed } => {
                    if attempt == 1 {
                        removed_flake = removed.map(|f| f.name);
                        progress(&format!(
                            "{label}: result differs from the snapshot ({}); no known flake on the console, not retried",
                            flakes::first_difference(&first_diff).unwrap_or_default()
                        ));
                    }
                    break;
                }
            };
            retries.push(flake.name);
            progress(&format!(
                "{label}: result differs from the snapshot and the console shows {} (\"{}\"); booting again ({attempt}/{BOOT_RETRIES})",
                flake.name, flake.signature
            ));
            let retry_console = console.with_extension(format!("retry{attempt}.log"));
            let (b, r, f) = boot_once(&cfg, &retry_console, label, t0, progress)?;
            boot_time += b.elapsed;
            let text = self::snapshot_text(&b, &r);
            let again = compare_snapshot(&path, &text, false)?;
            if again == SnapshotStatus::Matched {
                flaky = Some(first_diff);
                (boot, report, first_ktap, snapshot_text, snapshot) = (b, r, f, text, again);
                used_console = retry_console;
                break;
            }
            last_console = retry_console;
        }
    }
    Ok(TestRun {
        label: label.into(),
        commit: commit.into(),
        built,
        selftests_time,
        boot,
        first_ktap,
        report,
        snapshot_text,
        snapshot,
        flaky,
        retries,
        removed_flake,
        expect_failures: plan.expect_failures.is_some(),
        absent,
        console_log: used_console,
    })
}

/// Whether `built` is a build of `commit` with `spec`'s config whose image
/// is still on disk.
fn reusable(built: &Built, commit: &str, spec: &ConfigSpec) -> bool {
    built.commit == commit && built.config == spec.name && built.image.is_file()
}

/// Boots once with `cfg`, the console going to `console`, parsing it as
/// it streams. Returns the boot report, the KTAP report and the time to
/// the first KTAP line.
fn boot_once(
    cfg: &QemuConfig,
    console: &Path,
    label: &str,
    t0: Instant,
    progress: &mut dyn FnMut(&str),
) -> Result<(BootReport, ktap::Report, Option<Duration>)> {
    let mut cfg = cfg.clone();
    cfg.console_log = Some(console.to_path_buf());
    progress(&format!("{label}: boot ... console {}", console.display()));
    let mut parser = ktap::Parser::new();
    let boot_start = Instant::now();
    let mut first_ktap = None;
    let boot = Qemu::new(cfg).boot(&mut |line: &str| {
        if first_ktap.is_none() && line.contains("TAP version") {
            first_ktap = Some(boot_start.elapsed());
        }
        parser.feed_line(line);
    })?;
    let report = parser.finish();
    let secs =
        |d: Option<Duration>| d.map_or_else(|| "-".into(), |d| format!("{:.1}s", d.as_secs_f64()));
    progress(&format!(
        "{label}: {} in {:.0}s (first console line {}, first KTAP line {}), total {:.0}s",
        boot.outcome,
        boot.elapsed.as_secs_f64(),
        secs(boot.first_line),
        secs(first_ktap),
        t0.elapsed().as_secs_f64()
    ));
    Ok((boot, report, first_ktap))
}

/// Most boots after the first whose result differs from the snapshot, and
/// only while the console shows a known flake of the environment
/// ([`flakes::KNOWN`]; a match on a retry is reported as flaky).
pub const BOOT_RETRIES: u32 = 3;

/// Where the kernel's kselftest runner lives in the guest.
pub const GUEST_KSELFTEST: &str = "/kselftest";

/// Packs busybox, coreutils `timeout`, the kernel's kselftest runner, the
/// plan's KVM selftests and the build's KVM modules (KVM=m) into
/// `<work>/initramfs-<config>.cpio`, with an /init that loads the modules
/// once the TSC calibration is final and runs `run_kselftest.sh` on the
/// plan. Returns the image and the per-test timeout the runner will apply
/// and the tests left out because the series adds them later.
fn pack_initramfs(
    setup: &Setup,
    selftests: &Path,
    built: &Built,
    plan: &Plan,
) -> Result<(PathBuf, u32, Vec<String>)> {
    let tree = setup.ws.src().join("tools/testing/selftests");
    let mut initramfs = Initramfs::new();
    initramfs.add_busybox(Path::new(HOST_BUSYBOX))?;
    initramfs.add_coreutils_timeout(Path::new(HOST_TIMEOUT))?;
    let ks = GUEST_KSELFTEST;
    initramfs.add_file(
        &tree.join("run_kselftest.sh"),
        &format!("{ks}/run_kselftest.sh"),
    )?;
    for f in ["runner.sh", "prefix.pl"] {
        initramfs.add_file(
            &tree.join("kselftest").join(f),
            &format!("{ks}/kselftest/{f}"),
        )?;
    }
    let settings = std::fs::read_to_string(tree.join("kvm/settings")).unwrap_or_default();
    let per_test = plan
        .timeout
        .or_else(|| settings_timeout(&settings))
        .unwrap_or(KSELFTEST_DEFAULT_TIMEOUT);
    initramfs.add_bytes(
        &format!("{ks}/kvm/settings"),
        0o644,
        format!("timeout={per_test}\n").into_bytes(),
    )?;
    let mut list = String::new();
    let mut absent = Vec::new();
    for test in &plan.tests {
        let host = selftests.join(&test.name);
        // The output directory is shared by every commit built with this
        // config, so a binary there may come from another commit: a test
        // is in this commit only if its source is.
        let source = tree.join("kvm").join(format!("{}.c", test.name));
        if !source.is_file() && test.added_by_series {
            absent.push(test.name.clone());
            continue;
        }
        if !host.is_file() {
            return Err(CiError::MissingTest {
                plan: plan.name.clone(),
                test: test.name.clone(),
                path: host,
            });
        }
        initramfs.add_file(&host, &format!("{ks}/kvm/{}", test.name))?;
        list.push_str(&format!("kvm:{}\n", test.name));
    }
    initramfs.add_bytes(
        &format!("{ks}/kselftest-list.txt"),
        0o644,
        list.into_bytes(),
    )?;
    let total = (per_test + 15) * u32::try_from(plan.tests.len()).unwrap_or(u32::MAX / 2);
    let modules = initramfs.add_modules(&kvm_modules(&built.build_dir)?)?;
    initramfs.set_test_plan(
        &TestPlan::new(vec![TestCommand::new(
            "kselftest",
            format!("{ks}/run_kselftest.sh"),
            total.saturating_add(30),
        )])
        .with_modules(modules),
    )?;
    let image = setup
        .ws
        .root
        .join(format!("initramfs-{}.cpio", built.config));
    initramfs.write_file(&image)?;
    Ok((image, per_test, absent))
}

/// The redacted, stable view of a run that snapshots hold.
pub fn snapshot_text(boot: &BootReport, report: &ktap::Report) -> String {
    let mut s = String::new();
    let outcome = match &boot.outcome {
        kmm_boot::qemu::Outcome::Timeout { .. } => "timeout".to_string(),
        kmm_boot::qemu::Outcome::Stalled { .. } => "stalled".to_string(),
        o => o.to_string(),
    };
    let _ = writeln!(s, "boot: {outcome}");
    let mut kinds: Vec<String> = boot
        .splats
        .iter()
        .map(|sp| format!("{:?}", sp.kind))
        .collect();
    kinds.sort();
    let _ = writeln!(
        s,
        "splats: {}",
        if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        }
    );
    for t in report.iter() {
        let _ = write!(
            s,
            "{}{}: {}",
            "  ".repeat(t.depth),
            t.path,
            t.node.status.as_str()
        );
        if let Some(d) = &t.node.directive {
            let _ = write!(s, " # {d}");
        }
        s.push('\n');
    }
    let c = &report.counts;
    let _ = writeln!(
        s,
        "{} passed, {} failed, {} skipped",
        c.pass,
        c.failed(),
        c.skip
    );
    s
}

const SNAP_HEADER: &str = "---\nsource: kmm test\nexpression: redacted KTAP result tree\n---\n";

/// Compares `text` with the snapshot at `path` (insta's `.snap` format),
/// writing `<path>.new` on a difference, or `path` itself when `accept`.
pub fn compare_snapshot(path: &Path, text: &str, accept: bool) -> Result<SnapshotStatus> {
    let io = |p: &Path| {
        let path = p.to_path_buf();
        move |source| CiError::Io { path, source }
    };
    let full = format!("{SNAP_HEADER}{text}");
    let new_path = path.with_extension("snap.new");
    if accept {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        write_atomic(path, &full).map_err(io(path))?;
        let _ = std::fs::remove_file(&new_path);
        return Ok(SnapshotStatus::Accepted(path.to_path_buf()));
    }
    let old = match std::fs::read_to_string(path) {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d).map_err(io(d))?;
            }
            write_atomic(&new_path, &full).map_err(io(&new_path))?;
            return Ok(SnapshotStatus::New(path.to_path_buf()));
        }
        Err(e) => {
            return Err(CiError::Io {
                path: path.to_path_buf(),
                source: e,
            })
        }
    };
    let old_body = old.split_once("\n---\n").map_or(old.as_str(), |(_, b)| b);
    if old_body == text {
        let _ = std::fs::remove_file(&new_path);
        return Ok(SnapshotStatus::Matched);
    }
    write_atomic(&new_path, &full).map_err(io(&new_path))?;
    let diff = similar::TextDiff::from_lines(old_body, text)
        .unified_diff()
        .header("snapshot", "this run")
        .to_string();
    Ok(SnapshotStatus::Changed {
        path: path.to_path_buf(),
        diff,
    })
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Snapshots under `<snapshots>/<config>/` (see [`snapshot_root`]) that
/// none of `expected` (paths this run compared against) accounts for:
/// left over from renamed or dropped commits.
pub fn stale_snapshots(snapshots: &Path, config: &str, expected: &[PathBuf]) -> Vec<PathBuf> {
    let dir = snapshots.join(config);
    let mut out = Vec::new();
    let Ok(plans) = std::fs::read_dir(&dir) else {
        return out;
    };
    for plan in plans.flatten() {
        let Ok(files) = std::fs::read_dir(plan.path()) else {
            continue;
        };
        for f in files.flatten() {
            let p = f.path();
            if p.extension().is_some_and(|x| x == "snap") && !expected.contains(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

impl Setup {
    /// The snapshot file of a run.
    pub fn snapshot_file(&self, config: &str, plan: &str, label: &str) -> PathBuf {
        self.snapshot_path(config, plan, label)
    }
}

/// One row of the `kmm ci` matrix.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Label.
    pub label: String,
    /// Commit id.
    pub commit: String,
    /// The target: a build target of ci/targets.toml (`arm64`,
    /// `x86-modular`), or for a boot row its config (`kvm-mm`).
    pub target: String,
    /// Config.
    pub config: String,
    /// Plan; `build` for a build target's row (no boot).
    pub plan: String,
    /// `ok`, or why the build failed.
    pub build: String,
    /// The compiler's, linker's or modpost's first error line, when the
    /// build failed with one.
    pub error: Option<String>,
    /// KVM warnings (W=1).
    pub kvm_warnings: usize,
    /// W=1 warnings this commit added over the previous row of the same
    /// target, in the KVM directories and the directories it touches.
    pub new_warnings: Vec<String>,
    /// Boot outcome.
    pub boot: String,
    /// `passed/total` of KUnit and selftests.
    pub tests: String,
    /// Tests that did not pass or skip.
    pub failures: Vec<String>,
    /// Splat kinds seen.
    pub splats: Vec<String>,
    /// Snapshot status.
    pub snapshot: String,
    /// Snapshot diff, if changed.
    pub snapshot_diff: Option<String>,
    /// The first boot's diff when only a retry matched the snapshot.
    pub flaky: Option<String>,
    /// The known flake behind each retry (see [`flakes::KNOWN`]).
    pub retries: Vec<String>,
    /// A removed flake ([`flakes::REMOVED`]) whose signature the console
    /// of this differing result shows.
    #[serde(default)]
    pub removed_flake: Option<String>,
    /// Seconds for build, selftests and boot.
    pub seconds: f64,
    /// Seconds of the kernel build (0 when reused).
    #[serde(default)]
    pub build_secs: f64,
    /// Seconds of QEMU for the boot the result is from.
    #[serde(default)]
    pub boot_secs: f64,
    /// Seconds from starting QEMU to the first KTAP line.
    pub first_ktap_secs: Option<f64>,
    /// The console log of the boot the result is from.
    #[serde(default)]
    pub console_log: Option<PathBuf>,
    /// Whether the row fails.
    pub failed: bool,
}

/// The W=1 warnings of `now` in `dirs` that `prev` (the previous build
/// of the same target) did not have, as `file:line: message`.
pub fn added_warnings(prev: Option<&Built>, now: &Built, dirs: &[String]) -> Vec<String> {
    let Some(prev) = prev else {
        return Vec::new();
    };
    let pick = |b: &Built| -> Vec<kmm_build::Warning> {
        b.warnings
            .iter()
            .filter(|w| kmm_build::in_dirs(w, dirs))
            .cloned()
            .collect()
    };
    kmm_build::new_warnings(&pick(prev), &pick(now))
        .iter()
        .map(|w| format!("{}:{}: {}", w.file, w.line, w.message))
        .collect()
}

impl Row {
    /// A row for a run, with the warnings it added over `prev` in `dirs`.
    pub fn from_run(run: &TestRun, plan: &str, prev: Option<&Built>, dirs: &[String]) -> Row {
        let new = added_warnings(prev, &run.built, dirs);
        let failures: Vec<String> = run
            .report
            .iter()
            .filter(|t| t.node.status.is_failure() && t.node.subtests.is_empty())
            .map(|t| format!("{} ({})", t.path, t.node.status.as_str()))
            .collect();
        let c = &run.report.counts;
        let (snapshot, snapshot_diff) = match &run.snapshot {
            SnapshotStatus::Matched => ("match".to_string(), None),
            SnapshotStatus::Accepted(_) => ("accepted".to_string(), None),
            SnapshotStatus::New(p) => (format!("new ({}.new)", p.display()), None),
            SnapshotStatus::Changed { diff, .. } => ("CHANGED".to_string(), Some(diff.clone())),
        };
        let failed = run.failed() || !new.is_empty();
        Row {
            label: run.label.clone(),
            commit: run.commit.clone(),
            target: run.built.config.clone(),
            config: run.built.config.clone(),
            plan: plan.into(),
            build: "ok".into(),
            error: None,
            kvm_warnings: run.built.kvm_warnings.len(),
            new_warnings: new,
            boot: run.boot.outcome.to_string(),
            tests: format!("{}/{}", c.pass + c.skip + c.xfail + c.todo, c.total()),
            failures,
            splats: run
                .boot
                .splats
                .iter()
                .map(|s| format!("{:?}", s.kind))
                .collect(),
            snapshot,
            snapshot_diff,
            flaky: run.flaky.clone(),
            retries: run.retries.iter().map(|r| (*r).to_string()).collect(),
            removed_flake: run.removed_flake.map(str::to_string),
            seconds: (run.built.duration + run.selftests_time + run.boot.elapsed).as_secs_f64(),
            build_secs: run.built.duration.as_secs_f64(),
            boot_secs: run.boot.elapsed.as_secs_f64(),
            first_ktap_secs: run.first_ktap.map(|d| d.as_secs_f64()),
            console_log: Some(run.console_log.clone()),
            failed,
        }
    }

    /// A row for a build target's build (no boot), with the warnings it
    /// added over `prev` in `dirs`.
    pub fn from_build(label: &str, built: &Built, prev: Option<&Built>, dirs: &[String]) -> Row {
        let new = added_warnings(prev, built, dirs);
        Row {
            build: "ok".into(),
            kvm_warnings: built.kvm_warnings.len(),
            failed: !new.is_empty(),
            new_warnings: new,
            seconds: built.duration.as_secs_f64(),
            build_secs: built.duration.as_secs_f64(),
            ..Row::unbooted(label, &built.commit, &built.config, BUILD_PLAN)
        }
    }

    /// A row that did not boot, with nothing else known yet.
    fn unbooted(label: &str, commit: &str, target: &str, plan: &str) -> Row {
        Row {
            label: label.into(),
            commit: commit.into(),
            target: target.into(),
            config: target.into(),
            plan: plan.into(),
            build: String::new(),
            error: None,
            kvm_warnings: 0,
            new_warnings: vec![],
            boot: "-".into(),
            tests: "-".into(),
            failures: vec![],
            splats: vec![],
            snapshot: "-".into(),
            snapshot_diff: None,
            flaky: None,
            retries: Vec::new(),
            removed_flake: None,
            seconds: 0.0,
            build_secs: 0.0,
            boot_secs: 0.0,
            first_ktap_secs: None,
            console_log: None,
            failed: false,
        }
    }

    /// A row for a commit whose build or boot could not run.
    pub fn from_error(label: &str, commit: &str, config: &str, plan: &str, err: &CiError) -> Row {
        let error = match err {
            CiError::Build(kmm_build::BuildError::Failed { first_error, .. }) => {
                first_error.clone()
            }
            _ => None,
        };
        Row {
            build: err.to_string(),
            error,
            failed: true,
            ..Row::unbooted(label, commit, config, plan)
        }
    }

    /// The first reason this row failed, for the human table.
    pub fn reason(&self) -> String {
        if self.build != "ok" {
            return format!("build: {}", self.error.as_deref().unwrap_or(&self.build));
        }
        if let Some(w) = self.new_warnings.first() {
            return format!("adds W=1 warning: {w}");
        }
        if !self.splats.is_empty() {
            return format!("console splat: {}", self.splats.join(", "));
        }
        if !self.failures.is_empty() {
            return format!("failed: {}", self.failures.join(", "));
        }
        if let Some(diff) = &self.snapshot_diff {
            let first = flakes::first_difference(diff).unwrap_or_default();
            return match self.retries.last() {
                Some(f) => format!(
                    "snapshot {}: {first} (retried {} time(s) for {f})",
                    self.snapshot,
                    self.retries.len()
                ),
                None => match &self.removed_flake {
                    Some(f) => format!(
                        "snapshot {}: {first} (the console shows {f}, which the boot config \
                         should have removed: see kmm_ci::flakes::REMOVED)",
                        self.snapshot
                    ),
                    None => format!("snapshot {}: {first}", self.snapshot),
                },
            };
        }
        if self.snapshot.starts_with("new") {
            return format!("snapshot {}", self.snapshot);
        }
        if self.boot != "powered off" {
            return format!("boot: {}", self.boot);
        }
        String::new()
    }
}

/// The plan name of a build target's rows.
pub const BUILD_PLAN: &str = "build";

/// Renders the matrix as a table.
pub fn render_table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<40} {:<11} {:<18} {:<6} {:<5} {:<12} {:<7} {:<7} {:<9} {:>6}",
        "commit", "target", "plan", "build", "warn", "boot", "tests", "splats", "snapshot", "secs"
    );
    for r in rows {
        let mut label = r.label.clone();
        label.truncate(40);
        let _ = writeln!(
            s,
            "{:<40} {:<11} {:<18} {:<6} {:<5} {:<12} {:<7} {:<7} {:<9} {:>6.0}",
            label,
            r.target,
            r.plan,
            if r.build == "ok" { "ok" } else { "FAIL" },
            r.kvm_warnings,
            r.boot,
            r.tests,
            r.splats.len(),
            r.snapshot.split(' ').next().unwrap_or(""),
            r.seconds
        );
        if r.failed {
            let _ = writeln!(
                s,
                "    FAILED {}/{}/{}: {}",
                r.label,
                r.target,
                r.plan,
                r.reason()
            );
        } else if let Some(diff) = &r.flaky {
            let _ = writeln!(
                s,
                "    FLAKY ({}): the first boot differed from the snapshot ({}), retry {} matched",
                r.retries.join(", "),
                flakes::first_difference(diff).unwrap_or_default(),
                r.retries.len()
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_is_reused_only_for_its_commit_and_config() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("bzImage");
        std::fs::write(&image, b"kernel").unwrap();
        let built = Built {
            commit: "c1".into(),
            config: "kvm-mm".into(),
            image: image.clone(),
            build_dir: dir.path().into(),
            log: dir.path().join("log"),
            duration: Duration::from_secs(20),
            config_changed: false,
            kvm_warnings: Vec::new(),
            other_warnings: 0,
            warnings: Vec::new(),
        };
        let spec = |name: &str| ConfigSpec::host(name, Vec::new(), Vec::new());
        assert!(reusable(&built, "c1", &spec("kvm-mm")));
        assert!(!reusable(&built, "c2", &spec("kvm-mm")));
        assert!(!reusable(&built, "c1", &spec("debug")));
        std::fs::remove_file(&image).unwrap();
        assert!(!reusable(&built, "c1", &spec("kvm-mm")));
    }

    #[test]
    fn snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.snap");
        assert_eq!(
            compare_snapshot(&p, "x: pass\n", false).unwrap(),
            SnapshotStatus::New(p.clone())
        );
        assert!(p.with_extension("snap.new").exists());
        assert_eq!(
            compare_snapshot(&p, "x: pass\n", true).unwrap(),
            SnapshotStatus::Accepted(p.clone())
        );
        assert!(!p.with_extension("snap.new").exists());
        assert_eq!(
            compare_snapshot(&p, "x: pass\n", false).unwrap(),
            SnapshotStatus::Matched
        );
        match compare_snapshot(&p, "x: fail\n", false).unwrap() {
            SnapshotStatus::Changed { diff, .. } => {
                assert!(diff.contains("-x: pass\n+x: fail"), "{diff}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plans_parse() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.toml"),
            "timeout = 5\n[[test]]\nname = \"a\"\n",
        )
        .unwrap();
        let p = load_plan(dir.path(), "p").unwrap();
        assert_eq!(p.tests.len(), 1);
        assert_eq!(p.timeout, Some(5));
        // A per-test timeout is not a thing: the runner applies kvm/settings.
        std::fs::write(
            dir.path().join("q.toml"),
            "[[test]]\nname = \"a\"\ntimeout = 5\n",
        )
        .unwrap();
        let e = load_plan(dir.path(), "q").unwrap_err().to_string();
        assert!(e.contains("q.toml: malformed plan"), "{e}");
    }

    #[test]
    fn finds_stale_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("selftests/snapshots/kvm-mm/commit");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("0000-base.snap"), "").unwrap();
        std::fs::write(d.join("0001-old.snap"), "").unwrap();
        std::fs::write(d.join("0001-old.snap.new"), "").unwrap();
        let stale = stale_snapshots(
            &dir.path().join("selftests/snapshots"),
            "kvm-mm",
            &[d.join("0000-base.snap")],
        );
        assert_eq!(stale, vec![d.join("0001-old.snap")]);
    }

    #[test]
    fn settings_files() {
        assert_eq!(settings_timeout("timeout=120\n"), Some(120));
        assert_eq!(settings_timeout("# c\ntimeout = 7\n"), None);
        assert_eq!(settings_timeout(""), None);
    }

    #[test]
    fn plan_options_parse() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.toml"),
            "cmdline = [\"kvm.x=1\", \"y\"]\nexpect_failures = \"shown on purpose\"\n\
             also = [\"q\"]\n[[test]]\nname = \"a\"\nadded_by_series = true\n\
             [[test]]\nname = \"b\"\n",
        )
        .unwrap();
        let p = load_plan(dir.path(), "p").unwrap();
        assert_eq!(p.cmdline, ["kvm.x=1", "y"]);
        assert_eq!(p.expect_failures.as_deref(), Some("shown on purpose"));
        assert_eq!(p.also, ["q"]);
        assert!(p.tests[0].added_by_series);
        assert!(!p.tests[1].added_by_series);
        // One word per entry: the words are joined with spaces.
        std::fs::write(
            dir.path().join("r.toml"),
            "cmdline = [\"a b\"]\n[[test]]\nname = \"a\"\n",
        )
        .unwrap();
        let e = load_plan(dir.path(), "r").unwrap_err().to_string();
        assert!(e.contains("r.toml: cmdline word \"a b\""), "{e}");
    }

    #[test]
    fn repo_plans_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../selftests/plans");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_suffix(".toml").map(str::to_owned)
            })
            .collect();
        names.sort();
        assert!(names.contains(&"commit".to_string()) && names.contains(&"tip".to_string()));
        for name in &names {
            let p = load_plan(&dir, name).unwrap();
            assert!(!p.tests.is_empty(), "{name}");
            // Every `also` plan exists.
            for other in &p.also {
                assert!(names.contains(other), "{name}: unknown plan {other}");
            }
        }
    }
}

#[cfg(test)]
mod selftest_cflags_tests {
    use super::*;

    #[test]
    fn compat_only_without_test_assert_eq() {
        let tree = tempfile::tempdir().unwrap();
        let inc = tree.path().join("tools/testing/selftests/kvm/include");
        std::fs::create_dir_all(&inc).unwrap();
        let repo = Path::new("/r");
        std::fs::write(inc.join("test_util.h"), "#define ASSERT_EQ(a, b) x\n").unwrap();
        assert_eq!(
            selftest_cflags(repo, tree.path()),
            format!("-include /r/{SELFTEST_COMPAT}")
        );
        std::fs::write(
            inc.join("test_util.h"),
            "#define TEST_ASSERT_EQ(a, b) ASSERT_EQ(a, b)\n",
        )
        .unwrap();
        assert_eq!(selftest_cflags(repo, tree.path()), "");
    }
}
