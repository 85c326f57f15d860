//! `/init` generation and a real busybox + coreutils initramfs.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use kmm_boot::initramfs::{
    render_init, GuestModule, Initramfs, InitramfsError, TestCommand, TestPlan, END_MARKER,
    GUEST_TIMEOUT, HOST_BUSYBOX, HOST_TIMEOUT, START_MARKER,
};

use crate::support::{cpio_extract, have, is_root};

fn plan() -> TestPlan {
    TestPlan::new(vec![
        TestCommand::new(
            "kvm selftests",
            "cd /kselftest && ./run_kselftest.sh -t kvm:kvm_create_max_vcpus",
            900,
        ),
        TestCommand::new("it's quoted", "echo 'single' \"double\" $HOME", 30),
        TestCommand::new("no-limit", "true", 0),
    ])
}

#[test]
fn init_script_snapshot() {
    insta::assert_snapshot!(render_init(&plan()));
}

#[test]
fn init_script_is_pure_and_valid_shell() {
    let script = render_init(&plan());
    assert_eq!(script, render_init(&plan()));
    assert!(script.starts_with("#!/bin/sh\n"));
    assert!(script.contains(START_MARKER) && script.contains(END_MARKER));
    assert!(script.trim_end().lines().any(|l| l == "poweroff -f"));
    let status = Command::new("sh")
        .args(["-n", "-c", &script])
        .status()
        .unwrap();
    assert!(status.success(), "sh -n rejects the script");
    if have("busybox") {
        let status = Command::new("busybox")
            .args(["sh", "-n", "-c", &script])
            .status()
            .unwrap();
        assert!(status.success(), "busybox sh -n rejects the script");
    }
}

fn modular_plan() -> TestPlan {
    let m = |name: &str, flag: Option<&str>| GuestModule {
        path: format!("/lib/modules/{name}.ko"),
        cpu_flag: flag.map(str::to_owned),
    };
    TestPlan::new(vec![TestCommand::new(
        "kselftest",
        "/kselftest/run_kselftest.sh",
        900,
    )])
    .with_modules(vec![m("kvm", None), m("kvm-amd", Some("svm"))])
}

/// `/init` of a KVM=m build: wait for the final TSC calibration, insmod,
/// then the tests with the loading step as test 1.
#[test]
fn init_script_with_modules_snapshot() {
    let script = render_init(&modular_plan());
    insta::assert_snapshot!(script);
    for shell in ["sh", "busybox"] {
        if shell == "busybox" && !have("busybox") {
            continue;
        }
        let mut c = Command::new(shell);
        if shell == "busybox" {
            c.arg("sh");
        }
        let status = c.args(["-n", "-c", &script]).status().unwrap();
        assert!(status.success(), "{shell} -n rejects the script");
    }
}

#[test]
fn empty_plan_still_powers_off() {
    let script = render_init(&TestPlan::default());
    assert!(script.contains("echo '1..0'"));
    assert!(script.contains("poweroff -f"));
}

#[test]
fn busybox_and_timeout_initramfs_works_in_chroot() {
    if !Path::new(HOST_BUSYBOX).exists() || !Path::new(HOST_TIMEOUT).exists() || !have("cpio") {
        eprintln!("skipping: needs busybox-static, coreutils and cpio");
        return;
    }
    let mut initramfs = Initramfs::new();
    let applets = initramfs.add_busybox(Path::new(HOST_BUSYBOX)).unwrap();
    assert!(applets > 100, "only {applets} applets");
    let libs = initramfs
        .add_coreutils_timeout(Path::new(HOST_TIMEOUT))
        .unwrap();
    assert!(
        libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
        "{libs:?}"
    );
    // Adding busybox again must not turn timeout back into an applet link.
    initramfs.add_busybox(Path::new(HOST_BUSYBOX)).unwrap();
    initramfs.set_test_plan(&plan()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("initramfs.cpio");
    let size = initramfs.write_file(&image).unwrap();
    assert_eq!(size, fs::metadata(&image).unwrap().len());
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    cpio_extract(&fs::read(&image).unwrap(), &root);

    let init = fs::metadata(root.join("init")).unwrap();
    assert_eq!(init.permissions().mode() & 0o777, 0o755);
    assert_eq!(
        fs::read_to_string(root.join("init")).unwrap(),
        render_init(&plan())
    );
    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        fs::read_link(root.join("sbin/poweroff")).unwrap(),
        Path::new("/bin/busybox")
    );
    let timeout = fs::symlink_metadata(root.join(GUEST_TIMEOUT.trim_start_matches('/'))).unwrap();
    assert!(timeout.is_file(), "timeout must be coreutils, not a link");
    assert_eq!(
        fs::read_to_string(root.join("etc/passwd"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    assert_eq!(
        fs::metadata(root.join("tmp")).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
    if !is_root() {
        eprintln!("skipping chroot part: not root");
        return;
    }
    assert!(fs::symlink_metadata(root.join("dev/console"))
        .unwrap()
        .file_type()
        .is_char_device());
    // The copied libraries are enough to run coreutils timeout, and
    // busybox's applets work through their links.
    let output = Command::new("chroot")
        .arg(&root)
        .args([
            "/usr/bin/timeout",
            "--foreground",
            "5",
            "/bin/sh",
            "-c",
            "echo chroot-ok",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "chroot-ok\n");
}

#[test]
fn add_tree_copies_files_links_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("kselftest");
    fs::create_dir_all(tree.join("kvm")).unwrap();
    fs::write(tree.join("run_kselftest.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(
        tree.join("run_kselftest.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::write(tree.join("kvm/settings"), "timeout=120\n").unwrap();
    std::os::unix::fs::symlink("../run_kselftest.sh", tree.join("kvm/run")).unwrap();

    let mut initramfs = Initramfs::new();
    let count = initramfs.add_tree(&tree, "/kselftest").unwrap();
    assert_eq!(count, 5);
    let archive = initramfs.archive();
    assert_eq!(
        archive.get("kselftest/run_kselftest.sh").unwrap().mode(),
        0o755
    );
    assert_eq!(archive.get("kselftest/kvm/settings").unwrap().mode(), 0o644);
    assert!(matches!(
        archive.get("kselftest/kvm/run").unwrap().kind(),
        kmm_boot::cpio::EntryKind::Symlink(target) if target == "../run_kselftest.sh"
    ));
}

#[test]
fn helper_errors_are_typed() {
    let mut initramfs = Initramfs::new();
    let err = initramfs
        .add_file(Path::new("/nonexistent/kmm"), "x")
        .unwrap_err();
    assert!(matches!(err, InitramfsError::Inspect { .. }), "{err}");
    let err = initramfs.add_file(Path::new("/tmp"), "x").unwrap_err();
    assert!(matches!(err, InitramfsError::NotAFile { .. }), "{err}");
    if Path::new(HOST_BUSYBOX).exists() {
        let err = initramfs
            .add_coreutils_timeout(Path::new(HOST_BUSYBOX))
            .unwrap_err();
        assert!(
            matches!(err, InitramfsError::NotCoreutilsTimeout { .. }),
            "{err}"
        );
    }
    let err = initramfs.add_bytes("../escape", 0o644, "x").unwrap_err();
    assert!(matches!(err, InitramfsError::Cpio(_)), "{err}");
}
