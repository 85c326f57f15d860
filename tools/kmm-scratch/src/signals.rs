//! SIGINT, SIGTERM and SIGHUP: stop the children, remove the scratch
//! directories, exit 128 + the signal's number.
//!
//! [`install`] blocks the three signals in every thread and waits for them
//! in one thread of its own (`sigwait`), so no code runs in a signal
//! handler. Children get a clean signal mask from `std::process::Command`,
//! which resets it before `exec`.
//!
//! On a signal the process is ended from that thread: every descendant
//! (found through `/proc`; kmm is their child subreaper) gets SIGTERM, then
//! SIGKILL after [`GRACE`], the scratch registry is emptied, one line goes
//! to stderr and the process exits. Code that must finish a step first (a
//! mail being sent) holds a [`Defer`] guard: the signal is then only
//! recorded ([`pending`]) and the owner stops at its next safe point; a
//! second signal ends the process as usual.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::Pid;

/// How long descendants get between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// The signal received, 0 if none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Live [`Defer`] guards.
static DEFERRED: AtomicUsize = AtomicUsize::new(0);

/// The exit code for a signal: 128 + its number (130 SIGINT, 143 SIGTERM,
/// 129 SIGHUP), as a shell reports it.
pub fn exit_code(sig: Signal) -> u8 {
    128u8.saturating_add(u8::try_from(sig as i32).unwrap_or(0))
}

/// The signal received so far, if any.
pub fn pending() -> Option<Signal> {
    Signal::try_from(RECEIVED.load(Ordering::SeqCst)).ok()
}

/// While alive, a first signal does not end the process: [`pending`] says
/// it came, and the holder stops at its next safe point.
#[derive(Debug)]
pub struct Defer(());

impl Defer {
    /// Starts deferring signals.
    pub fn new() -> Defer {
        DEFERRED.fetch_add(1, Ordering::SeqCst);
        Defer(())
    }
}

impl Default for Defer {
    fn default() -> Self {
        Defer::new()
    }
}

impl Drop for Defer {
    fn drop(&mut self) {
        DEFERRED.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP and starts the thread that handles
/// them. Call once, first thing in `main`, before any other thread starts
/// (threads inherit the blocked mask).
pub fn install() -> std::io::Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    set.thread_block().map_err(std::io::Error::from)?;
    std::thread::Builder::new()
        .name("kmm-signals".into())
        .spawn(move || loop {
            if let Ok(sig) = set.wait() {
                on_signal(sig);
            }
        })?;
    Ok(())
}

fn on_signal(sig: Signal) {
    let first = RECEIVED
        .compare_exchange(0, sig as i32, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    if first && DEFERRED.load(Ordering::SeqCst) > 0 {
        let _ = writeln!(
            std::io::stderr(),
            "kmm: {sig}: finishing the step in progress, then stopping; send it again to stop now"
        );
        return;
    }
    terminate(sig);
}

/// Ends the process for `sig`: descendants stopped, scratch removed, one
/// line on stderr, exit 128 + `sig`.
pub fn terminate(sig: Signal) -> ! {
    // Held to the end: no new scratch directory appears meanwhile.
    let mut reg = super::registry();
    let stopped = stop_descendants();
    let removed = super::remove_all(&mut reg);
    let _ = writeln!(
        std::io::stderr(),
        "kmm: error: interrupted by {sig}: stopped {stopped} child process(es), removed {removed} \
         temporary director{}",
        if removed == 1 { "y" } else { "ies" }
    );
    std::process::exit(i32::from(exit_code(sig)))
}

/// The live descendants of this process, from `/proc`.
pub fn descendants() -> BTreeSet<i32> {
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces and parens.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let mut f = rest.split_whitespace();
            let state = f.next().unwrap_or("");
            let ppid = f.next().and_then(|p| p.parse::<i32>().ok()).unwrap_or(0);
            if state != "Z" && state != "X" {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = BTreeSet::new();
    let mut frontier = vec![me];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent_of {
            if pp == p && c != me && out.insert(c) {
                frontier.push(c);
            }
        }
    }
    out
}

/// SIGTERM to every descendant, SIGKILL to those alive after [`GRACE`];
/// reaps what it can. Returns how many there were.
pub fn stop_descendants() -> usize {
    let first = descendants();
    for &p in &first {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let t = Instant::now();
    loop {
        reap();
        let left = descendants();
        if left.is_empty() {
            break;
        }
        if t.elapsed() > GRACE {
            for p in left {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
            reap();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    first.len()
}

fn reap() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_shells() {
        assert_eq!(exit_code(Signal::SIGINT), 130);
        assert_eq!(exit_code(Signal::SIGTERM), 143);
        assert_eq!(exit_code(Signal::SIGHUP), 129);
    }

    #[test]
    fn descendants_include_grandchildren() {
        use std::os::unix::process::CommandExt as _;
        let mut c = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let t = Instant::now();
        let mut d = descendants();
        while d.len() < 2 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
            d = descendants();
        }
        assert!(d.contains(&(c.id() as i32)), "{d:?}");
        assert!(d.len() >= 2, "{d:?}");
        // Only this test's group: other tests' children are theirs.
        let _ = kill(Pid::from_raw(-(c.id() as i32)), Signal::SIGKILL);
        c.wait().unwrap();
    }
}
