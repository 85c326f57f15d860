//! Unified-diff fragments: small hand-written changes to upstream files.
//!
//! A fragment is what `diff -u` or `git diff` prints, for one or more
//! files. Hunks must match their context exactly; a hunk may sit at another
//! line than its header says (the search looks outwards from there), but
//! there is no fuzz: a fragment that does not apply is an error that names
//! the hunk and the line where it was expected.

/// One file's part of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// Kernel path (without `a/`/`b/`).
    pub path: String,
    /// The file is created by the fragment (`--- /dev/null`).
    pub create: bool,
    /// The file is deleted by the fragment (`+++ /dev/null`).
    pub delete: bool,
    /// Hunks in order.
    pub hunks: Vec<Hunk>,
}

/// One hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// 1-based line of the `@@` header in the fragment file.
    pub line: usize,
    /// Old start line from the header.
    pub old_start: usize,
    /// Lines of the old text (context and removed).
    pub old: Vec<String>,
    /// Lines of the new text (context and added).
    pub new: Vec<String>,
}

/// Why a fragment could not be read or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct FragmentError {
    /// 1-based line in the fragment file.
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

fn strip_prefix(p: &str) -> String {
    let p = p.split('\t').next().unwrap_or(p).trim_end();
    p.strip_prefix("a/")
        .or_else(|| p.strip_prefix("b/"))
        .unwrap_or(p)
        .to_string()
}

fn parse_range(s: &str) -> Option<(usize, usize)> {
    let s = &s[1..];
    match s.split_once(',') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => Some((s.parse().ok()?, 1)),
    }
}

/// Parses a unified diff into per-file patches.
pub fn parse(text: &str) -> Result<Vec<FilePatch>, FragmentError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<FilePatch> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if let Some(old) = l.strip_prefix("--- ") {
            let Some(new) = lines.get(i + 1).and_then(|n| n.strip_prefix("+++ ")) else {
                return Err(FragmentError {
                    line: i + 1,
                    message: "`---` line without a following `+++` line".into(),
                });
            };
            let create = old.starts_with("/dev/null");
            let delete = new.starts_with("/dev/null");
            let path = if delete {
                strip_prefix(old)
            } else {
                strip_prefix(new)
            };
            out.push(FilePatch {
                path,
                create,
                delete,
                hunks: Vec::new(),
            });
            i += 2;
            continue;
        }
        if l.starts_with("@@ ") {
            let Some(fp) = out.last_mut() else {
                return Err(FragmentError {
                    line: i + 1,
                    message: "hunk before any `---`/`+++` file header".into(),
                });
            };
            let bad = || FragmentError {
                line: i + 1,
                message: format!("malformed hunk header {l:?}"),
            };
            let mut parts = l.split(' ');
            parts.next();
            let o = parts
                .next()
                .filter(|p| p.starts_with('-'))
                .ok_or_else(bad)?;
            let n = parts
                .next()
                .filter(|p| p.starts_with('+'))
                .ok_or_else(bad)?;
            let (old_start, mut old_n) = parse_range(o).ok_or_else(bad)?;
            let (_, mut new_n) = parse_range(n).ok_or_else(bad)?;
            let header = i + 1;
            let (mut old, mut new) = (Vec::new(), Vec::new());
            i += 1;
            while (old_n > 0 || new_n > 0) && i < lines.len() {
                let hl = lines[i];
                if hl.starts_with('\\') {
                    i += 1;
                    continue;
                }
                let (tag, body) = match hl.chars().next() {
                    Some(c) => (c, &hl[c.len_utf8()..]),
                    None => (' ', ""),
                };
                match tag {
                    ' ' if old_n > 0 && new_n > 0 => {
                        old.push(body.to_string());
                        new.push(body.to_string());
                        old_n -= 1;
                        new_n -= 1;
                    }
                    '-' if old_n > 0 => {
                        old.push(body.to_string());
                        old_n -= 1;
                    }
                    '+' if new_n > 0 => {
                        new.push(body.to_string());
                        new_n -= 1;
                    }
                    _ => {
                        return Err(FragmentError {
                            line: i + 1,
                            message: format!(
                                "hunk line {hl:?} does not fit the counts of the header at line {header}"
                            ),
                        })
                    }
                }
                i += 1;
            }
            if old_n > 0 || new_n > 0 {
                return Err(FragmentError {
                    line: header,
                    message: "hunk is shorter than its header says".into(),
                });
            }
            fp.hunks.push(Hunk {
                line: header,
                old_start,
                old,
                new,
            });
            continue;
        }
        i += 1;
    }
    if out.is_empty() {
        return Err(FragmentError {
            line: 1,
            message: "no `---`/`+++` file header: not a unified diff".into(),
        });
    }
    Ok(out)
}

/// Applies one file's hunks to `text` (`None` when the file does not
/// exist). Returns the new text, or `None` when the patch deletes the file.
pub fn apply(fp: &FilePatch, text: Option<&str>) -> Result<Option<String>, FragmentError> {
    let first_line = fp.hunks.first().map_or(1, |h| h.line);
    let src = match (text, fp.create) {
        (Some(_), true) => {
            return Err(FragmentError {
                line: first_line,
                message: format!("{} already exists, the fragment creates it", fp.path),
            })
        }
        (None, false) => {
            return Err(FragmentError {
                line: first_line,
                message: format!("{} does not exist in the tree", fp.path),
            })
        }
        (Some(t), false) => t,
        (None, true) => "",
    };
    let ends_nl = src.is_empty() || src.ends_with('\n');
    let mut lines: Vec<String> = src.lines().map(str::to_string).collect();
    // Later hunks move by what earlier ones added or removed.
    let mut delta: isize = 0;
    let mut floor = 0usize;
    for h in &fp.hunks {
        let want = (h.old_start.max(1) - 1) as isize + delta;
        let at = find_hunk(&lines, &h.old, want.max(0) as usize, floor).ok_or_else(|| {
            FragmentError {
                line: h.line,
                message: format!(
                    "hunk does not apply to {} (expected its context near line {})",
                    fp.path, h.old_start
                ),
            }
        })?;
        lines.splice(at..at + h.old.len(), h.new.iter().cloned());
        delta += h.new.len() as isize - h.old.len() as isize;
        floor = at + h.new.len();
    }
    if fp.delete {
        if !lines.is_empty() {
            return Err(FragmentError {
                line: first_line,
                message: format!("{} is deleted but the fragment leaves lines in it", fp.path),
            });
        }
        return Ok(None);
    }
    let mut out = lines.join("\n");
    if !lines.is_empty() && ends_nl {
        out.push('\n');
    }
    Ok(Some(out))
}

fn find_hunk(lines: &[String], old: &[String], want: usize, floor: usize) -> Option<usize> {
    let fits = |at: usize| at + old.len() <= lines.len() && lines[at..at + old.len()] == *old;
    if old.is_empty() {
        return Some(want.min(lines.len()).max(floor.min(lines.len())));
    }
    let max = lines.len().saturating_sub(old.len());
    for d in 0..=want.max(lines.len()) {
        let up = want.checked_sub(d);
        let down = want + d;
        if down <= max && down >= floor && fits(down) {
            return Some(down);
        }
        if let Some(u) = up {
            if u >= floor && u <= max && fits(u) {
                return Some(u);
            }
        }
        if up.is_none() && down > max {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "one\ntwo\nthree\nfour\nfive\n";

    #[test]
    fn applies_at_offset() {
        let p =
            parse("--- a/f\n+++ b/f\n@@ -10,3 +10,4 @@\n two\n three\n+three and a half\n four\n")
                .unwrap();
        let out = apply(&p[0], Some(BASE)).unwrap().unwrap();
        assert_eq!(out, "one\ntwo\nthree\nthree and a half\nfour\nfive\n");
    }

    #[test]
    fn creates_files() {
        let p = parse("--- /dev/null\n+++ b/new.c\n@@ -0,0 +1,2 @@\n+a\n+b\n").unwrap();
        assert!(p[0].create);
        assert_eq!(apply(&p[0], None).unwrap().unwrap(), "a\nb\n");
        assert!(apply(&p[0], Some("x\n")).is_err());
    }

    #[test]
    fn rejects_wrong_context() {
        let p = parse("--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n one\n-zwei\n+2\n").unwrap();
        let e = apply(&p[0], Some(BASE)).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("does not apply"), "{e}");
    }

    #[test]
    fn rejects_bad_counts() {
        let e = parse("--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n one\n").unwrap_err();
        assert!(e.message.contains("shorter"), "{e}");
        let e = parse("just text\n").unwrap_err();
        assert!(e.message.contains("not a unified diff"));
    }
}
