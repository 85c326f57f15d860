//! Integration tests: fixture files with the hard shapes (item tables and
//! cut/insert results as insta snapshots) and, when a kernel tree is
//! present, real kernel sources.

#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)] // Integration tests: a failed unwrap is a failed assertion.
                                                                  // Tests live inside `cfg(test)` modules: the workspace lints treat code
                                                                  // outside them as non-test code (no `unwrap`, no `#[test]`).
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod kernel;
#[cfg(test)]
mod moves;

use std::path::Path;

/// The 1-based line holding byte `pos`.
pub(crate) fn line_of(src: &str, pos: usize) -> usize {
    src[..pos].matches('\n').count() + 1
}

/// A fixture file's text.
pub(crate) fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One line per item: span lines, kind, names, and where the declaration
/// starts when a comment is attached.
pub(crate) fn table(src: &str) -> String {
    let mut out = String::new();
    for it in kmm_csym::items(src) {
        let (first, last) = (
            line_of(src, it.span.start),
            line_of(src, it.span.end.saturating_sub(1)),
        );
        out.push_str(&format!(
            "{first:>3}-{last:<3} {:?} {:?}",
            it.kind, it.names
        ));
        if it.line != first {
            out.push_str(&format!(" decl@{}", it.line));
        }
        if let Some(m) = &it.invocation {
            out.push_str(&format!(" via {m}"));
        }
        out.push('\n');
    }
    out
}

/// Asserts that item spans are ordered, disjoint, and together with the
/// whitespace between them reproduce `src`.
pub(crate) fn assert_coverage(name: &str, src: &str) {
    let mut at = 0;
    let mut rebuilt = String::new();
    for it in kmm_csym::items(src) {
        assert!(
            it.span.start >= at,
            "{name}: item at line {} overlaps the previous one",
            it.line
        );
        let gap = &src[at..it.span.start];
        assert!(
            gap.trim().is_empty(),
            "{name}: non-blank text before line {}: {gap:?}",
            it.line
        );
        assert!(it.span.start <= it.decl_span.start && it.decl_span.end == it.span.end);
        rebuilt.push_str(gap);
        rebuilt.push_str(&src[it.span.clone()]);
        at = it.span.end;
    }
    assert!(
        src[at..].trim().is_empty(),
        "{name}: non-blank text at the end"
    );
    rebuilt.push_str(&src[at..]);
    assert_eq!(rebuilt, src);
}
