//! Builds a kernel commit out of tree, incrementally, and accounts for the
//! compiler warnings in KVM.
//!
//! One source worktree of the cache repository is checked out at each
//! commit in turn (unchanged files keep their mtimes, so `make` rebuilds
//! only what the commit touched) and each config has its own `O=` build
//! directory. Everything is built with `W=1`; before each build the KVM
//! objects are deleted so that their warnings are printed again (ccache
//! replays them for unchanged sources), which makes the per-commit
//! warning count exact rather than "whatever was recompiled".

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Directories whose warnings count against a commit on x86 (see
/// [`ConfigSpec::kvm_dirs`] for the other architectures).
pub const KVM_DIRS: [&str; 2] = ["virt/kvm/", "arch/x86/kvm/"];

/// What can go wrong while building.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A config name with no fragment in ci/configs.
    #[error("unknown config {name:?}: no {path}; the configs are: {known}")]
    UnknownConfig {
        /// The name asked for.
        name: String,
        /// The fragment looked for.
        path: PathBuf,
        /// Names available.
        known: String,
    },
    /// A command could not be started.
    #[error("cannot run {tool}: {source}")]
    Spawn {
        /// The command.
        tool: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A step failed; its output is in the log.
    #[error("{step} failed ({status}){}; see {}", first_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default(), log.display())]
    Failed {
        /// The step.
        step: String,
        /// Exit status.
        status: String,
        /// The first compiler or make error in the log, if any.
        first_error: Option<String>,
        /// Log file with the output.
        log: PathBuf,
    },
    /// Kconfig warned that a symbol was selected although its own
    /// dependencies are not met: the .config is not what it seems.
    #[error("config {config}: unmet direct dependencies detected for {symbol} ({detail})")]
    UnmetDependencies {
        /// The config.
        config: String,
        /// The selected symbol.
        symbol: String,
        /// Kconfig's `Depends on` and `Selected by` lines, joined.
        detail: String,
    },
    /// An option the config fragment asks for is not in the final .config.
    #[error("config {config}: {option} was requested but is not in the final .config ({detail})")]
    ConfigMismatch {
        /// The config.
        config: String,
        /// The option.
        option: String,
        /// What the final .config says.
        detail: String,
    },
    /// A file operation failed.
    #[error("{path}: {what}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// What kmm was doing.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, BuildError>;

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_path_buf();
    move |source| BuildError::Io { path, what, source }
}

/// A named kernel config: fragments merged in order onto `tinyconfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSpec {
    /// Name (`kvm-mm`, `debug`, `rust`).
    pub name: String,
    /// Fragment files, in merge order.
    pub fragments: Vec<PathBuf>,
    /// Extra `make` arguments this config needs (the LLVM/rustc toolchain
    /// for `rust`).
    pub make_args: Vec<String>,
    /// `ARCH=`; `None` builds for the host (x86_64) without passing
    /// `ARCH=` or `CROSS_COMPILE=`, as the boot configs always have.
    pub arch: Option<String>,
    /// `CROSS_COMPILE=` (`aarch64-linux-gnu-`); empty for the host's gcc.
    pub cross_compile: String,
    /// The make goals: `bzImage` for a boot config, `vmlinux` (and
    /// `modules`) for a build target.
    pub goals: Vec<String>,
    /// Whether the config has a ccache directory of its own,
    /// `<root>/ccache-<name>` (build targets), instead of the user's.
    pub own_ccache: bool,
}

impl ConfigSpec {
    /// A host (x86_64) config building `bzImage`, with the user's ccache.
    pub fn host(name: &str, fragments: Vec<PathBuf>, make_args: Vec<String>) -> ConfigSpec {
        ConfigSpec {
            name: name.into(),
            fragments,
            make_args,
            arch: None,
            cross_compile: String::new(),
            goals: vec!["bzImage".into()],
            own_ccache: false,
        }
    }

    /// The directory under `arch/` that this config builds (`x86` for
    /// `ARCH=x86_64` and for the host).
    pub fn srcarch(&self) -> &str {
        srcarch(self.arch.as_deref().unwrap_or("x86"))
    }

    /// The KVM directories of this config's architecture, whose W=1
    /// warnings are listed at every commit.
    pub fn kvm_dirs(&self) -> Vec<String> {
        vec!["virt/kvm/".into(), format!("arch/{}/kvm/", self.srcarch())]
    }

    /// The image the build produces, relative to the build directory:
    /// the boot image for `bzImage`, else `vmlinux`.
    pub fn image(&self) -> PathBuf {
        if self.goals.iter().any(|g| g == "bzImage") {
            PathBuf::from(format!("arch/{}/boot/bzImage", self.srcarch()))
        } else {
            PathBuf::from("vmlinux")
        }
    }
}

/// The source directory (`arch/<dir>`) of a make `ARCH=` value.
pub fn srcarch(arch: &str) -> &str {
    match arch {
        "x86_64" | "i386" => "x86",
        "sparc32" | "sparc64" => "sparc",
        "sh64" => "sh",
        "um" => "um",
        a => a,
    }
}

/// The default config every other one is merged on top of.
pub const DEFAULT_CONFIG: &str = "kvm-mm";

/// Make arguments for Rust-for-Linux with Debian's toolchain (rustc 1.63,
/// bindgen 0.60, clang/LLVM 14).
pub fn rust_make_args() -> Vec<String> {
    [
        "LLVM=-14",
        "RUSTC=/usr/bin/rustc",
        "HOSTRUSTC=/usr/bin/rustc",
        "RUSTDOC=/usr/bin/rustdoc",
        "BINDGEN=/usr/bin/bindgen",
        "RUST_LIB_SRC=/usr/lib/rustlib/src/rust/library",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect()
}

/// Resolves a config name to its fragments in `configs_dir` (ci/configs):
/// `kvm-mm` alone, any other name merged after `kvm-mm`.
pub fn config_spec(configs_dir: &Path, name: &str) -> Result<ConfigSpec> {
    let path = configs_dir.join(format!("{name}.config"));
    if !path.is_file() {
        let mut known: Vec<String> = std::fs::read_dir(configs_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .strip_suffix(".config")
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        known.sort();
        return Err(BuildError::UnknownConfig {
            name: name.into(),
            path,
            known: known.join(", "),
        });
    }
    let mut fragments = Vec::new();
    if name != DEFAULT_CONFIG {
        fragments.push(configs_dir.join(format!("{DEFAULT_CONFIG}.config")));
    }
    fragments.push(path);
    let make_args = if name == "rust" {
        rust_make_args()
    } else {
        Vec::new()
    };
    let mut spec = ConfigSpec::host(name, fragments, make_args);
    // KVM=m needs `make modules` too; /init loads what it built.
    let modules = merged_settings(&spec.fragments)?
        .into_iter()
        .any(|(o, v)| o == "CONFIG_MODULES" && v.as_deref() == Some("CONFIG_MODULES=y"));
    if modules {
        spec.goals.push("modules".into());
    }
    Ok(spec)
}

/// A compiler warning.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Warning {
    /// Source path relative to the kernel tree.
    pub file: String,
    /// Line.
    pub line: u32,
    /// Message (after `warning: `).
    pub message: String,
}

/// Extracts `file:line:col: warning: msg` lines from a build log, with
/// paths made relative to the kernel tree `src`.
pub fn parse_warnings(log: &str, src: &Path) -> Vec<Warning> {
    let src = format!("{}/", src.display());
    let mut out = BTreeSet::new();
    for l in log.lines() {
        let Some((loc, msg)) = l.split_once(": warning: ") else {
            continue;
        };
        // gcc prints `file:line:col`, kernel-doc (run by W=1) `file:line`.
        let parts: Vec<&str> = loc.rsplitn(3, ':').collect();
        let num = |s: &str| s.parse::<u32>().ok();
        let (file, line) = match parts.as_slice() {
            [col, line, file] if num(col).is_some() && num(line).is_some() => (*file, num(line)),
            [line, ..] if num(line).is_some() => {
                (loc.rsplit_once(':').map_or(loc, |(f, _)| f), num(line))
            }
            _ => continue,
        };
        let Some(line) = line else { continue };
        let file = file.strip_prefix(&src).unwrap_or(file);
        let file = file.trim_start_matches("./").trim_start_matches("../");
        out.insert(Warning {
            file: normalize(file),
            line,
            message: msg.trim().to_string(),
        });
    }
    out.into_iter().collect()
}

/// Resolves `.` and `..` in a relative path (`arch/x86/kvm/../../../virt`
/// is how Kbuild names virt/kvm files built into kvm.ko).
pub fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

/// The first error of a build log, with paths relative to the tree: a
/// compiler's (`file:line:col: error: ...`), else the linker's
/// (`undefined reference to`, `multiple definition of`, with any
/// cross-compiler prefix such as `aarch64-linux-gnu-ld:`), else
/// modpost's (`ERROR: modpost: "sym" [virt/kvm/kvm.ko] undefined!`), else
/// make's.
pub fn first_error(log: &str, src: &Path) -> Option<String> {
    let prefix = format!("{}/", src.display());
    let lines: Vec<&str> = log.lines().collect();
    let find = |f: &dyn Fn(&str) -> bool| lines.iter().position(|l| f(l));
    let line = if let Some(i) = find(&|l| l.contains(": error: ") || l.contains(": fatal error: "))
    {
        lines[i].to_string()
    } else if let Some(i) = find(&is_linker_error) {
        // ld names the object and function on the line before, and
        // leaves its own name off the first error after it.
        match i.checked_sub(1).map(|p| lines[p]) {
            Some(p) if p.contains(": in function `") => format!("{} {}", p.trim(), lines[i].trim()),
            _ => lines[i].to_string(),
        }
    } else {
        let i = find(&|l| l.starts_with("ERROR: modpost: "))
            .or_else(|| find(&|l| l.starts_with("make") && l.contains("Error")))?;
        lines[i].to_string()
    };
    let line = line.trim().replace(&prefix, "");
    Some(match line.split_once(':') {
        Some((file, rest)) if file.contains('/') => format!("{}:{rest}", normalize(file)),
        _ => line,
    })
}

/// Whether a log line is a link error of `ld` (any `<triplet>-ld`) for a
/// symbol: an undefined reference or a multiple definition.
pub fn is_linker_error(line: &str) -> bool {
    line.contains(": undefined reference to `")
        || line.contains(": multiple definition of `")
        || (line.contains("ld: ") && line.contains(": undefined symbol"))
}

/// Whether a warning is in the x86 KVM directories.
pub fn is_kvm(w: &Warning) -> bool {
    in_dirs(w, &KVM_DIRS)
}

/// Whether a warning's file is under one of `dirs` (`virt/kvm/`, with the
/// trailing slash; an empty string is the whole tree).
pub fn in_dirs<S: AsRef<str>>(w: &Warning, dirs: &[S]) -> bool {
    dirs.iter().any(|d| w.file.starts_with(d.as_ref()))
}

/// The `unmet direct dependencies` warnings of a Kconfig log, as
/// (symbol, the `Depends on`/`Selected by` lines joined).
pub fn unmet_dependencies(log: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = log.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(sym) = l
            .trim()
            .strip_prefix("WARNING: unmet direct dependencies detected for ")
        else {
            continue;
        };
        // Kconfig indents the lines that belong to the warning.
        let detail: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|d| d.starts_with([' ', '\t']) && !d.trim().is_empty())
            .map(|d| d.trim())
            .collect();
        out.push((sym.trim().to_string(), detail.join("; ")));
    }
    out
}

/// Warnings of `now` whose (file, message) was not in `before`: line
/// numbers move with unrelated edits, so they are not compared.
pub fn new_warnings(before: &[Warning], now: &[Warning]) -> Vec<Warning> {
    let old: BTreeSet<(&str, &str)> = before
        .iter()
        .map(|w| (w.file.as_str(), w.message.as_str()))
        .collect();
    now.iter()
        .filter(|w| !old.contains(&(w.file.as_str(), w.message.as_str())))
        .cloned()
        .collect()
}

/// Where builds happen: one source worktree and one build dir per config.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The cache repository the worktree belongs to.
    pub git_dir: PathBuf,
    /// Root directory (`<cache>/work`).
    pub root: PathBuf,
    /// Parallel jobs for make.
    pub jobs: usize,
}

/// Exclusive use of a [`Workspace`] (its one source worktree and its
/// build dirs) until dropped: two kmm processes on one cache, such as two
/// CI jobs of one runner, take turns.
#[derive(Debug)]
pub struct WorkspaceLock {
    _lock: kmm_scratch::FileLock,
}

impl Workspace {
    /// Takes the workspace's lock (`<root>/.lock`), waiting for another
    /// process that holds it; `waiting` is called once if it must wait.
    pub fn lock(&self, waiting: &mut dyn FnMut(&Path)) -> Result<WorkspaceLock> {
        let path = self.root.join(".lock");
        match kmm_scratch::lock_file(&path, &mut || waiting(&path)) {
            Ok(l) => Ok(WorkspaceLock { _lock: l }),
            Err(source) => Err(BuildError::Io {
                path,
                what: "lock the build workspace",
                source,
            }),
        }
    }
}

/// The result of one build.
#[derive(Debug, Clone)]
pub struct Built {
    /// The commit built.
    pub commit: String,
    /// The config.
    pub config: String,
    /// The image: `arch/x86/boot/bzImage`, or `vmlinux` for a build
    /// target.
    pub image: PathBuf,
    /// The `O=` directory.
    pub build_dir: PathBuf,
    /// Full log of configure and make.
    pub log: PathBuf,
    /// Wall time of configure + make.
    pub duration: Duration,
    /// Whether the .config changed (a config change rebuilds much more).
    pub config_changed: bool,
    /// W=1 warnings in KVM directories.
    pub kvm_warnings: Vec<Warning>,
    /// Number of W=1 warnings elsewhere (printed by this build).
    pub other_warnings: usize,
    /// Every W=1 warning this build printed: complete for the KVM
    /// directories and for the `refresh` directories of
    /// [`Workspace::build_with`], whose objects were rebuilt.
    pub warnings: Vec<Warning>,
}

impl Workspace {
    /// The source worktree.
    pub fn src(&self) -> PathBuf {
        self.root.join("src")
    }

    /// The build directory of a config.
    pub fn build_dir(&self, config: &str) -> PathBuf {
        self.root.join(format!("build-{config}"))
    }

    /// The ccache directory of a config with [`ConfigSpec::own_ccache`].
    pub fn ccache_dir(&self, config: &str) -> PathBuf {
        self.root.join(format!("ccache-{config}"))
    }

    fn git(&self, args: &[&str], cwd: Option<&Path>) -> Result<()> {
        let mut c = Command::new("git");
        match cwd {
            Some(d) => {
                c.current_dir(d);
            }
            None => {
                c.arg("--git-dir").arg(&self.git_dir);
            }
        }
        let out = c.args(args).output().map_err(|source| BuildError::Spawn {
            tool: "git".into(),
            source,
        })?;
        if !out.status.success() {
            let log = self.root.join("git.log");
            let _ = std::fs::write(&log, &out.stderr);
            return Err(BuildError::Failed {
                step: format!("git {}", args.join(" ")),
                status: out.status.to_string(),
                first_error: String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .next()
                    .map(str::to_string),
                log,
            });
        }
        Ok(())
    }

    /// Checks the source worktree out at `commit`, creating it if needed.
    pub fn checkout(&self, commit: &str) -> Result<PathBuf> {
        let src = self.src();
        std::fs::create_dir_all(&self.root).map_err(io(&self.root, "create"))?;
        if !src.join(".git").exists() {
            let _ = self.git(&["worktree", "prune"], None);
            let s = src.to_string_lossy().into_owned();
            self.git(
                &["worktree", "add", "--force", "--detach", &s, commit],
                None,
            )?;
        } else {
            self.git(
                &["checkout", "-q", "--force", "--detach", commit],
                Some(&src),
            )?;
        }
        Ok(src)
    }

    /// Runs a command with its output appended to `log`.
    fn run_logged(&self, step: &str, cmd: &mut Command, log: &Path) -> Result<()> {
        let f = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io(log, "open log"))?;
        let f2 = f.try_clone().map_err(io(log, "open log"))?;
        let st = cmd
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .status()
            .map_err(|source| BuildError::Spawn {
                tool: step.into(),
                source,
            })?;
        if !st.success() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(BuildError::Failed {
                step: step.into(),
                status: st.to_string(),
                first_error: first_error(&text, &self.src()),
                log: log.to_path_buf(),
            });
        }
        Ok(())
    }

    fn make(&self, src: &Path, out: &Path, spec: &ConfigSpec) -> Command {
        let mut c = Command::new("make");
        c.current_dir(src)
            .arg(format!("O={}", out.display()))
            .arg(format!("-j{}", self.jobs))
            .args(&spec.make_args);
        if let Some(arch) = &spec.arch {
            c.arg(format!("ARCH={arch}"))
                .arg(format!("CROSS_COMPILE={}", spec.cross_compile));
        }
        if spec.make_args.iter().all(|a| !a.starts_with("LLVM=")) && which("ccache") {
            c.arg(format!("CC=ccache {}gcc", spec.cross_compile));
            if spec.own_ccache {
                c.env("CCACHE_DIR", self.ccache_dir(&spec.name));
            }
        }
        c
    }

    /// Writes the merged config into a scratch dir and installs it into the
    /// build dir only when it differs, so an unchanged config does not
    /// trigger a rebuild. Returns whether it changed.
    fn configure(&self, src: &Path, spec: &ConfigSpec, log: &Path) -> Result<bool> {
        let cfg_dir = self.root.join(format!("config-{}", spec.name));
        std::fs::create_dir_all(&cfg_dir).map_err(io(&cfg_dir, "create"))?;
        let build = self.build_dir(&spec.name);
        std::fs::create_dir_all(&build).map_err(io(&build, "create"))?;
        self.run_logged(
            "make tinyconfig",
            self.make(src, &cfg_dir, spec).arg("tinyconfig"),
            log,
        )?;
        let mut merge = Command::new("sh");
        merge
            .current_dir(src)
            .arg("scripts/kconfig/merge_config.sh")
            .arg("-m")
            .arg("-O")
            .arg(&cfg_dir)
            .arg(cfg_dir.join(".config"))
            .args(&spec.fragments);
        self.run_logged("merge_config.sh", &mut merge, log)?;
        self.run_logged(
            "make olddefconfig",
            self.make(src, &cfg_dir, spec).arg("olddefconfig"),
            log,
        )?;
        let text = std::fs::read_to_string(log).map_err(io(log, "read log"))?;
        if let Some((symbol, detail)) = unmet_dependencies(&text).into_iter().next() {
            return Err(BuildError::UnmetDependencies {
                config: spec.name.clone(),
                symbol,
                detail,
            });
        }
        let new = std::fs::read_to_string(cfg_dir.join(".config"))
            .map_err(io(&cfg_dir, "read .config"))?;
        let defined = kconfig_symbols(src);
        verify_config(spec, &new, |o| {
            defined.contains(o.strip_prefix("CONFIG_").unwrap_or(o))
        })?;
        let old = std::fs::read_to_string(build.join(".config")).unwrap_or_default();
        if old == new {
            return Ok(false);
        }
        std::fs::write(build.join(".config"), &new).map_err(io(&build, "write .config"))?;
        Ok(true)
    }

    /// Builds `commit` with `spec`. The log goes to `<root>/logs/`.
    pub fn build(&self, commit: &str, spec: &ConfigSpec) -> Result<Built> {
        self.build_with(commit, spec, &[])
    }

    /// Builds `commit` with `spec`, after deleting the objects of the KVM
    /// directories and of `refresh` (directories relative to the tree,
    /// with a trailing slash) so that their W=1 warnings are printed again
    /// (ccache replays them). The log goes to `<root>/logs/`.
    pub fn build_with(&self, commit: &str, spec: &ConfigSpec, refresh: &[String]) -> Result<Built> {
        let t = Instant::now();
        let logs = self.root.join("logs");
        std::fs::create_dir_all(&logs).map_err(io(&logs, "create"))?;
        let short = commit.get(..12).unwrap_or(commit);
        let log = logs.join(format!("build-{short}-{}.log", spec.name));
        let _ = std::fs::remove_file(&log);
        let src = self.checkout(commit)?;
        let config_changed = self.configure(&src, spec, &log)?;
        let build = self.build_dir(&spec.name);
        let kvm_dirs = spec.kvm_dirs();
        for d in kvm_dirs.iter().chain(refresh) {
            // Never the whole tree: a top-level file is not a directory
            // whose warnings a commit is answerable for.
            if !d.trim_matches('/').is_empty() {
                remove_objects(&build.join(d));
            }
        }
        let step = format!("make {}", spec.goals.join(" "));
        self.run_logged(
            &step,
            self.make(&src, &build, spec).arg("W=1").args(&spec.goals),
            &log,
        )?;
        let text = std::fs::read_to_string(&log).map_err(io(&log, "read log"))?;
        let all = parse_warnings(&text, &src);
        let kvm: Vec<Warning> = all
            .iter()
            .filter(|w| in_dirs(w, &kvm_dirs))
            .cloned()
            .collect();
        Ok(Built {
            commit: commit.into(),
            config: spec.name.clone(),
            image: build.join(spec.image()),
            build_dir: build,
            log,
            duration: t.elapsed(),
            config_changed,
            other_warnings: all.len() - kvm.len(),
            kvm_warnings: kvm,
            warnings: all,
        })
    }
}

impl Workspace {
    /// Builds the KVM selftests of the checked-out commit statically into
    /// `<build dir>/kselftest/kvm`, after `headers_install`. `extra_cflags`
    /// carries e.g. `-include` of a compat header for the base's known
    /// build breaks. Returns the output directory.
    pub fn build_selftests(&self, built: &Built, extra_cflags: &str) -> Result<PathBuf> {
        let src = self.src();
        let spec_args: Vec<String> = if built.config == "rust" {
            rust_make_args()
        } else {
            Vec::new()
        };
        let mut hdr = Command::new("make");
        hdr.current_dir(&src)
            .arg(format!("O={}", built.build_dir.display()))
            .args(&spec_args)
            .arg("headers_install");
        self.run_logged("make headers_install", &mut hdr, &built.log)?;
        let out = built.build_dir.join("kselftest/kvm");
        std::fs::create_dir_all(&out).map_err(io(&out, "create"))?;
        let usr = built.build_dir.join("usr");
        let mut st = Command::new("make");
        st.current_dir(&src)
            .arg("-C")
            .arg("tools/testing/selftests/kvm")
            .arg(format!("-j{}", self.jobs))
            .arg(format!("OUTPUT={}", out.display()))
            .arg(format!("INSTALL_HDR_PATH={}", usr.display()))
            .arg(format!("KHDR_INCLUDES=-isystem {}/include", usr.display()))
            .arg(format!("EXTRA_CFLAGS=-static {extra_cflags}"));
        self.run_logged("make -C tools/testing/selftests/kvm", &mut st, &built.log)?;
        Ok(out)
    }
}

/// Every symbol defined by a `config X` or `menuconfig X` line in the
/// tree's Kconfig files.
pub fn kconfig_symbols(src: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if p.is_dir() {
                if !name.starts_with('.') {
                    walk(&p, out);
                }
            } else if name.starts_with("Kconfig") {
                if let Ok(text) = std::fs::read_to_string(&p) {
                    for l in text.lines() {
                        let l = l.trim_start();
                        let sym = l
                            .strip_prefix("config ")
                            .or_else(|| l.strip_prefix("menuconfig "));
                        if let Some(sym) = sym {
                            out.insert(sym.trim().to_string());
                        }
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(src, &mut out);
    out
}

/// The option settings of `fragments` in merge order: `CONFIG_X=value`
/// lines as `(CONFIG_X, Some(line))`, `# CONFIG_X is not set` as
/// `(CONFIG_X, None)`. A later fragment's setting of an option replaces an
/// earlier one's in place, as `merge_config.sh` does ("Value of CONFIG_X
/// is redefined by fragment").
pub fn merged_settings(fragments: &[PathBuf]) -> Result<Vec<(String, Option<String>)>> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for frag in fragments {
        let f = File::open(frag).map_err(io(frag, "read fragment"))?;
        for l in BufReader::new(f).lines() {
            let l = l.map_err(io(frag, "read fragment"))?;
            let l = l.trim();
            let (option, want_line) = if let Some(rest) = l.strip_prefix("# ") {
                match rest.strip_suffix(" is not set") {
                    Some(o) if o.starts_with("CONFIG_") => (o.to_string(), None),
                    _ => continue,
                }
            } else if l.starts_with("CONFIG_") {
                match l.split_once('=') {
                    Some((o, _)) => (o.to_string(), Some(l.to_string())),
                    None => continue,
                }
            } else {
                continue;
            };
            match out.iter_mut().find(|(o, _)| *o == option) {
                Some(slot) => slot.1 = want_line,
                None => out.push((option, want_line)),
            }
        }
    }
    Ok(out)
}

/// Checks that every `CONFIG_X=y/m/value` and `# CONFIG_X is not set` of
/// the fragments holds in the final .config (Kconfig drops options whose
/// dependencies are missing without an error); where several fragments
/// set an option, the last one's setting is the one checked (see
/// [`merged_settings`]). Options for which `defined` is false (not
/// defined by this commit's Kconfig, e.g. added by a later patch of the
/// series) are skipped.
pub fn verify_config(
    spec: &ConfigSpec,
    config: &str,
    defined: impl Fn(&str) -> bool,
) -> Result<()> {
    for (option, want_line) in merged_settings(&spec.fragments)? {
        if !defined(&option) {
            continue;
        }
        let found = config.lines().find(|c| {
            c.starts_with(&format!("{option}=")) || *c == format!("# {option} is not set")
        });
        let ok = match (&want_line, found) {
            (Some(w), Some(f)) => w == f,
            (Some(_), None) => false,
            (None, Some(f)) => f.ends_with("is not set"),
            (None, None) => true,
        };
        if !ok {
            return Err(BuildError::ConfigMismatch {
                config: spec.name.clone(),
                option,
                detail: found.unwrap_or("absent").to_string(),
            });
        }
    }
    Ok(())
}

fn remove_objects(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            remove_objects(&p);
        } else if p.extension().is_some_and(|x| x == "o") {
            let _ = std::fs::remove_file(&p);
        }
    }
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gcc_warnings() {
        let log = "\
  CC      arch/x86/kvm/x86.o
/k/src/arch/x86/kvm/x86.c:120:6: warning: no previous prototype for 'foo' [-Wmissing-prototypes]
  120 | void foo(void)
../virt/kvm/kvm_mm.c:9:1: warning: unused variable 'x' [-Wunused-variable]
/k/src/arch/x86/kvm/mmu/mmu.c:1325: warning: Function parameter or member 'kvm' not described in 'f'
/k/src/mm/memory.c:5:1: warning: something else [-Wextra]
ld: warning: not a compiler warning
";
        let w = parse_warnings(log, Path::new("/k/src"));
        assert_eq!(w.len(), 4);
        let kvm: Vec<_> = w.iter().filter(|w| is_kvm(w)).collect();
        assert_eq!(kvm.len(), 3);
        assert_eq!(kvm[0].file, "arch/x86/kvm/mmu/mmu.c");
        assert_eq!(kvm[0].line, 1325);
        assert_eq!(kvm[1].file, "arch/x86/kvm/x86.c");
        assert_eq!(kvm[1].line, 120);
        assert_eq!(kvm[2].file, "virt/kvm/kvm_mm.c");
    }

    #[test]
    fn normalizes_kbuild_paths() {
        assert_eq!(
            normalize("arch/x86/kvm/../../../virt/kvm/kvm_mm.c"),
            "virt/kvm/kvm_mm.c"
        );
        assert_eq!(normalize("./a//b/./c"), "a/b/c");
        let log = "  CC      x.o\n/k/src/arch/x86/kvm/../../../virt/kvm/kvm_mm.c:29:16: error: 'no_such_symbol' undeclared (first use in this function)\nmake[3]: *** [x] Error 1\n";
        assert_eq!(
            first_error(log, Path::new("/k/src")).as_deref(),
            Some("virt/kvm/kvm_mm.c:29:16: error: 'no_such_symbol' undeclared (first use in this function)")
        );
        assert_eq!(
            first_error("make: *** [Makefile:1] Error 2\n", Path::new("/k")).as_deref(),
            Some("make: *** [Makefile:1] Error 2")
        );
    }

    #[test]
    fn unmet_dependencies_of_a_kconfig_log() {
        let log = "\
#
# configuration written to .config
#
WARNING: unmet direct dependencies detected for KVM_MM_KUNIT_TEST
  Depends on [m]: VIRTUALIZATION [=y] && KVM [=y] && KUNIT [=m]
  Selected by [y]:
  - KVM_MM_WALKER_TEST [=y]
#
# configuration written to .config
";
        assert_eq!(
            unmet_dependencies(log),
            [(
                "KVM_MM_KUNIT_TEST".to_string(),
                "Depends on [m]: VIRTUALIZATION [=y] && KVM [=y] && KUNIT [=m]; \
                 Selected by [y]:; - KVM_MM_WALKER_TEST [=y]"
                    .to_string()
            )]
        );
        assert!(unmet_dependencies("# configuration written to .config\n").is_empty());
    }

    /// The tree the fixtures were built in (`kmm ci` on this machine).
    const FIXTURE_SRC: &str = "/root/.cache/kmm/work/src";

    #[test]
    fn kunit_m_link_failure_of_v1_patch_3() {
        // kmm ci --version 1 --commits 2..3 --target x86-kunit-m: the bool
        // KVM_MM_KUNIT_TEST is y under KUNIT=m and vmlinux needs kunit.ko.
        let log = include_str!("../tests/fixtures/x86-kunit-m-v1-0003-link.log");
        assert_eq!(
            first_error(log, Path::new(FIXTURE_SRC)).as_deref(),
            Some(
                "ld: virt/kvm/kvm_mm_test.o: in function `kvm_mm_range_union_test': \
                 kvm_mm_test.c:(.text+0x38): undefined reference to `kunit_binary_assert_format'"
            )
        );
    }

    #[test]
    fn arm64_link_failure_of_v1_patch_9() {
        // kmm ci --version 1 --commits 7..9 --target arm64: generic
        // kvm_main.c calls helpers built only with HAVE_KVM_PFNCACHE (x86).
        let log = include_str!("../tests/fixtures/arm64-v1-0009-link.log");
        assert_eq!(
            first_error(log, Path::new(FIXTURE_SRC)).as_deref(),
            Some(
                "aarch64-linux-gnu-ld: virt/kvm/kvm_main.o: in function \
                 `kvm_mmu_notifier_invalidate_range_start': kvm_main.c:(.text+0x13b0): \
                 undefined reference to `kvm_mm_c_clamp_to_slot'"
            )
        );
    }

    #[test]
    fn link_and_modpost_errors() {
        let src = Path::new("/k/src");
        // A compiler error wins over the link errors it causes.
        let log = "  LD      vmlinux.o\naarch64-linux-gnu-ld: vmlinux.o: in function `f':\n\
                   /k/src/virt/kvm/kvm_main.c:9: undefined reference to `g'\n\
                   make[1]: *** [Makefile:1] Error 1\n";
        assert_eq!(
            first_error(log, src).as_deref(),
            Some(
                "aarch64-linux-gnu-ld: vmlinux.o: in function `f': \
                 virt/kvm/kvm_main.c:9: undefined reference to `g'"
            )
        );
        let log = "ld: kvm_main.c:(.text+0x1c): undefined reference to `g'\n";
        assert_eq!(first_error(log, src).as_deref(), Some(log.trim()));
        let log = "  MODPOST Module.symvers\nERROR: modpost: \"g\" [arch/x86/kvm/kvm.ko] undefined!\nmake[2]: *** Error 1\n";
        assert_eq!(
            first_error(log, src).as_deref(),
            Some("ERROR: modpost: \"g\" [arch/x86/kvm/kvm.ko] undefined!")
        );
        assert!(is_linker_error(
            "s390x-linux-gnu-ld: kvm_main.c:(.text+0x2): multiple definition of `h'; x.o:first defined here"
        ));
        assert!(!is_linker_error(
            "ld: warning: creating DT_TEXTREL in a PIE"
        ));
    }

    #[test]
    fn new_warnings_ignore_line_moves() {
        let w = |f: &str, l, m: &str| Warning {
            file: f.into(),
            line: l,
            message: m.into(),
        };
        let before = vec![w("virt/kvm/a.c", 10, "unused x")];
        let now = vec![
            w("virt/kvm/a.c", 12, "unused x"),
            w("virt/kvm/a.c", 20, "unused y"),
        ];
        assert_eq!(
            new_warnings(&before, &now),
            vec![w("virt/kvm/a.c", 20, "unused y")]
        );
    }

    #[test]
    fn config_verification() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.config");
        std::fs::write(&f, "CONFIG_KVM=y\n# CONFIG_VT is not set\n# comment\n").unwrap();
        let spec = ConfigSpec::host("x", vec![f], vec![]);
        let all = |_: &str| true;
        assert!(verify_config(&spec, "CONFIG_KVM=y\n# CONFIG_VT is not set\n", all).is_ok());
        assert!(verify_config(&spec, "CONFIG_KVM=y\n", all).is_ok());
        let e = verify_config(&spec, "# CONFIG_KVM is not set\n", all).unwrap_err();
        assert!(e.to_string().contains("CONFIG_KVM was requested"), "{e}");
        let e = verify_config(&spec, "CONFIG_KVM=y\nCONFIG_VT=y\n", all).unwrap_err();
        assert!(e.to_string().contains("CONFIG_VT"), "{e}");
        // A symbol this commit's Kconfig does not define yet is skipped.
        assert!(verify_config(&spec, "", |o| o != "CONFIG_KVM" && o != "CONFIG_VT").is_ok());
    }

    #[test]
    fn finds_kconfig_symbols() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("virt/kvm")).unwrap();
        std::fs::write(
            dir.path().join("virt/kvm/Kconfig"),
            "config KVM_MM_RUST\n\tbool \"x\"\nmenuconfig VIRTUALIZATION\n",
        )
        .unwrap();
        let s = kconfig_symbols(dir.path());
        assert!(s.contains("KVM_MM_RUST") && s.contains("VIRTUALIZATION"));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn config_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kvm-mm.config"), "").unwrap();
        std::fs::write(dir.path().join("debug.config"), "").unwrap();
        let s = config_spec(dir.path(), "debug").unwrap();
        assert_eq!(s.fragments.len(), 2);
        let e = config_spec(dir.path(), "nope").unwrap_err().to_string();
        assert!(e.contains("the configs are: debug, kvm-mm"), "{e}");
        assert_eq!(s.goals, ["bzImage"]);
    }

    #[test]
    fn a_later_fragment_overrides_an_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("kvm-mm.config"),
            "CONFIG_KVM=y\nCONFIG_KVM_AMD=y\n# CONFIG_MODULES is not set\nCONFIG_KUNIT=y\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("kvm-mm-modular.config"),
            "CONFIG_MODULES=y\nCONFIG_KVM=m\nCONFIG_KVM_AMD=m\n",
        )
        .unwrap();
        let spec = config_spec(dir.path(), "kvm-mm-modular").unwrap();
        // A config that sets CONFIG_MODULES=y builds its modules too.
        assert_eq!(spec.goals, ["bzImage", "modules"]);
        let settings = merged_settings(&spec.fragments).unwrap();
        let want = |o: &str| settings.iter().find(|(n, _)| n == o).unwrap().1.clone();
        assert_eq!(want("CONFIG_KVM").as_deref(), Some("CONFIG_KVM=m"));
        assert_eq!(want("CONFIG_MODULES").as_deref(), Some("CONFIG_MODULES=y"));
        assert_eq!(want("CONFIG_KUNIT").as_deref(), Some("CONFIG_KUNIT=y"));
        assert_eq!(settings.len(), 4);
        let all = |_: &str| true;
        let modular = "CONFIG_MODULES=y\nCONFIG_KVM=m\nCONFIG_KVM_AMD=m\nCONFIG_KUNIT=y\n";
        assert!(verify_config(&spec, modular, all).is_ok());
        // The earlier fragment's CONFIG_KVM=y is no longer asked for...
        let e = verify_config(&spec, &modular.replace("KVM=m", "KVM=y"), all).unwrap_err();
        assert!(e.to_string().contains("CONFIG_KVM was requested"), "{e}");
        // ...and the later fragment's settings still are.
        let e = verify_config(&spec, &modular.replace("MODULES=y", "MODULES=n"), all).unwrap_err();
        assert!(e.to_string().contains("CONFIG_MODULES"), "{e}");
    }
}
