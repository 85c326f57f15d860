//! Test initramfs assembly and `/init` generation.
//!
//! An [`Initramfs`] is a [`cpio::Archive`](crate::cpio::Archive) with helpers for what a test
//! guest needs:
//!
//! - a base layout (`/dev/console`, `/proc`, `/sys`, `/tmp`, `/root`, a
//!   minimal `/etc/passwd`);
//! - a static busybox at `/bin/busybox` plus one symlink per applet
//!   ([`Initramfs::add_busybox`]);
//! - coreutils `timeout` with the shared libraries `ldd` reports
//!   ([`Initramfs::add_coreutils_timeout`]): busybox's `timeout` lacks
//!   `--foreground` and process-group kill, which the kselftest runner and
//!   `/init` rely on;
//! - host files and trees (test binaries, a kselftest install directory);
//! - `/init`, generated from a [`TestPlan`] by the pure [`render_init`].
//!
//! # The `/init` protocol
//!
//! `/init` mounts proc, sysfs, devtmpfs, tmpfs on `/tmp` and `/dev/shm` and
//! hugetlbfs on `/dev/hugepages`, creates `/dev/fd` and
//! `/dev/std{in,out,err}` (devtmpfs lacks them), then prints
//! [`START_MARKER`], a TAP header and one result per command, then
//! [`END_MARKER`], and powers off with `poweroff -f`. Each command runs as
//! `timeout -k 10 SECS sh -c COMMAND` with stdin from `/dev/null`; its
//! output is indented by four spaces, so KTAP it prints becomes a subtest:
//!
//! ```text
//! KMM-BOOT: tests start
//! TAP version 13
//! 1..2
//! # kmm-boot: running kvm_selftests (timeout 900s)
//!     TAP version 13
//!     1..1
//!     ok 1 selftests: kvm: kvm_create_max_vcpus
//! ok 1 kvm_selftests
//! # kmm-boot: kvm_selftests exit=0 time=31s
//! # kmm-boot: running slow (timeout 10s)
//! not ok 2 slow # TIMEOUT 10s
//! # kmm-boot: slow exit=124 time=10s
//! KMM-BOOT: tests end
//! ```
//!
//! Exit status 0 is `ok`, 4 (`KSFT_SKIP`) is `ok ... # SKIP`, 124 (or 137
//! once the time limit has passed) is `not ok ... # TIMEOUT`, anything else
//! is `not ok ... # exit=N`. KUnit results are not part of this: the kernel
//! prints them on the console before `/init` starts.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use serde::{Deserialize, Serialize};

use crate::cpio::{Archive, CpioError, DeviceKind, Entry};

/// Printed by `/init` before the first test.
pub const START_MARKER: &str = "KMM-BOOT: tests start";
/// Printed by `/init` after the last test, just before powering off.
pub const END_MARKER: &str = "KMM-BOOT: tests end";
/// Where Debian's `busybox-static` installs busybox.
pub const HOST_BUSYBOX: &str = "/usr/bin/busybox";
/// Where Debian's `coreutils` installs `timeout`.
pub const HOST_TIMEOUT: &str = "/usr/bin/timeout";
/// Guest path of busybox; applet links point here.
pub const GUEST_BUSYBOX: &str = "/bin/busybox";
/// Guest path of coreutils `timeout`, ahead of busybox's in `PATH`.
pub const GUEST_TIMEOUT: &str = "/usr/bin/timeout";
/// Seconds between `timeout`'s SIGTERM and its SIGKILL to a command.
pub const KILL_AFTER_SECS: u32 = 10;

/// Errors from assembling an initramfs.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    /// An archive entry was rejected or the archive could not be written.
    #[error(transparent)]
    Cpio(#[from] CpioError),
    /// A host file or directory could not be inspected.
    #[error("cannot inspect host path {path}")]
    Inspect {
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A host path to be copied as a file is not a regular file.
    #[error("{path} is not a regular file")]
    NotAFile {
        /// The host path.
        path: PathBuf,
    },
    /// A helper program (`busybox --list-full`, `ldd`) could not be started.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A helper program exited unsuccessfully.
    #[error("`{command}` failed with {status}: {stderr}")]
    Helper {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// `ldd` could not resolve a shared library of a binary.
    #[error("ldd cannot find {library}, needed by {binary}")]
    MissingLibrary {
        /// The binary being added.
        binary: PathBuf,
        /// The library that was not found.
        library: String,
    },
    /// The program given as coreutils `timeout` is something else.
    #[error("{path} is not GNU coreutils timeout")]
    NotCoreutilsTimeout {
        /// The host path.
        path: PathBuf,
    },
    /// The archive has no `/init`.
    #[error("initramfs has no /init")]
    MissingInit,
    /// The output file could not be created or written.
    #[error("cannot write initramfs {path}")]
    Output {
        /// The output path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// One command run by `/init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCommand {
    /// TAP test name; characters outside `[A-Za-z0-9._:/+-]` become `_`.
    pub name: String,
    /// Shell command line, run with `sh -c`.
    pub command: String,
    /// Time limit in seconds; 0 means none.
    pub timeout_secs: u32,
}

impl TestCommand {
    /// Creates a command.
    pub fn new(name: impl Into<String>, command: impl Into<String>, timeout_secs: u32) -> Self {
        Self {
            name: name.into(),
            command: command.into(),
            timeout_secs,
        }
    }
}

/// What `/init` runs, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestPlan {
    /// The commands, each reported as one TAP test.
    pub commands: Vec<TestCommand>,
}

impl TestPlan {
    /// Creates a plan from commands.
    pub fn new(commands: Vec<TestCommand>) -> Self {
        Self { commands }
    }
}

/// Shell preamble of `/init`: mounts and device links.
const INIT_PREAMBLE: &str = r##"#!/bin/sh
# Generated by kmm-boot from a test plan: do not edit.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mkdir -p /tmp /dev/shm /dev/hugepages
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t hugetlbfs hugetlbfs /dev/hugepages
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr

"##;

/// The `kmm_run` shell function; `@KILL_AFTER@` is substituted.
const RUN_FUNCTION: &str = r##"# kmm_run NUMBER NAME SECONDS COMMAND: run COMMAND under coreutils timeout
# (0 seconds: no limit), indent its output by four spaces so that its KTAP
# becomes a subtest, and print one TAP result line.
kmm_run() {
	echo "# kmm-boot: running $2 (timeout $3s)"
	kmm_t0=$(date +%s)
	rm -f /tmp/.kmm-rc
	{
		timeout -k @KILL_AFTER@ "$3" sh -c "$4" </dev/null 2>&1
		echo $? >/tmp/.kmm-rc
	} | while IFS= read -r kmm_line || [ -n "$kmm_line" ]; do
		printf '    %s\n' "$kmm_line"
	done
	kmm_rc=$(cat /tmp/.kmm-rc 2>/dev/null || echo 255)
	kmm_took=$(($(date +%s) - kmm_t0))
	case $kmm_rc in
	0) echo "ok $1 $2" ;;
	4) echo "ok $1 $2 # SKIP" ;;
	124) echo "not ok $1 $2 # TIMEOUT $3s" ;;
	137)
		if [ "$3" -gt 0 ] && [ "$kmm_took" -ge "$3" ]; then
			echo "not ok $1 $2 # TIMEOUT $3s"
		else
			echo "not ok $1 $2 # exit=$kmm_rc"
		fi
		;;
	*) echo "not ok $1 $2 # exit=$kmm_rc" ;;
	esac
	echo "# kmm-boot: $2 exit=$kmm_rc time=${kmm_took}s"
}

"##;

/// Shell epilogue of `/init`.
const INIT_EPILOGUE: &str = r##"sync
poweroff -f
# Not reached; should poweroff fail, init exits and the kernel panics.
"##;

/// Renders the `/init` script for `plan`.
///
/// Pure: the same plan always gives the same script. Names are sanitised
/// for TAP and commands are single-quoted for the shell.
pub fn render_init(plan: &TestPlan) -> String {
    let mut script = String::from(INIT_PREAMBLE);
    script.push_str(&render_runner(plan));
    script.push_str(INIT_EPILOGUE);
    script
}

/// Renders the part of `/init` that prints markers and runs the plan.
fn render_runner(plan: &TestPlan) -> String {
    let mut script = RUN_FUNCTION.replace("@KILL_AFTER@", &KILL_AFTER_SECS.to_string());
    script.push_str(&format!("echo {}\n", shell_quote(START_MARKER)));
    script.push_str("echo 'TAP version 13'\n");
    script.push_str(&format!("echo '1..{}'\n", plan.commands.len()));
    for (index, command) in plan.commands.iter().enumerate() {
        script.push_str(&format!(
            "kmm_run {} {} {} {}\n",
            index + 1,
            shell_quote(&tap_name(&command.name)),
            command.timeout_secs,
            shell_quote(&command.command),
        ));
    }
    script.push_str(&format!("echo {}\n", shell_quote(END_MARKER)));
    script
}

/// Makes `name` safe for a TAP result line.
fn tap_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._:/+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() {
        "unnamed".to_owned()
    } else {
        safe
    }
}

/// Quotes `s` as one POSIX shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// An initramfs under construction.
///
/// Explicit additions replace whatever was at the same guest path; busybox
/// applet links never replace an existing entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initramfs {
    archive: Archive,
}

impl Default for Initramfs {
    fn default() -> Self {
        Self::new()
    }
}

impl Initramfs {
    /// Creates an initramfs with the base layout and no `/init`.
    ///
    /// The base layout is `/dev`, `/dev/console` (c 5 1, so that init has a
    /// console before devtmpfs is mounted), `/proc`, `/sys`, `/tmp`, `/root`,
    /// `/etc/passwd` and `/etc/group` with a root entry.
    pub fn new() -> Self {
        let mut archive = Archive::new();
        let base = [
            Entry::directory("dev", 0o755),
            Entry::device("dev/console", 0o600, DeviceKind::Char, 5, 1),
            Entry::directory("proc", 0o555),
            Entry::directory("sys", 0o555),
            Entry::directory("tmp", 0o1777),
            Entry::directory("root", 0o700),
            Entry::directory("etc", 0o755),
            Entry::bytes(
                "etc/passwd",
                0o644,
                b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
            ),
            Entry::bytes("etc/group", 0o644, b"root:x:0:\n".to_vec()),
        ];
        for entry in base {
            archive.insert(entry.expect("base layout paths and modes are valid"));
        }
        Self { archive }
    }

    /// Returns the underlying archive.
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// Returns the underlying archive for direct edits.
    pub fn archive_mut(&mut self) -> &mut Archive {
        &mut self.archive
    }

    /// Copies host file `host` to `guest`, keeping its permission bits.
    ///
    /// Symlinks are followed; the contents are read when writing.
    ///
    /// # Errors
    ///
    /// [`InitramfsError::Inspect`], [`InitramfsError::NotAFile`] or an
    /// invalid guest path.
    pub fn add_file(&mut self, host: &Path, guest: &str) -> Result<(), InitramfsError> {
        let meta = fs::metadata(host).map_err(|source| InitramfsError::Inspect {
            path: host.to_owned(),
            source,
        })?;
        if !meta.is_file() {
            return Err(InitramfsError::NotAFile {
                path: host.to_owned(),
            });
        }
        self.add_file_with_mode(host, guest, meta.permissions().mode() & 0o7777)
    }

    /// Copies host file `host` to `guest` with permission bits `mode`.
    ///
    /// # Errors
    ///
    /// An invalid guest path or mode; the host file is checked when writing.
    pub fn add_file_with_mode(
        &mut self,
        host: &Path,
        guest: &str,
        mode: u32,
    ) -> Result<(), InitramfsError> {
        self.archive.insert(Entry::host_file(guest, mode, host)?);
        Ok(())
    }

    /// Adds a file with in-memory contents.
    ///
    /// # Errors
    ///
    /// An invalid guest path or mode.
    pub fn add_bytes(
        &mut self,
        guest: &str,
        mode: u32,
        contents: impl Into<Vec<u8>>,
    ) -> Result<(), InitramfsError> {
        self.archive
            .insert(Entry::bytes(guest, mode, contents.into())?);
        Ok(())
    }

    /// Adds a directory.
    ///
    /// # Errors
    ///
    /// An invalid guest path or mode.
    pub fn add_dir(&mut self, guest: &str, mode: u32) -> Result<(), InitramfsError> {
        self.archive.insert(Entry::directory(guest, mode)?);
        Ok(())
    }

    /// Adds a symbolic link at `guest` pointing at `target`.
    ///
    /// # Errors
    ///
    /// An invalid guest path.
    pub fn add_symlink(&mut self, guest: &str, target: &str) -> Result<(), InitramfsError> {
        self.archive.insert(Entry::symlink(guest, target)?);
        Ok(())
    }

    /// Copies the host directory tree `host` to `guest`, returning the entry count.
    ///
    /// Directories and files keep their permission bits, symlinks their
    /// targets verbatim; other file types (sockets, FIFOs, devices) are
    /// skipped.
    ///
    /// # Errors
    ///
    /// [`InitramfsError::Inspect`] or an invalid guest path.
    pub fn add_tree(&mut self, host: &Path, guest: &str) -> Result<usize, InitramfsError> {
        let inspect = |source| InitramfsError::Inspect {
            path: host.to_owned(),
            source,
        };
        let meta = fs::symlink_metadata(host).map_err(inspect)?;
        let mode = meta.permissions().mode() & 0o7777;
        let ty = meta.file_type();
        if ty.is_symlink() {
            let target = fs::read_link(host).map_err(inspect)?;
            self.add_symlink(guest, &target.to_string_lossy())?;
            return Ok(1);
        }
        if ty.is_file() {
            self.add_file_with_mode(host, guest, mode)?;
            return Ok(1);
        }
        if !ty.is_dir() {
            return Ok(0);
        }
        self.add_dir(guest, mode)?;
        let mut children = fs::read_dir(host)
            .map_err(inspect)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(inspect)?;
        children.sort();
        let mut count = 1;
        for name in children {
            let guest_child = format!("{}/{}", guest.trim_end_matches('/'), name.to_string_lossy());
            count += self.add_tree(&host.join(&name), &guest_child)?;
        }
        Ok(count)
    }

    /// Adds a static busybox at [`GUEST_BUSYBOX`] and links for its applets.
    ///
    /// The applet list comes from `busybox --list-full`. Links never replace
    /// an entry that is already present, so adding coreutils `timeout` before
    /// or after busybox both work. Returns the number of links added.
    ///
    /// # Errors
    ///
    /// Running busybox failed, or as for [`Initramfs::add_file`].
    pub fn add_busybox(&mut self, host: &Path) -> Result<usize, InitramfsError> {
        let list = run_helper(Command::new(host).arg("--list-full"))?;
        self.add_file_with_mode(host, GUEST_BUSYBOX, 0o755)?;
        let mut added = 0;
        for applet in parse_busybox_list(&list) {
            if applet == GUEST_BUSYBOX.trim_start_matches('/') {
                continue;
            }
            if self
                .archive
                .insert_if_absent(Entry::symlink(&applet, GUEST_BUSYBOX)?)
            {
                added += 1;
            }
        }
        Ok(added)
    }

    /// Copies a dynamically linked binary to `guest` with its shared libraries.
    ///
    /// Libraries (and the ELF interpreter) are copied to the paths `ldd`
    /// prints, following symlinks. A static binary gets no libraries.
    /// Returns the library paths.
    ///
    /// # Errors
    ///
    /// [`InitramfsError::MissingLibrary`], a failure running `ldd`, or as for
    /// [`Initramfs::add_file`].
    pub fn add_with_libraries(
        &mut self,
        host: &Path,
        guest: &str,
    ) -> Result<Vec<PathBuf>, InitramfsError> {
        self.add_file(host, guest)?;
        let output =
            Command::new("ldd")
                .arg(host)
                .output()
                .map_err(|source| InitramfsError::Spawn {
                    program: "ldd".to_owned(),
                    source,
                })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if is_static_ldd(&stdout) || is_static_ldd(&stderr) {
            return Ok(Vec::new());
        }
        if !output.status.success() {
            return Err(InitramfsError::Helper {
                command: format!("ldd {}", host.display()),
                status: output.status,
                stderr: stderr.trim().to_owned(),
            });
        }
        let libraries = parse_ldd(&stdout).map_err(|library| InitramfsError::MissingLibrary {
            binary: host.to_owned(),
            library,
        })?;
        for library in &libraries {
            self.add_file(library, &library.to_string_lossy())?;
        }
        Ok(libraries)
    }

    /// Adds coreutils `timeout` at [`GUEST_TIMEOUT`] with its libraries.
    ///
    /// # Errors
    ///
    /// [`InitramfsError::NotCoreutilsTimeout`] if `host --version` does not
    /// name coreutils, or as for [`Initramfs::add_with_libraries`].
    pub fn add_coreutils_timeout(&mut self, host: &Path) -> Result<Vec<PathBuf>, InitramfsError> {
        let version = run_helper(Command::new(host).arg("--version")).map_err(|e| match e {
            InitramfsError::Helper { .. } => InitramfsError::NotCoreutilsTimeout {
                path: host.to_owned(),
            },
            other => other,
        })?;
        if !version.contains("coreutils") {
            return Err(InitramfsError::NotCoreutilsTimeout {
                path: host.to_owned(),
            });
        }
        self.add_with_libraries(host, GUEST_TIMEOUT)
    }

    /// Sets `/init` to the script [`render_init`] makes for `plan`.
    ///
    /// # Errors
    ///
    /// None in practice; the signature allows for path validation.
    pub fn set_test_plan(&mut self, plan: &TestPlan) -> Result<(), InitramfsError> {
        self.add_bytes("init", 0o755, render_init(plan))
    }

    /// Writes the archive to `out` and returns it.
    ///
    /// # Errors
    ///
    /// [`InitramfsError::MissingInit`] if there is no `/init`, or a cpio error.
    pub fn write_to<W: Write>(&self, out: W) -> Result<W, InitramfsError> {
        if self.archive.get("init").is_none() {
            return Err(InitramfsError::MissingInit);
        }
        Ok(self.archive.write_to(out)?)
    }

    /// Writes the archive to a new file at `path` and returns its size.
    ///
    /// # Errors
    ///
    /// [`InitramfsError::Output`], or as for [`Initramfs::write_to`].
    pub fn write_file(&self, path: &Path) -> Result<u64, InitramfsError> {
        let output = |source| InitramfsError::Output {
            path: path.to_owned(),
            source,
        };
        let file = File::create(path).map_err(output)?;
        let writer = self.write_to(BufWriter::new(file))?;
        let file = writer.into_inner().map_err(|e| output(e.into_error()))?;
        file.sync_all().map_err(output)?;
        Ok(file.metadata().map_err(output)?.len())
    }
}

/// Runs a helper and returns its standard output.
fn run_helper(command: &mut Command) -> Result<String, InitramfsError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().map_err(|source| InitramfsError::Spawn {
        program: program.clone(),
        source,
    })?;
    if !output.status.success() {
        let args: Vec<_> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return Err(InitramfsError::Helper {
            command: format!("{program} {}", args.join(" ")),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Parses `busybox --list-full` into applet paths (`bin/sh`, `usr/bin/[`).
fn parse_busybox_list(list: &str) -> Vec<String> {
    list.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| line.trim_start_matches('/').to_owned())
        .collect()
}

fn is_static_ldd(output: &str) -> bool {
    output.contains("not a dynamic executable") || output.contains("statically linked")
}

/// Parses `ldd` output into library paths; `Err` names a missing library.
///
/// The vDSO (no path) is skipped; the interpreter line has no `=>`.
fn parse_ldd(output: &str) -> Result<Vec<PathBuf>, String> {
    let mut libraries = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, target) = match line.split_once("=>") {
            Some((name, target)) => (name.trim(), target.trim()),
            None => (line, line),
        };
        if target.starts_with("not found") {
            return Err(name.to_owned());
        }
        let path = target.split(" (").next().unwrap_or(target).trim();
        if path.starts_with('/') {
            libraries.push(PathBuf::from(path));
        }
    }
    libraries.sort();
    libraries.dedup();
    Ok(libraries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_output() {
        let out = "\
\tlinux-vdso.so.1 (0x00007ffc2f9e5000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f8658c17000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f8658e1c000)
";
        assert_eq!(
            parse_ldd(out).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert_eq!(
            parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err(),
            "libfoo.so.1"
        );
        assert!(is_static_ldd("\tnot a dynamic executable\n"));
    }

    #[test]
    fn parses_busybox_list() {
        assert_eq!(
            parse_busybox_list("usr/bin/[\nbin/sh\n\nlinuxrc\n"),
            ["usr/bin/[", "bin/sh", "linuxrc"]
        );
    }

    #[test]
    fn names_and_commands_are_quoted() {
        assert_eq!(tap_name("kvm: a#b c"), "kvm:_a_b_c");
        assert_eq!(tap_name(""), "unnamed");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn base_layout_has_console() {
        let initramfs = Initramfs::new();
        assert!(initramfs.archive().get("/dev/console").is_some());
        assert!(matches!(
            initramfs.write_to(Vec::new()),
            Err(InitramfsError::MissingInit)
        ));
    }

    /// Runs the generated runner part of `/init` on the host.
    ///
    /// The preamble (mounts) and epilogue (poweroff) need a guest; the
    /// runner only needs `sh`, `date` and coreutils `timeout`.
    #[test]
    fn runner_script_reports_tap() {
        if !Path::new(HOST_TIMEOUT).exists() {
            eprintln!("skipping: no {HOST_TIMEOUT}");
            return;
        }
        let plan = TestPlan::new(vec![
            TestCommand::new(
                "pass",
                "echo 'TAP version 13'; echo '1..1'; echo 'ok 1 x'",
                10,
            ),
            TestCommand::new("skip", "exit 4", 10),
            TestCommand::new("fail", "printf 'no newline'; exit 3", 10),
            TestCommand::new("slow", "sleep 5", 1),
            TestCommand::new("quote's", "echo \"it's\"", 0),
        ]);
        // /init writes its rc file to /tmp; that is fine on the host too.
        let output = Command::new("sh")
            .arg("-c")
            .arg(render_runner(&plan))
            .output()
            .unwrap();
        assert!(output.status.success());
        let stdout = String::from_utf8(output.stdout).unwrap();
        let lines: Vec<_> = stdout
            .lines()
            .filter(|l| !l.starts_with("# kmm-boot:"))
            .collect();
        assert_eq!(
            lines,
            [
                START_MARKER,
                "TAP version 13",
                "1..5",
                "    TAP version 13",
                "    1..1",
                "    ok 1 x",
                "ok 1 pass",
                "ok 2 skip # SKIP",
                "    no newline",
                "not ok 3 fail # exit=3",
                "not ok 4 slow # TIMEOUT 1s",
                "    it's",
                "ok 5 quote_s",
                END_MARKER,
            ]
        );
        assert!(stdout.contains("# kmm-boot: slow exit=124 time="));
    }
}
