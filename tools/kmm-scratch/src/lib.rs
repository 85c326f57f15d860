//! kmm's temporary state and its interruptions.
//!
//! Three rules, so that an interrupted kmm leaves nothing behind:
//!
//! - **Every scratch directory is a [`Scratch`]**, named
//!   `kmm-<what>.<pid>.<random>` (with a leading dot inside the cache and
//!   the repository). It is removed on drop, and it is in a process-wide
//!   registry that [`signals`] empties on SIGINT, SIGTERM and SIGHUP.
//! - **The next run sweeps what a killed run left** ([`sweep`]): a name of
//!   that shape whose PID is no longer running (asked with `kill(pid, 0)`,
//!   in kmm's own PID namespace) is removed, and a git
//!   worktree registered in a cache repository whose directory is gone is
//!   pruned ([`prune_worktrees`]). SIGKILL cannot be caught; this is its
//!   cleanup.
//! - **Directories are replaced by one exchange** ([`swap_dir`]): the new
//!   one is complete before `renameat2(RENAME_EXCHANGE)` puts it in place,
//!   so the path is never missing, whenever the process dies.

#![forbid(unsafe_code)]

pub mod signals;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The scratch directories alive in this process, for the signal handler:
/// id -> (path, cache repository it is a worktree of).
static REGISTRY: Mutex<BTreeMap<u64, (PathBuf, Option<PathBuf>)>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn registry() -> MutexGuard<'static, BTreeMap<u64, (PathBuf, Option<PathBuf>)>> {
    // A panic while holding the lock leaves a usable map: recover it.
    REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A scratch directory: removed on drop, on a signal, or by the next run.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    id: u64,
    kept: bool,
}

/// The name prefix of scratch entries in `parent`: hidden except in the
/// system's temporary directory.
fn prefix(parent: &Path, what: &str) -> String {
    if parent == std::env::temp_dir() {
        format!("kmm-{what}.{}.", std::process::id())
    } else {
        hidden_prefix(what)
    }
}

/// The prefix for a temporary file beside its final name (`tempfile`
/// adds the random part): `.kmm-<what>.<pid>.`, which [`sweep`] removes
/// once this process is gone.
pub fn hidden_prefix(what: &str) -> String {
    format!(".kmm-{what}.{}.", std::process::id())
}

impl Scratch {
    /// Creates `<parent>/.kmm-<what>.<pid>.<random>` (no dot in the
    /// system's temporary directory). `what` must not contain a dot.
    pub fn new_in(parent: &Path, what: &str) -> std::io::Result<Scratch> {
        debug_assert!(!what.contains('.'), "scratch kind {what:?} has a dot");
        // Holding the lock while creating: a signal handler that is
        // cleaning up waits, then sees this directory.
        let mut reg = registry();
        let dir = tempfile::Builder::new()
            .prefix(&prefix(parent, what))
            .rand_bytes(6)
            .tempdir_in(parent)?;
        let path = dir.keep();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        reg.insert(id, (path.clone(), None));
        Ok(Scratch {
            path,
            id,
            kept: false,
        })
    }

    /// [`Scratch::new_in`] the system's temporary directory (`$TMPDIR`).
    pub fn new(what: &str) -> std::io::Result<Scratch> {
        Scratch::new_in(&std::env::temp_dir(), what)
    }

    /// Marks the directory as (to become) a worktree of the repository at
    /// `git_dir`, which is pruned when a signal removes the directory.
    pub fn worktree_of(&self, git_dir: &Path) {
        if let Some(e) = registry().get_mut(&self.id) {
            e.1 = Some(git_dir.to_path_buf());
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the directory up to the caller (e.g. once renamed into
    /// place): it is no longer removed.
    pub fn keep(mut self) -> PathBuf {
        self.kept = true;
        registry().remove(&self.id);
        std::mem::take(&mut self.path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut reg = registry();
        let _ = std::fs::remove_dir_all(&self.path);
        reg.remove(&self.id);
    }
}

/// Removes every registered scratch directory and prunes the worktrees
/// they belonged to; returns how many were removed. For the signal
/// handler: new scratch directories wait until the process exits.
fn remove_all(reg: &mut BTreeMap<u64, (PathBuf, Option<PathBuf>)>) -> usize {
    let mut n = 0;
    let mut git_dirs = Vec::new();
    for (path, git_dir) in reg.values() {
        if remove_busy(path).is_ok() {
            n += 1;
        }
        if let Some(g) = git_dir {
            git_dirs.push(g.clone());
        }
    }
    reg.clear();
    git_dirs.dedup();
    for g in git_dirs {
        let _ = prune_worktrees(&g);
    }
    n
}

/// Removes a directory that another thread or process may still be
/// writing into: renamed away first (the writer's paths stop resolving),
/// then removed, retrying while files still appear. The new name keeps
/// the scratch shape, so a run killed meanwhile leaves it to [`sweep`].
fn remove_busy(path: &Path) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    if !name.to_string_lossy().ends_with("-gone") {
        name.push("-gone");
    }
    let gone = path.with_file_name(name);
    let target = if std::fs::rename(path, &gone).is_ok() {
        gone
    } else {
        path.to_path_buf()
    };
    let mut last = Ok(());
    for _ in 0..20 {
        match std::fs::remove_dir_all(&target) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Err(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    last
}

/// The PID a scratch name carries, if it is one of ours:
/// `[.]kmm-<what>.<pid>.<random>`.
pub fn owner(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix('.')
        .unwrap_or(name)
        .strip_prefix("kmm-")?;
    let mut parts = rest.split('.');
    let (what, pid, rand) = (parts.next()?, parts.next()?, parts.next()?);
    if what.is_empty() || rand.is_empty() || parts.next().is_some() {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` exists (a zombie counts as gone).
///
/// `kill(pid, 0)` answers in this process's PID namespace, where the PIDs
/// in scratch names were taken. `/proc` is read only to tell a zombie
/// from a running process, and only when it is this namespace's `/proc`:
/// a sandbox may show its host's, where the same number is another
/// process (a run killed as PID 430 looked alive there forever).
pub fn alive(pid: u32) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    // EPERM also means it exists, as another user.
    if kill(Pid::from_raw(raw), None) == Err(Errno::ESRCH) {
        return false;
    }
    if !proc_is_ours() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        // It exited between the two looks.
        Err(_) => false,
    }
}

/// Whether `/proc` shows this process's PID namespace: `/proc/self`
/// names this process's own PID.
pub fn proc_is_ours() -> bool {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|l| l.to_str().and_then(|s| s.parse::<u32>().ok()))
        == Some(std::process::id())
}

/// Removes the scratch entries in `dir` left by processes that are gone;
/// returns what it removed, or the first error once every entry has been
/// tried. A missing `dir` has none.
pub fn sweep(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    sweep_with(dir, &mut |p, is_dir| {
        if is_dir {
            remove_busy(p)
        } else {
            std::fs::remove_file(p)
        }
    })
}

/// [`sweep`] with the removal given: `remove(path, is_dir)`.
fn sweep_with(
    dir: &Path,
    remove: &mut dyn FnMut(&Path, bool) -> std::io::Result<()>,
) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    let me = std::process::id();
    // One entry that cannot be removed does not keep the others: a killed
    // run's orphaned `git worktree add` still checking out into its
    // worktree made `remove_dir_all` fail there, and returning at once
    // left the same run's other directory behind. The first error is
    // returned after trying every entry.
    let mut first_err = None;
    for e in entries {
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                first_err.get_or_insert(err);
                continue;
            }
        };
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(owner) else {
            continue;
        };
        if pid == me || alive(pid) {
            continue;
        }
        let p = e.path();
        let removed = match e.file_type() {
            Ok(t) => remove(&p, t.is_dir()),
            Err(err) => Err(err),
        };
        match removed {
            Ok(()) => out.push(p),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                first_err.get_or_insert(err);
            }
        }
    }
    match first_err {
        Some(err) => Err(err),
        None => Ok(out),
    }
}

/// The worktrees registered in the repository at `git_dir` whose
/// directory is gone (what `git worktree prune` would remove).
pub fn stale_worktrees(git_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(git_dir.join("worktrees")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let gitdir = std::fs::read_to_string(e.path().join("gitdir")).unwrap_or_default();
        // `gitdir` names the worktree's `.git` file.
        let wt = Path::new(gitdir.trim());
        if gitdir.trim().is_empty() || !wt.parent().is_some_and(Path::exists) {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

/// Runs `git worktree prune` in `git_dir` when a registered worktree's
/// directory is gone; returns the names it pruned.
pub fn prune_worktrees(git_dir: &Path) -> std::io::Result<Vec<String>> {
    let stale = stale_worktrees(git_dir);
    if stale.is_empty() {
        return Ok(stale);
    }
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["worktree", "prune"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "git worktree prune in {}: {}",
            git_dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(stale)
}

/// Writes `data` to `path` through a temporary file beside it (named for
/// [`sweep`]), synced and renamed into place: readers see the old file or
/// the whole new one, also after a crash.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&hidden_prefix("write"))
        .tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// An exclusive `flock` on a file, held until dropped (or the process
/// ends, however it ends).
#[derive(Debug)]
pub struct FileLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Opens `path` (created with its directory if missing) and tries to
/// lock it: the lock, or the file when another process holds it.
fn try_flock(path: &Path) -> std::io::Result<Result<FileLock, std::fs::File>> {
    use nix::fcntl::{Flock, FlockArg};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Ok(FileLock { _lock: l })),
        Err((f, nix::errno::Errno::EWOULDBLOCK)) => Ok(Err(f)),
        Err((_, e)) => Err(e.into()),
    }
}

/// Locks `path` if no other process holds it (`Ok(None)` if one does).
pub fn try_lock_file(path: &Path) -> std::io::Result<Option<FileLock>> {
    Ok(try_flock(path)?.ok())
}

/// Locks `path`, waiting for another process that holds it; `waiting` is
/// called once before that wait.
pub fn lock_file(path: &Path, waiting: &mut dyn FnMut()) -> std::io::Result<FileLock> {
    use nix::fcntl::{Flock, FlockArg};
    match try_flock(path)? {
        Ok(l) => Ok(l),
        Err(file) => {
            waiting();
            Flock::lock(file, FlockArg::LockExclusive)
                .map(|l| FileLock { _lock: l })
                .map_err(|(_, e)| e.into())
        }
    }
}

/// A test hook: when `KMM_TEST_CRASH` names `point`, the process aborts
/// there, as a kill at that instant would leave it.
pub fn crash_point(point: &str) {
    if std::env::var("KMM_TEST_CRASH").is_ok_and(|p| p == point) {
        std::process::abort();
    }
}

/// Replaces directory `dir` with the complete directory `new` (on the same
/// file system): one `renameat2(RENAME_EXCHANGE)` when `dir` exists, so
/// that `dir` is the old or the new directory at every instant, never
/// missing; then the old one (now at `new`) is removed. A crash before
/// that removal leaves it under `new`'s scratch name for [`sweep`].
pub fn swap_dir(new: Scratch, dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            new.path(),
            nix::fcntl::AT_FDCWD,
            dir,
            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
        )
        .map_err(std::io::Error::from)?;
        crash_point("after-exchange");
        // `new` now holds the old directory; dropping it removes that.
        drop(new);
        Ok(())
    } else {
        std::fs::rename(new.path(), dir)?;
        new.keep();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_owner() {
        assert_eq!(owner("kmm-check.123.ab12cd"), Some(123));
        assert_eq!(owner(".kmm-import.7.x"), Some(7));
        assert_eq!(owner("kmm-check-abc"), None);
        assert_eq!(owner("kmm-check.1.2.3"), None);
        assert_eq!(owner("other.1.x"), None);
        assert_eq!(owner("kmm-.1.x"), None);
        assert_eq!(owner(".kmm-import.7.x-gone"), Some(7));
    }

    #[test]
    fn scratch_is_removed_on_drop_and_kept_on_request() {
        let d = tempfile::tempdir().unwrap();
        let s = Scratch::new_in(d.path(), "t").unwrap();
        let name = s.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!(".kmm-t.{}.", std::process::id())));
        let p = s.path().to_path_buf();
        drop(s);
        assert!(!p.exists());
        let s = Scratch::new_in(d.path(), "t").unwrap();
        let p = s.keep();
        assert!(p.is_dir());
    }

    #[test]
    fn alive_is_this_namespaces_view_and_zombies_are_gone() {
        assert!(alive(std::process::id()));
        assert!(!alive(0) && !alive(u32::MAX));
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        // Exited, not yet reaped: a zombie.
        let zombie = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
        });
        if proc_is_ours() {
            assert!(zombie, "pid {pid} never became a zombie");
            assert!(!alive(pid), "a zombie counts as gone");
        } else {
            // /proc is another namespace's: a zombie cannot be told from
            // a running process, and is kept.
            assert!(alive(pid));
        }
        c.wait().unwrap();
        assert!(!alive(pid));
    }

    /// A PID that is not running: a child that has exited and been
    /// reaped.
    fn dead_pid() -> u32 {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[test]
    fn sweep_removes_only_what_dead_processes_left() {
        let d = tempfile::tempdir().unwrap();
        let dead = dead_pid();
        let dead_dir = d.path().join(format!(".kmm-check.{dead}.abcdef"));
        std::fs::create_dir_all(dead_dir.join("sub")).unwrap();
        let dead_file = d.path().join(format!(".kmm-sent.{dead}.abcdef"));
        std::fs::write(&dead_file, "x").unwrap();
        let ours = Scratch::new_in(d.path(), "check").unwrap();
        let init = d.path().join(".kmm-check.1.abcdef");
        std::fs::create_dir(&init).unwrap();
        let other = d.path().join("unrelated.1.x");
        std::fs::create_dir(&other).unwrap();
        let mut removed = sweep(d.path()).unwrap();
        removed.sort();
        assert_eq!(removed, vec![dead_dir, dead_file]);
        assert!(ours.path().exists() && init.exists() && other.exists());
        assert!(sweep(&d.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn sweep_goes_on_past_an_entry_it_cannot_remove() {
        let d = tempfile::tempdir().unwrap();
        let dead = dead_pid();
        let names = ["kmm-wt", "kmm-check", "kmm-send"]
            .map(|w| d.path().join(format!("{w}.{dead}.abcdef")));
        for n in &names {
            std::fs::create_dir(n).unwrap();
        }
        // The worktree cannot be removed (a writer is still in it),
        // whichever order the directory lists them in.
        let busy = names[0].clone();
        let err = sweep_with(d.path(), &mut |p, _| {
            if p == busy {
                Err(std::io::Error::from_raw_os_error(nix::libc::ENOTEMPTY))
            } else {
                std::fs::remove_dir_all(p)
            }
        })
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::ENOTEMPTY));
        assert!(busy.exists() && !names[1].exists() && !names[2].exists());
        // The next sweep removes it.
        assert_eq!(sweep(d.path()).unwrap(), vec![busy]);
    }

    #[test]
    fn remove_busy_removes_a_directory_being_written_into() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join(".kmm-wt.1.abcdef");
        std::fs::create_dir(&dir).unwrap();
        let w = dir.clone();
        // A writer creating files by the old path, as an orphaned git
        // does: once renamed away, its creates fail.
        let writer = std::thread::spawn(move || {
            let mut made = 0;
            for i in 0..2000 {
                if std::fs::write(w.join(format!("f{i}")), "x").is_ok() {
                    made += 1;
                }
            }
            made
        });
        std::thread::sleep(std::time::Duration::from_millis(2));
        remove_busy(&dir).unwrap();
        writer.join().unwrap();
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn swap_never_leaves_the_directory_missing() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("v1");
        let new = Scratch::new_in(d.path(), "new").unwrap();
        std::fs::write(new.path().join("a"), "1").unwrap();
        swap_dir(new, &dir).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        let new = Scratch::new_in(d.path(), "new").unwrap();
        std::fs::write(new.path().join("b"), "2").unwrap();
        swap_dir(new, &dir).unwrap();
        assert!(!dir.join("a").exists());
        assert_eq!(std::fs::read_to_string(dir.join("b")).unwrap(), "2");
        // Only v1 is left: the old directory went with the scratch name.
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn atomic_writes_replace_whole_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path().join("sub")).unwrap().count(), 1);
    }

    #[test]
    fn a_held_lock_is_reported_or_waited_for() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/.lock");
        let held = try_lock_file(&p).unwrap().unwrap();
        // flock locks belong to open files: a second open conflicts.
        assert!(try_lock_file(&p).unwrap().is_none());
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(held);
        });
        let mut waited = false;
        lock_file(&p, &mut || waited = true).unwrap();
        assert!(waited);
        t.join().unwrap();
    }

    #[test]
    fn stale_worktrees_are_found() {
        let d = tempfile::tempdir().unwrap();
        let wt = d.path().join("repo.git/worktrees");
        std::fs::create_dir_all(wt.join("gone")).unwrap();
        std::fs::write(wt.join("gone/gitdir"), "/nonexistent/kmm-wt/.git\n").unwrap();
        std::fs::create_dir_all(wt.join("here")).unwrap();
        std::fs::write(
            wt.join("here/gitdir"),
            format!("{}/.git\n", d.path().display()),
        )
        .unwrap();
        assert_eq!(stale_worktrees(&d.path().join("repo.git")), ["gone"]);
    }
}
