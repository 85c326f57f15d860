//! Cutting items out of a file and inserting item texts into one.

use crate::parse::directive;
use crate::{find_in, items, Error, Item, ItemKind};

/// Where [`insert`] puts the texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// At the end of the file, or before the closing `#endif` of an include
    /// guard that wraps the whole file.
    End,
    /// After the item that defines the symbol (with its annotations).
    After(String),
    /// Before the item that defines the symbol (and its leading comment).
    Before(String),
    /// After the only line whose text is this (trailing whitespace ignored).
    AfterLine(String),
    /// Before the only line whose text is this (trailing whitespace
    /// ignored); before its item's leading comment if it starts an item.
    BeforeLine(String),
}

/// Removes the items defining `symbols` from `src`.
///
/// Returns the new text and the removed item texts in source order, each
/// with its leading comment and annotations, exactly as they were in
/// `src`. Symbols naming the same item are cut once. The blank lines around
/// each hole are tidied (see the crate docs).
///
/// # Errors
///
/// The [`find`](crate::find) errors of the first symbol that does not
/// resolve to one item.
pub fn cut(src: &str, symbols: &[&str]) -> Result<(String, Vec<String>), Error> {
    let all = items(src);
    let mut chosen: Vec<&Item> = Vec::new();
    for s in symbols {
        let it = find_in(src, &all, s)?;
        if !chosen.iter().any(|c| c.span == it.span) {
            chosen.push(it);
        }
    }
    chosen.sort_by_key(|i| i.span.start);
    let texts = chosen
        .iter()
        .map(|i| src[i.span.clone()].to_string())
        .collect();
    let mut out = src.to_string();
    for it in chosen.iter().rev() {
        out = remove(&out, it.span.clone());
    }
    Ok((out, texts))
}

/// Inserts `texts` at `at` in `dst`, separated by exactly one blank line
/// and separated from the surrounding items by one blank line (or by the
/// file's existing gap next to `#if`/`#endif` lines, and none at the file's
/// start or end). Blank lines around each text are dropped.
///
/// # Errors
///
/// The [`find`](crate::find) errors for [`Anchor::After`] and
/// [`Anchor::Before`]; [`Error::LineNotFound`] or [`Error::LineAmbiguous`]
/// for the line anchors; [`Error::InsideItem`] when the insertion point is
/// not between two top-level items.
pub fn insert(dst: &str, texts: &[String], at: Anchor) -> Result<String, Error> {
    let mut dst = dst.to_string();
    if !dst.is_empty() && !dst.ends_with('\n') {
        dst.push('\n');
    }
    let all = items(&dst);
    let pos = match &at {
        Anchor::End => guard_endif(&dst, &all).map_or(dst.len(), |i| i.span.start),
        Anchor::After(s) => find_in(&dst, &all, s)?.span.end,
        Anchor::Before(s) => find_in(&dst, &all, s)?.span.start,
        Anchor::AfterLine(l) => {
            let r = find_line(&dst, l)?;
            r.end
        }
        Anchor::BeforeLine(l) => {
            let r = find_line(&dst, l)?;
            all.iter()
                .find(|i| i.decl_span.start == r.start)
                .map_or(r.start, |i| i.span.start)
        }
    };
    let at_line_start = pos == 0 || dst.as_bytes()[pos - 1] == b'\n';
    if !at_line_start || all.iter().any(|i| i.span.start < pos && pos < i.span.end) {
        return Err(Error::InsideItem {
            line: dst[..pos].matches('\n').count() + 1,
        });
    }
    let block: Vec<String> = texts.iter().map(|t| trim_blank_lines(t)).collect();
    let block = block.join("\n");
    Ok(splice(&dst[..pos], &block, &dst[pos..]))
}

/// The `#endif` closing an include guard that wraps the whole file.
fn guard_endif<'a>(src: &str, all: &'a [Item]) -> Option<&'a Item> {
    let sig: Vec<&Item> = all.iter().filter(|i| i.kind != ItemKind::Comment).collect();
    let dir = |i: &Item| directive(&src[i.decl_span.clone()]).to_string();
    let (first, second, last) = (sig.first()?, sig.get(1)?, sig.last()?);
    let opens = dir(first) == "ifndef"
        || (dir(first) == "if" && src[first.decl_span.clone()].contains("!defined"));
    if !opens || second.kind != ItemKind::Macro || dir(last) != "endif" {
        return None;
    }
    let mut depth = 0usize;
    for (n, i) in sig.iter().enumerate() {
        if i.kind != ItemKind::Preprocessor {
            continue;
        }
        match dir(i).as_str() {
            "if" | "ifdef" | "ifndef" => depth += 1,
            "endif" => {
                depth = depth.saturating_sub(1);
                if depth == 0 && n + 1 != sig.len() {
                    return None;
                }
            }
            _ => {}
        }
    }
    Some(last)
}

/// The byte range (newline included) of the only line equal to `line`.
fn find_line(src: &str, line: &str) -> Result<std::ops::Range<usize>, Error> {
    let want = line.trim_end();
    let mut hits = Vec::new();
    let mut start = 0;
    for (n, l) in src.split_inclusive('\n').enumerate() {
        if l.trim_end() == want {
            hits.push((n + 1, start..start + l.len()));
        }
        start += l.len();
    }
    match hits.len() {
        0 => Err(Error::LineNotFound { line: want.into() }),
        1 => Ok(hits.remove(0).1),
        _ => Err(Error::LineAmbiguous {
            line: want.into(),
            lines: hits.into_iter().map(|h| h.0).collect(),
        }),
    }
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Drops leading and trailing blank lines; the result ends with a newline.
fn trim_blank_lines(t: &str) -> String {
    let lines: Vec<&str> = t.lines().collect();
    let first = lines.iter().position(|l| !is_blank(l));
    let last = lines.iter().rposition(|l| !is_blank(l));
    match (first, last) {
        (Some(f), Some(l)) => {
            let mut s = lines[f..=l].join("\n");
            s.push('\n');
            s
        }
        _ => String::new(),
    }
}

/// Splits off the blank lines at the end of `s` (which ends at a line
/// start): the rest and how many there were.
fn strip_trailing_blank(mut s: &str) -> (&str, usize) {
    let mut k = 0;
    while let Some(body) = s.strip_suffix('\n') {
        let ls = body.rfind('\n').map_or(0, |p| p + 1);
        if !is_blank(&body[ls..]) {
            break;
        }
        s = &s[..ls];
        k += 1;
    }
    (s, k)
}

/// Splits off the blank lines at the start of `s`: the rest and how many
/// there were. Trailing whitespace without a newline counts as nothing.
fn strip_leading_blank(mut s: &str) -> (&str, usize) {
    let mut k = 0;
    loop {
        match s.find('\n') {
            Some(p) if is_blank(&s[..p]) => {
                s = &s[p + 1..];
                k += 1;
            }
            None if is_blank(s) => return ("", k),
            _ => return (s, k),
        }
    }
}

fn last_line(s: &str) -> &str {
    let body = s.strip_suffix('\n').unwrap_or(s);
    &body[body.rfind('\n').map_or(0, |p| p + 1)..]
}

fn first_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("")
}

/// A line after which a block of items starts.
fn is_opener(line: &str) -> bool {
    matches!(
        directive(line),
        "if" | "ifdef" | "ifndef" | "else" | "elif" | "elifdef" | "elifndef"
    ) || line.trim_end().ends_with('{')
}

/// A line before which a block of items ends.
fn is_closer(line: &str) -> bool {
    matches!(
        directive(line),
        "endif" | "else" | "elif" | "elifdef" | "elifndef"
    ) || line.trim_start().starts_with('}')
}

fn continues(line: &str) -> bool {
    line.trim_end_matches(['\r']).ends_with('\\')
}

/// Removes `span` from `s` and tidies the blank lines around the hole.
fn remove(s: &str, span: std::ops::Range<usize>) -> String {
    let (before, after) = (&s[..span.start], &s[span.end..]);
    let at_bol = before.is_empty() || before.ends_with('\n');
    let at_eol = after.is_empty() || s[..span.end].ends_with('\n');
    if !at_bol {
        // The item shared its first line with another one.
        let b = before.trim_end_matches([' ', '\t']);
        return if at_eol {
            format!("{b}\n{after}")
        } else {
            format!("{b} {}", after.trim_start_matches([' ', '\t']))
        };
    }
    if !at_eol {
        return format!("{before}{}", after.trim_start_matches([' ', '\t']));
    }
    let (b, k1) = strip_trailing_blank(before);
    let (a, k2) = strip_leading_blank(after);
    let (prev, next) = (last_line(b), first_line(a));
    let mut gap = k1.max(k2).min(1);
    if b.is_empty() || a.is_empty() {
        gap = 0;
    }
    if is_opener(prev) {
        gap = gap.min(k1);
    }
    if is_closer(next) {
        gap = gap.min(k2);
    }
    if is_opener(prev) && is_closer(next) {
        gap = 0;
    }
    if continues(prev) {
        gap = 1;
    }
    format!("{b}{}{a}", "\n".repeat(gap))
}

/// Joins `before`, `block` and `after` with the insertion gap rules.
fn splice(before: &str, block: &str, after: &str) -> String {
    let (b, k1) = strip_trailing_blank(before);
    let (a, k2) = strip_leading_blank(after);
    if block.is_empty() {
        return format!("{before}{after}");
    }
    let existing = (k1 + k2).min(1);
    let prev = last_line(b);
    let gap_before = if b.is_empty() {
        0
    } else if is_opener(prev) && !continues(prev) {
        existing
    } else {
        1
    };
    let gap_after = if continues(last_line(block)) {
        1
    } else if a.is_empty() {
        0
    } else if is_closer(first_line(a)) {
        existing
    } else {
        1
    };
    format!(
        "{b}{}{block}{}{a}",
        "\n".repeat(gap_before),
        "\n".repeat(gap_after)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut1(src: &str, sym: &str) -> String {
        cut(src, &[sym]).unwrap().0
    }

    #[test]
    fn cut_between_items_leaves_one_blank_line() {
        assert_eq!(
            cut1("int a;\n\nint b;\n\nint c;\n", "b"),
            "int a;\n\nint c;\n"
        );
        assert_eq!(
            cut1("int a;\n\n\nint b;\n\n\nint c;\n", "b"),
            "int a;\n\nint c;\n"
        );
    }

    #[test]
    fn cut_at_file_edges() {
        assert_eq!(cut1("int a;\n\nint b;\n", "a"), "int b;\n");
        assert_eq!(cut1("int a;\n\nint b;\n\n", "b"), "int a;\n");
        assert_eq!(cut1("int a;\n", "a"), "");
    }

    #[test]
    fn cut_in_a_group_of_adjacent_items() {
        let src = "#define A 1\n#define B 2\n#define C 3\n\nint x;\n";
        assert_eq!(cut1(src, "B"), "#define A 1\n#define C 3\n\nint x;\n");
        assert_eq!(cut1(src, "C"), "#define A 1\n#define B 2\n\nint x;\n");
        assert_eq!(cut1(src, "A"), "#define B 2\n#define C 3\n\nint x;\n");
    }

    #[test]
    fn cut_at_block_edges() {
        let src = "#ifdef X\nint a;\n\nint b;\n#endif\n";
        assert_eq!(cut1(src, "a"), "#ifdef X\nint b;\n#endif\n");
        assert_eq!(cut1(src, "b"), "#ifdef X\nint a;\n#endif\n");
        let spaced = "#ifdef X\n\nint a;\n\n#endif\n";
        assert_eq!(cut1(spaced, "a"), "#ifdef X\n#endif\n");
    }

    #[test]
    fn cut_keeps_the_blank_line_a_macro_continues_onto() {
        let src = "#define M(x) \\\n\tfoo(x) \\\n\nint a;\n#endif\n";
        assert_eq!(cut1(src, "a"), "#define M(x) \\\n\tfoo(x) \\\n\n#endif\n");
    }

    #[test]
    fn cut_item_sharing_a_line() {
        assert_eq!(cut1("int a; int b;\n", "b"), "int a;\n");
        assert_eq!(cut1("int a; int b;\n", "a"), "int b;\n");
    }

    #[test]
    fn cut_several_adjacent_items() {
        let src = "int a;\n\nint b;\n\nint c;\n\nint d;\n";
        let (rest, moved) = cut(src, &["c", "b"]).unwrap();
        assert_eq!(rest, "int a;\n\nint d;\n");
        assert_eq!(moved, vec!["int b;\n".to_string(), "int c;\n".to_string()]);
    }

    #[test]
    fn insert_at_end_and_before_guard() {
        let t = vec!["int x;\n".to_string(), "\n\nint y;\n\n".to_string()];
        assert_eq!(
            insert("int a;\n\n", &t, Anchor::End).unwrap(),
            "int a;\n\nint x;\n\nint y;\n"
        );
        assert_eq!(insert("", &t, Anchor::End).unwrap(), "int x;\n\nint y;\n");
        let h = "#ifndef A_H\n#define A_H\n#ifdef X\nint a;\n#endif\n#endif\n";
        assert_eq!(
            insert(h, &t[..1], Anchor::End).unwrap(),
            "#ifndef A_H\n#define A_H\n#ifdef X\nint a;\n#endif\n\nint x;\n#endif\n"
        );
        // Not a guard: the first #ifndef closes early.
        let h2 = "#ifndef A\n#define A 1\n#endif\nint a;\n#ifdef B\n#endif\n";
        assert!(insert(h2, &t[..1], Anchor::End)
            .unwrap()
            .ends_with("#endif\n\nint x;\n"));
    }

    #[test]
    fn insert_relative_to_items_and_lines() {
        let src = "#include <a.h>\n#include <b.h>\n\nint a;\n\nint b;\n";
        let t = vec!["int x;\n".to_string()];
        assert_eq!(
            insert(src, &t, Anchor::After("a".into())).unwrap(),
            "#include <a.h>\n#include <b.h>\n\nint a;\n\nint x;\n\nint b;\n"
        );
        assert_eq!(
            insert(src, &t, Anchor::Before("a".into())).unwrap(),
            "#include <a.h>\n#include <b.h>\n\nint x;\n\nint a;\n\nint b;\n"
        );
        assert_eq!(
            insert(src, &t, Anchor::AfterLine("#include <b.h>".into())).unwrap(),
            "#include <a.h>\n#include <b.h>\n\nint x;\n\nint a;\n\nint b;\n"
        );
        assert_eq!(
            insert(src, &t, Anchor::BeforeLine("int b;".into())).unwrap(),
            "#include <a.h>\n#include <b.h>\n\nint a;\n\nint x;\n\nint b;\n"
        );
    }

    #[test]
    fn insert_after_opener_keeps_the_tight_gap() {
        let src = "#ifdef X\nint a;\n#endif\n";
        let t = vec!["int x;\n".to_string()];
        assert_eq!(
            insert(src, &t, Anchor::AfterLine("#ifdef X".into())).unwrap(),
            "#ifdef X\nint x;\n\nint a;\n#endif\n"
        );
        assert_eq!(
            insert(src, &t, Anchor::After("a".into())).unwrap(),
            "#ifdef X\nint a;\n\nint x;\n#endif\n"
        );
    }

    #[test]
    fn insert_errors() {
        let src = "/* c */\nint a;\nint f(void)\n{\n\treturn 0;\n}\n";
        let t = vec!["int x;\n".to_string()];
        assert_eq!(
            insert(src, &t, Anchor::AfterLine("{".into())).unwrap_err(),
            Error::InsideItem { line: 5 }
        );
        assert_eq!(
            insert(src, &t, Anchor::AfterLine("nope".into())).unwrap_err(),
            Error::LineNotFound {
                line: "nope".into()
            }
        );
        assert!(matches!(
            insert(src, &t, Anchor::After("nope".into())),
            Err(Error::NotFound { .. })
        ));
        // A line that starts an item with a comment inserts before the comment.
        assert_eq!(
            insert(src, &t, Anchor::BeforeLine("int a;".into())).unwrap(),
            "int x;\n\n/* c */\nint a;\nint f(void)\n{\n\treturn 0;\n}\n"
        );
    }

    #[test]
    fn insert_macro_ending_in_continuation_at_end_keeps_a_blank_line() {
        let t = vec!["#define M \\\n\tx \\\n\n".to_string()];
        assert_eq!(
            insert("int a;\n", &t, Anchor::End).unwrap(),
            "int a;\n\n#define M \\\n\tx \\\n\n"
        );
    }
}
