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
//!
//! # KVM modules
//!
//! A plan with [`TestPlan::modules`] (found by [`kvm_modules`] in a build
//! with `CONFIG_KVM=m`) makes `/init` load them before [`START_MARKER`],
//! and only once the TSC calibration is final: the x86 kernel registers
//! the `tsc-early` clocksource at boot and `tsc_refine_calibration_work`
//! (arch/x86/kernel/tsc.c, about a second after `device_initcall`) sets the
//! refined `tsc_khz`, registers `tsc` and then unregisters `tsc-early`, its
//! last step on every path. KVM reads `tsc_khz` when its vendor module
//! initialises; loaded earlier, it would run every vCPU at the stale rate
//! ("user requested TSC rate below hardware speed"). So `/init` polls
//! `available_clocksource` until `tsc-early` has left it (at most
//! [`CLOCKSOURCE_TIMEOUT_SECS`]), then runs `insmod` on the modules
//! `kvm.ko` needs (`irqbypass.ko`), on `kvm.ko` and on
//! the vendor module whose CPU flag `/proc/cpuinfo` lists, each with its
//! `MODULE.PARAM=VALUE` words of the kernel command line (which the
//! kernel leaves to modprobe; a plan's `kvm.pfncache_inval=split` still
//! reaches kvm.ko). The KUnit
//! suites linked into `kvm.ko` print their KTAP while it loads. Every step
//! prints a `KMM-BOOT:` line, and the outcome is test 1 of the TAP
//! document, `kvm_modules`: a clocksource that never becomes final (no
//! module is loaded then) or a failed `insmod` fails it.
//!
//! ```text
//! KMM-BOOT: waiting for the final TSC calibration (tsc-early unregistered, at most 60s)
//! KMM-BOOT: TSC calibration final after 0.4s: clocksource tsc
//! KMM-BOOT: insmod /lib/modules/kvm.ko
//!     KTAP version 1
//!     # Subtest: kvm_mm
//! ...
//! ok 8 kvm_mm
//! KMM-BOOT: loaded /lib/modules/kvm.ko
//! KMM-BOOT: insmod /lib/modules/kvm-amd.ko
//! KMM-BOOT: loaded /lib/modules/kvm-amd.ko
//! KMM-BOOT: skipping /lib/modules/kvm-intel.ko: no vmx flag in /proc/cpuinfo
//! KMM-BOOT: tests start
//! TAP version 13
//! 1..2
//! ok 1 kvm_modules
//! ...
//! ```

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
/// Guest directory of the kernel modules `/init` loads.
pub const GUEST_MODULES: &str = "/lib/modules";
/// Longest wait of `/init` for the final TSC calibration before it gives
/// up loading KVM; refinement takes one to two seconds after
/// `device_initcall`, longer under a loaded TCG host.
pub const CLOCKSOURCE_TIMEOUT_SECS: u32 = 60;
/// The sysfs directory whose `available_clocksource` `/init` polls.
pub const GUEST_CLOCKSOURCE_DIR: &str = "/sys/devices/system/clocksource/clocksource0";
/// TAP name of the module loading step when a plan has modules.
pub const MODULES_TEST: &str = "kvm_modules";
/// The KVM modules of an x86 build, in load order (`kvm.ko` first: the
/// vendor modules use its symbols), with the `/proc/cpuinfo` flag a vendor
/// module needs.
pub const KVM_MODULES: [(&str, Option<&str>); 3] = [
    ("kvm", None),
    ("kvm-amd", Some("svm")),
    ("kvm-intel", Some("vmx")),
];

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
    /// A module depends on one the build's `modules.order` does not list.
    #[error("{module} depends on {dependency}, which modules.order does not list")]
    MissingDependency {
        /// The module.
        module: PathBuf,
        /// The name of the module it needs.
        dependency: String,
    },
    /// The build's .config has a KVM module whose `.ko` is not there.
    #[error("{config} has {option}=m but there is no {module}: was `make modules` run?")]
    MissingModule {
        /// The build's .config.
        config: PathBuf,
        /// The option (`CONFIG_KVM_AMD`).
        option: String,
        /// The module file looked for.
        module: PathBuf,
    },
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

/// A kernel module `/init` loads before the tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestModule {
    /// Guest path of the `.ko` file.
    pub path: String,
    /// A flag `/proc/cpuinfo` must list for the module to be loaded
    /// (`svm` for `kvm-amd.ko`); `None` loads it always.
    pub cpu_flag: Option<String>,
}

/// What `/init` runs, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestPlan {
    /// Modules loaded in this order, once the TSC calibration is final,
    /// before the commands; see the [module docs](self#kvm-modules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<GuestModule>,
    /// The commands, each reported as one TAP test.
    pub commands: Vec<TestCommand>,
}

impl TestPlan {
    /// Creates a plan from commands.
    pub fn new(commands: Vec<TestCommand>) -> Self {
        Self {
            modules: Vec::new(),
            commands,
        }
    }

    /// The plan with `modules` loaded before its commands.
    #[must_use]
    pub fn with_modules(mut self, modules: Vec<GuestModule>) -> Self {
        self.modules = modules;
        self
    }
}

/// A module of a kernel build for [`Initramfs::add_modules`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostModule {
    /// The `.ko` file in the build directory.
    pub path: PathBuf,
    /// See [`GuestModule::cpu_flag`].
    pub cpu_flag: Option<String>,
}

/// The KVM modules built in the `O=` directory `build_dir` (those whose
/// option its `.config` sets to `m`) and the modules they depend on
/// (`irqbypass.ko`), in load order: dependencies first, as the `depends=`
/// entry of each module's `.modinfo` says, found through
/// `modules.order`; then [`KVM_MODULES`] order. A build without
/// `CONFIG_MODULES=y` (KVM built in) has none.
///
/// # Errors
///
/// [`InitramfsError::Inspect`] if there is no readable `.config` or a
/// module cannot be read, [`InitramfsError::MissingModule`] if an `=m`
/// module was not built, [`InitramfsError::MissingDependency`] if a
/// module depends on one that `modules.order` does not list.
pub fn kvm_modules(build_dir: &Path) -> Result<Vec<HostModule>, InitramfsError> {
    let read = |path: &Path| {
        fs::read(path).map_err(|source| InitramfsError::Inspect {
            path: path.to_owned(),
            source,
        })
    };
    let config_path = build_dir.join(".config");
    let config = String::from_utf8_lossy(&read(&config_path)?).into_owned();
    let set = |option: &str| {
        config
            .lines()
            .find_map(|l| l.strip_prefix(option)?.strip_prefix('='))
            .map(str::to_owned)
    };
    if set("CONFIG_MODULES").as_deref() != Some("y") {
        return Ok(Vec::new());
    }
    let mut roots = Vec::new();
    for (name, cpu_flag) in KVM_MODULES {
        let option = format!("CONFIG_{}", name.to_ascii_uppercase().replace('-', "_"));
        if set(&option).as_deref() != Some("m") {
            continue;
        }
        let path = build_dir.join("arch/x86/kvm").join(format!("{name}.ko"));
        if !path.is_file() {
            return Err(InitramfsError::MissingModule {
                config: config_path,
                option,
                module: path,
            });
        }
        roots.push(HostModule {
            path,
            cpu_flag: cpu_flag.map(str::to_owned),
        });
    }
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    // Module names (with `_`, as `depends=` has them) to their files.
    let order = String::from_utf8_lossy(&read(&build_dir.join("modules.order"))?).into_owned();
    let built: Vec<(String, PathBuf)> = order
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| (module_name(Path::new(l)), build_dir.join(l)))
        .collect();
    let mut out: Vec<HostModule> = Vec::new();
    for root in roots {
        // Depth-first, dependencies before the module that needs them.
        let mut stack = vec![(root, false)];
        while let Some((module, expanded)) = stack.pop() {
            let name = module_name(&module.path);
            if out.iter().any(|m| module_name(&m.path) == name) {
                continue;
            }
            if expanded {
                out.push(module);
                continue;
            }
            let depends = modinfo_depends(&read(&module.path)?);
            stack.push((module.clone(), true));
            for dep in depends.iter().rev() {
                let Some((_, path)) = built.iter().find(|(n, _)| n == dep) else {
                    return Err(InitramfsError::MissingDependency {
                        module: module.path.clone(),
                        dependency: dep.clone(),
                    });
                };
                if stack.len() > 64 {
                    // A dependency cycle; modpost would not have built it.
                    return Err(InitramfsError::MissingDependency {
                        module: module.path.clone(),
                        dependency: format!("{dep} (dependency cycle)"),
                    });
                }
                stack.push((
                    HostModule {
                        path: path.clone(),
                        cpu_flag: None,
                    },
                    false,
                ));
            }
        }
    }
    Ok(out)
}

/// The kernel's name of a module file: `kvm-amd.ko` is `kvm_amd`.
fn module_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.strip_suffix(".ko").unwrap_or(&file).replace('-', "_")
}

/// The `depends=` list of a module's `.modinfo` section (NUL-separated
/// `key=value` strings; modpost writes one `depends=`, empty when the
/// module needs no other).
fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(at) = ko.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let value = &ko[at + KEY.len()..];
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.replace('-', "_"))
        .collect()
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

/// Shell functions that wait for the final TSC calibration and load
/// modules; `@TIMEOUT@` and `@CS_DIR@` are substituted. They record the
/// first failure in `kmm_modules_fail`.
const MODULE_FUNCTIONS: &str = r##"# kmm_wait_tsc: wait until the TSC calibration is final, i.e. until the
# kernel has unregistered the tsc-early clocksource. tsc_refine_calibration_work
# (arch/x86/kernel/tsc.c) sets the refined tsc_khz, registers "tsc" and
# unregisters "tsc-early" last; so does the known-frequency path. KVM reads
# tsc_khz when it initialises, so it must not be loaded before.
kmm_cs=@CS_DIR@
kmm_cpuinfo=/proc/cpuinfo
kmm_cmdline=/proc/cmdline
kmm_modules_fail=
kmm_vendor_loaded=
kmm_wait_tsc() {
	echo "KMM-BOOT: waiting for the final TSC calibration (tsc-early unregistered, at most @TIMEOUT@s)"
	if [ ! -r "$kmm_cs/available_clocksource" ]; then
		echo "KMM-BOOT: ERROR: no $kmm_cs/available_clocksource: cannot tell whether the TSC calibration is final; not loading KVM"
		kmm_modules_fail="no available_clocksource in sysfs"
		return 1
	fi
	kmm_ticks=0
	while grep -qwF tsc-early "$kmm_cs/available_clocksource"; do
		if [ "$kmm_ticks" -ge $((@TIMEOUT@ * 10)) ]; then
			echo "KMM-BOOT: ERROR: clocksource still tsc-early after @TIMEOUT@s (current: $(cat "$kmm_cs/current_clocksource")): the TSC calibration is not final; not loading KVM"
			kmm_modules_fail="TSC calibration not final after @TIMEOUT@s"
			return 1
		fi
		usleep 100000
		kmm_ticks=$((kmm_ticks + 1))
	done
	kmm_current=$(cat "$kmm_cs/current_clocksource")
	echo "KMM-BOOT: TSC calibration final after $((kmm_ticks / 10)).$((kmm_ticks % 10))s: clocksource $kmm_current"
	if [ "$kmm_current" != tsc ]; then
		echo "KMM-BOOT: note: the current clocksource is $kmm_current, not tsc (TSC marked unstable?)"
	fi
}

# kmm_params PATH: the MODULE.PARAM=VALUE words of the kernel command line
# for the module file PATH (kvm-amd.ko: kvm_amd. or kvm-amd.), without the
# MODULE. part. The kernel hands them to modprobe, not to insmod.
kmm_params() {
	kmm_base=${1##*/}
	kmm_base=${kmm_base%.ko}
	kmm_us=$(echo "$kmm_base" | tr - _)
	kmm_dash=$(echo "$kmm_base" | tr _ -)
	set -f
	for kmm_w in $(cat "$kmm_cmdline"); do
		case $kmm_w in
		"$kmm_us".?*=*) echo "${kmm_w#"$kmm_us".}" ;;
		"$kmm_dash".?*=*) echo "${kmm_w#"$kmm_dash".}" ;;
		esac
	done
	set +f
}

# kmm_load PATH [CPU_FLAG]: insmod PATH with its kernel command-line
# parameters, unless an earlier step failed or /proc/cpuinfo lacks
# CPU_FLAG (a vendor module for another CPU).
kmm_load() {
	[ -z "$kmm_modules_fail" ] || return 1
	if [ -n "$2" ] && ! grep -qw "$2" "$kmm_cpuinfo"; then
		echo "KMM-BOOT: skipping $1: no $2 flag in $kmm_cpuinfo"
		return 0
	fi
	kmm_p=$(kmm_params "$1" | tr '\n' ' ')
	echo "KMM-BOOT: insmod $1${kmm_p:+ ${kmm_p% }}"
	set -f
	# shellcheck disable=SC2086 # one word per parameter
	insmod "$1" $kmm_p
	kmm_rc=$?
	set +f
	if [ "$kmm_rc" -ne 0 ]; then
		echo "KMM-BOOT: ERROR: insmod $1 failed (exit $kmm_rc)"
		kmm_modules_fail="insmod ${1##*/} failed (exit $kmm_rc)"
		return 1
	fi
	echo "KMM-BOOT: loaded $1"
	[ -z "$2" ] || kmm_vendor_loaded=$1
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
    script.push_str(&render_modules(
        plan,
        GUEST_CLOCKSOURCE_DIR,
        CLOCKSOURCE_TIMEOUT_SECS,
    ));
    script.push_str(&render_runner(plan));
    script.push_str(INIT_EPILOGUE);
    script
}

/// Renders the part of `/init` that waits for the final TSC calibration
/// (polling `cs_dir`, at most `timeout_secs`) and loads the plan's
/// modules; empty without modules.
fn render_modules(plan: &TestPlan, cs_dir: &str, timeout_secs: u32) -> String {
    if plan.modules.is_empty() {
        return String::new();
    }
    let mut script = MODULE_FUNCTIONS
        .replace("@TIMEOUT@", &timeout_secs.to_string())
        .replace("@CS_DIR@", &shell_quote(cs_dir));
    script.push_str("if kmm_wait_tsc; then\n");
    for module in &plan.modules {
        let flag = module.cpu_flag.as_deref().unwrap_or("");
        script.push_str(&format!(
            "\tkmm_load {} {}\n",
            shell_quote(&module.path),
            shell_quote(flag)
        ));
    }
    let vendors: Vec<&str> = plan
        .modules
        .iter()
        .filter_map(|m| m.cpu_flag.as_deref())
        .collect();
    if !vendors.is_empty() {
        let reason = format!("no vendor module loaded: no {} flag", vendors.join(" or "));
        script.push_str(&format!(
            "\tif [ -z \"$kmm_modules_fail\" ] && [ -z \"$kmm_vendor_loaded\" ]; then\n\
             \t\techo {}\n\
             \t\tkmm_modules_fail={}\n\
             \tfi\n",
            shell_quote(&format!("KMM-BOOT: ERROR: {reason} in /proc/cpuinfo")),
            shell_quote(&reason)
        ));
    }
    script.push_str("fi\n\n");
    script
}

/// Renders the part of `/init` that prints markers and runs the plan; with
/// modules, test 1 reports how loading them went.
fn render_runner(plan: &TestPlan) -> String {
    let mut script = RUN_FUNCTION.replace("@KILL_AFTER@", &KILL_AFTER_SECS.to_string());
    let first = usize::from(!plan.modules.is_empty());
    script.push_str(&format!("echo {}\n", shell_quote(START_MARKER)));
    script.push_str("echo 'TAP version 13'\n");
    script.push_str(&format!("echo '1..{}'\n", first + plan.commands.len()));
    if first == 1 {
        script.push_str(&format!(
            "if [ -z \"$kmm_modules_fail\" ]; then\n\
             \techo 'ok 1 {MODULES_TEST}'\n\
             else\n\
             \techo \"# kmm-boot: $kmm_modules_fail\"\n\
             \techo 'not ok 1 {MODULES_TEST}'\n\
             fi\n"
        ));
    }
    for (index, command) in plan.commands.iter().enumerate() {
        script.push_str(&format!(
            "kmm_run {} {} {} {}\n",
            first + index + 1,
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

    /// Copies `modules` (from [`kvm_modules`]) to [`GUEST_MODULES`] and
    /// returns them as `/init` loads them, in the same order.
    ///
    /// # Errors
    ///
    /// As for [`Initramfs::add_file_with_mode`], or a module path without
    /// a file name.
    pub fn add_modules(
        &mut self,
        modules: &[HostModule],
    ) -> Result<Vec<GuestModule>, InitramfsError> {
        let mut out = Vec::new();
        for module in modules {
            let name = module
                .path
                .file_name()
                .ok_or_else(|| InitramfsError::NotAFile {
                    path: module.path.clone(),
                })?;
            let guest = format!("{GUEST_MODULES}/{}", name.to_string_lossy());
            self.add_file_with_mode(&module.path, &guest, 0o644)?;
            out.push(GuestModule {
                path: guest,
                cpu_flag: module.cpu_flag.clone(),
            });
        }
        Ok(out)
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

    fn kvm_plan() -> TestPlan {
        let m = |name: &str, flag: Option<&str>| GuestModule {
            path: format!("{GUEST_MODULES}/{name}.ko"),
            cpu_flag: flag.map(str::to_owned),
        };
        TestPlan::new(vec![TestCommand::new("kselftest", "echo ran", 10)]).with_modules(vec![
            m("kvm", None),
            m("kvm-amd", Some("svm")),
            m("kvm-intel", Some("vmx")),
        ])
    }

    #[test]
    fn init_waits_for_the_clocksource_then_loads_in_order() {
        let script = render_init(&kvm_plan());
        let wait = script.find("if kmm_wait_tsc; then").unwrap();
        let kvm = script.find("kmm_load '/lib/modules/kvm.ko' ''").unwrap();
        let amd = script
            .find("kmm_load '/lib/modules/kvm-amd.ko' 'svm'")
            .unwrap();
        let intel = script
            .find("kmm_load '/lib/modules/kvm-intel.ko' 'vmx'")
            .unwrap();
        let start = script.find(&format!("echo '{START_MARKER}'")).unwrap();
        assert!(script.find("mount -t sysfs").unwrap() < wait);
        assert!(wait < kvm && kvm < amd && amd < intel && intel < start);
        assert!(script.contains("kmm_cs='/sys/devices/system/clocksource/clocksource0'\n"));
        assert!(script.contains("grep -qwF tsc-early \"$kmm_cs/available_clocksource\""));
        assert!(script.contains("-ge $((60 * 10))"));
        // The loading step is test 1 and the commands follow it.
        assert!(script.contains("echo '1..2'\n"));
        assert!(script.contains("echo 'ok 1 kvm_modules'"));
        assert!(script.contains("kmm_run 2 'kselftest' 10"));
    }

    #[test]
    fn init_without_modules_is_unchanged() {
        let plan = TestPlan::new(vec![TestCommand::new("t", "true", 1)]);
        let script = render_init(&plan);
        assert!(!script.contains("kmm_wait_tsc") && !script.contains("insmod"));
        assert!(script.contains("echo '1..1'\nkmm_run 1 't' 1 'true'\n"));
        assert_eq!(render_modules(&plan, GUEST_CLOCKSOURCE_DIR, 60), "");
    }

    /// Runs the module part of `/init` on the host against a fake sysfs
    /// clocksource directory, a fake cpuinfo and a fake `insmod`.
    fn run_module_steps(
        available: &str,
        cpuinfo: &str,
        insmod_fails: &str,
        background: &str,
    ) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let cs = dir.path().join("cs");
        fs::create_dir(&cs).unwrap();
        fs::write(cs.join("available_clocksource"), available).unwrap();
        fs::write(cs.join("current_clocksource"), "tsc-early\n").unwrap();
        fs::write(dir.path().join("cpuinfo"), cpuinfo).unwrap();
        fs::write(
            dir.path().join("cmdline"),
            "console=ttyS0 kvm.pfncache_inval=split kvm-amd.nested=1 kvm_intel.ept=0 kvm.*x=1 kvmx.y=2\n",
        )
        .unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let insmod = format!(
            "#!/bin/sh\necho \"insmod called: $*\"\ncase $1 in *{insmod_fails}) exit 1;; esac\n"
        );
        fs::write(bin.join("insmod"), insmod).unwrap();
        // usleep is a busybox applet; the host may not have it.
        fs::write(bin.join("usleep"), "#!/bin/sh\nsleep 0.1\n").unwrap();
        for f in ["insmod", "usleep"] {
            fs::set_permissions(bin.join(f), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let setup = format!(
            "kmm_cpuinfo={}\nkmm_cmdline={}\ncd {}\n{background}\nif kmm_wait_tsc; then",
            shell_quote(&dir.path().join("cpuinfo").to_string_lossy()),
            shell_quote(&dir.path().join("cmdline").to_string_lossy()),
            shell_quote(&cs.to_string_lossy()),
        );
        let script = render_modules(&kvm_plan(), &cs.to_string_lossy(), 1)
            .replace("if kmm_wait_tsc; then", &setup)
            + "echo \"fail=[$kmm_modules_fail]\"\n";
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let output = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", path)
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let fail = stdout
            .lines()
            .find_map(|l| l.strip_prefix("fail=["))
            .and_then(|l| l.strip_suffix(']'))
            .unwrap()
            .to_owned();
        (stdout, fail)
    }

    #[test]
    fn module_steps_wait_for_tsc_early_to_go() {
        // tsc-early leaves available_clocksource 0.5 s in, as
        // tsc_refine_calibration_work does when it is done.
        let (out, fail) = run_module_steps(
            "tsc-early hpet acpi_pm\n",
            "flags\t\t: fpu svm npt\n",
            "none",
            "( sleep 0.5; echo 'tsc hpet acpi_pm' >available_clocksource; \
               echo tsc >current_clocksource ) &",
        );
        assert_eq!(fail, "", "{out}");
        let lines: Vec<&str> = out.lines().collect();
        let pos = |p: &str| lines.iter().position(|l| l.starts_with(p)).unwrap();
        assert!(pos("KMM-BOOT: TSC calibration final after 0.") < pos("insmod called"));
        assert!(out.contains(": clocksource tsc\n"), "{out}");
        assert!(!out.contains("note: the current clocksource"), "{out}");
        let loaded: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("insmod called: "))
            .collect();
        // With their parameters from the kernel command line.
        assert_eq!(
            loaded,
            [
                "/lib/modules/kvm.ko pfncache_inval=split *x=1",
                "/lib/modules/kvm-amd.ko nested=1"
            ]
        );
        assert!(
            out.contains("KMM-BOOT: insmod /lib/modules/kvm-amd.ko nested=1\n"),
            "{out}"
        );
        assert!(out.contains("KMM-BOOT: skipping /lib/modules/kvm-intel.ko: no vmx flag in"));
    }

    #[test]
    fn module_steps_report_failures() {
        // insmod kvm.ko fails: nothing else is loaded.
        let (out, fail) = run_module_steps("tsc hpet\n", "flags : svm\n", "/kvm.ko", "");
        assert_eq!(fail, "insmod kvm.ko failed (exit 1)", "{out}");
        assert!(out.contains("KMM-BOOT: ERROR: insmod /lib/modules/kvm.ko failed (exit 1)"));
        assert_eq!(out.matches("insmod called").count(), 1, "{out}");
        // No flag for any vendor module.
        let (out, fail) = run_module_steps("tsc hpet\n", "flags : fpu\n", "none", "");
        assert_eq!(fail, "no vendor module loaded: no svm or vmx flag", "{out}");
        // The calibration never becomes final: a loud line, nothing loaded.
        let (out, fail) = run_module_steps("tsc-early hpet\n", "flags : svm\n", "none", "");
        assert_eq!(fail, "TSC calibration not final after 1s", "{out}");
        assert!(
            out.contains(
                "KMM-BOOT: ERROR: clocksource still tsc-early after 1s (current: tsc-early): \
             the TSC calibration is not final; not loading KVM"
            ),
            "{out}"
        );
        assert!(!out.contains("insmod called"), "{out}");
        // A TSC marked unstable: tsc-early is gone but hpet is current.
        let (out, fail) = run_module_steps(
            "hpet\n",
            "flags : svm\n",
            "none",
            "echo hpet >current_clocksource",
        );
        assert_eq!(fail, "", "{out}");
        assert!(
            out.contains("note: the current clocksource is hpet, not tsc"),
            "{out}"
        );
    }

    #[test]
    fn module_discovery_reads_the_build_config() {
        let dir = tempfile::tempdir().unwrap();
        let kvm = dir.path().join("arch/x86/kvm");
        let lib = dir.path().join("virt/lib");
        fs::create_dir_all(&kvm).unwrap();
        fs::create_dir_all(&lib).unwrap();
        // Built in: no modules, whatever lies around.
        fs::write(
            dir.path().join(".config"),
            "CONFIG_KVM=y\nCONFIG_KVM_AMD=y\n",
        )
        .unwrap();
        fs::write(kvm.join("kvm.ko"), "").unwrap();
        assert_eq!(kvm_modules(dir.path()).unwrap(), []);
        // Modular, without kvm-intel: kvm.ko needs irqbypass.ko (from
        // modules.order, as a real 6.1 build lists them), kvm-amd.ko kvm.ko.
        fs::write(
            dir.path().join(".config"),
            "CONFIG_MODULES=y\nCONFIG_KVM_AMD=m\nCONFIG_KVM=m\n# CONFIG_KVM_INTEL is not set\n",
        )
        .unwrap();
        let e = kvm_modules(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("CONFIG_KVM_AMD=m but there is no") && e.contains("kvm-amd.ko"),
            "{e}"
        );
        let ko =
            |depends: &str| format!("\x7fELF...\0license=GPL\0depends={depends}\0retpoline=Y\0");
        fs::write(kvm.join("kvm.ko"), ko("irqbypass")).unwrap();
        fs::write(kvm.join("kvm-amd.ko"), ko("kvm")).unwrap();
        fs::write(kvm.join("kvm-intel.ko"), ko("kvm")).unwrap();
        fs::write(lib.join("irqbypass.ko"), ko("")).unwrap();
        fs::write(
            dir.path().join("modules.order"),
            "arch/x86/kvm/kvm.ko\narch/x86/kvm/kvm-amd.ko\n",
        )
        .unwrap();
        let e = kvm_modules(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("depends on irqbypass, which modules.order"),
            "{e}"
        );
        fs::write(
            dir.path().join("modules.order"),
            "arch/x86/kvm/kvm.ko\narch/x86/kvm/kvm-intel.ko\narch/x86/kvm/kvm-amd.ko\n\
             drivers/thermal/intel/x86_pkg_temp_thermal.ko\nvirt/lib/irqbypass.ko\n",
        )
        .unwrap();
        let found = kvm_modules(dir.path()).unwrap();
        let host = |p: PathBuf, flag: Option<&str>| HostModule {
            path: p,
            cpu_flag: flag.map(str::to_owned),
        };
        assert_eq!(
            found,
            [
                host(dir.path().join("virt/lib/irqbypass.ko"), None),
                host(kvm.join("kvm.ko"), None),
                host(kvm.join("kvm-amd.ko"), Some("svm")),
            ]
        );
        let mut initramfs = Initramfs::new();
        let guest = initramfs.add_modules(&found).unwrap();
        assert_eq!(guest[0].path, "/lib/modules/irqbypass.ko");
        assert_eq!(guest[1].path, "/lib/modules/kvm.ko");
        assert_eq!(guest[2].cpu_flag.as_deref(), Some("svm"));
        assert!(initramfs.archive().get("lib/modules/kvm-amd.ko").is_some());
        assert!(kvm_modules(&dir.path().join("nope")).is_err());
        assert_eq!(modinfo_depends(ko("a,b-c").as_bytes()), ["a", "b_c"]);
        assert_eq!(module_name(Path::new("x/kvm-amd.ko")), "kvm_amd");
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
