//! Finds the exact extent of named top-level C items and moves them
//! between files, so a patch series can move upstream code mechanically
//! instead of carrying copies of it.
//!
//! Everything here is a pure function over `&str`: [`items`] splits a C
//! file into top-level items, [`find`] looks one up by name, [`cut`] removes
//! items and tidies the blank lines around the hole, [`insert`] puts item
//! texts at an [`Anchor`], and [`drop_static`] / [`prototype_of`] adapt a
//! moved function for its new home.
//!
//! ```
//! use kmm_csym::{cut, insert, prototype_of, Anchor};
//!
//! let c = "\
//! static int a;
//!
//! /* Returns a. */
//! int get_a(void)
//! {
//! \treturn a;
//! }
//! EXPORT_SYMBOL_GPL(get_a);
//!
//! static int b;
//! ";
//! let (rest, moved) = cut(c, &["get_a"])?;
//! assert_eq!(rest, "static int a;\n\nstatic int b;\n");
//! assert!(moved[0].starts_with("/* Returns a. */\n") && moved[0].ends_with("EXPORT_SYMBOL_GPL(get_a);\n"));
//!
//! let h = "#ifndef __A_H__\n#define __A_H__\n\nint get_b(void);\n\n#endif /* __A_H__ */\n";
//! let h = insert(h, &[prototype_of(&moved[0])?], Anchor::End)?;
//! assert_eq!(
//!     h,
//!     "#ifndef __A_H__\n#define __A_H__\n\nint get_b(void);\n\nint get_a(void);\n\n#endif /* __A_H__ */\n"
//! );
//! # Ok::<(), kmm_csym::Error>(())
//! ```
//!
//! # Rules
//!
//! - **Items.** A `;` at brace depth 0 ends a declaration; the `}` closing a
//!   function body ends a function; every preprocessor line at depth 0 is its
//!   own item, while those inside a body or initializer belong to it. When
//!   both branches of an `#if`/`#else` open a brace, the first branch's depth
//!   wins. A macro call without `;` (`module_init(f)`) ends where the next
//!   column-0 line starts.
//! - **Comments.** A comment block (`/* */` or consecutive `//` lines) whose
//!   last line is directly above an item is part of that item's
//!   [`Item::span`]; one separated by a blank line is an
//!   [`ItemKind::Comment`] item of its own, and so is a comment holding the
//!   `SPDX-License-Identifier`. A comment starting on the line where an item
//!   ends belongs to that item.
//! - **Annotations.** `EXPORT_*(f)`, `NOKPROBE_SYMBOL(f)`,
//!   `ALLOW_ERROR_INJECTION(f, ...)`, `STACK_FRAME_NON_STANDARD(f)`,
//!   `module_param*(v, ...)`, `MODULE_PARM_DESC(v, ...)`, `module_init(f)`,
//!   `*_initcall(f)` and `__setup(s, f)` are part of the item declaring `f`
//!   when they are the very next item after it (blank lines allowed, no
//!   comment of their own). Elsewhere they are [`ItemKind::Other`].
//! - **Spans** are whole lines when the item is alone on its lines: from the
//!   start of its first line to after the newline of its last line. Blank
//!   lines around an item are never part of it, except the empty line that a
//!   trailing backslash continues a macro onto.
//! - **Macro function heads.** `SYSCALL_DEFINE2(name, ...) { ... }` is a
//!   [`ItemKind::Function`] named by its first argument, with
//!   [`Item::invocation`] set to the macro's name.
//! - **Blank lines.** [`cut`] leaves at most one blank line where an item was,
//!   none at the start or end of the file, and none after an opening
//!   `#if`/`#else` or before a closing `#endif`/`#else` unless the file had
//!   one there. [`insert`] separates items by exactly one blank line, keeping
//!   the existing (0 or 1) gap next to `#if`/`#endif` lines.

#![forbid(unsafe_code)]

mod edit;
mod lex;
mod parse;
mod transform;

use std::ops::Range;

pub use edit::{cut, insert, Anchor};
pub use transform::{drop_static, prototype_of, Transform};

/// What kind of top-level item an [`Item`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// A function definition with its body.
    Function,
    /// A function declaration without a body.
    Prototype,
    /// A `struct` definition (with its body).
    Struct,
    /// A `union` definition (with its body).
    Union,
    /// An `enum` definition (with its body).
    Enum,
    /// A `typedef`, including function-pointer typedefs.
    Typedef,
    /// A `#define`, continuation lines included.
    Macro,
    /// A variable definition, including `DEFINE_*(name)` invocations.
    Variable,
    /// An `extern` declaration or a forward `struct NAME;` declaration.
    Declaration,
    /// Any other preprocessor line (`#include`, `#ifdef`, ...).
    Preprocessor,
    /// A comment block not attached to an item.
    Comment,
    /// Anything else, such as `MODULE_LICENSE("GPL");` or an
    /// `EXPORT_SYMBOL` that does not follow its symbol.
    Other,
}

impl ItemKind {
    /// Whether this kind defines its names (as opposed to only declaring
    /// them); [`find`] prefers a definition over declarations.
    pub fn is_definition(self) -> bool {
        !matches!(
            self,
            ItemKind::Prototype
                | ItemKind::Declaration
                | ItemKind::Preprocessor
                | ItemKind::Comment
                | ItemKind::Other
        )
    }
}

/// One top-level item of a C file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// What the item is.
    pub kind: ItemKind,
    /// The symbols it declares: `foo` for functions, macros, typedefs and
    /// variables, `struct foo` / `union foo` / `enum foo` for tagged
    /// definitions, enumerators of an anonymous enum.
    pub names: Vec<String>,
    /// Byte range of the whole item: attached leading comment, the item,
    /// attached annotations, up to and including its last newline.
    pub span: Range<usize>,
    /// Like [`Item::span`] but starting at the declaration itself, after the
    /// attached leading comment.
    pub decl_span: Range<usize>,
    /// 1-based line where the declaration (not its comment) starts.
    pub line: usize,
    /// For an item written as a macro invocation (`DEFINE_MUTEX(x);`,
    /// `SYSCALL_DEFINE1(x, ...) {...}`, `MODULE_LICENSE("GPL");`), the
    /// invoked macro's name.
    pub invocation: Option<String>,
}

/// Errors of symbol lookup, cutting, inserting and transforming.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No top-level item declares the symbol.
    #[error("symbol `{symbol}` not found{}", suggest(suggestions))]
    NotFound {
        /// The symbol looked for.
        symbol: String,
        /// Declared names close to it, best first.
        suggestions: Vec<String>,
    },
    /// More than one top-level item defines the symbol.
    #[error("symbol `{symbol}` is ambiguous: defined on lines {}", join(lines))]
    Ambiguous {
        /// The symbol looked for.
        symbol: String,
        /// The lines where its definitions start.
        lines: Vec<usize>,
    },
    /// No line of the file is the anchor line.
    #[error("anchor line `{line}` not found")]
    LineNotFound {
        /// The anchor line.
        line: String,
    },
    /// Several lines of the file are the anchor line.
    #[error("anchor line `{line}` is ambiguous: found on lines {}", join(lines))]
    LineAmbiguous {
        /// The anchor line.
        line: String,
        /// Where it occurs.
        lines: Vec<usize>,
    },
    /// The anchor points inside a top-level item, not between two.
    #[error("anchor at line {line} is inside a top-level item")]
    InsideItem {
        /// The 1-based line of the insertion point.
        line: usize,
    },
    /// The text is not a plain function definition.
    #[error("not a plain function definition: {what}")]
    NotAFunction {
        /// What was found instead.
        what: String,
    },
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", s.join(", "))
    }
}

fn join(lines: &[usize]) -> String {
    lines
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Splits a C file into its top-level items, in source order.
///
/// Never fails: unknown constructs become [`ItemKind::Other`]. The spans
/// are disjoint and ordered, and everything between them is whitespace.
pub fn items(src: &str) -> Vec<Item> {
    parse::items(src)
}

/// Finds the item that defines `symbol`: a plain name (function, macro,
/// typedef, variable, enumerator) or `struct NAME` / `union NAME` /
/// `enum NAME`.
///
/// When several items declare the name, the single definition among them
/// wins (so a function beats its forward prototype), and among several
/// variable definitions the single one with an initializer wins (so
/// `static const struct file_operations fops = {...};` beats its tentative
/// definition `static const struct file_operations fops;`).
///
/// # Errors
///
/// [`Error::NotFound`] with close names as suggestions, or
/// [`Error::Ambiguous`] when several items define it (for example one per
/// `#ifdef` branch; use [`find_all`] to see them all).
pub fn find(src: &str, symbol: &str) -> Result<Item, Error> {
    find_in(src, &items(src), symbol).cloned()
}

/// Every item that declares `symbol`, in source order.
pub fn find_all(src: &str, symbol: &str) -> Vec<Item> {
    let sym = normalise_symbol(symbol);
    items(src)
        .into_iter()
        .filter(|i| i.names.contains(&sym))
        .collect()
}

fn normalise_symbol(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn find_in<'a>(src: &str, all: &'a [Item], symbol: &str) -> Result<&'a Item, Error> {
    let sym = normalise_symbol(symbol);
    let hits: Vec<&Item> = all.iter().filter(|i| i.names.contains(&sym)).collect();
    match hits.as_slice() {
        [] => Err(Error::NotFound {
            suggestions: suggestions(all, &sym),
            symbol: sym,
        }),
        [one] => Ok(one),
        _ => {
            let defs: Vec<&Item> = hits
                .iter()
                .copied()
                .filter(|i| i.kind.is_definition())
                .collect();
            if let [one] = defs.as_slice() {
                return Ok(one);
            }
            // `static struct x y;` ahead of `static struct x y = {...};`.
            if defs.iter().all(|i| i.kind == ItemKind::Variable) {
                let init: Vec<&Item> = defs
                    .iter()
                    .copied()
                    .filter(|i| parse::has_initializer(&src[i.decl_span.clone()]))
                    .collect();
                if let [one] = init.as_slice() {
                    return Ok(one);
                }
            }
            let shown = if defs.is_empty() { &hits } else { &defs };
            Err(Error::Ambiguous {
                symbol: sym,
                lines: shown.iter().map(|i| i.line).collect(),
            })
        }
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Up to three declared names close to `sym`.
fn suggestions(all: &[Item], sym: &str) -> Vec<String> {
    let limit = (sym.len() / 3).max(2);
    let mut scored: Vec<(usize, &String)> = all
        .iter()
        .flat_map(|i| &i.names)
        .filter_map(|n| {
            let d = if n.contains(sym) || sym.contains(n.as_str()) {
                n.len().abs_diff(sym.len())
            } else {
                levenshtein(sym, n)
            };
            (d <= limit || n.contains(sym)).then_some((d, n))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, n)| n.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "\
static int foo(void);

#ifdef CONFIG_X
static int foo(void)
{
\treturn 1;
}
#else
static int foo(void)
{
\treturn 0;
}
#endif

struct kvm_hva_range {
\tint a;
};

static int kvm_handle(void)
{
\treturn foo();
}
";

    #[test]
    fn find_reports_ambiguity_with_lines() {
        let e = find(SRC, "foo").unwrap_err();
        assert_eq!(
            e,
            Error::Ambiguous {
                symbol: "foo".into(),
                lines: vec![4, 9]
            }
        );
        assert_eq!(
            e.to_string(),
            "symbol `foo` is ambiguous: defined on lines 4, 9"
        );
        assert_eq!(find_all(SRC, "foo").len(), 3);
    }

    #[test]
    fn find_prefers_the_definition_over_a_prototype() {
        let src = "static int bar(void);\n\nstatic int bar(void)\n{\n\treturn 0;\n}\n";
        assert_eq!(find(src, "bar").unwrap().line, 3);
    }

    #[test]
    fn find_prefers_the_initialized_variable() {
        let src = "static struct ops o;\n\nstatic int f(void) { return 0; }\n\nstatic struct ops o = {\n\t.f = f,\n};\n";
        assert_eq!(find(src, "o").unwrap().line, 5);
        let e = find("int a;\nint a;\n", "a").unwrap_err();
        assert!(matches!(e, Error::Ambiguous { .. }));
    }

    #[test]
    fn find_struct_by_tag_with_free_spacing() {
        let it = find(SRC, "struct   kvm_hva_range").unwrap();
        assert_eq!(it.kind, ItemKind::Struct);
        assert_eq!(it.line, 15);
    }

    #[test]
    fn not_found_suggests_close_names() {
        let e = find(SRC, "kvm_handel").unwrap_err();
        assert_eq!(
            e.to_string(),
            "symbol `kvm_handel` not found (did you mean kvm_handle?)"
        );
        let Error::NotFound { suggestions, .. } = find(SRC, "kvm_hva_range").unwrap_err() else {
            panic!("expected NotFound");
        };
        assert_eq!(suggestions, vec!["struct kvm_hva_range".to_string()]);
    }

    #[test]
    fn levenshtein_distances() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("abc", "abc"), 0);
    }
}
