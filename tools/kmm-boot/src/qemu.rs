//! Booting a kernel in QEMU and following its serial console.
//!
//! [`Machine`] is the seam: [`Qemu`] boots for real, [`ReplayMachine`]
//! replays a recorded console for tests of code that consumes boots.
//!
//! # Process handling
//!
//! QEMU runs in its own process group with stdin from `/dev/null`, stdout
//! (the serial console) and stderr piped. Reader threads split the output
//! into lines and send them over a channel; the calling thread writes every
//! console line to the log file, feeds the [`SplatDetector`] and the
//! caller's callback, and enforces the limits:
//!
//! - `boot_timeout` for the whole boot ([`Outcome::Timeout`]);
//! - `stall_timeout` without console output ([`Outcome::Stalled`]);
//! - `panic_grace` after `Kernel panic - not syncing`, so that a panicked
//!   guest that does not reset ends promptly ([`Outcome::Panicked`]);
//! - `poweroff_grace` after the end marker, for a guest that does not power
//!   off.
//!
//! When a limit is hit, the group gets SIGTERM, then SIGKILL after
//! `kill_grace`. Whatever the ending, including a clean exit, an error or a
//! panic in the callback, the group is sent SIGKILL while QEMU is still an
//! unreaped zombie (so the group ID cannot be reused), QEMU is reaped, and,
//! if this process is a child subreaper ([`become_subreaper`]), orphaned
//! group members are reaped too.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::initramfs::{END_MARKER, START_MARKER};
use crate::splat::{Splat, SplatDetector};

/// Longest console line passed on; longer output is split.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Bytes of QEMU's stderr kept in the report (the tail).
const STDERR_KEEP: usize = 16 * 1024;
/// How often the run loop checks whether QEMU has exited.
const POLL: Duration = Duration::from_millis(20);
/// How long to wait for more console output after QEMU is gone.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Longest the runner spends on console output after QEMU is stopped.
const DRAIN_TOTAL: Duration = Duration::from_secs(5);
/// Console events in flight between the reader threads and the runner:
/// when the runner falls behind, the readers (and so QEMU's serial port)
/// wait, so a flood costs no memory.
const CHANNEL_EVENTS: usize = 1024;
/// Default [`QemuConfig::max_log_bytes`].
pub const MAX_LOG_BYTES: u64 = 64 << 20;
/// How long to keep reaping orphaned group members after SIGKILL.
const ORPHAN_LIMIT: Duration = Duration::from_secs(5);

/// Errors from booting, other than the guest misbehaving (see [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The console log file could not be created.
    #[error("cannot create console log {path}")]
    CreateLog {
        /// The log path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing the console log failed.
    #[error("cannot write console log {path}")]
    WriteLog {
        /// The log path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A console reader thread could not be started.
    #[error("cannot start console reader thread")]
    Thread(#[source] io::Error),
    /// Signalling or waiting for the QEMU process group failed.
    #[error("cannot manage QEMU process group {pgid}")]
    Process {
        /// The process group (QEMU's PID).
        pgid: i32,
        /// The underlying error.
        #[source]
        source: Errno,
    },
    /// Reaping QEMU failed.
    #[error("cannot reap QEMU process {pid}")]
    Reap {
        /// QEMU's PID.
        pid: u32,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Making this process a child subreaper failed.
    #[error("cannot become a child subreaper")]
    Subreaper(#[source] Errno),
}

/// Makes this process the child subreaper of its descendants.
///
/// Orphans from a QEMU process group are then reparented here instead of to
/// PID 1 and the runner reaps them. Without it, a PID 1 that does not reap
/// (common in containers) leaves zombies in the group. This is process-wide:
/// call it once at start-up of a binary or test harness.
///
/// # Errors
///
/// [`BootError::Subreaper`] if `prctl(PR_SET_CHILD_SUBREAPER)` fails.
pub fn become_subreaper() -> Result<(), BootError> {
    nix::sys::prctl::set_child_subreaper(true).map_err(BootError::Subreaper)
}

/// How to boot: QEMU, kernel, machine shape and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// Kernel image (`bzImage`).
    pub kernel: PathBuf,
    /// Initramfs (uncompressed cpio), if any.
    pub initrd: Option<PathBuf>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Number of guest CPUs.
    pub smp: u32,
    /// Accelerator (`tcg`; `kvm` does not work on the PVM hosts).
    pub accel: String,
    /// CPU model (`max` is the one that gives nested SVM with vgif).
    pub cpu: String,
    /// Kernel command-line words after `console=ttyS0 panic=-1 tsc=reliable`.
    pub cmdline_extra: Vec<String>,
    /// Extra QEMU arguments, appended last.
    pub extra_args: Vec<String>,
    /// Limit for the whole boot.
    pub boot_timeout: Duration,
    /// Limit without console output; `None` disables it.
    pub stall_timeout: Option<Duration>,
    /// Time allowed after a kernel panic for QEMU to exit on its own.
    pub panic_grace: Duration,
    /// Time allowed after the end marker for the guest to power off.
    pub poweroff_grace: Duration,
    /// Time between SIGTERM and SIGKILL when stopping QEMU.
    pub kill_grace: Duration,
    /// File receiving every console line, if any.
    pub console_log: Option<PathBuf>,
    /// Most bytes written to the console log; then one line says it was
    /// truncated (the lines still go to the parser and splat detector).
    pub max_log_bytes: u64,
    /// Line printed by `/init` before the tests.
    pub start_marker: String,
    /// Line printed by `/init` after the tests.
    pub end_marker: String,
}

impl QemuConfig {
    /// Creates the probe's configuration for `kernel`: TCG, `-cpu max`, 4 GiB, 2 CPUs.
    ///
    /// Limits: 10 minutes per boot, 5 minutes without output, 5 s after a
    /// panic, 30 s after the end marker, 5 s between SIGTERM and SIGKILL.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        Self {
            qemu: PathBuf::from("qemu-system-x86_64"),
            kernel: kernel.into(),
            initrd: None,
            memory_mib: 4096,
            smp: 2,
            accel: "tcg".to_owned(),
            cpu: "max".to_owned(),
            cmdline_extra: Vec::new(),
            extra_args: Vec::new(),
            boot_timeout: Duration::from_secs(600),
            stall_timeout: Some(Duration::from_secs(300)),
            panic_grace: Duration::from_secs(5),
            poweroff_grace: Duration::from_secs(30),
            kill_grace: Duration::from_secs(5),
            console_log: None,
            max_log_bytes: MAX_LOG_BYTES,
            start_marker: START_MARKER.to_owned(),
            end_marker: END_MARKER.to_owned(),
        }
    }

    /// Returns the kernel command line.
    ///
    /// `panic=-1` makes a panicked kernel reset at once, which `-no-reboot`
    /// turns into a QEMU exit; `tsc=reliable` keeps multi-threaded TCG from
    /// marking the TSC unstable (kvm_clock_test fails otherwise).
    pub fn kernel_cmdline(&self) -> String {
        let mut words = vec!["console=ttyS0", "panic=-1", "tsc=reliable"];
        words.extend(self.cmdline_extra.iter().map(String::as_str));
        words.join(" ")
    }

    /// Returns QEMU's arguments (without the program).
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |arg: &dyn AsRef<OsStr>| args.push(arg.as_ref().to_owned());
        push(&"-nodefaults");
        push(&"-no-user-config");
        push(&"-accel");
        push(&self.accel);
        push(&"-cpu");
        push(&self.cpu);
        push(&"-m");
        push(&format!("{}M", self.memory_mib));
        push(&"-smp");
        push(&self.smp.to_string());
        push(&"-kernel");
        push(&self.kernel);
        if let Some(initrd) = &self.initrd {
            push(&"-initrd");
            push(initrd);
        }
        push(&"-append");
        push(&self.kernel_cmdline());
        for arg in [
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-no-reboot",
        ] {
            push(&arg);
        }
        for arg in &self.extra_args {
            push(arg);
        }
        args
    }
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// QEMU exited with status 0 after the end marker.
    PoweredOff,
    /// The kernel panicked (seen on the console); QEMU exited or was killed.
    Panicked,
    /// The boot timeout (or the power-off grace after the end marker) expired.
    Timeout {
        /// Time from spawn to the kill decision.
        elapsed: Duration,
    },
    /// The console was silent for the stall timeout.
    Stalled {
        /// How long the console had been silent.
        idle: Duration,
    },
    /// QEMU exited without powering off cleanly after the end marker.
    ExitedEarly {
        /// Exit code, if QEMU exited normally.
        code: Option<i32>,
        /// Signal number, if a signal killed QEMU.
        signal: Option<i32>,
    },
    /// QEMU could not be started.
    SpawnFailed {
        /// Why, as the OS reported it.
        message: String,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PoweredOff => write!(f, "powered off"),
            Self::Panicked => write!(f, "kernel panic"),
            Self::Timeout { elapsed } => write!(f, "timed out after {:.1}s", elapsed.as_secs_f64()),
            Self::Stalled { idle } => write!(f, "no console output for {:.1}s", idle.as_secs_f64()),
            Self::ExitedEarly {
                code: Some(code), ..
            } => write!(f, "QEMU exited early with code {code}"),
            Self::ExitedEarly {
                signal: Some(signal),
                ..
            } => write!(f, "QEMU killed early by signal {signal}"),
            Self::ExitedEarly { .. } => write!(f, "QEMU exited early"),
            Self::SpawnFailed { message } => write!(f, "cannot start QEMU: {message}"),
        }
    }
}

/// What happened during one boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootReport {
    /// How the boot ended.
    pub outcome: Outcome,
    /// Time from spawn until QEMU was reaped.
    pub elapsed: Duration,
    /// Time from spawn to the first console line.
    pub first_line: Option<Duration>,
    /// Time from spawn to the start marker.
    pub start_marker: Option<Duration>,
    /// Time from spawn to the end marker.
    pub end_marker: Option<Duration>,
    /// Number of console lines.
    pub lines: usize,
    /// Kernel splats seen on the console.
    pub splats: Vec<Splat>,
    /// Splats seen but not kept (past [`crate::splat::MAX_SPLATS`]).
    pub splats_dropped: usize,
    /// Console lines not written to the console log (past
    /// [`QemuConfig::max_log_bytes`]).
    pub log_lines_dropped: usize,
    /// The tail of QEMU's standard error.
    pub qemu_stderr: String,
    /// QEMU's PID, which is also its process group ID.
    pub qemu_pid: Option<u32>,
}

impl BootReport {
    /// Returns whether the guest powered off cleanly with no fatal splat.
    pub fn is_clean(&self) -> bool {
        self.outcome == Outcome::PoweredOff && !crate::splat::is_fatal(&self.splats)
    }
}

/// Something that boots a kernel once and reports its console.
pub trait Machine {
    /// Boots, calling `on_line` for every console line, until the guest is gone.
    ///
    /// # Errors
    ///
    /// Infrastructure failures only; guest failures are [`Outcome`]s.
    fn boot(&mut self, on_line: &mut dyn FnMut(&str)) -> Result<BootReport, BootError>;
}

/// Boots with a real QEMU.
#[derive(Debug, Clone)]
pub struct Qemu {
    config: QemuConfig,
}

impl Qemu {
    /// Creates a runner for `config`.
    pub fn new(config: QemuConfig) -> Self {
        Self { config }
    }

    /// Returns the configuration.
    pub fn config(&self) -> &QemuConfig {
        &self.config
    }
}

impl Machine for Qemu {
    fn boot(&mut self, on_line: &mut dyn FnMut(&str)) -> Result<BootReport, BootError> {
        run(&self.config, on_line)
    }
}

/// Replays a recorded console as if it were a boot.
///
/// Lines go through the same marker and splat handling as a real boot;
/// durations are zero.
#[derive(Debug, Clone)]
pub struct ReplayMachine {
    console: String,
    outcome: Outcome,
    start_marker: String,
    end_marker: String,
}

impl ReplayMachine {
    /// Creates a machine that prints `console` and ends with `outcome`.
    pub fn new(console: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            console: console.into(),
            outcome,
            start_marker: START_MARKER.to_owned(),
            end_marker: END_MARKER.to_owned(),
        }
    }
}

impl Machine for ReplayMachine {
    fn boot(&mut self, on_line: &mut dyn FnMut(&str)) -> Result<BootReport, BootError> {
        let mut console = Console::new(&self.start_marker, &self.end_marker);
        for line in self.console.lines() {
            console.line(line, Duration::ZERO, on_line);
        }
        Ok(console.into_report(self.outcome.clone(), Duration::ZERO, None))
    }
}

/// Which pipe a reader thread serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// What reader threads send.
#[derive(Debug)]
enum Event {
    /// A complete line (or a chunk of [`MAX_LINE_BYTES`]).
    Line(Stream, String),
    /// Output arrived but no line is complete yet.
    Partial(Stream),
    /// The pipe reached end of file or failed.
    Eof,
}

/// Splits a pipe into lines and sends them until EOF or until nobody listens.
fn read_lines(mut src: impl Read, stream: Stream, tx: &SyncSender<Event>) {
    let mut buf = vec![0u8; 8192];
    let mut pending: Vec<u8> = Vec::new();
    let send_line = |pending: &mut Vec<u8>| {
        let mut bytes = std::mem::take(pending);
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        tx.send(Event::Line(stream, text)).is_ok()
    };
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut sent_line = false;
        for &byte in &buf[..n] {
            pending.push(byte);
            if byte == b'\n' || pending.len() >= MAX_LINE_BYTES {
                if !send_line(&mut pending) {
                    return;
                }
                sent_line = true;
            }
        }
        if !sent_line && tx.send(Event::Partial(stream)).is_err() {
            return;
        }
    }
    if !pending.is_empty() && !send_line(&mut pending) {
        return;
    }
    // The receiver may be gone already; nothing is left to do either way.
    let _ = tx.send(Event::Eof);
}

/// Console bookkeeping shared by [`Qemu`] and [`ReplayMachine`].
struct Console<'m> {
    start_marker: &'m str,
    end_marker: &'m str,
    lines: usize,
    first_line: Option<Duration>,
    start: Option<Duration>,
    end: Option<Duration>,
    panic: Option<Duration>,
    detector: SplatDetector,
    stderr: String,
}

impl<'m> Console<'m> {
    fn new(start_marker: &'m str, end_marker: &'m str) -> Self {
        Self {
            start_marker,
            end_marker,
            lines: 0,
            first_line: None,
            start: None,
            end: None,
            panic: None,
            detector: SplatDetector::new(),
            stderr: String::new(),
        }
    }

    fn line(&mut self, text: &str, at: Duration, on_line: &mut dyn FnMut(&str)) {
        self.lines += 1;
        self.first_line.get_or_insert(at);
        if self.start.is_none() && text.contains(self.start_marker) {
            self.start = Some(at);
        }
        if self.end.is_none() && text.contains(self.end_marker) {
            self.end = Some(at);
        }
        if let Some(kind) = self.detector.push_line(text) {
            if kind.ends_boot() && self.panic.is_none() {
                self.panic = Some(at);
            }
        }
        on_line(text);
    }

    fn stderr_line(&mut self, text: &str) {
        self.stderr.push_str(text);
        self.stderr.push('\n');
        if self.stderr.len() > STDERR_KEEP {
            let mut cut = self.stderr.len() - STDERR_KEEP;
            while !self.stderr.is_char_boundary(cut) {
                cut += 1;
            }
            self.stderr.drain(..cut);
        }
    }

    fn into_report(self, outcome: Outcome, elapsed: Duration, pid: Option<u32>) -> BootReport {
        let (splats, splats_dropped) = self.detector.finish_counted();
        BootReport {
            outcome,
            elapsed,
            first_line: self.first_line,
            start_marker: self.start,
            end_marker: self.end,
            lines: self.lines,
            splats,
            splats_dropped,
            log_lines_dropped: 0,
            qemu_stderr: self.stderr,
            qemu_pid: pid,
        }
    }
}

/// Owns QEMU's process group: kills and reaps it on every path, `Drop` included.
///
/// # Invariants
///
/// `pgid` is `child`'s PID, and `child` leads that process group.
struct ProcessGroup {
    child: Child,
    pgid: Pid,
    status: Option<ExitStatus>,
    kill_grace: Duration,
}

impl ProcessGroup {
    fn new(child: Child, kill_grace: Duration) -> Self {
        // CAST: Linux PIDs are below 2^22 (PID_MAX_LIMIT), so they fit in i32.
        let pid = i32::try_from(child.id()).expect("Linux PIDs fit in i32");
        // INVARIANT: the child was spawned with `process_group(0)`.
        Self {
            child,
            pgid: Pid::from_raw(pid),
            status: None,
            kill_grace,
        }
    }

    fn error(&self, source: Errno) -> BootError {
        BootError::Process {
            pgid: self.pgid.as_raw(),
            source,
        }
    }

    /// Returns whether QEMU has exited, without reaping it.
    ///
    /// `WNOWAIT` leaves the zombie in place, which keeps the group ID from
    /// being reused until [`ProcessGroup::reap`] has killed the rest.
    fn has_exited(&self) -> Result<bool, BootError> {
        if self.status.is_some() {
            return Ok(true);
        }
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        loop {
            match waitid(Id::Pid(self.pgid), flags) {
                Ok(WaitStatus::StillAlive) => return Ok(false),
                Ok(_) => return Ok(true),
                Err(Errno::EINTR) => continue,
                // Already reaped behind our back (SIGCHLD ignored): gone.
                Err(Errno::ECHILD) => return Ok(true),
                Err(e) => return Err(self.error(e)),
            }
        }
    }

    /// Sends `signal` to the group; a group that is already gone is fine.
    fn signal(&self, signal: Signal) -> Result<(), BootError> {
        match killpg(self.pgid, signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Stops QEMU (SIGTERM, then SIGKILL after the grace period) and reaps it.
    fn terminate(&mut self) -> Result<ExitStatus, BootError> {
        // A failed check counts as "still running": SIGKILL follows anyway.
        if !self.has_exited().unwrap_or(false) {
            self.signal(Signal::SIGTERM)?;
            let deadline = Instant::now() + self.kill_grace;
            while Instant::now() < deadline && !self.has_exited().unwrap_or(false) {
                thread::sleep(POLL);
            }
        }
        self.reap()
    }

    /// Kills what is left of the group, reaps QEMU, then reaps orphans.
    fn reap(&mut self) -> Result<ExitStatus, BootError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        // QEMU is alive or an unreaped zombie here, so the group still exists.
        // Should the signal fail, waiting could block for ever: bail out.
        self.signal(Signal::SIGKILL)?;
        let status = self.child.wait().map_err(|source| BootError::Reap {
            pid: self.child.id(),
            source,
        })?;
        self.status = Some(status);
        self.reap_orphans();
        Ok(status)
    }

    /// Reaps group members reparented to this process (if a subreaper).
    ///
    /// Best effort and bounded: members may still be dying from SIGKILL.
    fn reap_orphans(&self) {
        if !nix::sys::prctl::get_child_subreaper().unwrap_or(false) {
            return;
        }
        let deadline = Instant::now() + ORPHAN_LIMIT;
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
        loop {
            match waitid(Id::PGid(self.pgid), flags) {
                // Children of ours in the group are still dying: wait a bit.
                Ok(WaitStatus::StillAlive) => {}
                // One reaped, or interrupted: look again at once.
                Ok(_) | Err(Errno::EINTR) => continue,
                // No children of ours in the group: done unless members
                // elsewhere are still dying and will be reparented here.
                Err(_) => {
                    if killpg(self.pgid, None) == Err(Errno::ESRCH) {
                        return;
                    }
                }
            }
            if Instant::now() >= deadline {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.status.is_none() {
            // Errors cannot be reported from drop. `killpg` on our own
            // group cannot fail with anything but ESRCH, and `terminate`
            // never waits without having sent SIGKILL first.
            let _ = self.terminate();
        }
    }
}

/// Why the run loop stopped QEMU.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Exited,
    Timeout,
    Stalled(Duration),
}

/// The console log file, capped at a size.
struct ConsoleLog {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    max: u64,
    dropped: usize,
}

impl ConsoleLog {
    fn create(path: &PathBuf, max: u64) -> Result<Self, BootError> {
        let file = File::create(path).map_err(|source| BootError::CreateLog {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            path: path.clone(),
            out: BufWriter::new(file),
            written: 0,
            max,
            dropped: 0,
        })
    }

    fn error(&self, source: io::Error) -> BootError {
        BootError::WriteLog {
            path: self.path.clone(),
            source,
        }
    }

    fn line(&mut self, text: &str) -> Result<(), BootError> {
        let len = text.len() as u64 + 1;
        if self.written + len > self.max {
            if self.dropped == 0 {
                writeln!(
                    self.out,
                    "[kmm: console log truncated after {} bytes; later lines are not kept]",
                    self.written
                )
                .map_err(|e| self.error(e))?;
            }
            self.dropped += 1;
            return Ok(());
        }
        self.written += len;
        writeln!(self.out, "{text}").map_err(|e| self.error(e))
    }

    fn flush(&mut self) -> Result<(), BootError> {
        self.out.flush().map_err(|e| self.error(e))
    }
}

/// State of one run that reader events update.
struct Run<'c> {
    start: Instant,
    console: Console<'c>,
    log: Option<ConsoleLog>,
    last_output: Instant,
    open_streams: usize,
}

impl Run<'_> {
    fn handle(&mut self, event: Event, on_line: &mut dyn FnMut(&str)) -> Result<(), BootError> {
        match event {
            Event::Line(Stream::Stdout, text) => {
                self.last_output = Instant::now();
                if let Some(log) = &mut self.log {
                    log.line(&text)?;
                }
                self.console.line(&text, self.start.elapsed(), on_line);
            }
            Event::Line(Stream::Stderr, text) => self.console.stderr_line(&text),
            Event::Partial(Stream::Stdout) => self.last_output = Instant::now(),
            Event::Partial(Stream::Stderr) => {}
            Event::Eof => self.open_streams = self.open_streams.saturating_sub(1),
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BootError> {
        self.log.as_mut().map_or(Ok(()), ConsoleLog::flush)
    }
}

fn run(config: &QemuConfig, on_line: &mut dyn FnMut(&str)) -> Result<BootReport, BootError> {
    let log = config
        .console_log
        .as_ref()
        .map(|p| ConsoleLog::create(p, config.max_log_bytes))
        .transpose()?;
    let start = Instant::now();
    let console = Console::new(&config.start_marker, &config.end_marker);
    let mut command = Command::new(&config.qemu);
    command
        .args(config.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let outcome = Outcome::SpawnFailed {
                message: format!("{}: {e}", config.qemu.display()),
            };
            return Ok(console.into_report(outcome, start.elapsed(), None));
        }
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let pid = child.id();
    let mut group = ProcessGroup::new(child, config.kill_grace);

    let (tx, rx) = mpsc::sync_channel(CHANNEL_EVENTS);
    let mut run = Run {
        start,
        console,
        log,
        last_output: start,
        open_streams: 0,
    };
    let pipes: [(Option<Box<dyn Read + Send>>, Stream); 2] = [
        (stdout.map(|p| Box::new(p) as _), Stream::Stdout),
        (stderr.map(|p| Box::new(p) as _), Stream::Stderr),
    ];
    for (pipe, stream) in pipes {
        let Some(pipe) = pipe else { continue };
        let tx = tx.clone();
        // The reader is detached: it ends at EOF, which killing the group
        // brings unless a process outside the group holds the pipe.
        thread::Builder::new()
            .name(format!("kmm-boot-{stream:?}").to_lowercase())
            .spawn(move || read_lines(pipe, stream, &tx))
            .map_err(BootError::Thread)?;
        run.open_streams += 1;
    }
    drop(tx);

    let stop = loop {
        if group.has_exited()? {
            break Stop::Exited;
        }
        let now = Instant::now();
        let mut deadline = start + config.boot_timeout;
        if let Some(end) = run.console.end {
            deadline = deadline.min(start + end + config.poweroff_grace);
        }
        if let Some(panic) = run.console.panic {
            deadline = deadline.min(start + panic + config.panic_grace);
        }
        // After a panic only the panic grace applies: the dying kernel may
        // well be silent.
        let stall_deadline = config
            .stall_timeout
            .filter(|_| run.console.panic.is_none())
            .map(|limit| run.last_output + limit);
        if stall_deadline.is_some_and(|d| now >= d) {
            break Stop::Stalled(now - run.last_output);
        }
        if now >= deadline {
            break Stop::Timeout;
        }
        let wake = stall_deadline.map_or(deadline, |s| s.min(deadline));
        let wait = wake.saturating_duration_since(now).min(POLL);
        if run.open_streams == 0 {
            thread::sleep(wait);
            continue;
        }
        match rx.recv_timeout(wait) {
            Ok(event) => run.handle(event, on_line)?,
            Err(RecvTimeoutError::Timeout) => run.flush()?,
            Err(RecvTimeoutError::Disconnected) => run.open_streams = 0,
        }
    };

    let status = match stop {
        Stop::Exited => group.reap()?,
        Stop::Timeout | Stop::Stalled(_) => group.terminate()?,
    };
    let stopped_at = start.elapsed();
    // Collect what QEMU wrote before it went away. The pipes close once
    // the group is dead, unless a process outside it holds them: then give
    // up after DRAIN_LIMIT without output.
    // Bounded in total too: a flood that was cut off must not be replayed
    // for as long as it ran.
    let drain_end = Instant::now() + DRAIN_TOTAL;
    while run.open_streams > 0 {
        let left = drain_end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match rx.recv_timeout(DRAIN_LIMIT.min(left)) {
            Ok(event) => run.handle(event, on_line)?,
            Err(_) => break,
        }
    }
    run.flush()?;
    let log_lines_dropped = run.log.as_ref().map_or(0, |l| l.dropped);

    let outcome = if run.console.panic.is_some() {
        Outcome::Panicked
    } else {
        match stop {
            Stop::Timeout => Outcome::Timeout {
                elapsed: stopped_at,
            },
            Stop::Stalled(idle) => Outcome::Stalled { idle },
            Stop::Exited if run.console.end.is_some() && status.success() => Outcome::PoweredOff,
            Stop::Exited => Outcome::ExitedEarly {
                code: status.code(),
                signal: status.signal(),
            },
        }
    };
    let mut report = run.console.into_report(outcome, start.elapsed(), Some(pid));
    report.log_lines_dropped = log_lines_dropped;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_follow_the_probe() {
        let mut config = QemuConfig::new("/k/bzImage");
        config.initrd = Some("/k/initramfs.cpio".into());
        config.cmdline_extra = vec!["kunit.filter_glob=kvm_mm*".into()];
        let args: Vec<_> = config
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let args = args.join(" ");
        assert_eq!(
            args,
            "-nodefaults -no-user-config -accel tcg -cpu max -m 4096M -smp 2 \
             -kernel /k/bzImage -initrd /k/initramfs.cpio \
             -append console=ttyS0 panic=-1 tsc=reliable kunit.filter_glob=kvm_mm* \
             -display none -serial stdio -monitor none -no-reboot"
        );
    }

    #[test]
    fn reader_splits_lines_and_strips_cr() {
        let (tx, rx) = mpsc::sync_channel(CHANNEL_EVENTS);
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        let input = format!("a\r\nb\n{long}\ntail");
        read_lines(input.as_bytes(), Stream::Stdout, &tx);
        drop(tx);
        let lines: Vec<_> = rx
            .iter()
            .filter_map(|e| match e {
                Event::Line(_, text) => Some(text.len()),
                Event::Eof => Some(usize::MAX),
                Event::Partial(_) => None,
            })
            .collect();
        assert_eq!(lines, [1, 1, MAX_LINE_BYTES, 10, 4, usize::MAX]);
    }

    #[test]
    fn replay_reports_markers_and_splats() {
        let console = format!(
            "[    0.0] Linux version 6.1\n{START_MARKER}\n\
             [    1.0] WARNING: CPU: 0 PID: 1 at a.c:1 f\n\
             ---[ end trace 0000000000000000 ]---\n{END_MARKER}\n"
        );
        let mut machine = ReplayMachine::new(console, Outcome::PoweredOff);
        let mut seen = 0;
        let report = machine.boot(&mut |_| seen += 1).unwrap();
        assert_eq!(seen, 5);
        assert_eq!(report.lines, 5);
        assert_eq!(report.start_marker, Some(Duration::ZERO));
        assert_eq!(report.end_marker, Some(Duration::ZERO));
        assert_eq!(report.splats.len(), 1);
        assert!(!report.is_clean());
    }

    #[test]
    fn outcome_display() {
        let early = Outcome::ExitedEarly {
            code: Some(1),
            signal: None,
        };
        assert_eq!(early.to_string(), "QEMU exited early with code 1");
        let stalled = Outcome::Stalled {
            idle: Duration::from_millis(1500),
        };
        assert_eq!(stalled.to_string(), "no console output for 1.5s");
    }
}
