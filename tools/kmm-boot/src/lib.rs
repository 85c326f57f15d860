//! Boot a test kernel in QEMU and watch its console.
//!
//! `kmm-boot` is the part of `kmm` that turns a built kernel into test
//! results. It has four pieces, each usable on its own:
//!
//! - [`cpio`] writes deterministic, uncompressed `newc` archives (the
//!   initramfs format): sorted entries, sequential inode numbers, mtime 0.
//! - [`initramfs`] assembles a test initramfs from host files (static
//!   busybox and its applets, coreutils `timeout` and its shared libraries,
//!   test binaries) and generates `/init` from a [`TestPlan`]. The `/init`
//!   script is a pure function of the plan, so it is snapshot-tested.
//! - [`qemu`] runs QEMU (TCG) behind the [`Machine`] trait, streams the
//!   serial console line by line to a callback and a log file, enforces a
//!   boot timeout and a no-output stall timeout, and always kills and reaps
//!   the whole QEMU process group.
//! - [`splat`] is a streaming detector for kernel splats (panics, oopses,
//!   `WARNING:`s, lockdep, KASAN, RCU stalls, lockups, hung tasks). Any
//!   splat fails a run even if every test passed.
//!
//! # Examples
//!
//! Build an initramfs whose `/init` runs one command, then boot it:
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//!
//! use kmm_boot::initramfs::{Initramfs, TestCommand, TestPlan};
//! use kmm_boot::qemu::{Machine, Outcome, Qemu, QemuConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let plan = TestPlan::new(vec![TestCommand::new("smoke", "echo hello", 60)]);
//! let mut initramfs = Initramfs::new();
//! initramfs.add_busybox(Path::new(kmm_boot::initramfs::HOST_BUSYBOX))?;
//! initramfs.add_coreutils_timeout(Path::new(kmm_boot::initramfs::HOST_TIMEOUT))?;
//! initramfs.set_test_plan(&plan)?;
//! initramfs.write_file(Path::new("/tmp/initramfs.cpio"))?;
//!
//! let mut config = QemuConfig::new("bzImage");
//! config.initrd = Some("/tmp/initramfs.cpio".into());
//! config.boot_timeout = Duration::from_secs(600);
//! config.console_log = Some("/tmp/console.log".into());
//!
//! let mut qemu = Qemu::new(config);
//! let report = qemu.boot(&mut |line: &str| println!("{line}"))?;
//! assert!(matches!(report.outcome, Outcome::PoweredOff));
//! assert!(report.is_clean());
//! # Ok(())
//! # }
//! ```
//!
//! # Design notes
//!
//! - Nothing here parses KTAP: the console callback is where a streaming
//!   KTAP parser plugs in. The start and end markers printed by `/init`
//!   ([`initramfs::START_MARKER`], [`initramfs::END_MARKER`]) delimit the
//!   userspace part of the console.
//! - The crate has no `unsafe` code; process-group handling uses `nix`.
//! - Orphaned grandchildren of QEMU are reparented to the nearest child
//!   subreaper, or to PID 1. Call [`qemu::become_subreaper`] once at start-up
//!   so that the runner can reap them too; otherwise a PID 1 that does not
//!   reap (as in some containers) leaves zombies in the dead process group.

#![forbid(unsafe_code)]

pub mod cpio;
pub mod initramfs;
pub mod qemu;
pub mod splat;

pub use initramfs::{Initramfs, TestCommand, TestPlan};
pub use qemu::{BootReport, Machine, Outcome, Qemu, QemuConfig};
pub use splat::{Splat, SplatDetector, SplatKind};
