//! Streaming detection of kernel splats on a console log.
//!
//! A *splat* is a kernel report that means something went wrong: a panic,
//! an oops, a `BUG:`, a `WARNING:` with a backtrace, a lockdep or KASAN
//! report, an RCU stall, a soft or hard lockup, or a hung task. Any splat
//! fails a test run, even when every test passed ([`SplatKind::is_fatal`]).
//!
//! [`SplatDetector`] consumes console lines one at a time, so the QEMU runner
//! can react to a panic while the guest is still running. Printk timestamps
//! (`[    1.234567] `, optionally followed by a caller id `[    T1] `) are
//! stripped before matching and from the recorded text. Headers are matched
//! only at the start of a line, so indented KTAP output and userspace
//! diagnostics (`# BUG: ...`) do not trigger.
//!
//! A splat records its first line, its 1-based line number and the following
//! context lines, up to the report's end marker or a bounded count:
//!
//! | kind | ends at |
//! |------|---------|
//! | panic, oops, GPF, `kernel BUG at`, `WARNING: CPU:` | `---[ end trace` / `---[ end Kernel panic` |
//! | KASAN | the closing `=====` separator |
//! | `BUG:`, lockdep, RCU stall, lockups, hung task | `</TASK>` or `---[ end trace` |
//!
//! A new splat header also ends the open splat, except that an `Oops:` line
//! continues an open oops, GPF or `BUG` (`BUG: unable to handle page fault`
//! is followed by `Oops: 0000 [#1]`).
//!
//! # Examples
//!
//! ```
//! use kmm_boot::splat::{detect, SplatKind};
//!
//! let log = "\
//! [    1.000000] ------------[ cut here ]------------
//! [    1.000001] WARNING: CPU: 0 PID: 1 at lib/foo.c:12 foo+0x1/0x2
//! [    1.000002] Call Trace:
//! [    1.000003] ---[ end trace 0000000000000000 ]---
//! [    1.000004] after
//! ";
//! let splats = detect(log);
//! assert_eq!(splats.len(), 1);
//! assert_eq!(splats[0].kind, SplatKind::Warning);
//! assert_eq!(splats[0].line, 2);
//! assert_eq!(splats[0].context.len(), 2);
//! ```

use serde::{Deserialize, Serialize};

/// Default bound on the number of context lines kept per splat.
pub const DEFAULT_MAX_CONTEXT: usize = 200;

/// Minimum length of a line of `=` that counts as a report separator.
const SEPARATOR_MIN: usize = 20;

/// What kind of kernel report a splat is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplatKind {
    /// `Kernel panic - not syncing`.
    Panic,
    /// `Oops:`, `BUG: unable to handle ...` or `BUG: kernel NULL pointer dereference`.
    Oops,
    /// `general protection fault`.
    GeneralProtectionFault,
    /// `kernel BUG at file:line!`.
    KernelBug,
    /// Any other `BUG:` line, e.g. `BUG: sleeping function called from invalid context`.
    Bug,
    /// `BUG: KASAN: ...`, usually between `=====` separators.
    Kasan,
    /// `WARNING: CPU: N PID: M at file:line func`.
    Warning,
    /// Lockdep and RCU-lockdep reports (`WARNING: possible circular locking ...`).
    Lockdep,
    /// `rcu: INFO: rcu_sched detected stalls ...`.
    RcuStall,
    /// `watchdog: BUG: soft lockup - CPU#N stuck for Ns!`.
    SoftLockup,
    /// `Watchdog detected hard LOCKUP on cpu N`.
    HardLockup,
    /// `INFO: task NAME:PID blocked for more than N seconds.`.
    HungTask,
}

impl SplatKind {
    /// Returns whether a splat of this kind fails a run.
    ///
    /// Every kind does today: a run with any splat fails even if all tests
    /// passed. The method is the one place to change should an
    /// informational kind be added.
    pub fn is_fatal(self) -> bool {
        match self {
            Self::Panic
            | Self::Oops
            | Self::GeneralProtectionFault
            | Self::KernelBug
            | Self::Bug
            | Self::Kasan
            | Self::Warning
            | Self::Lockdep
            | Self::RcuStall
            | Self::SoftLockup
            | Self::HardLockup
            | Self::HungTask => true,
        }
    }

    /// Returns whether the kernel cannot continue after this report.
    ///
    /// Only a panic: the runner then stops the guest after a short grace
    /// period instead of waiting for the boot timeout.
    pub fn ends_boot(self) -> bool {
        self == Self::Panic
    }

    fn end(self) -> End {
        match self {
            Self::Panic
            | Self::Oops
            | Self::GeneralProtectionFault
            | Self::KernelBug
            | Self::Warning => End::Trace,
            Self::Kasan => End::Separator,
            Self::Bug
            | Self::Lockdep
            | Self::RcuStall
            | Self::SoftLockup
            | Self::HardLockup
            | Self::HungTask => End::TaskOrTrace,
        }
    }
}

/// How a splat's context ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// At `---[ end trace` or `---[ end Kernel panic`.
    Trace,
    /// At the closing `=====` separator.
    Separator,
    /// At `</TASK>` (end of a `dump_stack()`) or an end-trace marker.
    TaskOrTrace,
}

/// One kernel report found on the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Splat {
    /// What kind of report this is.
    pub kind: SplatKind,
    /// The 1-based console line number of `first_line`.
    pub line: usize,
    /// The header line, printk timestamp stripped.
    pub first_line: String,
    /// The following lines up to and including the end marker, timestamps stripped.
    pub context: Vec<String>,
    /// Whether the context was cut at the line bound before the end marker.
    pub truncated: bool,
}

impl Splat {
    /// Returns whether this splat fails a run (see [`SplatKind::is_fatal`]).
    pub fn is_fatal(&self) -> bool {
        self.kind.is_fatal()
    }
}

/// Returns whether any of `splats` fails a run.
pub fn is_fatal(splats: &[Splat]) -> bool {
    splats.iter().any(Splat::is_fatal)
}

/// Runs a [`SplatDetector`] over a whole log.
pub fn detect(console: &str) -> Vec<Splat> {
    let mut detector = SplatDetector::new();
    for line in console.lines() {
        detector.push_line(line);
    }
    detector.finish()
}

/// Removes a leading printk timestamp and caller id from a console line.
///
/// Handles `[    1.234567] text` and `[    1.234567][    T1] text`; a line
/// without a timestamp is returned unchanged (minus a trailing `\r`).
pub fn strip_timestamp(line: &str) -> &str {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let Some(rest) = strip_bracket(line, is_time) else {
        return line;
    };
    let rest = strip_bracket(rest, is_caller).unwrap_or(rest);
    rest.strip_prefix(' ').unwrap_or(rest)
}

fn strip_bracket(line: &str, valid: fn(&str) -> bool) -> Option<&str> {
    let inner = line.strip_prefix('[')?;
    let close = inner.find(']')?;
    valid(inner[..close].trim_start()).then(|| &inner[close + 1..])
}

fn is_time(s: &str) -> bool {
    let Some((secs, frac)) = s.split_once('.') else {
        return false;
    };
    !secs.is_empty()
        && !frac.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn is_caller(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('T' | 'C'))
        && !chars.as_str().is_empty()
        && chars.all(|c| c.is_ascii_digit())
}

fn is_separator(line: &str) -> bool {
    line.len() >= SEPARATOR_MIN && line.bytes().all(|b| b == b'=')
}

fn is_end_trace(line: &str) -> bool {
    line.starts_with("---[ end trace") || line.starts_with("---[ end Kernel panic")
}

/// Classifies a timestamp-stripped line as a splat header.
///
/// This looks at one line only; [`SplatDetector`] adds the multi-line rules
/// (continuations and end markers).
pub fn classify(line: &str) -> Option<SplatKind> {
    if line.starts_with("Kernel panic - not syncing") {
        return Some(SplatKind::Panic);
    }
    if line.starts_with("Oops:") {
        return Some(SplatKind::Oops);
    }
    if line.starts_with("general protection fault") {
        return Some(SplatKind::GeneralProtectionFault);
    }
    if line.starts_with("kernel BUG at ") {
        return Some(SplatKind::KernelBug);
    }
    if let Some(rest) = line.strip_prefix("BUG: ") {
        return Some(if rest.starts_with("KASAN:") {
            SplatKind::Kasan
        } else if rest.starts_with("unable to handle")
            || rest.starts_with("kernel NULL pointer dereference")
        {
            SplatKind::Oops
        } else if rest.starts_with("soft lockup") {
            SplatKind::SoftLockup
        } else {
            SplatKind::Bug
        });
    }
    if let Some(rest) = line.strip_prefix("WARNING: ") {
        if rest.starts_with("CPU: ") || rest.starts_with("at ") {
            return Some(SplatKind::Warning);
        }
        if rest.contains("lock") || rest.contains("RCU") {
            return Some(SplatKind::Lockdep);
        }
        return None;
    }
    if line.starts_with("inconsistent lock state") {
        return Some(SplatKind::Lockdep);
    }
    let info = line.strip_prefix("rcu: ").unwrap_or(line);
    if info.starts_with("INFO: rcu_") && info.contains("detected") && info.contains("stall") {
        return Some(SplatKind::RcuStall);
    }
    if line.starts_with("INFO: task ") && line.contains(" blocked for more than ") {
        return Some(SplatKind::HungTask);
    }
    // The watchdog prefixes these with "watchdog: " or "NMI watchdog: ".
    if line.contains("BUG: soft lockup") {
        return Some(SplatKind::SoftLockup);
    }
    if line.contains("Watchdog detected hard LOCKUP") {
        return Some(SplatKind::HardLockup);
    }
    None
}

/// Consumes console lines and collects [`Splat`]s.
#[derive(Debug)]
pub struct SplatDetector {
    max_context: usize,
    lines: usize,
    open: Option<Splat>,
    done: Vec<Splat>,
    dropped: usize,
}

/// Most splats a detector keeps; later ones are only counted
/// ([`SplatDetector::dropped`]), so a WARN storm cannot exhaust memory.
/// A splat that ends the boot (a panic) is always kept.
pub const MAX_SPLATS: usize = 1000;

impl Default for SplatDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl SplatDetector {
    /// Creates a detector keeping up to [`DEFAULT_MAX_CONTEXT`] context lines.
    pub fn new() -> Self {
        Self::with_max_context(DEFAULT_MAX_CONTEXT)
    }

    /// Creates a detector keeping up to `max_context` lines after each header.
    pub fn with_max_context(max_context: usize) -> Self {
        Self {
            max_context,
            lines: 0,
            open: None,
            done: Vec::new(),
            dropped: 0,
        }
    }

    /// Feeds one console line (with or without timestamp or trailing `\r`).
    ///
    /// Returns the kind of the splat this line starts, if it starts one.
    pub fn push_line(&mut self, raw: &str) -> Option<SplatKind> {
        self.lines += 1;
        let line = strip_timestamp(raw);
        let header = classify(line);
        if let Some(open) = &mut self.open {
            let continues = header == Some(SplatKind::Oops)
                && line.starts_with("Oops:")
                && matches!(
                    open.kind,
                    SplatKind::Oops
                        | SplatKind::GeneralProtectionFault
                        | SplatKind::KernelBug
                        | SplatKind::Bug
                );
            if header.is_none() || continues {
                self.extend_open(line);
                return None;
            }
            self.close();
        }
        let kind = header?;
        self.open = Some(Splat {
            kind,
            line: self.lines,
            first_line: line.to_owned(),
            context: Vec::new(),
            truncated: false,
        });
        if self.max_context == 0 {
            self.close_truncated();
        }
        Some(kind)
    }

    fn extend_open(&mut self, line: &str) {
        let Some(open) = &mut self.open else {
            return;
        };
        open.context.push(line.to_owned());
        let ended = match open.kind.end() {
            End::Trace => is_end_trace(line),
            End::Separator => is_separator(line),
            End::TaskOrTrace => line.trim() == "</TASK>" || is_end_trace(line),
        };
        if ended {
            self.close();
        } else if open.context.len() >= self.max_context {
            self.close_truncated();
        }
    }

    fn close(&mut self) {
        if let Some(open) = self.open.take() {
            self.keep(open);
        }
    }

    fn close_truncated(&mut self) {
        if let Some(mut open) = self.open.take() {
            open.truncated = true;
            self.keep(open);
        }
    }

    fn keep(&mut self, splat: Splat) {
        if self.done.len() < MAX_SPLATS || splat.kind.ends_boot() {
            self.done.push(splat);
        } else {
            self.dropped += 1;
        }
    }

    /// Splats past [`MAX_SPLATS`] that were counted but not kept.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Returns the number of lines consumed.
    pub fn lines_seen(&self) -> usize {
        self.lines
    }

    /// Returns the completed splats; one still collecting context is not included.
    pub fn splats(&self) -> &[Splat] {
        &self.done
    }

    /// Returns whether a fatal splat was seen, including one still open.
    pub fn has_fatal(&self) -> bool {
        is_fatal(&self.done) || self.open.as_ref().is_some_and(Splat::is_fatal)
    }

    /// Ends the stream and returns all splats, including one still open.
    ///
    /// A splat cut off by the end of the log keeps `truncated == false`:
    /// only the line bound sets it.
    pub fn finish(self) -> Vec<Splat> {
        self.finish_counted().0
    }

    /// [`SplatDetector::finish`], with the number of splats dropped.
    pub fn finish_counted(mut self) -> (Vec<Splat>, usize) {
        self.close();
        (self.done, self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_timestamps() {
        assert_eq!(strip_timestamp("[    1.234567] Oops: x"), "Oops: x");
        assert_eq!(strip_timestamp("[ 1234.5][    T1] a b"), "a b");
        assert_eq!(strip_timestamp("[   12.000000][   C1] x\r"), "x");
        assert_eq!(strip_timestamp("[    1.234567]x"), "x");
        assert_eq!(strip_timestamp("[not a time] x"), "[not a time] x");
        assert_eq!(strip_timestamp("[1] x"), "[1] x");
        assert_eq!(strip_timestamp("plain"), "plain");
        assert_eq!(strip_timestamp(""), "");
    }

    #[test]
    fn classifies_headers() {
        let cases = [
            (
                "Kernel panic - not syncing: Attempted to kill init!",
                Some(SplatKind::Panic),
            ),
            ("Oops: 0000 [#1] PREEMPT SMP", Some(SplatKind::Oops)),
            (
                "BUG: unable to handle page fault for address: 0000000000000008",
                Some(SplatKind::Oops),
            ),
            (
                "BUG: kernel NULL pointer dereference, address: 0000000000000000",
                Some(SplatKind::Oops),
            ),
            (
                "BUG: scheduling while atomic: swapper/0/0x00000002",
                Some(SplatKind::Bug),
            ),
            (
                "BUG: KASAN: slab-out-of-bounds in kmalloc_oob_right+0x1/0x2",
                Some(SplatKind::Kasan),
            ),
            (
                "BUG: sleeping function called from invalid context at mm/slab.h:1",
                Some(SplatKind::Bug),
            ),
            (
                "general protection fault, probably for non-canonical address 0xdffffc0000000000: 0000 [#1]",
                Some(SplatKind::GeneralProtectionFault),
            ),
            ("kernel BUG at mm/slub.c:42!", Some(SplatKind::KernelBug)),
            (
                "WARNING: CPU: 1 PID: 77 at arch/x86/kvm/x86.c:123 kvm_foo+0x12/0x34",
                Some(SplatKind::Warning),
            ),
            (
                "WARNING: possible circular locking dependency detected",
                Some(SplatKind::Lockdep),
            ),
            (
                "WARNING: possible recursive locking detected",
                Some(SplatKind::Lockdep),
            ),
            ("WARNING: suspicious RCU usage", Some(SplatKind::Lockdep)),
            ("WARNING: inconsistent lock state", Some(SplatKind::Lockdep)),
            ("inconsistent lock state", Some(SplatKind::Lockdep)),
            (
                "rcu: INFO: rcu_sched detected stalls on CPUs/tasks:",
                Some(SplatKind::RcuStall),
            ),
            (
                "rcu: INFO: rcu_preempt self-detected stall on CPU",
                Some(SplatKind::RcuStall),
            ),
            (
                "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]",
                Some(SplatKind::SoftLockup),
            ),
            (
                "NMI watchdog: Watchdog detected hard LOCKUP on cpu 1",
                Some(SplatKind::HardLockup),
            ),
            (
                "INFO: task kworker/0:1:12 blocked for more than 120 seconds.",
                Some(SplatKind::HungTask),
            ),
            ("WARNING: unrelated notice", None),
            ("# BUG: not a kernel line", None),
            ("    Oops: indented", None),
            ("ok 1 kvm_mm_test", None),
            ("rcu: Hierarchical RCU implementation.", None),
        ];
        for (line, want) in cases {
            assert_eq!(classify(line), want, "{line}");
        }
    }

    #[test]
    fn oops_absorbs_its_oops_line_then_panic_is_separate() {
        let log = "\
BUG: unable to handle page fault for address: 0000000000000008
#PF: supervisor read access in kernel mode
Oops: 0000 [#1] PREEMPT SMP
RIP: 0010:foo+0x1/0x2
---[ end trace 0000000000000000 ]---
Kernel panic - not syncing: Fatal exception
---[ end Kernel panic - not syncing: Fatal exception ]---
";
        let splats = detect(log);
        let kinds: Vec<_> = splats.iter().map(|s| (s.kind, s.line)).collect();
        assert_eq!(kinds, [(SplatKind::Oops, 1), (SplatKind::Panic, 6)]);
        assert_eq!(splats[0].context.len(), 4);
        assert_eq!(splats[1].context.len(), 1);
    }

    #[test]
    fn new_header_closes_open_splat() {
        let log = "\
BUG: sleeping function called from invalid context at x.c:1
in_atomic(): 1, irqs_disabled(): 0
WARNING: CPU: 0 PID: 1 at y.c:2 f+0x0/0x1
---[ end trace 0000000000000000 ]---
";
        let splats = detect(log);
        assert_eq!(splats.len(), 2);
        assert_eq!(splats[0].context, ["in_atomic(): 1, irqs_disabled(): 0"]);
        assert_eq!(splats[1].kind, SplatKind::Warning);
    }

    #[test]
    fn context_is_bounded() {
        let mut detector = SplatDetector::with_max_context(3);
        assert_eq!(
            detector.push_line("WARNING: CPU: 0 PID: 1 at a.c:1 f"),
            Some(SplatKind::Warning)
        );
        assert!(detector.has_fatal());
        for i in 0..10 {
            assert_eq!(detector.push_line(&format!("line {i}")), None);
        }
        let splats = detector.finish();
        assert_eq!(splats.len(), 1);
        assert!(splats[0].truncated);
        assert_eq!(splats[0].context, ["line 0", "line 1", "line 2"]);
    }

    #[test]
    fn splat_at_end_of_log_is_kept() {
        let mut detector = SplatDetector::new();
        detector.push_line("[    3.0] Kernel panic - not syncing: VFS");
        assert!(detector.splats().is_empty());
        assert!(detector.has_fatal());
        let splats = detector.finish();
        assert_eq!(splats[0].first_line, "Kernel panic - not syncing: VFS");
        assert!(!splats[0].truncated);
    }

    #[test]
    fn clean_log_has_no_splats() {
        assert!(detect("[    0.000000] Linux version 6.1.0\nok 1 test\n").is_empty());
        assert!(!is_fatal(&[]));
        assert!(SplatKind::Panic.ends_boot());
        assert!(!SplatKind::Warning.ends_boot());
    }
}
