//! Splits a C file into top-level items and names them.

use crate::lex::{lex, Lines, TokKind, Token};
use crate::{Item, ItemKind};

/// Storage classes, qualifiers and `typedef`: never a declared name.
const STORAGE: &[&str] = &[
    "static",
    "extern",
    "inline",
    "__inline",
    "__inline__",
    "register",
    "auto",
    "const",
    "volatile",
    "restrict",
    "__restrict",
    "__restrict__",
    "_Noreturn",
    "_Thread_local",
    "__thread",
    "__extension__",
    "typedef",
];

/// Builtin type keywords: a name after one of them is a declarator.
const TYPE_WORDS: &[&str] = &[
    "void",
    "char",
    "short",
    "int",
    "long",
    "float",
    "double",
    "signed",
    "unsigned",
    "__signed__",
    "_Bool",
    "bool",
    "_Complex",
    "__int128",
];

/// Kernel attribute macros used without arguments. They may follow the
/// declared name (`int x __read_mostly;`), so they are never names.
const WORD_ATTRS: &[&str] = &[
    "__always_inline",
    "noinline",
    "__noinline",
    "__init",
    "__exit",
    "__initdata",
    "__initconst",
    "__exitdata",
    "__ref",
    "__refdata",
    "__refconst",
    "__read_mostly",
    "__ro_after_init",
    "__weak",
    "__visible",
    "__used",
    "__maybe_unused",
    "__always_unused",
    "__must_check",
    "__cold",
    "__hot",
    "__pure",
    "__noreturn",
    "__packed",
    "__percpu",
    "__rcu",
    "__user",
    "__iomem",
    "__force",
    "__bitwise",
    "__nocast",
    "__kprobes",
    "notrace",
    "noinstr",
    "__noinstr",
    "__flatten",
    "__latent_entropy",
    "__randomize_layout",
    "__no_randomize_layout",
    "__attribute_const__",
    "__malloc",
    "__cacheline_aligned",
    "__cacheline_aligned_in_smp",
    "____cacheline_aligned",
    "____cacheline_aligned_in_smp",
    "__page_aligned_data",
    "__page_aligned_bss",
    "__nosavedata",
    "__meminit",
    "__meminitdata",
    "__meminitconst",
    "__init_or_module",
    "__initdata_or_module",
    "__naked",
    "__nocfi",
    "__no_kcsan",
    "__noclone",
    "__gnu_inline",
    "__inline_maybe_unused",
    "__safe",
    "__private",
    "__designated_init",
    "__sched",
    "__lockfunc",
    "__irq_entry",
    "__softirq_entry",
    "__cpuidle",
    "__init_memblock",
    "asmlinkage",
    "__nostackprotector",
    "__no_profile",
    "__fix_address",
];

/// Attribute-like keywords and macros taking a parenthesised argument:
/// the group is skipped and the word is never a name.
const PAREN_ATTRS: &[&str] = &[
    "__attribute__",
    "__attribute",
    "__declspec",
    "__aligned",
    "__section",
    "__printf",
    "__scanf",
    "__must_hold",
    "__acquires",
    "__releases",
    "__cond_acquires",
    "__cond_releases",
    "__alloc_size",
    "__realloc_size",
    "__assume_aligned",
    "__counted_by",
    "__diag_ignore",
    "__cleanup",
    "__free",
    "__no_sanitize_address",
    "asm",
    "__asm__",
    "__asm",
    "_Alignas",
    "alignas",
    "sizeof",
    "_Atomic",
];

/// Type-producing keywords taking a parenthesised argument.
const TYPEOF: &[&str] = &["typeof", "__typeof__", "__typeof", "typeof_unqual"];

/// Macros that annotate a symbol defined just before them
/// (`EXPORT_SYMBOL_GPL(f)`, `module_param(v, uint, 0644)`,
/// `module_init(f)`); they are attached to that item.
fn is_annotation(name: &str) -> bool {
    name.starts_with("EXPORT_")
        || name.starts_with("module_param")
        || name.ends_with("_initcall")
        || name.ends_with("_initcall_sync")
        || matches!(
            name,
            "NOKPROBE_SYMBOL"
                | "ALLOW_ERROR_INJECTION"
                | "STACK_FRAME_NON_STANDARD"
                | "STACK_FRAME_NON_STANDARD_FP"
                | "MODULE_PARM_DESC"
                | "__MODULE_PARM_TYPE"
                | "module_init"
                | "module_exit"
                | "__setup"
                | "early_param"
                | "__initcall"
                | "__exitcall"
        )
}

/// Macros whose invocation defines an object named by an argument.
fn is_definer(name: &str) -> bool {
    name.starts_with("DEFINE_")
        || name.starts_with("DECLARE_")
        || name.starts_with("__DEFINE_")
        || matches!(name, "LIST_HEAD" | "HLIST_HEAD" | "LLIST_HEAD")
}

fn is_skip_word(w: &str) -> bool {
    STORAGE.contains(&w) || WORD_ATTRS.contains(&w)
}

/// The significant tokens of one item (no comments, no preprocessor lines),
/// with matching brackets.
struct Sig<'a> {
    src: &'a str,
    toks: Vec<Token>,
    mate: Vec<Option<usize>>,
}

impl<'a> Sig<'a> {
    fn new(src: &'a str, toks: &[Token]) -> Self {
        let toks: Vec<Token> = toks
            .iter()
            .filter(|t| !matches!(t.kind, TokKind::Comment | TokKind::Preproc))
            .copied()
            .collect();
        let mut mate = vec![None; toks.len()];
        let mut stack = Vec::new();
        for (i, t) in toks.iter().enumerate() {
            if t.kind != TokKind::Punct {
                continue;
            }
            match &src[t.start..t.end] {
                "(" | "[" | "{" => stack.push(i),
                ")" | "]" | "}" => {
                    if let Some(o) = stack.pop() {
                        mate[o] = Some(i);
                        mate[i] = Some(o);
                    }
                }
                _ => {}
            }
        }
        Sig { src, toks, mate }
    }

    fn len(&self) -> usize {
        self.toks.len()
    }

    fn text(&self, i: usize) -> &'a str {
        self.toks.get(i).map_or("", |t| &self.src[t.start..t.end])
    }

    fn is(&self, i: usize, s: &str) -> bool {
        self.toks
            .get(i)
            .is_some_and(|t| t.kind == TokKind::Punct && self.text(i) == s)
    }

    fn ident(&self, i: usize) -> bool {
        self.toks.get(i).is_some_and(|t| t.kind == TokKind::Ident)
    }

    /// Index after the group opened at `i`, or `to` when it is unclosed.
    fn after_group(&self, i: usize, to: usize) -> usize {
        self.mate[i].map_or(to, |m| m + 1)
    }

    /// Skips attribute words and parenthesised attributes from `i`.
    fn skip_attrs(&self, mut i: usize, to: usize) -> usize {
        while i < to && self.ident(i) {
            let w = self.text(i);
            if is_skip_word(w) {
                i += 1;
            } else if PAREN_ATTRS.contains(&w) && self.is(i + 1, "(") {
                i = self.after_group(i + 1, to);
            } else {
                break;
            }
        }
        i
    }

    /// Index of the next `,` or `;` at this depth, or `to`.
    fn next_sep(&self, mut i: usize, to: usize) -> usize {
        while i < to {
            if self.is(i, "(") || self.is(i, "[") || self.is(i, "{") {
                i = self.after_group(i, to);
            } else if self.is(i, ",") || self.is(i, ";") {
                return i;
            } else {
                i += 1;
            }
        }
        to
    }
}

/// What walking one declarator found.
#[derive(Debug, Default)]
struct Declarator {
    /// Sig index of the declared name.
    name: Option<usize>,
    /// Sig indices of the parameter list's parentheses, for a function.
    params: Option<(usize, usize)>,
    /// The name sat inside a parenthesised declarator such as `(*name)`.
    nested: bool,
    /// A type was seen before the name (so `NAME(...)` is not a macro call).
    type_before: bool,
    /// Where the walk stopped.
    stop: usize,
}

/// Walks one declarator in `sig[from..to]` (specifiers included) and
/// returns the declared name: the identifier just before a parameter list
/// or the end of the declarator, skipping keywords, attributes and tags.
fn walk(sig: &Sig<'_>, from: usize, to: usize) -> Declarator {
    let mut cand: Option<usize> = None;
    let mut type_before = false;
    let mut i = from;
    while i < to {
        let x = sig.text(i);
        if sig.ident(i) {
            if TYPE_WORDS.contains(&x) {
                type_before = true;
                cand = None;
                i += 1;
            } else if is_skip_word(x) {
                i += 1;
            } else if PAREN_ATTRS.contains(&x) || TYPEOF.contains(&x) {
                type_before |= TYPEOF.contains(&x);
                i = if sig.is(i + 1, "(") {
                    sig.after_group(i + 1, to)
                } else {
                    i + 1
                };
            } else if matches!(x, "struct" | "union" | "enum") {
                type_before = true;
                cand = None;
                i = sig.skip_attrs(i + 1, to);
                if sig.ident(i) {
                    i = sig.skip_attrs(i + 1, to);
                }
                if sig.is(i, "{") {
                    i = sig.after_group(i, to);
                }
            } else {
                type_before |= cand.is_some();
                cand = Some(i);
                i += 1;
            }
            continue;
        }
        match x {
            "(" => {
                let close = sig.mate[i].unwrap_or(to.saturating_sub(1)).min(to);
                let inner_ptr = sig.is(i + 1, "*") || sig.is(i + 1, "^");
                if cand == Some(i.wrapping_sub(1)) && !inner_ptr {
                    return Declarator {
                        name: cand,
                        params: Some((i, close)),
                        nested: false,
                        type_before,
                        stop: close + 1,
                    };
                }
                let inner = walk(sig, i + 1, close);
                return Declarator {
                    name: inner.name,
                    params: inner.params,
                    nested: true,
                    type_before: type_before || cand.is_some(),
                    stop: close + 1,
                };
            }
            "*" | "&" => {
                type_before |= cand.is_some();
                cand = None;
                i += 1;
            }
            "[" | "=" | ";" | "," | "{" | ":" => {
                return Declarator {
                    name: cand,
                    type_before,
                    stop: i,
                    ..Declarator::default()
                };
            }
            _ => i += 1,
        }
    }
    Declarator {
        name: cand,
        type_before,
        stop: to,
        ..Declarator::default()
    }
}

/// Names declared by every declarator in `sig[from..to]`.
fn declarator_names(sig: &Sig<'_>, from: usize, to: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = from;
    while i < to {
        let d = walk(sig, i, to);
        if let Some(n) = d.name {
            out.push(sig.text(n).to_string());
        }
        let sep = sig.next_sep(d.stop, to);
        if sig.is(sep, ",") {
            i = sep + 1;
        } else {
            break;
        }
    }
    out
}

/// Sig index ranges of the comma-separated arguments inside `(open, close)`.
fn args(sig: &Sig<'_>, open: usize, close: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = open + 1;
    while i < close {
        let sep = sig.next_sep(i, close);
        out.push((i, sep));
        i = sep + 1;
    }
    out
}

/// The argument's text when it is one plain identifier.
fn sole_ident(sig: &Sig<'_>, (a, b): (usize, usize)) -> Option<String> {
    let x = sig.text(a);
    (b == a + 1 && sig.ident(a) && !TYPE_WORDS.contains(&x) && !STORAGE.contains(&x))
        .then(|| x.to_string())
}

/// A `struct|union|enum [tag] [{...}]` head after storage classes.
struct Aggregate {
    keyword: usize,
    tag: Option<usize>,
    body: Option<(usize, usize)>,
}

fn aggregate(sig: &Sig<'_>) -> Option<Aggregate> {
    let n = sig.len();
    let i = sig.skip_attrs(0, n);
    if !matches!(sig.text(i), "struct" | "union" | "enum") || !sig.ident(i) {
        return None;
    }
    let keyword = i;
    let mut i = sig.skip_attrs(i + 1, n);
    let tag = sig.ident(i).then_some(i);
    if tag.is_some() {
        i = sig.skip_attrs(i + 1, n);
    }
    let body = if sig.is(i, "{") {
        sig.mate[i].map(|c| (i, c))
    } else {
        None
    };
    Some(Aggregate { keyword, tag, body })
}

/// What an item is and what it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Class {
    pub(crate) kind: ItemKind,
    pub(crate) names: Vec<String>,
    pub(crate) invocation: Option<String>,
    /// For `EXPORT_SYMBOL(x);` and friends: the identifiers among the
    /// arguments, one of which may be the annotated symbol.
    pub(crate) annotates: Vec<String>,
}

impl Class {
    fn new(kind: ItemKind, names: Vec<String>) -> Self {
        Class {
            kind,
            names,
            invocation: None,
            annotates: Vec::new(),
        }
    }
}

/// The first word of a preprocessor line (`define`, `ifdef`, ...).
pub(crate) fn directive(line: &str) -> &str {
    let rest = line.trim_start().strip_prefix('#').unwrap_or("");
    let rest = rest.trim_start_matches([' ', '\t']);
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(rest.len());
    &rest[..end]
}

fn classify_preproc(text: &str) -> Class {
    if directive(text) != "define" {
        return Class::new(ItemKind::Preprocessor, Vec::new());
    }
    let rest = text.trim_start().trim_start_matches('#').trim_start();
    let rest = rest.trim_start_matches("define");
    let rest = rest.trim_start_matches([' ', '\t', '\\', '\n']);
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(rest.len());
    let names = if end > 0 {
        vec![rest[..end].to_string()]
    } else {
        Vec::new()
    };
    Class::new(ItemKind::Macro, names)
}

fn classify_decl(src: &str, toks: &[Token], function: bool) -> Class {
    let sig = Sig::new(src, toks);
    let n = sig.len();
    if n == 0 {
        return Class::new(ItemKind::Other, Vec::new());
    }
    if function {
        let d = walk(&sig, 0, n);
        let Some(name) = d.name else {
            return Class::new(ItemKind::Other, Vec::new());
        };
        let name = sig.text(name).to_string();
        if let (Some((open, close)), false, false) = (d.params, d.type_before, d.nested) {
            // A macro used as a function head: `SYSCALL_DEFINE1(name, ...)`.
            let first = args(&sig, open, close)
                .first()
                .and_then(|&a| sole_ident(&sig, a));
            let mut c = Class::new(ItemKind::Function, vec![first.unwrap_or(name.clone())]);
            c.invocation = Some(name);
            return c;
        }
        return Class::new(ItemKind::Function, vec![name]);
    }

    let head_end = (0..n)
        .find(|&i| sig.is(i, "(") || sig.is(i, "{") || sig.is(i, "=") || sig.is(i, ";"))
        .unwrap_or(n);
    let agg = aggregate(&sig);
    let tag_name = |a: &Aggregate| {
        a.tag
            .map(|t| format!("{} {}", sig.text(a.keyword), sig.text(t)))
    };

    if (0..head_end).any(|i| sig.ident(i) && sig.text(i) == "typedef") {
        let mut names = declarator_names(&sig, 0, n);
        if let Some(a) = agg.as_ref().filter(|a| a.body.is_some()) {
            names.extend(tag_name(a));
        }
        return Class::new(ItemKind::Typedef, names);
    }

    if let Some(a) = &agg {
        let kind = match sig.text(a.keyword) {
            "struct" => ItemKind::Struct,
            "union" => ItemKind::Union,
            _ => ItemKind::Enum,
        };
        if let Some((open, close)) = a.body {
            let mut names: Vec<String> = tag_name(a).into_iter().collect();
            names.extend(declarator_names(&sig, close + 1, n));
            if kind == ItemKind::Enum && a.tag.is_none() {
                for (x, _) in args(&sig, open, close) {
                    if sig.ident(x) {
                        names.push(sig.text(x).to_string());
                    }
                }
            }
            return Class::new(kind, names);
        }
        if let Some(t) = a.tag {
            if sig.is(t + 1, ";") || t + 1 == n {
                return Class::new(ItemKind::Declaration, tag_name(a).into_iter().collect());
            }
        }
    }

    let d = walk(&sig, 0, n);
    if let (Some(name), Some((open, close))) = (d.name, d.params) {
        let name = sig.text(name).to_string();
        if d.type_before || d.nested {
            return Class::new(ItemKind::Prototype, vec![name]);
        }
        // A macro invocation: `DEFINE_MUTEX(x);`, `EXPORT_SYMBOL(f);`.
        let sole: Vec<String> = args(&sig, open, close)
            .into_iter()
            .filter_map(|a| sole_ident(&sig, a))
            .collect();
        let mut c = Class::new(ItemKind::Other, Vec::new());
        if is_annotation(&name) {
            c.annotates = args(&sig, open, close)
                .into_iter()
                .filter_map(|(a, b)| {
                    let a = if sig.is(a, "&") { a + 1 } else { a };
                    sole_ident(&sig, (a, b))
                })
                .collect();
        } else if is_definer(&name) {
            let pick = if name.contains("PER_CPU") {
                sole.last()
            } else {
                sole.first()
            };
            if let Some(p) = pick {
                c = Class::new(ItemKind::Variable, vec![p.clone()]);
            }
        }
        c.invocation = Some(name);
        return c;
    }

    let names = declarator_names(&sig, 0, n);
    if names.is_empty() {
        return Class::new(ItemKind::Other, names);
    }
    let is_extern = (0..head_end).any(|i| sig.ident(i) && sig.text(i) == "extern");
    let kind = if is_extern {
        ItemKind::Declaration
    } else {
        ItemKind::Variable
    };
    Class::new(kind, names)
}

/// Tracks `#if` nesting so both branches of a conditional that each open a
/// brace are counted once: the depth after the first branch wins.
#[derive(Default)]
struct Cond {
    frames: Vec<(Vec<Open>, Option<Vec<Open>>)>,
}

/// An open bracket inside an item: the bracket and whether it is a
/// function body.
type Open = (u8, bool);

impl Cond {
    fn apply(&mut self, line: &str, stack: &mut Vec<Open>) {
        match directive(line) {
            "if" | "ifdef" | "ifndef" => self.frames.push((stack.clone(), None)),
            "elif" | "else" | "elifdef" | "elifndef" => {
                if let Some(f) = self.frames.last_mut() {
                    if f.1.is_none() {
                        f.1 = Some(stack.clone());
                    }
                    stack.clone_from(&f.0);
                }
            }
            "endif" => {
                if let Some((_, Some(first))) = self.frames.pop() {
                    *stack = first;
                }
            }
            _ => {}
        }
    }
}

/// A raw item: a token index range.
#[derive(Debug)]
struct Raw {
    start: usize,
    end: usize,
    kind: RawKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawKind {
    Comment,
    Preproc,
    Decl { function: bool },
}

/// True when `sig` (the item so far) is `[static] NAME(...)`.
fn is_macro_call_shape(sig: &Sig<'_>) -> bool {
    let n = sig.len();
    let i = sig.skip_attrs(0, n);
    sig.ident(i) && sig.is(i + 1, "(") && sig.mate[i + 1] == Some(n - 1)
}

/// Whether the `{` at `toks[brace]` opens a function body.
fn is_function_head(src: &str, toks: &[Token]) -> bool {
    let sig = Sig::new(src, toks);
    let n = sig.len();
    let mut i = 0;
    while i < n {
        if (sig.ident(i) && sig.text(i) == "typedef") || sig.is(i, "=") {
            return false;
        }
        i = if sig.is(i, "(") || sig.is(i, "[") || sig.is(i, "{") {
            sig.after_group(i, n)
        } else {
            i + 1
        };
    }
    walk(&sig, 0, n).params.is_some()
}

/// Parses one declaration starting at `toks[start]`; returns its end.
///
/// A `;` or function-closing `}` at depth 0 ends the item, unless an `#if`
/// opened inside the item is still open (`int x =\n#ifdef A\n1;\n#else\n2;\n#endif`):
/// then the item ends with the `#endif` that closes it.
fn decl(src: &str, toks: &[Token], lines: &Lines, start: usize, cond: &mut Cond) -> Raw {
    let mut stack: Vec<Open> = Vec::new();
    let mut last_sig: Option<usize> = None;
    let base = cond.frames.len();
    let mut pending: Option<bool> = None;
    let text_of = |i: usize| &src[toks[i].start..toks[i].end];
    let done = |end: usize, function: bool| Raw {
        start,
        end,
        kind: RawKind::Decl { function },
    };
    // A macro invocation without a semicolon (`module_init(f)`).
    let unterminated_call = |j: usize, last: Option<usize>| {
        last.is_some_and(|l| text_of(l) == ")")
            && is_macro_call_shape(&Sig::new(src, &toks[start..j]))
    };
    let mut j = start;
    while j < toks.len() {
        let t = toks[j];
        let text = text_of(j);
        match t.kind {
            TokKind::Comment => {
                j += 1;
                continue;
            }
            TokKind::Preproc => {
                if stack.is_empty() && pending.is_none() && unterminated_call(j, last_sig) {
                    return done(j, false);
                }
                cond.apply(text, &mut stack);
                j += 1;
                if let Some(f) = pending {
                    if cond.frames.len() <= base {
                        return done(j, f);
                    }
                }
                continue;
            }
            _ => {}
        }
        if stack.is_empty()
            && pending.is_none()
            && lines.line_start(t.start) == t.start
            && !matches!(text, "{" | ";" | "," | "=" | "(" | "[" | ":")
            && unterminated_call(j, last_sig)
        {
            return done(j, false);
        }
        let mut end: Option<(usize, bool)> = None;
        if t.kind == TokKind::Punct {
            match text {
                "(" => stack.push((b'(', false)),
                "[" => stack.push((b'[', false)),
                "{" => {
                    let f = stack.is_empty() && is_function_head(src, &toks[start..j]);
                    stack.push((b'{', f));
                }
                ")" | "]" | "}" => {
                    let top = stack.pop();
                    if top.is_none() && last_sig.is_none() {
                        // A stray closer on its own.
                        return done(j + 1, false);
                    }
                    if text == "}" && stack.is_empty() && top == Some((b'{', true)) {
                        let mut e = j + 1;
                        if toks.get(e).is_some_and(|n| {
                            text_of(e) == ";" && lines.line(n.start) == lines.line(t.start)
                        }) {
                            e += 1;
                        }
                        end = Some((e, true));
                    }
                }
                ";" if stack.is_empty() => end = Some((j + 1, false)),
                _ => {}
            }
        }
        if let Some((e, f)) = end {
            if cond.frames.len() <= base {
                return done(e, f);
            }
            pending = Some(f);
            last_sig = Some(e - 1);
            j = e;
            continue;
        }
        last_sig = Some(j);
        j += 1;
    }
    done(j, pending.unwrap_or(false))
}

fn split(src: &str, toks: &[Token], lines: &Lines) -> Vec<Raw> {
    let mut out = Vec::new();
    let mut cond = Cond::default();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        match t.kind {
            TokKind::Comment => {
                out.push(Raw {
                    start: i,
                    end: i + 1,
                    kind: RawKind::Comment,
                });
                i += 1;
            }
            TokKind::Preproc => {
                cond.apply(&src[t.start..t.end], &mut Vec::new());
                out.push(Raw {
                    start: i,
                    end: i + 1,
                    kind: RawKind::Preproc,
                });
                i += 1;
            }
            _ => {
                let r = decl(src, toks, lines, i, &mut cond);
                // Trailing comments of an unfinished item are not its own.
                let mut end = r.end.max(i + 1);
                while end > i + 1 && toks[end - 1].kind == TokKind::Comment {
                    end -= 1;
                }
                i = end;
                out.push(Raw { end, ..r });
            }
        }
    }
    out
}

/// One item while comments and annotations are being attached.
struct Part {
    class: Class,
    comment: bool,
    /// Byte offset of the attached leading comment.
    lead: Option<usize>,
    start: usize,
    end: usize,
}

/// Extends `start` to its line start when only whitespace precedes it.
fn extend_start(src: &str, lines: &Lines, start: usize) -> usize {
    let ls = lines.line_start(start);
    if src[ls..start].trim().is_empty() {
        ls
    } else {
        start
    }
}

/// Extends `end` past the newline when only whitespace follows on its line
/// (a stray line splice `\\` counts as whitespace and takes the line it
/// continues onto when that one is blank).
fn extend_end(src: &str, mut end: usize) -> usize {
    let mut spliced = false;
    loop {
        let le = src[end..].find('\n').map_or(src.len(), |p| end + p);
        let rest = src[end..le].trim();
        if rest.is_empty() {
            return (le + 1).min(src.len());
        }
        if rest != "\\" || spliced {
            return end;
        }
        spliced = true;
        end = (le + 1).min(src.len());
    }
}

/// See [`crate::items`].
pub(crate) fn items(src: &str) -> Vec<Item> {
    let toks = lex(src);
    let lines = Lines::new(src);
    let last_line = |p: &Part| lines.line(p.end.saturating_sub(1).max(p.start));

    let mut parts: Vec<Part> = Vec::new();
    for r in split(src, &toks, &lines) {
        let (start, end) = (toks[r.start].start, toks[r.end - 1].end);
        let text = &src[start..end];
        let class = match r.kind {
            RawKind::Comment => Class::new(ItemKind::Comment, Vec::new()),
            RawKind::Preproc => classify_preproc(text),
            RawKind::Decl { function } => classify_decl(src, &toks[r.start..r.end], function),
        };
        let part = Part {
            class,
            comment: r.kind == RawKind::Comment,
            lead: None,
            start,
            end,
        };
        if let Some(prev) = parts.last_mut() {
            let same_line = lines.line(part.start) == last_line(prev);
            let next_line = lines.line(part.start) == last_line(prev) + 1;
            if part.comment && (same_line || (prev.comment && next_line)) {
                // A trailing comment, or the next line of a comment block.
                prev.end = part.end;
                continue;
            }
            let licence = src[prev.start..prev.end].contains("SPDX-License-Identifier");
            if prev.comment && !part.comment && (next_line || same_line) && !licence {
                // A comment block right above an item belongs to it (but
                // not the file's licence line).
                let lead = prev.start;
                parts.pop();
                parts.push(Part {
                    lead: Some(lead),
                    ..part
                });
                continue;
            }
            // An annotation right after the item declaring its symbol.
            if part
                .class
                .annotates
                .iter()
                .any(|a| prev.class.names.contains(a))
            {
                prev.end = part.end;
                continue;
            }
        }
        parts.push(part);
    }

    parts
        .into_iter()
        .map(|p| {
            let end = extend_end(src, p.end);
            let decl_start = extend_start(src, &lines, p.start);
            let start = p.lead.map_or(decl_start, |l| extend_start(src, &lines, l));
            let mut names = Vec::new();
            for n in p.class.names {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            Item {
                kind: p.class.kind,
                names,
                span: start..end,
                decl_span: decl_start..end,
                line: lines.line(p.start),
                invocation: p.class.invocation,
            }
        })
        .collect()
}

/// Whether the declaration in `text` has an initializer (`=` at depth 0).
pub(crate) fn has_initializer(text: &str) -> bool {
    let toks = lex(text);
    let sig = Sig::new(text, &toks);
    let n = sig.len();
    let mut i = 0;
    while i < n {
        if sig.is(i, "=") {
            return true;
        }
        i = if sig.is(i, "(") || sig.is(i, "[") || sig.is(i, "{") {
            sig.after_group(i, n)
        } else {
            i + 1
        };
    }
    false
}

/// Sig-level helpers the transformations need: the byte ranges of the
/// leading specifier words of the first declaration in `toks`, the
/// parameter list's parentheses and the function body's opening brace.
pub(crate) struct Head {
    /// Leading words before the declared name: `(text, start, end)`.
    pub(crate) specifiers: Vec<(String, usize, usize)>,
    /// Byte offsets of the parameter list's `(` and `)`.
    pub(crate) params: Option<(usize, usize)>,
    /// Byte offset where the last token before the body `{` ends.
    pub(crate) head_end: Option<usize>,
}

/// Analyses the declaration made of `toks`.
pub(crate) fn head(src: &str, toks: &[Token]) -> Head {
    let sig = Sig::new(src, toks);
    let n = sig.len();
    let d = walk(&sig, 0, n);
    let name_at = d.name.unwrap_or(n);
    let specifiers = (0..name_at)
        .take_while(|&i| !sig.is(i, "(") && !sig.is(i, "{") && !sig.is(i, "="))
        .filter(|&i| sig.ident(i))
        .map(|i| (sig.text(i).to_string(), sig.toks[i].start, sig.toks[i].end))
        .collect();
    let params = d
        .params
        .map(|(o, c)| (sig.toks[o].start, sig.toks[c.min(n - 1)].start));
    let head_end = d.params.and_then(|(_, c)| {
        let brace = (c + 1..n).find(|&i| sig.is(i, "{"))?;
        Some(sig.toks[brace - 1].end)
    });
    Head {
        specifiers,
        params,
        head_end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> (ItemKind, Vec<String>) {
        let all = items(src);
        let it = all
            .iter()
            .find(|i| i.kind != ItemKind::Comment)
            .expect("an item");
        (it.kind, it.names.clone())
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn function_names() {
        for (src, name) in [
            (
                "static __always_inline int __kvm_handle_hva_range(struct kvm *kvm,\n\t\t\t\t\t\t  const struct kvm_hva_range *range)\n{\n}\n",
                "__kvm_handle_hva_range",
            ),
            ("bool kvm_unmap_gfn_range(struct kvm *kvm, int x)\n{\n\treturn 0;\n}\n", "kvm_unmap_gfn_range"),
            ("struct page *foo(int a)\n{\n}\n", "foo"),
            ("__weak void bar(void)\n{\n}\n", "bar"),
            ("static int __must_check noinline baz(void)\n{\n}\n", "baz"),
            ("__attribute__((noinline)) int qux(void) { return 0; }\n", "qux"),
            ("int quux(void) __must_hold(&lock)\n{\n}\n", "quux"),
            ("static void (*get_cb(int x))(int)\n{\n}\n", "get_cb"),
            ("kvm_pfn_t *pfn_of(void)\n{\n}\n", "pfn_of"),
            ("__printf(2, 3) int log_it(int l, const char *fmt, ...)\n{\n}\n", "log_it"),
            ("static int\nold_style(void)\n{\n}\n", "old_style"),
        ] {
            assert_eq!(one(src), (ItemKind::Function, names(&[name])), "{src}");
        }
    }

    #[test]
    fn macro_head_function_is_named_by_its_first_argument() {
        let all = items("SYSCALL_DEFINE2(kvm_thing, int, a)\n{\n\treturn a;\n}\n");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].kind, ItemKind::Function);
        assert_eq!(all[0].names, names(&["kvm_thing"]));
        assert_eq!(all[0].invocation.as_deref(), Some("SYSCALL_DEFINE2"));
    }

    #[test]
    fn typedef_names() {
        for (src, n) in [
            ("typedef bool (*hva_handler_t)(struct kvm *kvm, struct kvm_gfn_range *range);", vec!["hva_handler_t"]),
            ("typedef void (*on_lock_fn_t)(struct kvm *kvm, unsigned long start,\n\t\t\t     unsigned long end);", vec!["on_lock_fn_t"]),
            ("typedef u64 __bitwise gpa_t;", vec!["gpa_t"]),
            ("typedef void fn_t(int);", vec!["fn_t"]),
            ("typedef struct foo { int a; } foo_t, *foo_p;", vec!["foo_t", "foo_p", "struct foo"]),
            ("typedef int arr_t[4];", vec!["arr_t"]),
        ] {
            assert_eq!(one(src), (ItemKind::Typedef, names(&n)), "{src}");
        }
    }

    #[test]
    fn aggregates() {
        assert_eq!(
            one("struct kvm_hva_range {\n\tunsigned long start;\n\tunion { int a; long b; } u;\n};\n"),
            (ItemKind::Struct, names(&["struct kvm_hva_range"]))
        );
        assert_eq!(
            one("union u { int a; } __packed;"),
            (ItemKind::Union, names(&["union u"]))
        );
        assert_eq!(
            one("enum { A = 1, B, C = (1 << 2), };"),
            (ItemKind::Enum, names(&["A", "B", "C"]))
        );
        assert_eq!(
            one("static struct s { int a; } s1 = { 1 }, s2;"),
            (ItemKind::Struct, names(&["struct s", "s1", "s2"]))
        );
        assert_eq!(
            one("struct kvm;"),
            (ItemKind::Declaration, names(&["struct kvm"]))
        );
    }

    #[test]
    fn variables_and_declarations() {
        for (src, kind, n) in [
            ("static int foo = 3;", ItemKind::Variable, vec!["foo"]),
            (
                "static const struct foo_ops ops = { .a = 1, .b = \"}\", };",
                ItemKind::Variable,
                vec!["ops"],
            ),
            (
                "static DEFINE_MUTEX(kvm_lock);",
                ItemKind::Variable,
                vec!["kvm_lock"],
            ),
            (
                "DEFINE_STATIC_KEY_FALSE(kvm_key);",
                ItemKind::Variable,
                vec!["kvm_key"],
            ),
            (
                "static DEFINE_PER_CPU(struct kvm_vcpu *, kvm_running_vcpu);",
                ItemKind::Variable,
                vec!["kvm_running_vcpu"],
            ),
            (
                "static long x __read_mostly, *y;",
                ItemKind::Variable,
                vec!["x", "y"],
            ),
            (
                "static void (*handler)(int);",
                ItemKind::Variable,
                vec!["handler"],
            ),
            (
                "static int tbl[N] __aligned(8) = { 1 };",
                ItemKind::Variable,
                vec!["tbl"],
            ),
            ("extern int kvm_x;", ItemKind::Declaration, vec!["kvm_x"]),
            (
                "int kvm_init(void *opaque, unsigned size);",
                ItemKind::Prototype,
                vec!["kvm_init"],
            ),
            (
                "extern struct page *foo(int);",
                ItemKind::Prototype,
                vec!["foo"],
            ),
            ("MODULE_LICENSE(\"GPL\");", ItemKind::Other, vec![]),
        ] {
            assert_eq!(one(src), (kind, names(&n)), "{src}");
        }
    }

    #[test]
    fn export_attaches_to_the_function_it_follows() {
        let src = "int a(void)\n{\n}\nEXPORT_SYMBOL_GPL(a);\n\nEXPORT_SYMBOL(b);\n";
        let all = items(src);
        assert_eq!(all.len(), 2);
        assert_eq!(
            &src[all[0].span.clone()],
            "int a(void)\n{\n}\nEXPORT_SYMBOL_GPL(a);\n"
        );
        assert_eq!(all[1].kind, ItemKind::Other);
        assert_eq!(all[1].invocation.as_deref(), Some("EXPORT_SYMBOL"));
    }

    #[test]
    fn comments_attach_only_when_adjacent() {
        let src = "/* file */\n\n/* a */\n// b\nint x;\n/* tail */ int y; /* y */\n";
        let all = items(src);
        let kinds: Vec<_> = all.iter().map(|i| i.kind).collect();
        assert_eq!(
            kinds,
            vec![ItemKind::Comment, ItemKind::Variable, ItemKind::Variable]
        );
        assert_eq!(&src[all[1].span.clone()], "/* a */\n// b\nint x;\n");
        assert_eq!(&src[all[1].decl_span.clone()], "int x;\n");
        assert_eq!(&src[all[2].span.clone()], "/* tail */ int y; /* y */\n");
    }

    #[test]
    fn semicolonless_macro_call_ends_at_next_column_zero_line() {
        let all = items("module_init(a)\nmodule_exit(b)\nint c;\n");
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn ifdef_branches_each_opening_a_brace() {
        let src = "int f(int a)\n{\n#ifdef X\n\tif (a) {\n#else\n\tif (!a) {\n#endif\n\t\ta++;\n\t}\n\treturn a;\n}\nint g;\n";
        let all = items(src);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].names, names(&["f"]));
        assert_eq!(all[1].names, names(&["g"]));
    }

    #[test]
    fn directive_words() {
        assert_eq!(directive("#  ifdef X"), "ifdef");
        assert_eq!(directive("#endif /* X */"), "endif");
        assert_eq!(directive("int x;"), "");
    }
}
