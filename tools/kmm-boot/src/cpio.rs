//! Deterministic writer for uncompressed `newc` cpio archives.
//!
//! The `newc` format ("SVR4 with no CRC", magic `070701`) is what the kernel
//! unpacks as an initramfs. Each entry is a 110-byte ASCII header, the
//! NUL-terminated name padded to four bytes, and the data padded to four
//! bytes; the archive ends with an entry named `TRAILER!!!`.
//!
//! Two layers:
//!
//! - [`CpioWriter`] streams entries to any [`Write`] in the order given,
//!   numbering inodes sequentially from 1 with uid, gid and mtime 0.
//! - [`Archive`] collects [`Entry`] values by path and writes them sorted,
//!   adding missing parent directories, so equal inputs give equal bytes.
//!   Host files are read only while writing, never held in memory.
//!
//! Paths are stored relative (`bin/sh`); a leading `/` is accepted and
//! removed.
//!
//! # Examples
//!
//! ```
//! use kmm_boot::cpio::{Archive, Entry};
//!
//! # fn main() -> Result<(), kmm_boot::cpio::CpioError> {
//! let mut archive = Archive::new();
//! archive.insert(Entry::bytes("/etc/hostname", 0o644, b"guest\n".to_vec())?);
//! archive.insert(Entry::symlink("/bin/sh", "busybox")?);
//! let bytes = archive.write_to(Vec::new())?;
//! assert!(bytes.starts_with(b"070701"));
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// Magic of the `newc` format.
const MAGIC: &str = "070701";
/// Name of the entry that ends an archive.
const TRAILER: &str = "TRAILER!!!";
/// Length of a `newc` header: the magic and 13 eight-digit hex fields.
const HEADER_LEN: usize = 110;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
/// Permission, setuid, setgid and sticky bits: everything a caller may set.
const PERMISSION_BITS: u32 = 0o7777;
/// Size of the buffer used to copy file contents.
const COPY_BUFFER: usize = 64 * 1024;

/// Errors from writing a cpio archive.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    /// A path is empty, contains a `.` or `..` component or a NUL byte.
    #[error("invalid archive path {path:?}")]
    InvalidPath {
        /// The rejected path as given.
        path: String,
    },
    /// A mode has bits outside the permission bits `0o7777`.
    #[error("mode {mode:#o} of {path} has bits outside 0o7777")]
    InvalidMode {
        /// The entry path.
        path: String,
        /// The rejected mode.
        mode: u32,
    },
    /// A size, name length or inode number does not fit in a 32-bit field.
    #[error("{field} of {path} does not fit in a newc header")]
    TooLarge {
        /// The entry path.
        path: String,
        /// Which header field overflowed.
        field: &'static str,
    },
    /// A host file backing an entry could not be opened or read.
    #[error("cannot read {host} for archive entry {path}")]
    ReadSource {
        /// The entry path.
        path: String,
        /// The host file.
        host: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file's contents were shorter or longer than its declared size.
    #[error("{path}: declared {expected} bytes but the source had {actual}")]
    SizeMismatch {
        /// The entry path.
        path: String,
        /// The size written to the header.
        expected: u64,
        /// The number of bytes the source produced.
        actual: u64,
    },
    /// Reading the contents of an in-memory or caller-supplied file failed.
    #[error("cannot read contents of archive entry {path}")]
    Read {
        /// The entry path.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing to the output failed.
    #[error("cannot write cpio archive")]
    Write(#[source] io::Error),
}

/// Whether a device node is a character or a block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// A character device (`c`).
    Char,
    /// A block device (`b`).
    Block,
}

/// Where the contents of a regular file come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// Contents held in memory.
    Bytes(Vec<u8>),
    /// A host file, read (following symlinks) when the archive is written.
    Host(PathBuf),
}

/// What kind of file an [`Entry`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file.
    File(FileSource),
    /// A symbolic link to `target` (stored verbatim).
    Symlink(String),
    /// A device node.
    Device {
        /// Character or block.
        kind: DeviceKind,
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
}

/// One archive member: a normalised path, permission bits and a kind.
///
/// # Invariants
///
/// `path` is normalised (see [`normalize_path`]) and `mode` has no bits
/// outside `0o7777`; the constructors check both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    path: String,
    mode: u32,
    kind: EntryKind,
}

impl Entry {
    /// Creates an entry after normalising `path` and checking `mode`.
    ///
    /// # Errors
    ///
    /// [`CpioError::InvalidPath`] or [`CpioError::InvalidMode`].
    pub fn new(path: &str, mode: u32, kind: EntryKind) -> Result<Self, CpioError> {
        let path = normalize_path(path)?;
        if mode & !PERMISSION_BITS != 0 {
            return Err(CpioError::InvalidMode { path, mode });
        }
        // INVARIANT: the path was normalised and the mode checked above.
        Ok(Self { path, mode, kind })
    }

    /// Creates a directory entry.
    ///
    /// # Errors
    ///
    /// As for [`Entry::new`].
    pub fn directory(path: &str, mode: u32) -> Result<Self, CpioError> {
        Self::new(path, mode, EntryKind::Directory)
    }

    /// Creates a regular file with in-memory contents.
    ///
    /// # Errors
    ///
    /// As for [`Entry::new`].
    pub fn bytes(path: &str, mode: u32, contents: Vec<u8>) -> Result<Self, CpioError> {
        Self::new(path, mode, EntryKind::File(FileSource::Bytes(contents)))
    }

    /// Creates a regular file copied from `host` when the archive is written.
    ///
    /// # Errors
    ///
    /// As for [`Entry::new`].
    pub fn host_file(path: &str, mode: u32, host: impl Into<PathBuf>) -> Result<Self, CpioError> {
        Self::new(path, mode, EntryKind::File(FileSource::Host(host.into())))
    }

    /// Creates a symbolic link (mode `0o777`) pointing at `target`.
    ///
    /// # Errors
    ///
    /// As for [`Entry::new`].
    pub fn symlink(path: &str, target: &str) -> Result<Self, CpioError> {
        Self::new(path, 0o777, EntryKind::Symlink(target.to_owned()))
    }

    /// Creates a device node.
    ///
    /// # Errors
    ///
    /// As for [`Entry::new`].
    pub fn device(
        path: &str,
        mode: u32,
        kind: DeviceKind,
        major: u32,
        minor: u32,
    ) -> Result<Self, CpioError> {
        Self::new(path, mode, EntryKind::Device { kind, major, minor })
    }

    /// Returns the normalised path (no leading `/`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Returns the permission bits.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Returns what kind of file this is.
    pub fn kind(&self) -> &EntryKind {
        &self.kind
    }
}

/// Normalises an archive path: strips leading `/`, drops empty components.
///
/// # Errors
///
/// [`CpioError::InvalidPath`] if nothing is left, or a component is `.` or
/// `..`, or the path contains a NUL byte.
pub fn normalize_path(path: &str) -> Result<String, CpioError> {
    let invalid = || CpioError::InvalidPath {
        path: path.to_owned(),
    };
    if path.contains('\0') {
        return Err(invalid());
    }
    let mut parts = Vec::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(invalid());
        }
        parts.push(part);
    }
    if parts.is_empty() {
        return Err(invalid());
    }
    Ok(parts.join("/"))
}

/// Streams `newc` entries to a writer in the order they are given.
///
/// Inode numbers start at 1 and increase by one per entry; uid, gid and
/// mtime are 0. Call [`CpioWriter::finish`] to append the trailer: an
/// archive without it is truncated.
#[derive(Debug)]
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            next_ino: 1,
            written: 0,
        }
    }

    /// Returns the number of bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Writes one entry, reading host files as needed.
    ///
    /// # Errors
    ///
    /// [`CpioError::ReadSource`] or [`CpioError::SizeMismatch`] for host
    /// files, [`CpioError::TooLarge`], or [`CpioError::Write`].
    pub fn write_entry(&mut self, entry: &Entry) -> Result<(), CpioError> {
        let path = entry.path.as_str();
        match &entry.kind {
            EntryKind::Directory => self.header(path, S_IFDIR | entry.mode, 2, 0, (0, 0))?,
            EntryKind::File(FileSource::Bytes(bytes)) => {
                self.file(path, entry.mode, len_u64(bytes), &mut bytes.as_slice())?;
            }
            EntryKind::File(FileSource::Host(host)) => {
                let read_err = |source| CpioError::ReadSource {
                    path: path.to_owned(),
                    host: host.clone(),
                    source,
                };
                let file = File::open(host).map_err(read_err)?;
                let size = file.metadata().map_err(read_err)?.len();
                self.copy_file(path, entry.mode, size, &mut &file, read_err)?;
            }
            EntryKind::Symlink(target) => {
                self.header(
                    path,
                    S_IFLNK | entry.mode,
                    1,
                    len_u64(target.as_bytes()),
                    (0, 0),
                )?;
                self.put(target.as_bytes())?;
                self.pad(target.len())?;
            }
            EntryKind::Device { kind, major, minor } => {
                let ty = match kind {
                    DeviceKind::Char => S_IFCHR,
                    DeviceKind::Block => S_IFBLK,
                };
                self.header(path, ty | entry.mode, 1, 0, (*major, *minor))?;
            }
        }
        Ok(())
    }

    /// Writes a regular file of exactly `size` bytes taken from `data`.
    ///
    /// # Errors
    ///
    /// [`CpioError::SizeMismatch`] if `data` is shorter or longer than `size`,
    /// [`CpioError::Read`] if reading `data` fails, and otherwise as for
    /// [`CpioWriter::write_entry`].
    pub fn file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), CpioError> {
        self.copy_file(path, mode, size, data, |source| CpioError::Read {
            path: path.to_owned(),
            source,
        })
    }

    fn copy_file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        data: &mut dyn Read,
        read_err: impl Fn(io::Error) -> CpioError,
    ) -> Result<(), CpioError> {
        self.header(path, S_IFREG | (mode & PERMISSION_BITS), 1, size, (0, 0))?;
        let mut buf = vec![0u8; COPY_BUFFER];
        let mut copied = 0u64;
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            let chunk = &buf[..n];
            if copied + len_u64(chunk) > size {
                return Err(CpioError::SizeMismatch {
                    path: path.to_owned(),
                    expected: size,
                    actual: copied + len_u64(chunk),
                });
            }
            self.put(chunk)?;
            copied += len_u64(chunk);
        }
        if copied != size {
            return Err(CpioError::SizeMismatch {
                path: path.to_owned(),
                expected: size,
                actual: copied,
            });
        }
        // `header` checked that the size fits in 32 bits.
        let pad = usize::try_from(size % 4).expect("a value below 4 fits in usize");
        self.pad(pad)
    }

    /// Appends the `TRAILER!!!` entry and returns the writer.
    ///
    /// # Errors
    ///
    /// [`CpioError::Write`].
    pub fn finish(mut self) -> Result<W, CpioError> {
        self.next_ino = 0;
        self.header(TRAILER, 0, 1, 0, (0, 0))?;
        self.out.flush().map_err(CpioError::Write)?;
        Ok(self.out)
    }

    fn header(
        &mut self,
        path: &str,
        mode: u32,
        nlink: u32,
        size: u64,
        rdev: (u32, u32),
    ) -> Result<(), CpioError> {
        let too_large = |field| CpioError::TooLarge {
            path: path.to_owned(),
            field,
        };
        let filesize = u32::try_from(size).map_err(|_| too_large("file size"))?;
        let namesize = u32::try_from(path.len() + 1).map_err(|_| too_large("name length"))?;
        let ino = self.next_ino;
        if ino != 0 {
            self.next_ino = ino.checked_add(1).ok_or_else(|| too_large("inode"))?;
        }
        let fields = [
            ino, mode, 0, 0, nlink, 0, filesize, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        let mut header = String::with_capacity(HEADER_LEN);
        header.push_str(MAGIC);
        for field in fields {
            write!(header, "{field:08X}").expect("writing to a String cannot fail");
        }
        debug_assert_eq!(header.len(), HEADER_LEN);
        self.put(header.as_bytes())?;
        self.put(path.as_bytes())?;
        self.put(&[0])?;
        self.pad(HEADER_LEN + path.len() + 1)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), CpioError> {
        self.out.write_all(bytes).map_err(CpioError::Write)?;
        self.written += len_u64(bytes);
        Ok(())
    }

    /// Pads so that `len` bytes become a multiple of four.
    fn pad(&mut self, len: usize) -> Result<(), CpioError> {
        let zeros = [0u8; 3];
        self.put(&zeros[..(4 - len % 4) % 4])
    }
}

fn len_u64(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).expect("a slice length fits in u64")
}

/// A set of entries keyed by path, written in sorted order.
///
/// Inserting a path that is already present replaces the old entry. When
/// written, every missing parent directory is added with mode `0o755`, and
/// entries are emitted in byte order of their paths, so a directory always
/// precedes its contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    /// Creates an empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `entry`, returning the entry it replaced, if any.
    pub fn insert(&mut self, entry: Entry) -> Option<Entry> {
        self.entries.insert(entry.path.clone(), entry)
    }

    /// Adds `entry` unless its path is taken; returns whether it was added.
    pub fn insert_if_absent(&mut self, entry: Entry) -> bool {
        if self.entries.contains_key(&entry.path) {
            return false;
        }
        self.entries.insert(entry.path.clone(), entry);
        true
    }

    /// Returns the entry at `path` (leading `/` optional).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        let path = normalize_path(path).ok()?;
        self.entries.get(&path)
    }

    /// Removes and returns the entry at `path` (leading `/` optional).
    pub fn remove(&mut self, path: &str) -> Option<Entry> {
        let path = normalize_path(path).ok()?;
        self.entries.remove(&path)
    }

    /// Returns the number of explicit entries (implicit parents excluded).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns whether there are no explicit entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Iterates over the explicit entries in path order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Writes the archive, with implicit parent directories and the trailer.
    ///
    /// # Errors
    ///
    /// As for [`CpioWriter::write_entry`] and [`CpioWriter::finish`].
    pub fn write_to<W: Write>(&self, out: W) -> Result<W, CpioError> {
        let mut parents = BTreeMap::new();
        for path in self.entries.keys() {
            let mut end = 0;
            while let Some(slash) = path[end..].find('/') {
                end += slash;
                let parent = &path[..end];
                if !self.entries.contains_key(parent) {
                    parents.insert(parent.to_owned(), Entry::directory(parent, 0o755)?);
                }
                end += 1;
            }
        }
        let mut all: BTreeMap<&str, &Entry> = self
            .entries
            .iter()
            .map(|(path, entry)| (path.as_str(), entry))
            .collect();
        all.extend(parents.iter().map(|(path, entry)| (path.as_str(), entry)));
        let mut writer = CpioWriter::new(out);
        for entry in all.values() {
            writer.write_entry(entry)?;
        }
        writer.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(archive: &[u8], offset: usize, index: usize) -> u32 {
        let start = offset + 6 + index * 8;
        let text = std::str::from_utf8(&archive[start..start + 8]).unwrap();
        u32::from_str_radix(text, 16).unwrap()
    }

    #[test]
    fn normalize_strips_slashes_and_rejects_dots() {
        assert_eq!(normalize_path("/usr//bin/").unwrap(), "usr/bin");
        assert_eq!(normalize_path("init").unwrap(), "init");
        for bad in ["", "/", "a/../b", "./a", "a\0b"] {
            assert!(
                matches!(normalize_path(bad), Err(CpioError::InvalidPath { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_type_bits_in_mode() {
        let err = Entry::directory("d", 0o040_755).unwrap_err();
        assert!(matches!(err, CpioError::InvalidMode { .. }));
    }

    #[test]
    fn single_file_layout() {
        let mut writer = CpioWriter::new(Vec::new());
        writer.file("ab", 0o644, 5, &mut &b"hello"[..]).unwrap();
        let out = writer.finish().unwrap();
        // Header, "ab\0" padded to 116, five data bytes padded to 124.
        assert_eq!(&out[..6], b"070701");
        assert_eq!(field(&out, 0, 0), 1, "first inode");
        assert_eq!(field(&out, 0, 1), 0o100_644);
        assert_eq!(field(&out, 0, 6), 5);
        assert_eq!(field(&out, 0, 11), 3);
        assert_eq!(&out[110..113], b"ab\0");
        assert_eq!(&out[116..121], b"hello");
        assert_eq!(&out[121..124], &[0, 0, 0]);
        assert_eq!(&out[124..130], b"070701");
        assert_eq!(&out[124 + 110..124 + 121], b"TRAILER!!!\0");
        assert_eq!(out.len() % 4, 0);
    }

    #[test]
    fn size_mismatch_is_reported() {
        let mut writer = CpioWriter::new(Vec::new());
        let err = writer.file("f", 0o644, 10, &mut &b"short"[..]).unwrap_err();
        assert!(matches!(
            err,
            CpioError::SizeMismatch {
                expected: 10,
                actual: 5,
                ..
            }
        ));
        let mut writer = CpioWriter::new(Vec::new());
        let err = writer.file("f", 0o644, 2, &mut &b"long"[..]).unwrap_err();
        assert!(matches!(err, CpioError::SizeMismatch { actual: 4, .. }));
    }

    #[test]
    fn missing_host_file_is_a_read_error() {
        let mut archive = Archive::new();
        archive.insert(Entry::host_file("x", 0o644, "/nonexistent/kmm-boot").unwrap());
        let err = archive.write_to(Vec::new()).unwrap_err();
        assert!(matches!(err, CpioError::ReadSource { .. }), "{err:?}");
    }

    #[test]
    fn archive_is_deterministic_and_adds_parents() {
        let build = |order: &[&str]| {
            let mut archive = Archive::new();
            for path in order {
                archive.insert(Entry::bytes(path, 0o600, path.as_bytes().to_vec()).unwrap());
            }
            archive.write_to(Vec::new()).unwrap()
        };
        let a = build(&["usr/bin/x", "etc/passwd", "usr/lib/y"]);
        let b = build(&["usr/lib/y", "usr/bin/x", "etc/passwd"]);
        assert_eq!(a, b);
        let text = String::from_utf8_lossy(&a);
        let order: Vec<_> = ["etc\0", "etc/passwd\0", "usr\0", "usr/bin\0", "usr/bin/x\0"]
            .iter()
            .map(|name| text.find(name).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }

    #[test]
    fn insert_replaces_and_insert_if_absent_keeps() {
        let mut archive = Archive::new();
        assert!(archive
            .insert(Entry::symlink("/bin/x", "a").unwrap())
            .is_none());
        assert!(!archive.insert_if_absent(Entry::symlink("bin/x", "b").unwrap()));
        assert_eq!(
            archive.get("/bin/x").unwrap().kind(),
            &EntryKind::Symlink("a".into())
        );
        assert!(archive
            .insert(Entry::symlink("bin/x", "c").unwrap())
            .is_some());
        assert_eq!(archive.len(), 1);
        assert!(archive.remove("bin/x").is_some());
        assert!(archive.is_empty());
    }
}
