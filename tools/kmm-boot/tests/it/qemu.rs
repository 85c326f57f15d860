//! The QEMU runner against fake QEMU scripts.
//!
//! Each script stands in for `qemu-system-x86_64` and ignores its
//! arguments. After every run no process of the group may be left:
//! `kill(-pgid, 0)` must fail with ESRCH.

use std::cell::Cell;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kmm_boot::qemu::{become_subreaper, BootReport, Machine, Outcome, Qemu, QemuConfig};
use kmm_boot::splat::SplatKind;
use nix::errno::Errno;
use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;

/// The fake QEMU script, run in place: the fixtures are committed
/// executable. (Copying them into a scratch directory and executing the
/// copy races with other test threads' fork()s, which can still hold the
/// copy's write descriptor: ETXTBSY.)
fn fake_qemu(_dir: &Path, name: &str) -> PathBuf {
    let p = crate::support::fixture(&format!("fake-qemu/{name}"));
    let mode = fs::metadata(&p).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "{} must be executable", p.display());
    p
}

fn config(dir: &Path, script: &str) -> QemuConfig {
    // Orphaned grandchildren come back to this process, so the runner can
    // reap them even though PID 1 in a container may not.
    become_subreaper().unwrap();
    let mut config = QemuConfig::new(dir.join("bzImage"));
    config.qemu = fake_qemu(dir, script);
    config.initrd = Some(dir.join("initramfs.cpio"));
    config.boot_timeout = Duration::from_secs(30);
    config.stall_timeout = None;
    config.panic_grace = Duration::from_millis(500);
    config.kill_grace = Duration::from_millis(300);
    config.console_log = Some(dir.join("console.log"));
    config
}

fn boot(config: QemuConfig) -> (BootReport, Vec<String>) {
    let mut lines = Vec::new();
    let report = Qemu::new(config)
        .boot(&mut |line: &str| lines.push(line.to_owned()))
        .unwrap();
    (report, lines)
}

/// Asserts that no process of the group led by `pid` exists any more.
fn assert_group_gone(pid: u32) {
    let pgid = Pid::from_raw(pid as i32);
    assert_eq!(killpg(pgid, None), Err(Errno::ESRCH), "group {pid} left");
    assert_eq!(kill(pgid, None), Err(Errno::ESRCH), "process {pid} left");
}

fn value(lines: &[String], key: &str) -> i32 {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} line in {lines:?}"))
        .parse()
        .unwrap()
}

#[test]
fn clean_boot_powers_off() {
    let dir = tempfile::tempdir().unwrap();
    let (report, lines) = boot(config(dir.path(), "clean.sh"));
    assert_eq!(report.outcome, Outcome::PoweredOff, "{report:?}");
    assert!(report.is_clean());
    assert_eq!(report.lines, lines.len());
    assert_eq!(lines.len(), 10);
    // CR is stripped and a last line without newline is kept.
    assert_eq!(lines[3], "[    0.600100] Run /init as init process");
    assert_eq!(lines[9], "[    2.100000] reboot: Power down");
    assert!(lines[1]
        .contains("-append console=ttyS0 panic=-1 tsc=reliable -display none -serial stdio"));
    let first = report.first_line.unwrap();
    let start = report.start_marker.unwrap();
    let end = report.end_marker.unwrap();
    assert!(first <= start && start <= end && end <= report.elapsed);
    let log = fs::read_to_string(dir.path().join("console.log")).unwrap();
    assert_eq!(log, lines.join("\n") + "\n");
    assert_group_gone(report.qemu_pid.unwrap());
}

#[test]
fn hang_times_out_and_kills_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), "hang.sh");
    config.boot_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let (report, lines) = boot(config);
    let Outcome::Timeout { elapsed } = report.outcome else {
        panic!("{report:?}");
    };
    assert!(elapsed >= Duration::from_secs(1));
    // SIGTERM is ignored by the script: SIGKILL follows after kill_grace.
    assert!(started.elapsed() < Duration::from_secs(10), "{report:?}");
    assert_eq!(report.start_marker, None);
    let grandchild = value(&lines, "grandchild=");
    assert_eq!(kill(Pid::from_raw(grandchild), None), Err(Errno::ESRCH));
    assert_group_gone(report.qemu_pid.unwrap());
}

#[test]
fn panic_ends_the_run_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (report, _) = boot(config(dir.path(), "panic.sh"));
    assert_eq!(report.outcome, Outcome::Panicked, "{report:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited {:?} with a 30 s boot timeout",
        started.elapsed()
    );
    assert_eq!(report.splats.len(), 1);
    assert_eq!(report.splats[0].kind, SplatKind::Panic);
    assert_eq!(report.splats[0].context.len(), 2);
    assert!(!report.is_clean());
    assert_group_gone(report.qemu_pid.unwrap());
}

#[test]
fn early_exit_reports_code_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let (report, lines) = boot(config(dir.path(), "early.sh"));
    assert_eq!(
        report.outcome,
        Outcome::ExitedEarly {
            code: Some(1),
            signal: None
        }
    );
    assert_eq!(lines.len(), 1);
    assert!(report.qemu_stderr.contains("could not open kernel file"));
    assert_group_gone(report.qemu_pid.unwrap());
}

#[test]
fn silence_is_a_stall() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), "silent.sh");
    config.stall_timeout = Some(Duration::from_millis(700));
    let started = Instant::now();
    let (report, lines) = boot(config);
    let Outcome::Stalled { idle } = report.outcome else {
        panic!("{report:?}");
    };
    assert!(idle >= Duration::from_millis(700));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(lines.is_empty());
    assert_eq!(report.first_line, None);
    assert_group_gone(report.qemu_pid.unwrap());
}

#[test]
fn missing_binary_is_spawn_failed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), "clean.sh");
    config.qemu = dir.path().join("no-such-qemu");
    let (report, lines) = boot(config);
    assert!(
        matches!(report.outcome, Outcome::SpawnFailed { .. }),
        "{report:?}"
    );
    assert!(lines.is_empty());
    assert_eq!(report.qemu_pid, None);
}

#[test]
fn panicking_callback_still_reaps_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "hang.sh");
    let pid = Cell::new(None);
    let grandchild = Cell::new(None);
    let result = catch_unwind(AssertUnwindSafe(|| {
        Qemu::new(config).boot(&mut |line: &str| {
            if let Some(p) = line.strip_prefix("pid=") {
                pid.set(p.parse::<u32>().ok());
            } else if let Some(g) = line.strip_prefix("grandchild=") {
                grandchild.set(g.parse::<i32>().ok());
                panic!("callback gives up");
            }
        })
    }));
    assert!(result.is_err());
    assert_eq!(
        kill(Pid::from_raw(grandchild.get().unwrap()), None),
        Err(Errno::ESRCH)
    );
    assert_group_gone(pid.get().unwrap());
}

/// Boots counting lines instead of keeping them.
fn boot_counting(config: QemuConfig) -> (BootReport, usize) {
    let mut n = 0usize;
    let report = Qemu::new(config).boot(&mut |_: &str| n += 1).unwrap();
    (report, n)
}

#[test]
fn a_console_flood_stops_on_time_with_a_capped_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), "flood.sh");
    c.boot_timeout = Duration::from_secs(2);
    c.max_log_bytes = 1 << 20;
    let t = Instant::now();
    let (report, lines) = boot_counting(c);
    let took = t.elapsed();
    // The timeout, the kill grace and the bounded drain, nothing more.
    assert!(took < Duration::from_secs(9), "took {took:?}");
    assert!(
        matches!(report.outcome, Outcome::Timeout { .. }),
        "{:?}",
        report.outcome
    );
    assert!(lines > 10_000, "{lines} lines");
    let log = fs::read_to_string(dir.path().join("console.log")).unwrap();
    assert!(log.len() <= (1 << 20) + 200, "{} bytes", log.len());
    assert!(
        log.trim_end().ends_with(
            "[kmm: console log truncated after 1048530 bytes; later lines are not kept]"
        ) || log.contains("[kmm: console log truncated after "),
        "{}",
        &log[log.len().saturating_sub(200)..]
    );
    assert!(report.log_lines_dropped > 0);
    assert_group_gone(report.qemu_pid.unwrap());
}

#[test]
fn a_warn_storm_keeps_a_bounded_number_of_splats() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), "warn-storm.sh");
    c.boot_timeout = Duration::from_secs(2);
    c.max_log_bytes = 1 << 20;
    let (report, _) = boot_counting(c);
    assert_eq!(report.splats.len(), kmm_boot::splat::MAX_SPLATS);
    assert!(report.splats_dropped > 0);
    assert!(report.splats.iter().all(|s| s.kind == SplatKind::Warning));
    assert_group_gone(report.qemu_pid.unwrap());
}
