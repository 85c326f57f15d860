//! Splat detection snapshots over recorded consoles.

use std::fmt::Write as _;
use std::fs;

use kmm_boot::splat::{detect, is_fatal, Splat, SplatDetector};

/// Renders splats as readable text for snapshots.
fn render(splats: &[Splat]) -> String {
    let mut out = format!("{} splat(s), fatal: {}\n", splats.len(), is_fatal(splats));
    for splat in splats {
        let _ = writeln!(
            out,
            "\n--- {:?} at line {} ({} context lines{})",
            splat.kind,
            splat.line,
            splat.context.len(),
            if splat.truncated { ", truncated" } else { "" }
        );
        let _ = writeln!(out, "{}", splat.first_line);
        for line in &splat.context {
            let _ = writeln!(out, "  | {line}");
        }
    }
    out
}

#[test]
fn console_logs() {
    insta::glob!("../fixtures", "*.log", |path| {
        let console = fs::read_to_string(path).unwrap();
        insta::assert_snapshot!(render(&detect(&console)));
    });
}

#[test]
fn streaming_matches_batch() {
    let console = fs::read_to_string(crate::support::fixture("lockdep.log")).unwrap();
    let mut detector = SplatDetector::new();
    let starts: Vec<_> = console
        .lines()
        .filter_map(|line| detector.push_line(line))
        .collect();
    let splats = detector.finish();
    assert_eq!(starts, splats.iter().map(|s| s.kind).collect::<Vec<_>>());
    assert_eq!(splats, detect(&console));
}

#[test]
fn clean_boot_has_no_splats() {
    let console = fs::read_to_string(crate::support::fixture("clean.log")).unwrap();
    assert!(detect(&console).is_empty());
}
