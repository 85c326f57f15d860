//! Boots a kernel once with a one-test initramfs and prints the report.
//!
//! ```text
//! cargo run -p kmm-boot --example smoke_boot -- BUILD/arch/x86/boot/bzImage [WORKDIR]
//! ```
//!
//! Needs `qemu-system-x86_64`, busybox-static and coreutils on the host.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kmm_boot::initramfs::{Initramfs, TestCommand, TestPlan, HOST_BUSYBOX, HOST_TIMEOUT};
use kmm_boot::qemu::{become_subreaper, Machine, Qemu, QemuConfig};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let kernel = PathBuf::from(args.next().ok_or("usage: smoke_boot BZIMAGE [WORKDIR]")?);
    let workdir = args.next().map_or_else(std::env::temp_dir, PathBuf::from);
    become_subreaper()?;

    let plan = TestPlan::new(vec![TestCommand::new("smoke", "true", 60)]);
    let mut initramfs = Initramfs::new();
    initramfs.add_busybox(Path::new(HOST_BUSYBOX))?;
    initramfs.add_coreutils_timeout(Path::new(HOST_TIMEOUT))?;
    initramfs.set_test_plan(&plan)?;
    let image = workdir.join("kmm-smoke.cpio");
    let size = initramfs.write_file(&image)?;
    eprintln!("initramfs: {} ({size} bytes)", image.display());

    let mut config = QemuConfig::new(kernel);
    config.initrd = Some(image);
    config.boot_timeout = Duration::from_secs(300);
    config.stall_timeout = Some(Duration::from_secs(120));
    config.console_log = Some(workdir.join("kmm-smoke-console.log"));
    let report = Qemu::new(config).boot(&mut |line: &str| println!("{line}"))?;

    eprintln!("outcome: {}", report.outcome);
    eprintln!("first console line: {:?}", report.first_line);
    eprintln!("start marker: {:?}", report.start_marker);
    eprintln!("end marker: {:?}", report.end_marker);
    eprintln!("total: {:?}", report.elapsed);
    eprintln!("lines: {}, splats: {}", report.lines, report.splats.len());
    if !report.qemu_stderr.is_empty() {
        eprintln!("qemu stderr:\n{}", report.qemu_stderr);
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(format!("boot was not clean: {}", report.outcome).into())
    }
}
