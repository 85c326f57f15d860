//! Round trips through the real `cpio -i`.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use kmm_boot::cpio::{Archive, CpioWriter, DeviceKind, Entry};

use crate::support::{cpio_extract, have, is_root};

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn sample(host_file: &Path) -> Archive {
    let mut archive = Archive::new();
    let entries = [
        Entry::directory("/etc", 0o755),
        Entry::directory("/srv/private", 0o700),
        Entry::bytes("/etc/hostname", 0o644, b"guest\n".to_vec()),
        Entry::bytes("/usr/bin/tool", 0o755, b"#!/bin/sh\necho tool\n".to_vec()),
        Entry::bytes("/srv/private/key", 0o600, b"secret".to_vec()),
        Entry::bytes("/srv/setuid", 0o4755, b"x".to_vec()),
        Entry::bytes("/empty", 0o644, Vec::new()),
        Entry::host_file("/host/copy", 0o640, host_file),
        Entry::symlink("/bin/sh", "busybox"),
        Entry::symlink("/lib64", "/usr/lib64"),
        Entry::bytes("/bin/busybox", 0o755, b"not really busybox".to_vec()),
    ];
    for entry in entries {
        archive.insert(entry.unwrap());
    }
    // Every length modulo 4, to exercise name and data padding.
    for len in 0..8 {
        let name = format!("/pad/{}", "n".repeat(len + 1));
        archive.insert(Entry::bytes(&name, 0o644, vec![b'a' + len as u8; len]).unwrap());
    }
    archive
}

#[test]
fn round_trip_through_gnu_cpio() {
    if !have("cpio") {
        eprintln!("skipping: cpio is not installed (apt-get install cpio)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host_file = dir.path().join("host-source");
    fs::write(&host_file, b"from the host\n").unwrap();
    let archive = sample(&host_file);
    let bytes = archive.write_to(Vec::new()).unwrap();
    assert_eq!(bytes.len() % 4, 0);

    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    cpio_extract(&bytes, &root);

    assert_eq!(fs::read(root.join("etc/hostname")).unwrap(), b"guest\n");
    assert_eq!(
        fs::read(root.join("host/copy")).unwrap(),
        b"from the host\n"
    );
    assert_eq!(fs::read(root.join("empty")).unwrap(), b"");
    for len in 0..8 {
        let path = root.join(format!("pad/{}", "n".repeat(len + 1)));
        assert_eq!(fs::read(path).unwrap(), vec![b'a' + len as u8; len]);
    }
    assert_eq!(mode_of(&root.join("usr/bin/tool")), 0o755);
    assert_eq!(mode_of(&root.join("srv/private")), 0o700);
    assert_eq!(mode_of(&root.join("srv/private/key")), 0o600);
    assert_eq!(mode_of(&root.join("host/copy")), 0o640);
    assert_eq!(mode_of(&root.join("srv/setuid")), 0o4755);
    // Implicit parents are added with 0755.
    assert_eq!(mode_of(&root.join("usr")), 0o755);
    assert_eq!(mode_of(&root.join("pad")), 0o755);
    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_link(root.join("lib64")).unwrap(),
        Path::new("/usr/lib64")
    );
    // GNU cpio restores mtimes for files (-m is not needed to list them).
    let listing = Command::new("cpio")
        .args(["-t", "-v", "--quiet"])
        .stdin(
            fs::File::open({
                let path = dir.path().join("a.cpio");
                fs::write(&path, &bytes).unwrap();
                path
            })
            .unwrap(),
        )
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(listing.lines().all(|l| l.contains("1970")), "{listing}");
    assert!(listing.lines().all(|l| l.contains(" root ")), "{listing}");
    let names: Vec<_> = listing
        .lines()
        .map(|l| l.split_whitespace().nth(8).unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are written in path order");
}

#[test]
fn device_nodes_round_trip() {
    if !have("cpio") || !is_root() {
        eprintln!("skipping: needs cpio and root for mknod");
        return;
    }
    let mut archive = Archive::new();
    archive.insert(Entry::device("dev/console", 0o600, DeviceKind::Char, 5, 1).unwrap());
    archive.insert(Entry::device("dev/vda", 0o660, DeviceKind::Block, 254, 0).unwrap());
    let bytes = archive.write_to(Vec::new()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    cpio_extract(&bytes, dir.path());
    let console = fs::symlink_metadata(dir.path().join("dev/console")).unwrap();
    assert!(console.file_type().is_char_device());
    assert_eq!(console.rdev(), nix::sys::stat::makedev(5, 1));
    assert_eq!(console.permissions().mode() & 0o7777, 0o600);
    let vda = fs::symlink_metadata(dir.path().join("dev/vda")).unwrap();
    assert!(vda.file_type().is_block_device());
    assert_eq!(vda.rdev(), nix::sys::stat::makedev(254, 0));
}

#[test]
fn output_is_deterministic_and_inodes_sequential() {
    let dir = tempfile::tempdir().unwrap();
    let host_file = dir.path().join("h");
    fs::write(&host_file, b"h").unwrap();
    let a = sample(&host_file).write_to(Vec::new()).unwrap();
    let b = sample(&host_file).write_to(Vec::new()).unwrap();
    assert_eq!(a, b);

    // Walk the headers: inodes count up from 1; the trailer has inode 0.
    let mut offset = 0;
    let mut inodes = Vec::new();
    loop {
        let field = |i: usize| {
            let start = offset + 6 + i * 8;
            u32::from_str_radix(std::str::from_utf8(&a[start..start + 8]).unwrap(), 16).unwrap()
        };
        assert_eq!(&a[offset..offset + 6], b"070701");
        assert_eq!(field(5), 0, "mtime");
        let (size, namesize) = (field(6) as usize, field(11) as usize);
        let name = &a[offset + 110..offset + 110 + namesize - 1];
        inodes.push(field(0));
        if name == b"TRAILER!!!" {
            break;
        }
        offset = (offset + 110 + namesize).next_multiple_of(4);
        offset = (offset + size).next_multiple_of(4);
    }
    let n = inodes.len() as u32;
    assert_eq!(inodes, (1..n).chain([0]).collect::<Vec<_>>());
}

#[test]
fn streaming_writer_keeps_given_order() {
    let mut writer = CpioWriter::new(Vec::new());
    writer
        .write_entry(&Entry::bytes("z", 0o644, b"z".to_vec()).unwrap())
        .unwrap();
    writer
        .write_entry(&Entry::directory("a", 0o755).unwrap())
        .unwrap();
    let written = writer.bytes_written();
    let out = writer.finish().unwrap();
    assert!(out.len() as u64 > written);
    let text = String::from_utf8_lossy(&out);
    assert!(text.find("z\0").unwrap() < text.find("a\0").unwrap());
}
