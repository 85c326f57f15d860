//! Line-level lexing: prefix stripping and classification of one KTAP line.
//!
//! Nothing here keeps state; the [`crate::Parser`] decides what a classified
//! line means in the context of the tests that are open.

use std::borrow::Cow;

/// Columns a tab advances to (the next multiple of this).
const TAB_WIDTH: u32 = 8;

/// Where a structural line sits: its `# ` nesting depth, then its indentation.
///
/// Positions order lexicographically, so "deeper" is simply `>`: a nested
/// kselftest block (`# TAP version 13`) is deeper than any indentation of its
/// parent, and a more indented line is deeper than a less indented one at the
/// same `# ` depth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    /// Number of `# ` prefixes (kselftest runner nesting).
    pub(crate) hashes: u32,
    /// Indentation width in columns, tabs expanded to multiples of eight.
    pub(crate) indent: u32,
}

/// What a line is, once prefixes are peeled off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind<'a> {
    /// Nothing but whitespace.
    Blank,
    /// `KTAP version N` or `TAP version N`.
    Version {
        /// `true` for `KTAP`, `false` for `TAP`.
        ktap: bool,
        /// The version number.
        version: u32,
    },
    /// `1..N`.
    Plan {
        /// The planned number of tests.
        count: u64,
    },
    /// `ok N ...` or `not ok N ...`.
    Result(ResultLine<'a>),
    /// `# Subtest: name`.
    Subtest {
        /// The name, trimmed.
        name: &'a str,
    },
    /// A `#`-prefixed line that is none of the above.
    Diagnostic,
    /// Anything else (kernel log output, garbage).
    Unknown,
}

/// The parts of a test result line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ResultLine<'a> {
    /// `true` for `ok`, `false` for `not ok`.
    pub(crate) ok: bool,
    /// The test number.
    pub(crate) number: u32,
    /// The description with a leading `- ` removed; may contain `\#` escapes.
    pub(crate) name: &'a str,
    /// Everything after the first unescaped `#`, trimmed; `None` if absent
    /// or empty.
    pub(crate) directive: Option<&'a str>,
}

/// A classified line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// Position of the structural token (or of the `#` of a header).
    pub(crate) pos: Pos,
    /// What the line is.
    pub(crate) kind: Kind<'a>,
}

/// A kernel message that means the test run did not survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CrashMarker {
    /// `Kernel panic - not syncing`: the kernel is dead, nothing more follows.
    Panic,
    /// `BUG:`, `Oops:` and friends: the running test is probably dead, but
    /// the kernel may carry on and KTAP output may resume.
    Oops,
}

/// Strips a printk prefix: an optional syslog level `<N>`, a timestamp
/// `[    1.234567]`, an optional caller id `[    T1]`/`[  C0]`, and the one
/// space printk puts after them.
pub(crate) fn strip_printk_prefix(line: &str) -> &str {
    let mut rest = line;
    if let Some(r) = rest.strip_prefix('<') {
        if let Some(end) = r.find('>') {
            let level = &r[..end];
            if !level.is_empty() && level.len() <= 3 && level.bytes().all(|b| b.is_ascii_digit()) {
                rest = &r[end + 1..];
            }
        }
    }
    let Some(after_ts) = strip_timestamp(rest) else {
        return line;
    };
    let mut rest = after_ts;
    if let Some(after_caller) = strip_caller_id(rest) {
        rest = after_caller;
    }
    rest.strip_prefix(' ').unwrap_or(rest)
}

/// Strips `[ digits.digits]`, returning the rest.
fn strip_timestamp(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let end = inner.find(']')?;
    let stamp = inner[..end].trim_start_matches(' ');
    let (secs, frac) = stamp.split_once('.')?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    (digits(secs) && digits(frac)).then(|| &inner[end + 1..])
}

/// Strips a printk caller id `[    T123]` or `[  C1]`, returning the rest.
fn strip_caller_id(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let end = inner.find(']')?;
    let id = inner[..end].trim_start_matches(' ');
    let digits = id.strip_prefix('T').or_else(|| id.strip_prefix('C'))?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| &inner[end + 1..])
}

/// Finds a version line anywhere in `line` (it must end the line), returning
/// what precedes it, whether it is KTAP, and the version.
///
/// This is how the start of a KTAP stream is recognised behind an arbitrary
/// console prefix, as `kunit.py` does.
pub(crate) fn find_version(line: &str) -> Option<(&str, bool, u32)> {
    let line = line.trim_end();
    let idx = line.rfind("TAP version ")?;
    let version = parse_u32(&line[idx + "TAP version ".len()..])?;
    let (before, ktap) = match line[..idx].strip_suffix('K') {
        Some(b) => (b, true),
        None => (&line[..idx], false),
    };
    Some((before, ktap, version))
}

/// Width in columns of leading whitespace, and the rest of the string.
fn take_ws(s: &str) -> (u32, &str) {
    let mut col: u32 = 0;
    for (i, c) in s.char_indices() {
        match c {
            ' ' => col = col.saturating_add(1),
            '\t' => {
                col = (col / TAB_WIDTH)
                    .saturating_add(1)
                    .saturating_mul(TAB_WIDTH)
            }
            _ => return (col, &s[i..]),
        }
    }
    (col, "")
}

/// Strips one `#` nesting token: `#` followed by a space, a tab or the end.
fn strip_hash(s: &str) -> Option<&str> {
    let r = s.strip_prefix('#')?;
    if r.is_empty() {
        Some(r)
    } else {
        r.strip_prefix([' ', '\t'])
    }
}

/// Classifies one line (printk and console prefixes already stripped).
pub(crate) fn classify(line: &str) -> Line<'_> {
    // Widths of the whitespace before each `#` token, then before the content.
    let mut widths: [u32; 2] = [0, 0];
    let mut hashes: u32 = 0;
    let mut rest = line;
    let content = loop {
        // Tab stops count from the line start or from after a `# ` token
        // (the separator after `#` is not indentation).
        let (w, after) = take_ws(rest);
        widths[0] = widths[1];
        widths[1] = w;
        match strip_hash(after) {
            Some(r) => {
                hashes = hashes.saturating_add(1);
                rest = r;
            }
            None => break after,
        }
    };
    let content_pos = Pos {
        hashes,
        indent: widths[1],
    };
    if content.is_empty() {
        let kind = if hashes == 0 {
            Kind::Blank
        } else {
            Kind::Diagnostic
        };
        return Line {
            pos: content_pos,
            kind,
        };
    }
    if let Some(kind) = structural(content) {
        return Line {
            pos: content_pos,
            kind,
        };
    }
    if hashes == 0 {
        return Line {
            pos: content_pos,
            kind: Kind::Unknown,
        };
    }
    // A header or diagnostic belongs to the level of its last `#`.
    let pos = Pos {
        hashes: hashes - 1,
        indent: widths[0],
    };
    match content.strip_prefix("Subtest:") {
        Some(name) => Line {
            pos,
            kind: Kind::Subtest { name: name.trim() },
        },
        None => Line {
            pos,
            kind: Kind::Diagnostic,
        },
    }
}

/// Recognises version, plan and result lines.
fn structural(s: &str) -> Option<Kind<'_>> {
    if let Some(r) = s.strip_prefix("KTAP version ") {
        return parse_u32(r).map(|version| Kind::Version {
            ktap: true,
            version,
        });
    }
    if let Some(r) = s.strip_prefix("TAP version ") {
        return parse_u32(r).map(|version| Kind::Version {
            ktap: false,
            version,
        });
    }
    if let Some(r) = s.strip_prefix("1..") {
        let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        let tail = &r[end..];
        if end == 0 || !(tail.is_empty() || tail.starts_with([' ', '\t'])) {
            return None;
        }
        return r[..end].parse().ok().map(|count| Kind::Plan { count });
    }
    let (ok, r) = if let Some(r) = s.strip_prefix("ok") {
        (true, r)
    } else if let Some(r) = s.strip_prefix("not ok") {
        (false, r)
    } else {
        return None;
    };
    let r = r.strip_prefix([' ', '\t'])?.trim_start();
    let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
    let tail = &r[end..];
    if end == 0 || !(tail.is_empty() || tail.starts_with([' ', '\t'])) {
        return None;
    }
    let number: u32 = r[..end].parse().ok()?;
    let (desc, directive) = split_directive(tail);
    let desc = desc.trim();
    let name = match desc.strip_prefix('-') {
        Some(n) if n.is_empty() || n.starts_with([' ', '\t']) => n.trim_start(),
        _ => desc,
    };
    let directive = directive.map(str::trim).filter(|d| !d.is_empty());
    Some(Kind::Result(ResultLine {
        ok,
        number,
        name,
        directive,
    }))
}

/// Splits at the first `#` not escaped by a backslash.
fn split_directive(s: &str) -> (&str, Option<&str>) {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'#' => return (&s[..i], Some(&s[i + 1..])),
            _ => i += 1,
        }
    }
    (s, None)
}

/// Parses a whole (trimmed) string as a `u32`.
fn parse_u32(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Removes TAP's `\#` and `\\` escapes from a test description.
pub(crate) fn unescape(name: &str) -> Cow<'_, str> {
    if !name.contains('\\') {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('#' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Recognises kernel messages that mean a crash.
///
/// Lines whose content starts with `#` are test output, never crash markers.
pub(crate) fn crash_marker(line: &str) -> Option<CrashMarker> {
    let t = line.trim_start();
    if t.starts_with('#') {
        return None;
    }
    if t.contains("Kernel panic - not syncing") {
        return Some(CrashMarker::Panic);
    }
    const OOPS: [&str; 6] = [
        "BUG: ",
        "Oops: ",
        "kernel BUG at ",
        "Internal error: Oops",
        "Unable to handle kernel ",
        "general protection fault",
    ];
    OOPS.iter()
        .any(|p| t.starts_with(p))
        .then_some(CrashMarker::Oops)
}

/// Replaces kernel addresses in a log line with stable placeholders.
///
/// Hex numbers written `0x…` with eight or more digits become `0x…`, the
/// contents of `[<…>]` stack-trace brackets become `…`, and bare hex words
/// that look like addresses (sixteen digits, or twelve or more with a letter,
/// as in register dumps) become `…`. Short offsets such as
/// `func+0x35/0x40` are kept: they are stable and useful.
///
/// ```
/// assert_eq!(
///     ktap::redact("BUG at 0xffff888003c4b000 [<ffffffff81000000>] f+0x35/0x40"),
///     "BUG at 0x… [<…>] f+0x35/0x40",
/// );
/// ```
pub fn redact(line: &str) -> Cow<'_, str> {
    if !needs_redaction(line) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while !rest.is_empty() {
        let hex_run = |s: &str| s.bytes().take_while(u8::is_ascii_hexdigit).count();
        if let Some(r) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
            let n = hex_run(r);
            if n >= 8 && !continues_word(&r[n..]) {
                out.push_str("0x…");
                rest = &r[n..];
                continue;
            }
        }
        if let Some(r) = rest.strip_prefix("[<") {
            let n = hex_run(r);
            if n >= 1 && r[n..].starts_with(">]") {
                out.push_str("[<…>]");
                rest = &r[n + 2..];
                continue;
            }
        }
        let at_word_start = out
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        if at_word_start {
            let n = hex_run(rest);
            let word = &rest[..n];
            let addressy = n == 16 || (n >= 12 && word.bytes().any(|b| b.is_ascii_alphabetic()));
            if addressy && !continues_word(&rest[n..]) {
                out.push('…');
                rest = &rest[n..];
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// Whether the text after a hex run continues the same word.
fn continues_word(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Cheap pre-check so the common case allocates nothing.
fn needs_redaction(line: &str) -> bool {
    if line.contains("0x") || line.contains("0X") || line.contains("[<") {
        return true;
    }
    let mut run = 0;
    for b in line.bytes() {
        if b.is_ascii_hexdigit() {
            run += 1;
            if run >= 12 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// Removes up to `pos.hashes` `#` tokens and then up to `pos.indent` columns
/// of whitespace, so kept log lines are relative to their test's level.
pub(crate) fn dedent(line: &str, pos: Pos) -> &str {
    let mut rest = line;
    for _ in 0..pos.hashes {
        let (_, after) = take_ws(rest);
        match strip_hash(after) {
            Some(r) => rest = r,
            None => break,
        }
    }
    let mut col = 0;
    for (i, c) in rest.char_indices() {
        let next = match c {
            ' ' => col + 1,
            '\t' => (col / TAB_WIDTH + 1) * TAB_WIDTH,
            _ => return &rest[i..],
        };
        if next > pos.indent {
            return &rest[i..];
        }
        col = next;
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(hashes: u32, indent: u32) -> Pos {
        Pos { hashes, indent }
    }

    #[test]
    fn printk_prefixes() {
        assert_eq!(
            strip_printk_prefix("[    0.060000] TAP version 14"),
            "TAP version 14"
        );
        assert_eq!(
            strip_printk_prefix("[    0.060000][    T1] \tok 1 - a"),
            "\tok 1 - a"
        );
        assert_eq!(strip_printk_prefix("<6>[   12.5] x"), "x");
        assert_eq!(strip_printk_prefix("[  123.456789] "), "");
        assert_eq!(strip_printk_prefix("[    0.060000]"), "");
        assert_eq!(strip_printk_prefix("[not a stamp] x"), "[not a stamp] x");
        assert_eq!(strip_printk_prefix("<6>no stamp"), "<6>no stamp");
    }

    #[test]
    fn version_anywhere() {
        assert_eq!(
            find_version("console: KTAP version 1"),
            Some(("console: ", true, 1))
        );
        assert_eq!(find_version("TAP version 13"), Some(("", false, 13)));
        assert_eq!(find_version("  KTAP version 1  "), Some(("  ", true, 1)));
        assert_eq!(find_version("TAP version 13 and more"), None);
        assert_eq!(find_version("TAP version x"), None);
    }

    #[test]
    fn classify_structural() {
        assert_eq!(
            classify("KTAP version 1").kind,
            Kind::Version {
                ktap: true,
                version: 1
            }
        );
        assert_eq!(classify("    1..3").pos, pos(0, 4));
        assert_eq!(classify("\t1..3").kind, Kind::Plan { count: 3 });
        assert_eq!(
            classify("1..0 # SKIP not root").kind,
            Kind::Plan { count: 0 }
        );
        assert_eq!(classify("1..3x").kind, Kind::Unknown);
        let l = classify("  not ok 12 - foo bar # TIMEOUT 30 seconds");
        assert_eq!(l.pos, pos(0, 2));
        assert_eq!(
            l.kind,
            Kind::Result(ResultLine {
                ok: false,
                number: 12,
                name: "foo bar",
                directive: Some("TIMEOUT 30 seconds")
            })
        );
        assert_eq!(
            classify("ok 3 # XFAIL why").kind,
            Kind::Result(ResultLine {
                ok: true,
                number: 3,
                name: "",
                directive: Some("XFAIL why")
            })
        );
        assert_eq!(
            classify("ok 1 a\\#b #").kind,
            Kind::Result(ResultLine {
                ok: true,
                number: 1,
                name: "a\\#b",
                directive: None
            })
        );
        assert_eq!(classify("ok to proceed").kind, Kind::Unknown);
        assert_eq!(classify("ok 1a").kind, Kind::Unknown);
        assert_eq!(classify("okay 1").kind, Kind::Unknown);
        assert_eq!(classify("ok 99999999999 big").kind, Kind::Unknown);
    }

    #[test]
    fn classify_hash_nesting() {
        let l = classify("# ok 1 sys_membarrier available");
        assert_eq!(l.pos, pos(1, 0));
        assert!(matches!(l.kind, Kind::Result(_)));
        assert_eq!(classify("# TAP version 13").pos, pos(1, 0));
        assert_eq!(classify("#     ok 2 x").pos, pos(1, 4));
        let l = classify("# # Totals: pass:2");
        assert_eq!((l.pos, l.kind), (pos(1, 0), Kind::Diagnostic));
        let l = classify("\t# Subtest: kunit-resource-test");
        assert_eq!(
            (l.pos, l.kind),
            (
                pos(0, 8),
                Kind::Subtest {
                    name: "kunit-resource-test"
                }
            )
        );
        let l = classify("    # example: initializing");
        assert_eq!((l.pos, l.kind), (pos(0, 4), Kind::Diagnostic));
        assert_eq!(classify("#").kind, Kind::Diagnostic);
        assert_eq!(classify("#foo").kind, Kind::Unknown);
        assert_eq!(classify(" foo bar \t#").kind, Kind::Unknown);
        assert_eq!(classify("   ").kind, Kind::Blank);
        let l = classify("# #   # Subtest: deep");
        assert_eq!((l.pos, l.kind), (pos(2, 2), Kind::Subtest { name: "deep" }));
    }

    #[test]
    fn tabs_expand_to_stops() {
        assert_eq!(classify(" \tok 1 a").pos, pos(0, 8));
        assert_eq!(classify("\t\tok 1 a").pos, pos(0, 16));
        assert_eq!(classify("  ok 1 a").pos, pos(0, 2));
    }

    #[test]
    fn crash_markers() {
        assert_eq!(
            crash_marker("Kernel panic - not syncing: Fatal exception"),
            Some(CrashMarker::Panic)
        );
        assert_eq!(
            crash_marker("\tKernel panic - not syncing: VFS"),
            Some(CrashMarker::Panic)
        );
        assert_eq!(
            crash_marker("BUG: kernel NULL pointer dereference, address: 0"),
            Some(CrashMarker::Oops)
        );
        assert_eq!(
            crash_marker("Oops: 0000 [#1] PREEMPT SMP"),
            Some(CrashMarker::Oops)
        );
        assert_eq!(crash_marker("# BUG: this is a test message"), None);
        assert_eq!(crash_marker("WARNING: CPU: 0 PID: 1 at x.c:1"), None);
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("plain line"), "plain line");
        assert_eq!(redact("RIP: 0010:foo+0x1a/0x30"), "RIP: 0010:foo+0x1a/0x30");
        assert_eq!(redact("addr 0xffff888003c4b000."), "addr 0x….");
        assert_eq!(
            redact(" [<600214c5>] ? os_is_signal_stack+0x15/0x30"),
            " [<…>] ? os_is_signal_stack+0x15/0x30"
        );
        assert_eq!(
            redact("RAX: ffff888003c4b000 RBX: 0000000000000000"),
            "RAX: … RBX: …"
        );
        assert_eq!(redact("sha deadbeefdeadbeefzz"), "sha deadbeefdeadbeefzz");
        assert_eq!(redact("µ 0x12345678"), "µ 0x…");
    }

    #[test]
    fn dedent_relative_to_level() {
        assert_eq!(dedent("    # a: b", pos(0, 4)), "# a: b");
        assert_eq!(dedent("\t\t1 + 1 == 2", pos(0, 8)), "\t1 + 1 == 2");
        assert_eq!(dedent("# # Totals", pos(1, 0)), "# Totals");
        assert_eq!(dedent("unindented", pos(0, 4)), "unindented");
        assert_eq!(dedent("      ", pos(0, 4)), "  ");
    }

    #[test]
    fn unescaping() {
        assert_eq!(unescape("a\\#b\\\\c\\d"), "a#b\\c\\d");
        assert!(matches!(unescape("plain"), Cow::Borrowed(_)));
    }
}
