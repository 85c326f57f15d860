//! The crate's modules form no cycle (ARCHITECTURE.md, "Invariants"): each
//! concern has its own error type, which the module that uses it wraps,
//! instead of borrowing its user's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The modules that `text` names as `crate::<module>`, `crate::{a, b}`
/// included.
fn uses(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let names: Vec<String> = match rest.strip_prefix('{') {
            Some(list) => list
                .split('}')
                .next()
                .unwrap_or("")
                .split(',')
                .map(|n| ident(n.trim()))
                .collect(),
            None => vec![ident(rest)],
        };
        found.extend(names.into_iter().filter(|n| modules.contains(n)));
    }
    found
}

#[test]
fn the_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut texts = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            texts.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    assert!(modules.contains("generate") && modules.contains("maintainers"));
    let graph: BTreeMap<String, BTreeSet<String>> = texts
        .iter()
        .map(|(m, t)| {
            let mut u = uses(t, &modules);
            u.remove(m);
            (m.clone(), u)
        })
        .collect();

    if let Some(cycle) = find_cycle(&graph) {
        panic!("kmm-series modules form a cycle: {cycle}");
    }
}

/// A cycle of `graph`, printed in order (`a -> b -> a`), if it has one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    // Depth-first; a module met again while on the stack closes a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(at) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle.join(" -> "));
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn both_import_forms_are_read_and_a_cycle_is_found() {
    let modules: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        uses("use crate::{b, c::X};\nfn f() { crate::a::g() }", &modules),
        modules
    );
    assert!(uses("use std::fmt; // not crate ::b", &modules).is_empty());

    let graph: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .iter()
        .map(|(m, n)| (m.to_string(), BTreeSet::from([n.to_string()])))
        .collect();
    assert_eq!(find_cycle(&graph).as_deref(), Some("a -> b -> c -> a"));
    let mut acyclic = graph.clone();
    acyclic.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&acyclic), None);
}
