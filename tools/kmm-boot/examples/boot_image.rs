//! Boots a built kernel with an existing initramfs once, the way `kmm
//! test` does (the same [`QemuConfig`] defaults: TCG, `-cpu max`, 4 GiB, 2
//! CPUs, `tsc=reliable`), writing the console to a file. For boot
//! benchmarks (`ci/bench-boots.sh`), which boot one image many times
//! without rebuilding anything.
//!
//! ```text
//! cargo run --release -p kmm-boot --example boot_image -- \
//!     BZIMAGE INITRAMFS CONSOLE_LOG [CMDLINE_WORD...]
//! ```
//!
//! Prints the outcome and the elapsed time on one line; exits 0 when the
//! guest powered off without a splat. For experiments on the environment,
//! `BOOT_SMP=N` and `BOOT_CPU=MODEL[,FEATURES]` override the CPU count and
//! the `-cpu` argument.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use kmm_boot::qemu::{become_subreaper, Machine, Qemu, QemuConfig};

fn main() -> Result<(), Box<dyn Error>> {
    let usage = "usage: boot_image BZIMAGE INITRAMFS CONSOLE_LOG [CMDLINE_WORD...]";
    let mut args = std::env::args().skip(1);
    let kernel = PathBuf::from(args.next().ok_or(usage)?);
    let initrd = PathBuf::from(args.next().ok_or(usage)?);
    let console = PathBuf::from(args.next().ok_or(usage)?);
    become_subreaper()?;

    let mut config = QemuConfig::new(kernel);
    config.initrd = Some(initrd);
    config.cmdline_extra = args.collect();
    config.boot_timeout = Duration::from_secs(1200);
    config.stall_timeout = Some(Duration::from_secs(300));
    config.console_log = Some(console);
    if let Ok(smp) = std::env::var("BOOT_SMP") {
        config.smp = smp.parse().map_err(|e| format!("BOOT_SMP={smp}: {e}"))?;
    }
    if let Ok(cpu) = std::env::var("BOOT_CPU") {
        config.cpu = cpu;
    }
    let report = Qemu::new(config).boot(&mut |_: &str| {})?;
    println!(
        "{} in {:.0}s, {} splat(s)",
        report.outcome,
        report.elapsed.as_secs_f64(),
        report.splats.len()
    );
    if report.is_clean() {
        Ok(())
    } else {
        Err(format!("boot was not clean: {}", report.outcome).into())
    }
}
