//! The text rules of `git format-patch`, reimplemented so that kmm's mbox
//! output is byte-identical to git's for the same commits.
//!
//! Everything here is a pure function over strings. The rules follow git
//! 2.47 (`pretty.c`, `utf8.c`, `diff.c`, `builtin/log.c`); the integration
//! tests compare the results with the real `git format-patch` on fixture
//! repositories, so a drift in git shows up as a failing test.

use std::fmt::Write as _;

/// Width at which `format-patch` folds the `Subject:` header.
pub const SUBJECT_WRAP: usize = 78;
/// Width of diffstats and of the cover letter's shortlog in mail.
pub const MAIL_WRAP: usize = 72;

/// Word-wraps `text` the way git's `strbuf_add_wrapped_text()` does.
///
/// `indent1` is the indent of the first line; a negative value means the
/// caller already wrote `-indent1` columns on that line. `indent2` is the
/// indent of the continuation lines. Runs of white space collapse into one
/// space; a single newline followed by an alphanumeric character joins the
/// lines, other newlines start a new line.
pub fn wrap(text: &str, indent1: isize, indent2: usize, width: usize) -> String {
    let mut out = String::new();
    let width = width as isize;
    let bytes = text.as_bytes();
    // `bol` is the start of the current output line in `text`, `space` the
    // position of the last white space seen on it (the break candidate).
    let mut bol = 0usize;
    let mut pos = 0usize;
    let mut indent = indent1;
    let mut w = indent1;
    let mut space: Option<usize> = None;
    if indent < 0 {
        w = -indent;
        space = Some(0);
    }
    loop {
        let c = bytes.get(pos).copied();
        let at_space = c.is_none_or(|c| c.is_ascii_whitespace());
        if !at_space {
            // Count one column per character (git counts display width; the
            // subjects and names kmm emits are checked to be ASCII where
            // that matters).
            let ch_len = text[pos..].chars().next().map_or(1, char::len_utf8);
            w += 1;
            pos += ch_len;
            continue;
        }
        if w <= width || space.is_none() {
            if c.is_none() && pos == bol {
                return out;
            }
            let start = match space {
                Some(s) => s,
                None => {
                    for _ in 0..indent.max(0) {
                        out.push(' ');
                    }
                    bol
                }
            };
            out.push_str(&text[start..pos]);
            let Some(c) = c else { return out };
            let mut sp = pos;
            let mut newline = false;
            if c == b'\t' {
                w |= 0x07;
            } else if c == b'\n' {
                sp += 1;
                match bytes.get(sp) {
                    Some(b'\n') => {
                        out.push('\n');
                        newline = true;
                    }
                    Some(n) if !n.is_ascii_alphanumeric() => newline = true,
                    _ => out.push(' '),
                }
            }
            if newline {
                out.push('\n');
                pos = sp + usize::from(bytes.get(sp).is_some_and(u8::is_ascii_whitespace));
                bol = pos;
                space = None;
                indent = indent2 as isize;
                w = indent;
                continue;
            }
            space = Some(sp);
            w += 1;
            pos += 1;
        } else {
            out.push('\n');
            let sp = space.unwrap_or(bol);
            pos = sp + usize::from(bytes.get(sp).is_some_and(u8::is_ascii_whitespace));
            bol = pos;
            space = None;
            indent = indent2 as isize;
            w = indent;
        }
    }
}

/// Formats `Subject: <prefix> <title>` with git's folding at 78 columns.
pub fn subject_header(prefix: &str, title: &str) -> String {
    let head = format!("Subject: [{prefix}] ");
    let mut out = head.clone();
    out.push_str(&wrap(title, -(head.len() as isize), 1, SUBJECT_WRAP));
    out
}

fn is_rfc822_special(c: char) -> bool {
    matches!(
        c,
        '(' | ')' | '<' | '>' | '[' | ']' | ':' | ';' | '@' | ',' | '.' | '"' | '\\'
    )
}

fn is_rfc2047_address_special(b: u8) -> bool {
    if !b.is_ascii() || matches!(b, b'=' | b'?' | b'_') {
        return true;
    }
    !(b.is_ascii_alphanumeric() || matches!(b, b'!' | b'*' | b'+' | b'-' | b'/'))
}

/// Formats a `From:` header for `name <email>` as git does: RFC 2047
/// encoding for non-ASCII names, RFC 822 quoting for names with specials.
pub fn from_header(name: &str, email: &str) -> String {
    const PREFIX: &str = "From: ";
    let mut out = String::from(PREFIX);
    if !name.is_ascii() || name.contains("=?") {
        // git's add_rfc2047(): encode whole characters, fold before 76.
        const MAX: usize = 76;
        let enc = "UTF-8";
        out.push_str("=?UTF-8?q?");
        let mut line_len = PREFIX.len() + enc.len() + 5;
        for ch in name.chars() {
            let mut buf = [0u8; 4];
            let bytes = ch.encode_utf8(&mut buf).as_bytes();
            let special = bytes.len() > 1 || is_rfc2047_address_special(bytes[0]);
            let enc_len = if special { 3 * bytes.len() } else { 1 };
            if line_len + enc_len + 2 > MAX {
                out.push_str("?=\n =?UTF-8?q?");
                line_len = enc.len() + 5 + 1;
            }
            for b in bytes {
                if special {
                    let _ = write!(out, "={b:02X}");
                } else {
                    out.push(char::from(*b));
                }
            }
            line_len += enc_len;
        }
        out.push_str("?=");
    } else if name.chars().any(is_rfc822_special) {
        out.push('"');
        for c in name.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(name);
    }
    let _ = write!(out, " <{email}>");
    out
}

/// A point in time with the UTC offset it was written in, as git stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Offset from UTC in minutes.
    pub offset_minutes: i32,
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl Timestamp {
    /// Parses `YYYY-MM-DDTHH:MM:SS+HH:MM` (or `Z`), the form series.toml uses.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let tz = &s[19..];
        let offset_minutes = if tz == "Z" {
            0
        } else {
            let tb = tz.as_bytes();
            if tb.len() != 6 || tb[3] != b':' || !(tb[0] == b'+' || tb[0] == b'-') {
                return None;
            }
            let oh: i32 = tz.get(1..3)?.parse().ok()?;
            let om: i32 = tz.get(4..6)?.parse().ok()?;
            let v = oh * 60 + om;
            if tb[0] == b'-' {
                -v
            } else {
                v
            }
        };
        let days = days_from_civil(y, mo as u32, d as u32);
        let local = days * 86_400 + h * 3600 + mi * 60 + se;
        Some(Timestamp {
            seconds: local - i64::from(offset_minutes) * 60,
            offset_minutes,
        })
    }

    /// Formats the time as RFC 2822, as in a mail's `Date:` header.
    pub fn rfc2822(&self) -> String {
        const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let local = self.seconds + i64::from(self.offset_minutes) * 60;
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let sign = if self.offset_minutes < 0 { '-' } else { '+' };
        let off = self.offset_minutes.abs();
        format!(
            "{}, {} {} {} {:02}:{:02}:{:02} {}{:02}{:02}",
            DAYS[days.rem_euclid(7) as usize],
            d,
            MONTHS[(m - 1) as usize],
            y,
            secs / 3600,
            secs % 3600 / 60,
            secs % 60,
            sign,
            off / 60,
            off % 60
        )
    }
}

/// One file's line counts in a diffstat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// Path of the file (the new path; kmm does not detect renames).
    pub path: String,
    /// Lines added.
    pub added: usize,
    /// Lines deleted.
    pub deleted: usize,
}

/// A file-level event listed after the diffstat by `--summary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Summary {
    /// ` create mode 100644 path`
    Create(u32, String),
    /// ` delete mode 100644 path`
    Delete(u32, String),
    /// ` mode change 100644 => 100755 path`
    Mode(u32, u32, String),
}

fn scale_linear(it: usize, width: usize, max_change: usize) -> usize {
    if it == 0 {
        return 0;
    }
    1 + it * (width - 1) / max_change
}

fn decimal_width(n: usize) -> usize {
    n.to_string().len()
}

/// Renders `--stat=72 --summary` as `format-patch` prints it.
pub fn diffstat(files: &[FileStat], summary: &[Summary]) -> String {
    let mut out = String::new();
    let width = MAIL_WRAP.max(16 + 6 + 1);
    let max_change = files.iter().map(|f| f.added + f.deleted).max().unwrap_or(0);
    let max_len = files
        .iter()
        .map(|f| f.path.chars().count())
        .max()
        .unwrap_or(0);
    let number_width = decimal_width(max_change);
    let width = width.max(16 + 6 + number_width);
    let mut graph_width = max_change;
    let mut name_width = max_len;
    if name_width + number_width + 6 + graph_width > width {
        let limit = (width * 3 / 8).saturating_sub(number_width + 6);
        if graph_width > limit {
            graph_width = limit.max(6);
        }
        if name_width > width.saturating_sub(number_width + 6 + graph_width) {
            name_width = width.saturating_sub(number_width + 6 + graph_width);
        } else {
            graph_width = width - number_width - 6 - name_width;
        }
    }
    let (mut adds, mut dels) = (0, 0);
    for f in files {
        let name_len = f.path.chars().count();
        let (prefix, name, len) = if name_width < name_len {
            let len = name_width.saturating_sub(3);
            let skip = name_len - len;
            let tail: String = f.path.chars().skip(skip).collect();
            let name = match tail.find('/') {
                Some(i) => tail[i..].to_string(),
                None => tail,
            };
            ("...", name, len)
        } else {
            ("", f.path.clone(), name_width)
        };
        let (mut add, mut del) = (f.added, f.deleted);
        if graph_width <= max_change {
            let mut total = scale_linear(add + del, graph_width, max_change);
            if total < 2 && add > 0 && del > 0 {
                total = 2;
            }
            if add < del {
                add = scale_linear(add, graph_width, max_change);
                del = total - add;
            } else {
                del = scale_linear(del, graph_width, max_change);
                add = total - del;
            }
        }
        let changes = f.added + f.deleted;
        let _ = write!(out, " {prefix}{name:<len$} | {changes:>number_width$}");
        if changes > 0 {
            out.push(' ');
        }
        out.push_str(&"+".repeat(add));
        out.push_str(&"-".repeat(del));
        out.push('\n');
        adds += f.added;
        dels += f.deleted;
    }
    let n = files.len();
    if n == 0 {
        out.push_str(" 0 files changed\n");
    } else {
        let _ = write!(out, " {n} file{} changed", if n == 1 { "" } else { "s" });
        if adds > 0 || dels == 0 {
            let _ = write!(
                out,
                ", {adds} insertion{}(+)",
                if adds == 1 { "" } else { "s" }
            );
        }
        if dels > 0 || adds == 0 {
            let _ = write!(
                out,
                ", {dels} deletion{}(-)",
                if dels == 1 { "" } else { "s" }
            );
        }
        out.push('\n');
    }
    for s in summary {
        let _ = match s {
            Summary::Create(mode, p) => writeln!(out, " create mode {mode:06o} {p}"),
            Summary::Delete(mode, p) => writeln!(out, " delete mode {mode:06o} {p}"),
            Summary::Mode(a, b, p) => writeln!(out, " mode change {a:06o} => {b:06o} {p}"),
        };
    }
    out
}

/// Formats a `To:` or `Cc:` header as `format-patch --to/--cc` does: one
/// address a line, continuation lines indented by four spaces. Empty when
/// there is no address.
pub fn address_header(name: &str, addresses: &[impl std::fmt::Display]) -> String {
    let mut out = String::new();
    for (i, a) in addresses.iter().enumerate() {
        if i == 0 {
            let _ = write!(out, "{name}: {a}");
        } else {
            let _ = write!(out, "    {a}");
        }
        out.push_str(if i + 1 < addresses.len() { ",\n" } else { "\n" });
    }
    out
}

/// Renders the cover letter's shortlog: `Name (N):` then the wrapped
/// subjects, as `git shortlog -w72,2,4` inside `format-patch`.
pub fn shortlog(author: &str, subjects: &[String]) -> String {
    let mut out = format!("{author} ({}):\n", subjects.len());
    for s in subjects {
        out.push_str(&wrap(s, 2, 4, MAIL_WRAP));
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_folds_like_git() {
        let s = subject_header(
            "PATCH v1 1/1",
            "KVM: selftests: Add a really quite long subject line that hits 75 chars",
        );
        assert_eq!(
            s,
            "Subject: [PATCH v1 1/1] KVM: selftests: Add a really quite long subject line\n that hits 75 chars"
        );
    }

    #[test]
    fn short_subject_is_not_folded() {
        assert_eq!(
            subject_header("PATCH", "KVM: Fix it"),
            "Subject: [PATCH] KVM: Fix it"
        );
    }

    #[test]
    fn address_headers_fold_like_format_patch() {
        assert_eq!(
            address_header("To", &["Paolo Bonzini <pbonzini@redhat.com>", "b@x.org"]),
            "To: Paolo Bonzini <pbonzini@redhat.com>,\n    b@x.org\n"
        );
        assert_eq!(address_header("Cc", &["c@x.org"]), "Cc: c@x.org\n");
        assert_eq!(address_header("Cc", &[] as &[&str]), "");
    }

    #[test]
    fn shortlog_wraps_at_72() {
        let s = shortlog(
            "A. U. Thor",
            &["KVM: selftests: Add a really quite long subject line that hits 75 chars".into()],
        );
        assert_eq!(
            s,
            "A. U. Thor (1):\n  KVM: selftests: Add a really quite long subject line that hits 75\n    chars\n\n"
        );
    }

    #[test]
    fn names_are_quoted_or_encoded() {
        assert_eq!(
            from_header("A. U. Thor", "a@x"),
            "From: \"A. U. Thor\" <a@x>"
        );
        assert_eq!(from_header("Plain Name", "a@x"), "From: Plain Name <a@x>");
        assert_eq!(
            from_header("Radim Krčmář", "r@x"),
            "From: =?UTF-8?q?Radim=20Kr=C4=8Dm=C3=A1=C5=99?= <r@x>"
        );
    }

    #[test]
    fn dates_round_trip() {
        let t = Timestamp::parse_rfc3339("2005-04-07T15:13:13-07:00").unwrap();
        assert_eq!(t.rfc2822(), "Thu, 7 Apr 2005 15:13:13 -0700");
        assert_eq!(t.seconds, 1_112_911_993);
        let t = Timestamp::parse_rfc3339("2026-11-25T09:00:00Z").unwrap();
        assert_eq!(t.rfc2822(), "Wed, 25 Nov 2026 09:00:00 +0000");
        assert!(Timestamp::parse_rfc3339("2026-13-25T09:00:00Z").is_none());
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn diffstat_matches_git_for_long_names() {
        let files = vec![
            FileStat {
                path: "a.txt".into(),
                added: 1,
                deleted: 0,
            },
            FileStat {
                path: "some/very/long/directory/path/that/goes/on/file_with_a_long_name.c".into(),
                added: 100,
                deleted: 0,
            },
        ];
        let sum = vec![Summary::Create(
            0o100644,
            "some/very/long/directory/path/that/goes/on/file_with_a_long_name.c".into(),
        )];
        assert_eq!(
            diffstat(&files, &sum),
            " a.txt                                         |   1 +\n \
             .../path/that/goes/on/file_with_a_long_name.c | 100 ++++++++++++++++++\n \
             2 files changed, 101 insertions(+)\n \
             create mode 100644 some/very/long/directory/path/that/goes/on/file_with_a_long_name.c\n"
        );
    }
}
