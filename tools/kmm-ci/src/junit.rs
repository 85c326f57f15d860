//! JUnit XML for CI systems: one test case per commit, target and plan.

use std::fmt::Write as _;

use crate::Row;

/// Escapes text for XML attributes and content.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Renders the `kmm ci` matrix as a JUnit XML document.
pub fn render(suite: &str, rows: &[Row]) -> String {
    let failures = rows.iter().filter(|r| r.failed).count();
    let time: f64 = rows.iter().map(|r| r.seconds).sum();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{time:.1}\">",
        escape(suite),
        rows.len()
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{time:.1}\">",
        escape(suite),
        rows.len()
    );
    for r in rows {
        let _ = write!(
            s,
            "    <testcase classname=\"{}.{}\" name=\"{}\" target=\"{}\" time=\"{:.1}\"",
            escape(&r.target),
            escape(&r.plan),
            escape(&r.label),
            escape(&r.target),
            r.seconds
        );
        if !r.failed {
            match &r.flaky {
                // The JUnit convention for a test that passed on a rerun.
                Some(diff) => {
                    s.push_str(">\n");
                    let _ = writeln!(
                        s,
                        "      <flakyFailure message=\"first boot differed from the snapshot; retried for {}\">{}</flakyFailure>",
                        escape(&r.retries.join(", ")),
                        escape(diff)
                    );
                    s.push_str("    </testcase>\n");
                }
                None => s.push_str("/>\n"),
            }
            continue;
        }
        s.push_str(">\n");
        let mut body = format!("commit {}\n", r.commit);
        for f in &r.failures {
            let _ = writeln!(body, "failed: {f}");
        }
        if let Some(e) = &r.error {
            let _ = writeln!(body, "{e}");
        }
        for w in &r.new_warnings {
            let _ = writeln!(body, "new W=1 warning: {w}");
        }
        if let Some(d) = &r.snapshot_diff {
            body.push_str(d);
        }
        let _ = writeln!(
            s,
            "      <failure message=\"{}\">{}</failure>",
            escape(&r.reason()),
            escape(&body)
        );
        s.push_str("    </testcase>\n");
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(failed: bool) -> Row {
        Row {
            label: "0001-KVM-x<y".into(),
            commit: "abc".into(),
            target: "kvm-mm".into(),
            config: "kvm-mm".into(),
            plan: "commit".into(),
            build: "ok".into(),
            error: None,
            kvm_warnings: 0,
            new_warnings: vec![],
            boot: "powered off".into(),
            tests: "3/4".into(),
            failures: if failed {
                vec!["kvm/x (fail)".into()]
            } else {
                vec![]
            },
            splats: vec![],
            snapshot: "match".into(),
            snapshot_diff: None,
            seconds: 1.5,
            build_secs: 1.0,
            boot_secs: 0.5,
            first_ktap_secs: Some(1.2),
            flaky: None,
            retries: Vec::new(),
            removed_flake: None,
            console_log: None,
            failed,
        }
    }

    #[test]
    fn renders_and_escapes() {
        let x = render("kmm ci", &[row(false), row(true)]);
        assert!(x.contains("tests=\"2\" failures=\"1\""));
        assert!(x.contains("name=\"0001-KVM-x&lt;y\" target=\"kvm-mm\""));
        assert!(x.contains("<failure message=\"failed: kvm/x (fail)\">"));
        assert_eq!(x.matches("<testcase").count(), 2);
    }

    #[test]
    fn flaky_passes_are_marked() {
        let mut r = row(false);
        r.flaky = Some("-x: pass\n+x: fail\n".into());
        r.retries = vec!["tcg-tsc-race".into()];
        let x = render("kmm ci", &[r]);
        assert!(x.contains("failures=\"0\""));
        assert!(
            x.contains("<flakyFailure message=\"first boot differed from the snapshot; retried for tcg-tsc-race\">-x: pass")
        );
    }
}
