//! `kmm`: the command line over the kvm-mm library crates.
//!
//! Exit codes: 0 success; 1 a check found problems (stale patches, `git am`
//! or checkpatch failures); 2 the command could not run (bad arguments, a
//! malformed manifest, a missing package, a tool that failed, a full
//! disk); 130, 143, 129 interrupted by SIGINT, SIGTERM, SIGHUP; 141
//! standard output was closed (128 + SIGPIPE, as a shell reports a command
//! that a closed pipe killed).
//!
//! Output goes through [`out!`] and [`outln!`], which return an error
//! instead of panicking when stdout is closed or full; stderr lines
//! ([`errln!`]) are best effort.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use kmm_series::base;
use kmm_series::check::{self, Finding};

use kmm_series::generate;
use kmm_series::manifest::{self, Manifest};

/// Exit code when standard output was closed under us.
const EXIT_PIPE: u8 = 141;

/// Standard output could not be written: a closed pipe or a full disk.
#[derive(Debug)]
struct StdoutError(std::io::Error);

impl std::fmt::Display for StdoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.kind() == std::io::ErrorKind::BrokenPipe {
            write!(
                f,
                "standard output was closed (broken pipe); stopped writing"
            )
        } else {
            write!(f, "cannot write standard output: {}", self.0)
        }
    }
}

impl std::error::Error for StdoutError {}

/// Writes to stdout, returning an error rather than panicking.
fn write_out(args: std::fmt::Arguments<'_>) -> Result<(), StdoutError> {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    o.write_fmt(args)
        .and_then(|()| o.flush())
        .map_err(StdoutError)
}

/// `print!` that returns `Err` on a closed or full stdout.
macro_rules! out {
    ($($t:tt)*) => { write_out(format_args!($($t)*)) };
}

/// `println!` that returns `Err` on a closed or full stdout.
macro_rules! outln {
    () => { write_out(format_args!("\n")) };
    ($($t:tt)*) => { write_out(format_args!("{}\n", format_args!($($t)*))) };
}

/// `eprint!` that never panics: stderr is best effort.
macro_rules! err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}

/// `eprintln!` that never panics: stderr is best effort.
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// Exit code when a check found problems.
const EXIT_FINDINGS: u8 = 1;
/// Exit code when the command could not run.
const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "kmm", version, about, long_about = None, arg_required_else_help = true)]
#[command(
    after_help = "Exit codes: 0 ok, 1 a check found problems, 2 the command could not run, \
                  130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP, 141 standard output was closed."
)]
struct Cli {
    /// The kvm-mm repository (default: the nearest parent of the current
    /// directory that holds patches/series.toml).
    #[arg(long, global = true)]
    repo: Option<PathBuf>,
    /// The cache directory (default: $KMM_CACHE_DIR, $XDG_CACHE_HOME/kmm or
    /// ~/.cache/kmm).
    #[arg(long, global = true)]
    cache: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once per run; boxing the big variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Cmd {
    /// Import the linux-source-6.1 tarball into the cache (once) and check it.
    Base {
        /// Import into a scratch directory and print the ids to pin in
        /// series.toml instead of checking them (for moving to a new base).
        #[arg(long)]
        pin: bool,
        /// Read and hash every object of the pinned tree, not only its
        /// trees and a sample of its blobs.
        #[arg(long)]
        verify: bool,
    },
    /// Generate, check, apply or list the patch series.
    #[command(subcommand)]
    Series(SeriesCmd),
    /// Build the kernel at a commit of the series, out of tree and
    /// incrementally, counting W=1 warnings in KVM.
    Build {
        /// `base`, `tip` (default), a patch number (1..N) or a commit id.
        #[arg(long, default_value = "tip")]
        commit: String,
        /// Config name in ci/configs (kvm-mm, debug, rust) or a build
        /// target of ci/targets.toml (arm64, x86-modular, ...).
        #[arg(long, default_value = kmm_build::DEFAULT_CONFIG)]
        config: String,
        /// Parallel make jobs (default: the number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Build, boot and test one commit in QEMU and compare the results with
    /// the committed snapshot.
    Test {
        /// `base`, `tip` (default), a patch number (1..N) or a commit id.
        #[arg(long, default_value = "tip")]
        commit: String,
        /// Config name in ci/configs.
        #[arg(long, default_value = kmm_build::DEFAULT_CONFIG)]
        config: String,
        /// Test plan in selftests/plans (default: `tip` at the tip,
        /// `commit` elsewhere).
        #[arg(long)]
        plan: Option<String>,
        /// Write the result as the new snapshot instead of comparing.
        #[arg(long)]
        accept: bool,
        /// Parallel make jobs (default: the number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// `kmm test` for the base and every commit of the series, as a matrix;
    /// with --target, build rows for other architectures and config shapes.
    Ci {
        /// The boot config: a name in ci/configs.
        #[arg(long, default_value = kmm_build::DEFAULT_CONFIG)]
        config: String,
        /// A target to run (repeatable): the boot config's name (boot
        /// rows), a build target of ci/targets.toml (arm64, riscv,
        /// powerpc, mips, s390, x86-modular, x86-kunit-m), or `builds` for
        /// every build target. Default: the boot config alone.
        #[arg(long = "target", value_name = "NAME")]
        targets: Vec<String>,
        /// Run a version of the series other than series.toml's: an older
        /// one is rebuilt from its frozen patches/vN. Its boot rows are
        /// compared with selftests/snapshots/vN/.
        #[arg(long, value_parser = parse_version)]
        version: Option<u32>,
        /// Only these commits: `FROM..TO` patch numbers, inclusive (0 is
        /// the base), one number, or `tip`. The per-commit choice of
        /// targets is unchanged; the tip keeps every target only if it is
        /// in range.
        #[arg(long, value_name = "FROM..TO", value_parser = parse_range)]
        commits: Option<(usize, usize)>,
        /// Print the targets chosen for each commit and stop: nothing is
        /// built.
        #[arg(long)]
        dry_run: bool,
        /// Print the rows (id, commit, target, plan) and stop; with
        /// --results also write them to DIR/list.json for `kmm ci report`.
        #[arg(long, conflicts_with_all = ["rows", "shard", "dry_run"])]
        list: bool,
        /// Run only this row (repeatable; `all` for every row); ids from
        /// --list.
        #[arg(long = "row", value_name = "ID", conflicts_with = "shard")]
        rows: Vec<String>,
        /// Run shard I of N (1-based): a contiguous part of the rows.
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<(usize, usize)>,
        /// Write each row's result (and console log) into DIR as it
        /// finishes, for `kmm ci report`; the verdict is the report's, so
        /// this exits 0 once every result is written.
        #[arg(long, value_name = "DIR")]
        results: Option<PathBuf>,
        /// Plan for every commit but the tip.
        #[arg(long, default_value = "commit")]
        commit_plan: String,
        /// Plan for the series tip.
        #[arg(long, default_value = "tip")]
        tip_plan: String,
        /// Only the commits whose diff touches a path matching this
        /// pattern (`*` and `?` wildcards, matched against the whole path
        /// or its file name), plus the tip; repeatable. E.g. `--config
        /// rust --touching '*.rs'`.
        #[arg(long, value_name = "PATTERN")]
        touching: Vec<String>,
        /// Output format of the matrix.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Also write the matrix as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write the results as the new snapshots instead of comparing.
        #[arg(long)]
        accept: bool,
        /// Parallel make jobs (default: the number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
        /// `kmm ci report DIR...`: merge result files.
        #[command(subcommand)]
        sub: Option<CiSub>,
    },
    /// Mail the current version's patches with git send-email: a dry run
    /// unless --confirm; refused when `kmm series check` finds problems or
    /// the version was sent already (patches/sent/vN.toml).
    ///
    /// The SMTP server, sender identity and credentials come from your git
    /// configuration (sendemail.*), as for git send-email run by hand.
    Send {
        /// The version to send (`v2` or `2`); only the current version of
        /// series.toml can be sent.
        #[arg(long, value_parser = parse_version)]
        version: Option<u32>,
        /// Really send. Without it, `git send-email --dry-run` shows every
        /// message and recipient and nothing is sent or recorded.
        #[arg(long)]
        confirm: bool,
        /// Send the cover letter in reply to this Message-ID.
        #[arg(long, value_name = "MESSAGE-ID", conflicts_with = "reply_to_previous")]
        in_reply_to: Option<String>,
        /// Send the cover letter in reply to the previous version's cover
        /// letter (its Message-ID from patches/sent/).
        #[arg(long)]
        reply_to_previous: bool,
        /// A git setting for this send only, as `git -c KEY=VALUE
        /// send-email` (repeatable), e.g. -c sendemail.identity=work.
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// After a send that kmm could not see finish (killed with
        /// SIGKILL while a mail was going out): whether that mail reached
        /// the list (`sent`) or not (`unsent`).
        #[arg(long, value_name = "sent|unsent", value_parser = parse_in_flight)]
        in_flight: Option<bool>,
        /// Further git send-email options, after `--`: only those that
        /// choose how mail is delivered (--smtp-*, --identity, --from,
        /// --sendmail-cmd, ...).
        #[arg(last = true, value_name = "SEND-EMAIL-ARGS")]
        extra: Vec<String>,
    },
    /// Parse a KTAP / kselftest TAP log and print the result tree.
    ///
    /// Exits 0 when no test failed, 1 when one did (or the log holds no
    /// KTAP at all).
    Parse {
        /// The log; `-` or nothing for standard input.
        file: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ParseFormat::Human)]
        format: ParseFormat,
    },
}

#[derive(Debug, Subcommand)]
enum CiSub {
    /// Merge the result files of `kmm ci --results DIR` runs (CI jobs)
    /// into the matrix, JSON, JUnit and exit code one `kmm ci` would give.
    /// A listed row without a result fails; a result of an unlisted row is
    /// an error.
    Report {
        /// Directories holding list.json and *.result.json (searched
        /// recursively).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Output format of the matrix.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Also write the matrix as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// An indented tree and a summary line.
    Human,
    /// Every test with its full path, status and directive.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ParseFormat {
    /// An indented tree and a summary line.
    Human,
    /// Every test with its full path, status and directive.
    Json,
    /// The JSON of the kernel's `kunit.py parse --json` (KernelCI's test
    /// API).
    KunitJson,
}

#[derive(Debug, Subcommand)]
enum SeriesCmd {
    /// Build the commits on the base and write patches/vN/*.patch.
    Generate,
    /// Fail if patches/ is stale; git am it onto the base; run checkpatch.
    Check,
    /// Create the series' branch in a kernel git worktree.
    Apply {
        /// The worktree (created when missing).
        #[arg(long)]
        to: PathBuf,
    },
    /// List the series' commits with their ids, To:/Cc: and send state.
    Status,
    /// Start the next version (v2, v3, ...): freeze patches/vN as it is,
    /// set `version = N+1` in series.toml and write patches/vN+1 with a
    /// range-diff against vN.
    Reroll,
}

/// `--commits tip`: the last commit, whatever its number.
const TIP: usize = kmm_ci::matrix::TIP;

/// Parses `--commits 7..9`, `--commits 9` or `--commits tip`.
fn parse_range(s: &str) -> Result<(usize, usize), String> {
    if s == "tip" {
        return Ok((TIP, TIP));
    }
    let num = |x: &str| x.trim().parse::<usize>().ok();
    let r = match s.split_once("..") {
        Some((a, b)) => num(a).zip(num(b)),
        None => num(s).map(|n| (n, n)),
    };
    r.filter(|(a, b)| a <= b)
        .ok_or_else(|| format!("{s:?} is not a range of patch numbers; write e.g. 7..9"))
}

/// Parses `--shard 2/3`.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    s.split_once('/')
        .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|(i, n)| (1..=*n).contains(i))
        .ok_or_else(|| format!("{s:?} is not a shard; write I/N with 1 <= I <= N, e.g. 2/3"))
}

/// Parses `--in-flight sent|unsent`.
fn parse_in_flight(s: &str) -> Result<bool, String> {
    match s {
        "sent" => Ok(true),
        "unsent" => Ok(false),
        _ => Err(format!("{s:?}: write sent or unsent")),
    }
}

/// Parses `--version v2` or `--version 2`.
fn parse_version(s: &str) -> Result<u32, String> {
    s.strip_prefix('v')
        .unwrap_or(s)
        .parse::<u32>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is not a version; write e.g. v2"))
}

fn find_repo(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(r) = explicit {
        if !r.join("patches/series.toml").is_file() {
            bail!(
                "{}: no patches/series.toml here; pass the kvm-mm repository with --repo",
                r.display()
            );
        }
        return Ok(r);
    }
    let cwd = std::env::current_dir().context("read the current directory")?;
    let mut dir: &Path = &cwd;
    loop {
        if dir.join("patches/series.toml").is_file() {
            return Ok(dir.to_path_buf());
        }
        match dir.parent() {
            Some(p) => dir = p,
            None => bail!(
                "{}: not inside a kvm-mm repository (no patches/series.toml above it); pass --repo",
                cwd.display()
            ),
        }
    }
}

struct Ctx {
    manifest: Manifest,
    cache: PathBuf,
}

fn load(cli: &Cli) -> anyhow::Result<Ctx> {
    let root = find_repo(cli.repo.clone())?;
    let manifest = manifest::load(&root.join("patches/series.toml"), &root)?;
    let cache = cli.cache.clone().unwrap_or_else(base::default_cache_dir);
    sweep(&root, &cache);
    Ok(Ctx { manifest, cache })
}

/// Writes `path` through a temporary file beside it, renamed into place.
fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    kmm_scratch::write_atomic(path, data)
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Removes what killed kmm runs left: scratch directories and files of
/// processes that are gone, and the worktrees they registered.
fn sweep(root: &Path, cache: &Path) {
    let dirs = [
        std::env::temp_dir(),
        cache.to_path_buf(),
        root.join("patches"),
        root.join("patches/sent"),
    ];
    for d in dirs {
        match kmm_scratch::sweep(&d) {
            Ok(gone) if !gone.is_empty() => {
                errln!(
                    "kmm: removed {} temporary item(s) that an interrupted kmm left in {}",
                    gone.len(),
                    d.display()
                );
            }
            Ok(_) => {}
            Err(e) => errln!("kmm: warning: cannot clean up {}: {e}", d.display()),
        }
    }
    // The worktrees the removed directories had registered.
    let repos = std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "git"));
    for r in repos {
        if let Err(e) = kmm_scratch::prune_worktrees(&r) {
            errln!("kmm: warning: {e}");
        }
    }
}

/// A step that may take a while, shown on stderr while it runs when
/// stderr is a terminal (`kmm: <what> (12 s)`, rewritten every second and
/// cleared at the end); nothing otherwise, so logs stay clean.
struct Ticker {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn ticker(what: String) -> Ticker {
    use std::io::IsTerminal as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let thread = std::io::stderr().is_terminal().then(|| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                err!("\r\x1b[Kkmm: {what} ({} s)", t.elapsed().as_secs());
                for _ in 0..10 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
            err!("\r\x1b[K");
        })
    });
    Ticker { stop, thread }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn provide(ctx: &Ctx) -> anyhow::Result<base::Base> {
    let t = Instant::now();
    let importing = !base::cache_repo_path(&ctx.cache, &ctx.manifest.base).exists();
    let tick = importing.then(|| {
        ticker(format!(
            "importing {} into the cache (about a minute, once)",
            ctx.manifest.base.tarball.display()
        ))
    });
    let b = base::provide(&ctx.manifest.base, &ctx.cache)?;
    drop(tick);
    // Every tree and a sample of blobs (0.2 s for Linux 6.1): a damaged
    // cache is one error line here, not a libgit2 error mid-generate.
    base::verify(&b, base::Depth::Trees)?;
    if let Some(s) = &b.imported {
        errln!(
            "kmm: imported {} ({} files, {} MiB) into {} in {:.1}s",
            ctx.manifest.base.title(),
            s.files,
            s.bytes >> 20,
            b.repo.git_dir().display(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(b)
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn print_findings(findings: &[Finding]) -> Result<(), StdoutError> {
    for f in findings {
        match &f.file {
            Some(file) => outln!("{}: {}: {}", f.check, file, f.message)?,
            None => outln!("{}: {}", f.check, f.message)?,
        }
    }
    Ok(())
}

fn parse_cmd(file: Option<&Path>, format: ParseFormat) -> anyhow::Result<u8> {
    let report = match file {
        None => ktap::parse_reader(std::io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => ktap::parse_reader(std::io::stdin().lock()),
        Some(p) => {
            if p.is_dir() {
                bail!(
                    "{}: is a directory; pass a log file, or - for stdin",
                    p.display()
                );
            }
            let f =
                std::fs::File::open(p).with_context(|| format!("{}: cannot open", p.display()))?;
            ktap::parse_reader(std::io::BufReader::new(f))
        }
    };
    match format {
        ParseFormat::Human => out!("{}", report.render_human())?,
        ParseFormat::KunitJson => {
            use std::io::Write as _;
            let mut o = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            report
                .write_kunit_json(&mut o)
                .and_then(|()| writeln!(o))
                .and_then(|()| o.flush())
                .map_err(StdoutError)?;
        }
        ParseFormat::Json => {
            // Streamed: a 100k-test report is never a JSON tree in memory.
            use std::io::Write as _;
            let mut o = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            report
                .write_json(&mut o, true)
                .and_then(|()| writeln!(o))
                .and_then(|()| o.flush())
                .map_err(StdoutError)?;
        }
    }
    Ok(if report.failed() || report.tests.is_empty() {
        EXIT_FINDINGS
    } else {
        0
    })
}

/// Resolves `base`, `tip`, a patch number or a commit id to a commit of
/// the freshly generated series.
fn resolve_commit(
    spec: &str,
    b: &base::Base,
    commits: &[generate::GenCommit],
) -> anyhow::Result<String> {
    if spec == "base" {
        return Ok(b.commit.clone());
    }
    if spec == "tip" {
        return Ok(commits
            .last()
            .map_or_else(|| b.commit.clone(), |c| c.id.clone()));
    }
    if let Ok(n) = spec.parse::<usize>() {
        return match n {
            0 => Ok(b.commit.clone()),
            n if n <= commits.len() => Ok(commits[n - 1].id.clone()),
            _ => bail!("--commit {n}: the series has patches 1..={}", commits.len()),
        };
    }
    b.repo.resolve(spec).map_err(|e| {
        anyhow::anyhow!("--commit {spec}: {e}; use base, tip, a patch number or a commit id")
    })
}

fn build_cmd(cli: &Cli, commit: &str, config: &str, jobs: Option<usize>) -> anyhow::Result<u8> {
    let ctx = load(cli)?;
    let b = provide(&ctx)?;
    let (commits, _) = kmm_series::generate(&ctx.manifest, &b)?;
    let id = resolve_commit(commit, &b, &commits)?;
    let spec = kmm_ci::matrix::spec_named(&ctx.manifest.root, config)?;
    let ws = workspace(&ctx, &b, jobs);
    errln!(
        "kmm: building {} with config {} in {} (log in {}/logs)",
        short(&id),
        config,
        ws.build_dir(config).display(),
        ws.root.display()
    );
    let _lock = ws.lock(&mut |p| {
        errln!(
            "kmm: waiting for the build workspace ({} is held by another kmm)",
            p.display()
        )
    })?;
    let tick = ticker(format!("building {} [{config}]", short(&id)));
    let built = ws.build(&id, &spec)?;
    drop(tick);
    outln!(
        "built {} [{}] in {:.1}s{}: {} KVM warning(s) with W=1, {} elsewhere; {}",
        short(&id),
        config,
        built.duration.as_secs_f64(),
        if built.config_changed {
            " (new .config)"
        } else {
            ""
        },
        built.kvm_warnings.len(),
        built.other_warnings,
        built.image.display()
    )?;
    for w in &built.kvm_warnings {
        outln!("  {}:{}: {}", w.file, w.line, w.message)?;
    }
    Ok(0)
}

fn workspace(ctx: &Ctx, b: &base::Base, jobs: Option<usize>) -> kmm_build::Workspace {
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    kmm_build::Workspace {
        git_dir: b.repo.git_dir().to_path_buf(),
        root: ctx.cache.join("work"),
        jobs,
    }
}

/// The series' commits as (label, commit id), the base first.
fn labelled(b: &base::Base, commits: &[generate::GenCommit]) -> Vec<(String, String)> {
    let mut v = vec![("0000-base".to_string(), b.commit.clone())];
    for (i, c) in commits.iter().enumerate() {
        let name = generate::patch_file_name(i + 1, &c.subject);
        v.push((name.trim_end_matches(".patch").to_string(), c.id.clone()));
    }
    v
}

fn progress(line: &str) {
    // While a signal ends the process, the steps its killed children fail
    // are not results: say nothing about them.
    if kmm_scratch::signals::pending().is_none() {
        errln!("kmm: {line}");
    }
}

#[allow(clippy::too_many_arguments)]
fn test_cmd(
    cli: &Cli,
    commit: &str,
    config: &str,
    plan: Option<&str>,
    accept: bool,
    jobs: Option<usize>,
) -> anyhow::Result<u8> {
    let ctx = load(cli)?;
    let b = provide(&ctx)?;
    let (commits, _) = kmm_series::generate(&ctx.manifest, &b)?;
    let id = resolve_commit(commit, &b, &commits)?;
    let all = labelled(&b, &commits);
    let label = all
        .iter()
        .find(|(_, c)| *c == id)
        .map_or_else(|| short(&id).to_string(), |(l, _)| l.clone());
    let is_tip = all.last().is_some_and(|(_, c)| *c == id);
    let plan_name = plan.unwrap_or(if is_tip { "tip" } else { "commit" });
    let root = ctx.manifest.root.clone();
    let plan = kmm_ci::load_plan(&root.join("selftests/plans"), plan_name)?;
    let spec = kmm_build::config_spec(&root.join("ci/configs"), config)?;
    let setup = kmm_ci::Setup {
        ws: workspace(&ctx, &b, jobs),
        snapshots: root.join("selftests/snapshots"),
        repo_root: root,
        accept,
    };
    let job = kmm_ci::Job {
        label: &label,
        commit: &id,
        spec: &spec,
        plan: &plan,
        prebuilt: None,
        refresh: &[],
    };
    let _lock = setup.ws.lock(&mut |p| {
        errln!(
            "kmm: waiting for the build workspace ({} is held by another kmm)",
            p.display()
        )
    })?;
    let run = kmm_ci::test_commit(&setup, &job, &mut progress)?;
    out!("{}", run.report.render_human())?;
    for sp in &run.boot.splats {
        outln!(
            "splat: {:?} at console line {}: {}",
            sp.kind,
            sp.line,
            sp.first_line
        )?;
    }
    match &run.snapshot {
        kmm_ci::SnapshotStatus::Matched => outln!("snapshot: matches")?,
        kmm_ci::SnapshotStatus::Accepted(p) => outln!("snapshot: written to {}", p.display())?,
        kmm_ci::SnapshotStatus::New(p) => outln!(
            "snapshot: none yet; review {}.new and run again with --accept",
            p.display()
        )?,
        kmm_ci::SnapshotStatus::Changed { path, diff } => {
            outln!(
                "snapshot: {} differs (rerun with --accept to update):\n{diff}",
                path.display()
            )?;
        }
    }
    Ok(if run.failed() { EXIT_FINDINGS } else { 0 })
}

/// The options of `kmm ci`.
struct CiArgs<'a> {
    config: &'a str,
    commit_plan: &'a str,
    tip_plan: &'a str,
    targets: &'a [String],
    version: Option<u32>,
    commits: Option<(usize, usize)>,
    dry_run: bool,
    list: bool,
    rows: &'a [String],
    shard: Option<(usize, usize)>,
    results: Option<&'a Path>,
    touching: &'a [String],
    format: Format,
    junit: Option<&'a Path>,
    accept: bool,
    jobs: Option<usize>,
}

fn ci_cmd(cli: &Cli, a: &CiArgs<'_>) -> anyhow::Result<u8> {
    use kmm_ci::{fanout, matrix};
    let t0 = Instant::now();
    let ctx = load(cli)?;
    let m = &ctx.manifest;
    let version = a.version.unwrap_or(m.version);
    if version > m.version {
        bail!(
            "--version {version}: series.toml is at version {}; there is no v{version} yet",
            m.version
        );
    }
    let b = provide(&ctx)?;
    let root = m.root.clone();
    let all: Vec<matrix::Commit> = kmm_series::version_commits(m, &b, version)?
        .into_iter()
        .map(|c| matrix::Commit {
            label: c.label,
            id: c.id,
            paths: c.paths,
        })
        .collect();
    let setup = kmm_ci::Setup {
        ws: workspace(&ctx, &b, a.jobs),
        snapshots: kmm_ci::snapshot_root(&root, version, m.version),
        repo_root: root,
        accept: a.accept,
    };
    let req = matrix::Request {
        config: a.config,
        targets: a.targets,
        commit_plan: a.commit_plan,
        tip_plan: a.tip_plan,
        commits: a.commits,
        touching: a.touching,
    };
    let p = matrix::prepare(&setup, &req, all)?;
    let list = fanout::ListFile {
        version,
        config: p.matrix.boot.as_ref().map(|b| b.spec.name.clone()),
        whole: p.whole,
        rows: p.rows.clone(),
    };
    let choice_text = matrix::render_choice(&p.commits, &p.choices, Some(a.config));
    if a.list {
        if let Some(dir) = a.results {
            fanout::write_list(dir, &list)?;
        }
        match a.format {
            Format::Human => {
                for r in &p.rows {
                    outln!("{}", r.id)?;
                }
            }
            Format::Json => outln!("{}", serde_json::to_string_pretty(&list)?)?,
        }
        return Ok(0);
    }
    match a.format {
        Format::Human => {
            outln!("kmm ci: v{version}, {} commit(s):", p.commits.len())?;
            out!("{choice_text}")?;
        }
        Format::Json => err!("{choice_text}"),
    }
    if a.dry_run {
        return Ok(0);
    }
    let chosen = matrix::select(&p.rows, a.rows, a.shard)?;
    if let Some(dir) = a.results {
        // A job of a fanned-out pipeline: results to files, the verdict is
        // the report's.
        let mut write_error = None;
        matrix::run_rows(&setup, &p.matrix, &chosen, &mut progress, &mut |r| {
            if let Err(e) = fanout::write_result(dir, r) {
                write_error.get_or_insert(e);
            }
        });
        if let Some(e) = write_error {
            return Err(e.into());
        }
        outln!(
            "kmm ci: {} row(s) in {:.0}s, results in {}; `kmm ci report` merges them",
            chosen.len(),
            t0.elapsed().as_secs_f64(),
            dir.display()
        )?;
        return Ok(0);
    }
    let results = matrix::run_rows(&setup, &p.matrix, &chosen, &mut progress, &mut |_| {});
    let rows = matrix::finish(&chosen, results)?;
    // The whole list ran in this process: stale snapshots count.
    let whole = p.whole && chosen.len() == p.rows.len();
    let expected: Vec<PathBuf> = chosen
        .iter()
        .filter_map(|r| r.snapshot.as_ref().map(|s| setup.repo_root.join(s)))
        .collect();
    render_matrix(
        &rows,
        &Verdict {
            format: a.format,
            junit: a.junit,
            stale_in: (whole && list.config.is_some()).then_some((&setup.snapshots, a.config)),
            expected: &expected,
            accept: a.accept,
            t0,
        },
    )
}

/// How to render a finished matrix and decide the exit code.
struct Verdict<'a> {
    format: Format,
    junit: Option<&'a Path>,
    /// The snapshot root and boot config when stale snapshots count.
    stale_in: Option<(&'a PathBuf, &'a str)>,
    expected: &'a [PathBuf],
    accept: bool,
    t0: Instant,
}

/// The matrix as `kmm ci` and `kmm ci report` show it: JUnit first, the
/// table or JSON, stale snapshots; 1 when a row failed.
fn render_matrix(rows: &[kmm_ci::Row], v: &Verdict<'_>) -> anyhow::Result<u8> {
    // The JUnit of a long run first: stdout may be gone (`kmm ci | head`).
    if let Some(p) = v.junit {
        write_atomic(p, kmm_ci::junit::render("kmm ci", rows).as_bytes())?;
    }
    match v.format {
        Format::Human => {
            out!("{}", kmm_ci::render_table(rows))?;
            outln!(
                "kmm ci: {} rows in {:.0}s",
                rows.len(),
                v.t0.elapsed().as_secs_f64()
            )?;
        }
        Format::Json => outln!("{}", serde_json::to_string_pretty(rows)?)?,
    }
    let stale = match v.stale_in {
        Some((snapshots, config)) => kmm_ci::stale_snapshots(snapshots, config, v.expected),
        None => Vec::new(),
    };
    for p in &stale {
        if v.accept {
            std::fs::remove_file(p).with_context(|| format!("remove {}", p.display()))?;
            outln!("removed stale snapshot {}", p.display())?;
        } else {
            outln!(
                "stale snapshot {}: no commit of the series produces it; `kmm ci --accept` removes it",
                p.display()
            )?;
        }
    }
    let failed = rows.iter().any(|r| r.failed) || (!v.accept && !stale.is_empty());
    Ok(if failed { EXIT_FINDINGS } else { 0 })
}

/// `kmm ci report DIR...`.
fn report_cmd(
    cli: &Cli,
    dirs: &[PathBuf],
    format: Format,
    junit: Option<&Path>,
) -> anyhow::Result<u8> {
    let t0 = Instant::now();
    let (list, results) = kmm_ci::fanout::read(dirs)?;
    let rows = kmm_ci::matrix::finish(&list.rows, results)?;
    // Stale snapshots need the repository; the report may run without.
    let root = find_repo(cli.repo.clone()).ok();
    let snapshots = root.as_ref().map(|r| {
        let current =
            manifest::load(&r.join("patches/series.toml"), r).map_or(list.version, |m| m.version);
        kmm_ci::snapshot_root(r, list.version, current)
    });
    let expected: Vec<PathBuf> = list
        .rows
        .iter()
        .filter_map(|r| Some(root.as_ref()?.join(r.snapshot.as_ref()?)))
        .collect();
    let config = list.config.clone().unwrap_or_default();
    let stale_in = match (&snapshots, list.whole && list.config.is_some()) {
        (Some(s), true) => Some((s, config.as_str())),
        _ => None,
    };
    render_matrix(
        &rows,
        &Verdict {
            format,
            junit,
            stale_in,
            expected: &expected,
            accept: false,
            t0,
        },
    )
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match &cli.cmd {
        Cmd::Test {
            commit,
            config,
            plan,
            accept,
            jobs,
        } => test_cmd(&cli, commit, config, plan.as_deref(), *accept, *jobs),
        Cmd::Ci {
            config,
            targets,
            version,
            commits,
            dry_run,
            commit_plan,
            tip_plan,
            touching,
            format,
            junit,
            accept,
            jobs,
            list,
            rows,
            shard,
            results,
            sub,
        } => match sub {
            Some(CiSub::Report {
                dirs,
                format,
                junit,
            }) => report_cmd(&cli, dirs, *format, junit.as_deref()),
            None => ci_cmd(
                &cli,
                &CiArgs {
                    config,
                    commit_plan,
                    tip_plan,
                    targets,
                    version: *version,
                    commits: *commits,
                    dry_run: *dry_run,
                    list: *list,
                    rows,
                    shard: *shard,
                    results: results.as_deref(),
                    touching,
                    format: *format,
                    junit: junit.as_deref(),
                    accept: *accept,
                    jobs: *jobs,
                },
            ),
        },
        Cmd::Build {
            commit,
            config,
            jobs,
        } => build_cmd(&cli, commit, config, *jobs),
        Cmd::Parse { file, format } => parse_cmd(file.as_deref(), *format),
        Cmd::Send {
            version,
            confirm,
            in_reply_to,
            reply_to_previous,
            config,
            in_flight,
            extra,
        } => {
            let reply = match (in_reply_to, reply_to_previous) {
                (Some(id), _) => kmm_send::Reply::To(id.clone()),
                (None, true) => kmm_send::Reply::Previous,
                (None, false) => kmm_send::Reply::None,
            };
            let opts = kmm_send::Options {
                version: *version,
                confirm: *confirm,
                reply,
                git_config: config.clone(),
                extra_args: extra.clone(),
                in_flight: *in_flight,
            };
            send_cmd(&cli, &opts)
        }
        Cmd::Base { pin, verify } => {
            let ctx = load(&cli)?;
            if *pin {
                let spec = &ctx.manifest.base;
                let t = Instant::now();
                let sha = base::sha256_file(&spec.tarball)?;
                let tmp = tempfile::tempdir().context("create a scratch directory")?;
                let (commit, tree, stats) =
                    base::import_into(&spec.tarball, &tmp.path().join("pin.git"), &spec.title())?;
                outln!("# {} files, {:.1}s", stats.files, t.elapsed().as_secs_f64())?;
                outln!("sha256 = \"{sha}\"\ncommit = \"{commit}\"\ntree = \"{tree}\"")?;
                return Ok(0);
            }
            let b = provide(&ctx)?;
            let t = Instant::now();
            let depth = if *verify {
                base::Depth::Full
            } else {
                base::Depth::Trees
            };
            let v = base::verify(&b, depth)?;
            outln!(
                "base {} {} (tree {}) in {}: read {} trees and {} of {} blobs in {:.1}s",
                ctx.manifest.base.title(),
                b.commit,
                b.tree,
                b.repo.git_dir().display(),
                v.trees,
                v.blobs_read,
                v.blobs,
                t.elapsed().as_secs_f64()
            )?;
            Ok(0)
        }
        Cmd::Series(sc) => {
            let ctx = load(&cli)?;
            let m = &ctx.manifest;
            let b = provide(&ctx)?;
            match sc {
                SeriesCmd::Generate => {
                    let t = Instant::now();
                    let (commits, files) = kmm_series::generate(m, &b)?;
                    let dir = m.out_dir();
                    generate::write_dir(&dir, &files)?;
                    outln!(
                        "wrote {} ({} patches + cover letter) on base {}, tip {} in {:.2}s",
                        dir.display(),
                        commits.len(),
                        short(&b.commit),
                        short(&commits.last().map_or(b.commit.clone(), |c| c.id.clone())),
                        t.elapsed().as_secs_f64()
                    )?;
                    Ok(0)
                }
                SeriesCmd::Check => series_check(m, &b),
                SeriesCmd::Apply { to } => {
                    kmm_series::generate(m, &b)?;
                    let a = kmm_series::apply(m, &b, to)?;
                    outln!(
                        "{} {} at {} in {}",
                        if a.created {
                            "created and checked out"
                        } else {
                            "updated branch"
                        },
                        a.branch.trim_start_matches("refs/heads/"),
                        short(&a.tip),
                        to.display()
                    )?;
                    Ok(0)
                }
                SeriesCmd::Status => series_status(m, &b),
                SeriesCmd::Reroll => {
                    let r = kmm_series::reroll::reroll(m, &b)?;
                    outln!(
                        "re-rolled v{} as v{}: {} is frozen{}; series.toml is at version {}; \
                         wrote {} ({} patches + cover letter)",
                        r.from,
                        r.to,
                        m.out_dir().display(),
                        if r.sent { " (sent)" } else { " (never sent)" },
                        r.to,
                        r.dir.display(),
                        r.patches
                    )?;
                    outln!(
                        "next: say what changed (changelog.v{} = [...] in [series] and in the \
                         changed [[commit]]s), add review trailers (review = [...]), then \
                         `kmm series generate` and `kmm series check`",
                        r.to
                    )?;
                    Ok(0)
                }
            }
        }
    }
}

fn series_status(m: &Manifest, b: &base::Base) -> anyhow::Result<u8> {
    let (commits, files) = kmm_series::generate(m, b)?;
    let dir = m.out_dir();
    let on_disk = generate::read_dir(&dir).unwrap_or_default();
    let stale = check::stale(&dir, &files, &on_disk);
    outln!(
        "series v{}{}: {}",
        m.version,
        if m.rfc { " (RFC)" } else { "" },
        m.subject
    )?;
    outln!("base    {} {}", short(&b.commit), m.base.title())?;
    let recipients = |n: usize| -> Result<(), StdoutError> {
        if m.mail.is_none() {
            return Ok(());
        }
        let text = files.get(n).map_or("", |f| f.text.as_str());
        for h in ["To", "Cc"] {
            let v = check::header_value(text, h).unwrap_or_default();
            let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
            outln!("        {h}: {}", if v.is_empty() { "-" } else { &v })?;
        }
        Ok(())
    };
    if m.mail.is_some() {
        outln!("{:>4}    cover letter", 0)?;
        recipients(0)?;
    }
    for (i, c) in commits.iter().enumerate() {
        outln!("{:>4}    {} {}", i + 1, short(&c.id), c.subject)?;
        recipients(i + 1)?;
    }
    outln!(
        "patches {}: {}",
        dir.display(),
        if stale.is_empty() {
            "up to date".to_string()
        } else {
            format!("stale ({} files differ)", stale.len())
        }
    )?;
    for v in 1..=m.version {
        let p = kmm_series::sent::path(m, v);
        let state = match kmm_series::sent::read(&p)? {
            None => "not sent".to_string(),
            Some(r) => format!(
                "{} ({}), cover letter {}",
                r.summary(),
                p.display(),
                r.cover_id().unwrap_or("-")
            ),
        };
        outln!("sent    v{v}: {state}")?;
    }
    Ok(0)
}

/// What `kmm send` shows and how it stops: git send-email's lines on
/// stdout, kmm's steps on stderr, signals deferred while a mail is out.
struct SendWatch {
    defer: Option<kmm_scratch::signals::Defer>,
    /// The checks before the first line.
    tick: Option<Ticker>,
}

impl kmm_send::Watch for SendWatch {
    fn line(&mut self, line: &str) -> std::io::Result<()> {
        self.tick = None;
        outln!("{line}").map_err(|e| e.0)
    }
    fn note(&mut self, note: &str) {
        self.tick = None;
        errln!("kmm: {note}");
    }
    fn stop(&mut self) -> Option<kmm_send::Stop> {
        kmm_scratch::signals::pending().map(kmm_send::Stop::Signal)
    }
    fn sending(&mut self, on: bool) {
        self.defer = on.then(kmm_scratch::signals::Defer::new);
    }
}

fn send_cmd(cli: &Cli, opts: &kmm_send::Options) -> anyhow::Result<u8> {
    let ctx = load(cli)?;
    let b = provide(&ctx)?;
    let mut watch = SendWatch {
        defer: None,
        tick: Some(ticker(format!(
            "checking v{} before sending (kmm series check)",
            ctx.manifest.version
        ))),
    };
    let outcome = kmm_send::send(&ctx.manifest, &b, opts, &mut watch);
    drop(watch);
    let outcome = outcome?;
    match outcome {
        kmm_send::Outcome::Refused(findings) => {
            print_findings(&findings)?;
            errln!(
                "kmm: not sending: `kmm series check` found {} problem(s)",
                findings.len()
            );
            Ok(EXIT_FINDINGS)
        }
        kmm_send::Outcome::DryRun(msgs) => {
            outln!(
                "dry run: {} message(s) would be sent, nothing was; run again with --confirm to send",
                msgs.len()
            )?;
            Ok(0)
        }
        kmm_send::Outcome::Sent {
            record,
            messages,
            now,
        } => {
            let resumed = if now < messages.len() {
                format!(" ({now} now, the rest before)")
            } else {
                String::new()
            };
            outln!(
                "sent {} message(s){resumed}, thread {}; Message-IDs recorded in {}",
                messages.len(),
                messages.first().map_or("-", |l| l.message_id.as_str()),
                record.display()
            )?;
            Ok(0)
        }
    }
}

fn series_check(m: &Manifest, b: &base::Base) -> anyhow::Result<u8> {
    let tick = ticker(format!(
        "checking v{}: generate, git am in a worktree, checkpatch",
        m.version
    ));
    let report = check::run(m, b)?;
    drop(tick);
    print_findings(&report.findings)?;
    let times: Vec<String> = report
        .timings
        .iter()
        .map(|(step, d)| format!("{step} {:.1}s", d.as_secs_f64()))
        .collect();
    outln!(
        "checked {} patches: {} problem(s); {}",
        report.patches,
        report.findings.len(),
        times.join(", ")
    )?;
    Ok(if report.findings.is_empty() {
        0
    } else {
        EXIT_FINDINGS
    })
}

/// The error as one line: its message, then each cause that the message
/// does not already hold (library errors often print their source).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg.replace('\n', " ")
}

/// The exit code for an error: 141 for a closed stdout, 128 + the signal
/// for a send a signal stopped, 2 otherwise.
fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(o) = cause.downcast_ref::<StdoutError>() {
            if o.0.kind() == std::io::ErrorKind::BrokenPipe {
                return EXIT_PIPE;
            }
        }
        if let Some(
            kmm_send::SendError::Stopped { why, .. } | kmm_send::SendError::NothingSent { why },
        ) = cause.downcast_ref::<kmm_send::SendError>()
        {
            match why {
                kmm_send::StopWhy::Stop(kmm_send::Stop::Signal(s)) => {
                    return kmm_scratch::signals::exit_code(*s)
                }
                kmm_send::StopWhy::Stop(kmm_send::Stop::Output(o))
                    if o.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    return EXIT_PIPE
                }
                _ => {}
            }
        }
    }
    EXIT_ERROR
}

fn main() -> ExitCode {
    // First, before any thread: the signal thread needs the signals
    // blocked everywhere.
    if let Err(e) = kmm_scratch::signals::install() {
        errln!("kmm: warning: cannot handle signals: {e}");
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // A bare `kmm`: the usage, on stderr, exit 2.
            errln!("{}", e.render());
            return ExitCode::from(EXIT_ERROR);
        }
        Err(e) => {
            // Usage errors are one line too, like every other error.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            errln!(
                "kmm: error: {}; see `kmm --help`",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(EXIT_ERROR);
        }
    };
    // QEMU's orphaned children must be reaped by kmm, not by an init that
    // may not reap (containers).
    if let Err(e) = kmm_boot::qemu::become_subreaper() {
        errln!("kmm: warning: cannot become a child subreaper: {e}");
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = exit_code(&e);
            if code == EXIT_ERROR {
                if let Some(sig) = kmm_scratch::signals::pending() {
                    // A signal stopped the step that failed: the signal
                    // thread is ending the process, with its own line and
                    // code; this is the fallback if it does not.
                    std::thread::sleep(kmm_scratch::signals::GRACE * 2);
                    kmm_scratch::signals::terminate(sig);
                }
            }
            errln!("kmm: error: {}", one_line(&e));
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{exit_code, one_line, parse_range, StdoutError};

    #[test]
    fn an_error_is_one_line_without_doubled_causes() {
        // A library error that prints its source, as most of ours do.
        let io = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(kmm_series::sent::SentError::Io {
            path: "patches/sent/v1.toml".into(),
            what: "write",
            source: io,
        });
        assert_eq!(one_line(&e), "patches/sent/v1.toml: write: disk on fire");
        // Context adds what the cause does not say.
        let e = anyhow::Error::new(std::io::Error::other("first\nsecond")).context("reading x");
        assert_eq!(one_line(&e), "reading x: first second");
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(exit_code(&anyhow::Error::new(StdoutError(pipe))), 141);
        let full = std::io::Error::from_raw_os_error(28);
        assert_eq!(exit_code(&anyhow::Error::new(StdoutError(full))), 2);
    }

    #[test]
    fn commit_ranges() {
        assert_eq!(parse_range("7..9"), Ok((7, 9)));
        assert_eq!(parse_range("0..0"), Ok((0, 0)));
        assert_eq!(parse_range("9"), Ok((9, 9)));
        assert_eq!(parse_range("tip"), Ok((super::TIP, super::TIP)));
        assert!(parse_range("9..7").is_err());
        assert!(parse_range("a..b").is_err());
    }
}
