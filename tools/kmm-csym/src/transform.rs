//! Adapting a moved item for its new file.

use std::ops::Range;

use crate::lex::{lex, TokKind};
use crate::parse::head;
use crate::{items, Error, ItemKind};

/// A change the generator can ask for when moving an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Remove the `static` storage class ([`drop_static`]).
    DropStatic,
    /// Replace a function definition by its prototype ([`prototype_of`]).
    Prototype,
}

impl Transform {
    /// Applies the transformation to one item's text.
    ///
    /// # Errors
    ///
    /// [`Error::NotAFunction`] from [`prototype_of`].
    pub fn apply(self, item_text: &str) -> Result<String, Error> {
        match self {
            Transform::DropStatic => Ok(drop_static(item_text)),
            Transform::Prototype => prototype_of(item_text),
        }
    }
}

/// Removes the `static` storage class from the declaration in `item_text`
/// (the first item that is not a comment) so other files can use it.
///
/// Continuation lines of the parameter list that were aligned with its
/// opening parenthesis are realigned. Text without `static` is returned
/// unchanged.
pub fn drop_static(item_text: &str) -> String {
    let Some((_, h)) = decl_head(item_text) else {
        return item_text.to_string();
    };
    let Some(&(_, s, e)) = h.specifiers.iter().find(|w| w.0 == "static") else {
        return item_text.to_string();
    };
    edit_realign(
        item_text,
        &whole_lines(item_text, vec![word_range(item_text, s, e)]),
        h.params,
    )
}

/// The prototype of the function defined in `item_text`: its declaration
/// up to the body, without `static`, `inline` or `__always_inline`, with
/// `;` and a newline appended. The signature keeps its line breaks, and
/// continuation lines aligned with the parameter list's `(` stay aligned.
/// Leading comments and attached `EXPORT_SYMBOL`s are not included.
///
/// # Errors
///
/// [`Error::NotAFunction`] when the first item of `item_text` is not a
/// function definition with an ordinary declarator (a macro head such as
/// `SYSCALL_DEFINE1(...)` has no prototype to write).
pub fn prototype_of(item_text: &str) -> Result<String, Error> {
    let not = |what: String| Error::NotAFunction { what };
    let all = items(item_text);
    let it = all
        .iter()
        .find(|i| i.kind != ItemKind::Comment)
        .ok_or_else(|| not("no item".into()))?;
    if it.kind != ItemKind::Function {
        return Err(not(format!("{:?} {}", it.kind, it.names.join(", "))));
    }
    if let Some(m) = &it.invocation {
        return Err(not(format!("function defined by macro {m}")));
    }
    let (decl, h) = decl_head(item_text).ok_or_else(|| not("no declaration".into()))?;
    let end = h.head_end.ok_or_else(|| not("no function body".into()))?;
    let start = decl.start;
    let text = &item_text[start..end];
    let removals: Vec<Range<usize>> = h
        .specifiers
        .iter()
        .filter(|w| {
            matches!(
                w.0.as_str(),
                "static" | "inline" | "__inline" | "__inline__" | "__always_inline"
            )
        })
        .map(|&(_, s, e)| word_range(text, s - start, e - start))
        .collect();
    let params = h.params.map(|(o, c)| (o - start, c - start));
    let mut proto = edit_realign(text, &whole_lines(text, removals), params);
    proto.push_str(";\n");
    Ok(proto)
}

/// The first non-comment item's byte range (first token to last token)
/// and its head analysis.
fn decl_head(text: &str) -> Option<(Range<usize>, crate::parse::Head)> {
    let it = items(text)
        .into_iter()
        .find(|i| i.kind != ItemKind::Comment)?;
    let toks: Vec<_> = lex(text)
        .into_iter()
        .filter(|t| it.decl_span.start <= t.start && t.end <= it.decl_span.end)
        .collect();
    let first = toks.iter().find(|t| t.kind != TokKind::Comment)?;
    let last = toks.last()?;
    Some((first.start..last.end, head(text, &toks)))
}

/// The range of the word `s..e` and the blanks after it.
fn word_range(text: &str, s: usize, e: usize) -> Range<usize> {
    let rest = &text[e..];
    s..e + (rest.len() - rest.trim_start_matches([' ', '\t']).len())
}

/// Sorts and merges `ranges`; a merged range that leaves its line empty
/// takes the line's newline too.
fn whole_lines(text: &str, mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    for r in &mut out {
        let alone_before = text[..r.start]
            .rsplit('\n')
            .next()
            .is_some_and(|l| l.trim().is_empty());
        if alone_before && text[r.end..].starts_with('\n') {
            r.end += 1;
        }
    }
    out
}

/// The visual column (tabs of 8) of byte `pos` in its line.
fn column(text: &str, pos: usize) -> usize {
    let ls = text[..pos].rfind('\n').map_or(0, |p| p + 1);
    text[ls..pos]
        .chars()
        .fold(0, |c, ch| if ch == '\t' { (c / 8 + 1) * 8 } else { c + 1 })
}

fn indent(col: usize) -> String {
    format!("{}{}", "\t".repeat(col / 8), " ".repeat(col % 8))
}

/// Removes `removals` (sorted, disjoint) from `text`; then re-indents the
/// lines of the parameter list `params` (byte offsets of `(` and `)` in
/// `text`) that were aligned with the character after its `(`.
fn edit_realign(text: &str, removals: &[Range<usize>], params: Option<(usize, usize)>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in removals {
        out.push_str(&text[at..r.start]);
        at = r.end;
    }
    out.push_str(&text[at..]);
    let Some((open, close)) = params else {
        return out;
    };
    let shift = |p: usize| {
        p - removals
            .iter()
            .filter(|r| r.end <= p)
            .map(|r| r.len())
            .sum::<usize>()
    };
    let old_col = column(text, open + 1);
    let (new_open, new_close) = (shift(open), shift(close));
    let new_col = column(&out, new_open + 1);
    if old_col == new_col {
        return out;
    }
    let mut res = String::with_capacity(out.len());
    let mut pos = 0;
    for line in out.split_inclusive('\n') {
        let body = line.trim_start_matches([' ', '\t']);
        let lead = &line[..line.len() - body.len()];
        if pos > new_open && pos <= new_close && column(lead, lead.len()) == old_col {
            res.push_str(&indent(new_col));
            res.push_str(body);
        } else {
            res.push_str(line);
        }
        pos += line.len();
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    const HANDLE: &str = "\
/* Comment. */
static __always_inline int __kvm_handle_hva_range(struct kvm *kvm,
\t\t\t\t\t\t  const struct kvm_hva_range *range)
{
\treturn 0;
}
";

    #[test]
    fn prototype_realigns_continuation_lines() {
        assert_eq!(
            prototype_of(HANDLE).unwrap(),
            "int __kvm_handle_hva_range(struct kvm *kvm,\n\t\t\t   const struct kvm_hva_range *range);\n"
        );
    }

    #[test]
    fn drop_static_realigns_and_keeps_the_rest() {
        assert_eq!(
            drop_static(HANDLE),
            "/* Comment. */\n__always_inline int __kvm_handle_hva_range(struct kvm *kvm,\n\t\t\t\t\t   const struct kvm_hva_range *range)\n{\n\treturn 0;\n}\n"
        );
        assert_eq!(drop_static("int x;\n"), "int x;\n");
        assert_eq!(drop_static("static int x = 3;\n"), "int x = 3;\n");
        assert_eq!(
            Transform::DropStatic
                .apply("static DEFINE_MUTEX(kvm_lock);\n")
                .unwrap(),
            "DEFINE_MUTEX(kvm_lock);\n"
        );
    }

    #[test]
    fn prototype_of_simple_shapes() {
        assert_eq!(
            prototype_of("static inline bool f(void) { return true; }\n").unwrap(),
            "bool f(void);\n"
        );
        assert_eq!(
            prototype_of("static int\nfoo(int a)\n{\n}\nEXPORT_SYMBOL(foo);\n").unwrap(),
            "int\nfoo(int a);\n"
        );
        assert_eq!(
            prototype_of("static inline\nint g(int a) __must_hold(&l)\n{\n}\n").unwrap(),
            "int g(int a) __must_hold(&l);\n"
        );
        // Continuation lines not aligned with the parenthesis are kept.
        assert_eq!(
            prototype_of("static void h(int a,\n\t\tint b)\n{\n}\n").unwrap(),
            "void h(int a,\n\t\tint b);\n"
        );
    }

    #[test]
    fn prototype_of_rejects_non_functions() {
        assert_eq!(
            prototype_of("struct s { int a; };\n").unwrap_err(),
            Error::NotAFunction {
                what: "Struct struct s".into()
            }
        );
        assert!(matches!(
            Transform::Prototype.apply("SYSCALL_DEFINE0(x)\n{\n}\n"),
            Err(Error::NotAFunction { .. })
        ));
    }
}
