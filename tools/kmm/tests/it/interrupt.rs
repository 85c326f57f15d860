//! Interrupted kmm runs leave nothing behind: `kmm series check` and
//! `kmm base` signalled (SIGINT as a terminal's Ctrl-C sends it to the
//! whole process group, SIGTERM to kmm alone) or killed (SIGKILL) at
//! random points; the next run completes and no temporary file, directory
//! or registered worktree is left.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::send::{send_repo, unavailable};

/// A small random generator (xorshift), seeded from the clock; the seed
/// is printed so that a failure can be replayed with `KMM_TEST_SEED`.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("KMM_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("KMM_TEST_SEED={seed}");
        Rng(seed)
    }

    /// A duration in [0, max).
    fn below(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let nanos = max.as_nanos().max(1) as u64;
        Duration::from_nanos(self.0 % nanos)
    }
}

struct Env {
    _d: tempfile::TempDir,
    repo: PathBuf,
    cache: PathBuf,
    tmp: PathBuf,
}

impl Env {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kmm"));
        c.args(args)
            .arg("--repo")
            .arg(&self.repo)
            .arg("--cache")
            .arg(&self.cache)
            .env("TMPDIR", &self.tmp)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    fn ok(&self, args: &[&str]) -> Duration {
        let t = Instant::now();
        let out = self.cmd(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    }

    /// Runs `args`, sends `sig` after `after` (to the process group for
    /// SIGINT, as a terminal does), and checks how it ended.
    fn interrupt(&self, args: &[&str], sig: Signal, after: Duration) {
        let child = self.cmd(args).process_group(0).spawn().unwrap();
        std::thread::sleep(after);
        let pid = child.id() as i32;
        let target = if sig == Signal::SIGINT { -pid } else { pid };
        let _ = kill(Pid::from_raw(target), sig);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!("{args:?} {sig} after {after:?}: {:?}", out.status);
        assert!(!err.contains("panicked"), "{err}");
        match (sig, out.status.code()) {
            // It finished first.
            (_, Some(0)) => {}
            (Signal::SIGINT, Some(130)) | (Signal::SIGTERM, Some(143)) => {
                let errors: Vec<&str> = err
                    .lines()
                    .filter(|l| l.starts_with("kmm: error:"))
                    .collect();
                assert_eq!(errors.len(), 1, "{err}");
                assert!(
                    errors[0].contains(&format!("interrupted by {sig}")),
                    "{err}"
                );
                // Its own clean-up removed everything at once.
                self.assert_clean();
            }
            // Before kmm could handle signals, or SIGKILL: the next run
            // cleans up. The killed run's children (git, perl) live on
            // in its process group and may still be writing into its
            // scratch directories; the next run starts once they are
            // done, as it would after a user's `kill -9` (bounded: an
            // init that does not reap leaves zombies in the group).
            (Signal::SIGKILL, None) => {
                let t = Instant::now();
                while kill(Pid::from_raw(-pid), None).is_ok()
                    && t.elapsed() < Duration::from_secs(20)
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                eprintln!("  its process group ended after {:?}", t.elapsed());
            }
            (_, None) if after < Duration::from_millis(50) => {}
            (s, code) => panic!("{args:?} after {after:?} with {s}: exit {code:?}\n{err}"),
        }
    }

    /// No scratch entry of kmm's anywhere, no worktree but the cache
    /// repository's build worktrees.
    fn assert_clean(&self) {
        let mut left = Vec::new();
        for dir in [&self.tmp, &self.cache, &self.repo.join("patches")] {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with("kmm-") || n.starts_with(".kmm-") {
                    left.push(e.path());
                }
            }
        }
        let owners: Vec<String> = left
            .iter()
            .filter_map(|p| kmm_scratch::owner(&p.file_name()?.to_string_lossy()))
            .map(|pid| format!("{pid} alive: {}", kmm_scratch::alive(pid)))
            .collect();
        assert!(
            left.is_empty(),
            "left behind: {left:?} (owners {owners:?}; /proc is this namespace's: {})",
            kmm_scratch::proc_is_ours()
        );
        for e in std::fs::read_dir(&self.cache).unwrap().flatten() {
            let wt = e.path().join("worktrees");
            let n = std::fs::read_dir(&wt).map(|r| r.count()).unwrap_or(0);
            assert_eq!(n, 0, "worktrees registered in {}", e.path().display());
        }
    }
}

fn env() -> Option<Env> {
    if let Some(why) = unavailable() {
        eprintln!("skipping: {why}; ci/setup.sh installs it, so CI never skips");
        return None;
    }
    let (d, repo, cache) = send_repo();
    let tmp = d.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    Some(Env {
        _d: d,
        repo,
        cache,
        tmp,
    })
}

#[test]
fn series_check_interrupted_at_random_points_leaves_nothing() {
    let Some(e) = env() else { return };
    e.ok(&["series", "generate"]);
    let full = e.ok(&["series", "check"]);
    e.assert_clean();
    let mut rng = Rng::new();
    // Ctrl-C at 5 random points, then SIGTERM, then SIGKILL twice.
    for sig in [
        [Signal::SIGINT; 5].as_slice(),
        &[Signal::SIGTERM],
        &[Signal::SIGKILL; 2],
    ]
    .concat()
    {
        let at = rng.below(full);
        e.interrupt(&["series", "check"], sig, at);
    }
    // The next run completes and leaves nothing, SIGKILL's leftovers
    // included.
    e.ok(&["series", "check"]);
    e.assert_clean();
}

#[test]
fn base_import_interrupted_at_random_points_leaves_nothing() {
    let Some(e) = env() else { return };
    let fresh = |e: &Env| {
        let _ = std::fs::remove_dir_all(&e.cache);
        std::fs::create_dir_all(&e.cache).unwrap();
    };
    fresh(&e);
    let full = e.ok(&["base"]);
    let mut rng = Rng::new();
    for sig in [[Signal::SIGINT; 5].as_slice(), &[Signal::SIGKILL; 2]].concat() {
        fresh(&e);
        e.interrupt(&["base"], sig, rng.below(full));
        e.ok(&["base"]);
        e.assert_clean();
    }
}

/// A sandbox may run kmm in its own PID namespace under its host's
/// `/proc`, where a killed run's PID names another, live process: the
/// next run must still see the owner as gone (it asks `kill(pid, 0)`,
/// which answers in its own namespace). The leftover is named after this
/// test's PID, which `/proc` shows alive and the new namespace, holding
/// kmm and its few children, does not have.
#[test]
fn a_leftover_is_swept_when_proc_is_another_pid_namespaces() {
    let Some(e) = env() else { return };
    let me = std::process::id();
    assert!(std::path::Path::new(&format!("/proc/{me}")).exists());
    let left = e.tmp.join(format!("kmm-check.{me}.abcdef"));
    std::fs::create_dir_all(left.join("sub")).unwrap();
    let kmm = e.cmd(&["series", "generate"]);
    let run = |ns: &[&str]| {
        let mut c = Command::new("unshare");
        c.args(ns).args(["--pid", "--fork"]).arg(kmm.get_program());
        c.args(kmm.get_args());
        for (k, v) in kmm.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.output().unwrap()
    };
    // As root, or else in a user namespace of its own.
    let mut out = run(&[]);
    if !out.status.success() {
        out = run(&["--user", "--map-root-user"]);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "unshare --pid --fork kmm: {err}");
    assert!(err.contains("removed 1 temporary item(s)"), "{err}");
    assert!(!left.exists());
    e.assert_clean();
}
