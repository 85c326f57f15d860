//! Integration tests for `kmm-boot`.
//!
//! - `cpio`: archives round-trip through GNU `cpio -i`.
//! - `initramfs`: `/init` snapshot, and a busybox + coreutils initramfs that
//!   extracts and runs under `chroot`.
//! - `qemu`: the runner against fake QEMU scripts (`tests/fixtures/fake-qemu`).
//! - `splat`: detector snapshots over recorded consoles (`tests/fixtures/*.log`).

#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)] // Integration tests: a failed unwrap is a failed assertion.
                                                                  // Everything is inside `cfg(test)` modules: the workspace lints treat code
                                                                  // outside them as non-test code (no `unwrap`, no `#[test]`).
#[cfg(test)]
mod cpio;
#[cfg(test)]
mod initramfs;
#[cfg(test)]
mod qemu;
#[cfg(test)]
mod splat;

/// Helpers shared by the test modules.
#[cfg(test)]
mod support {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    /// Returns the path of a file under `tests/fixtures`.
    pub(crate) fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    /// Returns whether `program` can be run (for tests that need host tools).
    pub(crate) fn have(program: &str) -> bool {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    }

    /// Returns whether the tests run as root (needed for mknod and chroot).
    pub(crate) fn is_root() -> bool {
        nix::unistd::Uid::effective().is_root()
    }

    /// Extracts a newc archive with GNU cpio into `dir`.
    pub(crate) fn cpio_extract(archive: &[u8], dir: &Path) {
        use std::io::Write;

        let mut child = Command::new("cpio")
            .args([
                "-i",
                "--make-directories",
                "--quiet",
                "--no-absolute-filenames",
            ])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cpio is installed (Debian package cpio)");
        child.stdin.take().unwrap().write_all(archive).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "cpio -i failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
