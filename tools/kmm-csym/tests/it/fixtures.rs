//! Item tables of the fixture files.

use kmm_csym::{find, find_all, items, Error, ItemKind};

use crate::{assert_coverage, fixture, table};

#[test]
fn item_tables() {
    insta::glob!("../fixtures", "*.[ch]", |path| {
        let src = std::fs::read_to_string(path).unwrap();
        assert_coverage(&path.display().to_string(), &src);
        insta::assert_snapshot!(table(&src));
    });
}

#[test]
fn literals_do_not_confuse_the_lexer() {
    let src = fixture("literals.c");
    let it = find(&src, "count_braces").unwrap();
    let text = &src[it.span.clone()];
    assert!(text.starts_with("/* A comment with a } brace"));
    assert!(text.ends_with("\treturn depth;\n}\n"));
    let it = find(&src, "print_weird").unwrap();
    assert!(src[it.span.clone()].ends_with("} string\\n\");\n}\n"));
    let it = find(&src, "after_literals").unwrap();
    assert!(src[it.span.clone()].starts_with("int after_literals(void)\n"));
    assert!(src[it.span.clone()].ends_with("}\nEXPORT_SYMBOL_GPL(after_literals);\n"));
    assert_eq!(find(&src, "marker").unwrap().kind, ItemKind::Variable);
}

#[test]
fn ifdef_branches_make_a_symbol_ambiguous() {
    let src = fixture("functions.c");
    assert_eq!(
        find(&src, "foo_only").unwrap_err(),
        Error::Ambiguous {
            symbol: "foo_only".into(),
            lines: vec![56, 61]
        }
    );
    assert_eq!(find_all(&src, "foo_only").len(), 2);
    // The forward prototype does not make `helper` ambiguous.
    assert_eq!(find(&src, "helper").unwrap().kind, ItemKind::Function);
}

#[test]
fn ifdef_inside_a_function_stays_inside() {
    let src = fixture("functions.c");
    let it = find(&src, "__handle_range").unwrap();
    let text = &src[it.span.clone()];
    assert!(text.contains("#ifdef CONFIG_X\n") && text.contains("#endif\n"));
    assert!(text.ends_with("\treturn (int)ret;\n}\n"));
}

#[test]
fn not_found_suggests() {
    let src = fixture("types.c");
    let Err(Error::NotFound { suggestions, .. }) = find(&src, "kvm_hva_range") else {
        panic!("expected NotFound");
    };
    assert_eq!(suggestions, vec!["struct kvm_hva_range".to_string()]);
}

#[test]
fn every_fixture_item_is_named_or_expected_unnamed() {
    for name in [
        "literals.c",
        "macros.c",
        "functions.c",
        "types.c",
        "guard.h",
    ] {
        let src = fixture(name);
        for it in items(&src) {
            let unnamed_ok = matches!(
                it.kind,
                ItemKind::Preprocessor | ItemKind::Comment | ItemKind::Other
            );
            assert!(
                unnamed_ok || !it.names.is_empty(),
                "{name}:{} {:?} has no name",
                it.line,
                it.kind
            );
        }
    }
}
