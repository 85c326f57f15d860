//! The matrix fanned out: `kmm ci --list` writes the rows, `--row`/`--shard`
//! run some of them and write one result file each into `--results DIR`,
//! and `kmm ci report DIR...` merges them ([`crate::matrix::finish`]) into
//! the same matrix as one process would make.
//!
//! A results directory holds `list.json` ([`ListFile`], written by the
//! job that made the list) and, per row, `<id with / as __>.result.json`
//! ([`RowResult`]) with its console log beside it (`.console.log`).
//! Everything is written to a temporary file and renamed into place, so a
//! job killed mid-write leaves no half result.

use std::path::{Path, PathBuf};

use crate::matrix::{RowResult, RowSpec};

/// The name of the list in a results directory.
pub const LIST_FILE: &str = "list.json";

/// What can go wrong with result files.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// A file could not be read or written.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What kmm was doing.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what kmm writes.
    #[error("{}: not a kmm ci {what} ({message}); it is written by `kmm ci`", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// `list` or `result`.
        what: &'static str,
        /// The parser's message.
        message: String,
    },
    /// No list among the directories.
    #[error("no {LIST_FILE} in {dirs}; the job that ran `kmm ci --list --results DIR` writes it")]
    NoList {
        /// The directories searched.
        dirs: String,
    },
    /// Two different lists.
    #[error("{} and {}: two different row lists; merge results of one pipeline only", a.display(), b.display())]
    TwoLists {
        /// One list.
        a: PathBuf,
        /// The other.
        b: PathBuf,
    },
}

/// The rows of one `kmm ci` invocation, as `--list --format json` prints
/// them and `list.json` holds them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListFile {
    /// The series version.
    pub version: u32,
    /// The boot config, when the matrix has boot rows.
    pub config: Option<String>,
    /// Whether the list covers the whole series with boot rows (then
    /// snapshots no row produces are stale).
    pub whole: bool,
    /// The rows, in order.
    pub rows: Vec<RowSpec>,
}

/// The file name of a row's result.
pub fn result_name(id: &str) -> String {
    format!("{}.result.json", id.replace('/', "__"))
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FanoutError> {
    kmm_scratch::write_atomic(path, data).map_err(|source| FanoutError::Io {
        path: path.to_path_buf(),
        what: "write",
        source,
    })
}

/// Writes `list.json` into `dir`.
pub fn write_list(dir: &Path, list: &ListFile) -> Result<(), FanoutError> {
    let text = serde_json::to_string_pretty(list).unwrap_or_default();
    write_atomic(&dir.join(LIST_FILE), text.as_bytes())
}

/// Writes a row's result into `dir`, with a copy of its console log.
pub fn write_result(dir: &Path, r: &RowResult) -> Result<(), FanoutError> {
    let mut r = r.clone();
    if let Some(log) = &r.row.console_log {
        let copy = dir.join(format!("{}.console.log", r.id.replace('/', "__")));
        if let Ok(data) = std::fs::read(log) {
            write_atomic(&copy, &data)?;
            r.row.console_log = Some(PathBuf::from(copy.file_name().unwrap_or_default()));
        }
    }
    let text = serde_json::to_string_pretty(&r).unwrap_or_default();
    write_atomic(&dir.join(result_name(&r.id)), text.as_bytes())
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<T, FanoutError> {
    let text = std::fs::read_to_string(path).map_err(|source| FanoutError::Io {
        path: path.to_path_buf(),
        what: "read",
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| FanoutError::Malformed {
        path: path.to_path_buf(),
        what,
        message: e.to_string(),
    })
}

/// Reads the list and every result in `dirs` (searched recursively, as
/// CI artifacts nest them).
pub fn read(dirs: &[PathBuf]) -> Result<(ListFile, Vec<RowResult>), FanoutError> {
    let mut lists: Vec<(PathBuf, ListFile)> = Vec::new();
    let mut results = Vec::new();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| FanoutError::Io {
            path: d.clone(),
            what: "read directory",
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            if p.is_dir() {
                stack.push(p);
            } else if name == LIST_FILE {
                let l: ListFile = read_json(&p, "list")?;
                if let Some((a, first)) = lists.first() {
                    if *first != l {
                        return Err(FanoutError::TwoLists { a: a.clone(), b: p });
                    }
                }
                lists.push((p, l));
            } else if name.ends_with(".result.json") {
                results.push(read_json::<RowResult>(&p, "result")?);
            }
        }
    }
    let Some((_, list)) = lists.into_iter().next() else {
        return Err(FanoutError::NoList {
            dirs: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    Ok((list, results))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Row;

    fn spec(id: &str) -> RowSpec {
        RowSpec {
            id: id.into(),
            label: "0000-base".into(),
            commit: "abc".into(),
            target: "kvm-mm".into(),
            plan: "commit".into(),
            boot: true,
            main: true,
            refresh: vec![],
            warning_dirs: vec!["virt/kvm/".into()],
            snapshot: Some("selftests/snapshots/kvm-mm/commit/0000-base.snap".into()),
        }
    }

    fn list(ids: &[&str]) -> ListFile {
        ListFile {
            version: 2,
            config: Some("kvm-mm".into()),
            whole: false,
            rows: ids.iter().map(|i| spec(i)).collect(),
        }
    }

    #[test]
    fn results_round_trip_through_nested_artifact_dirs() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("boot.log");
        std::fs::write(&log, "KTAP version 1\n").unwrap();
        write_list(d.path(), &list(&["0000-base/kvm-mm/commit"])).unwrap();
        let mut row = Row::unbooted("0000-base", "abc", "kvm-mm", "commit");
        row.console_log = Some(log);
        let r = RowResult {
            id: "0000-base/kvm-mm/commit".into(),
            row,
            warnings: vec![kmm_build::Warning {
                file: "virt/kvm/x.c".into(),
                line: 3,
                message: "m".into(),
            }],
        };
        let job = d.path().join("kvm-mm");
        write_result(&job, &r).unwrap();
        assert!(job.join("0000-base__kvm-mm__commit.result.json").is_file());
        let copied = job.join("0000-base__kvm-mm__commit.console.log");
        assert_eq!(std::fs::read_to_string(copied).unwrap(), "KTAP version 1\n");
        let (l, results) = read(&[d.path().to_path_buf()]).unwrap();
        assert_eq!(l, list(&["0000-base/kvm-mm/commit"]));
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].warnings, r.warnings);
        // The console log is named relative to the result.
        assert_eq!(
            results[0].row.console_log.as_deref(),
            Some(Path::new("0000-base__kvm-mm__commit.console.log"))
        );
        // Nothing half-written is left beside them.
        let names: Vec<String> = std::fs::read_dir(&job)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".kmm-")), "{names:?}");
    }

    #[test]
    fn bad_result_dirs_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let e = read(&[d.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains("no list.json in "), "{e}");
        write_list(d.path(), &list(&["a/kvm-mm/commit"])).unwrap();
        let other = d.path().join("job");
        write_list(&other, &list(&["b/kvm-mm/commit"])).unwrap();
        let e = read(&[d.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains("two different row lists"), "{e}");
        std::fs::remove_dir_all(&other).unwrap();
        std::fs::write(d.path().join("x.result.json"), "{").unwrap();
        let e = read(&[d.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains("x.result.json: not a kmm ci result"), "{e}");
    }
}
