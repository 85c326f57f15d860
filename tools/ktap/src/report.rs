//! The result tree, diagnostics, counts, and the JSON and human renderings.

use std::fmt::{self, Write as _};

use serde::Serialize;
use serde_json::Value;

/// The outcome of one test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `ok` with no directive (or an unrecognised one).
    Pass,
    /// `not ok` with no directive (or an unrecognised one).
    Fail,
    /// `# SKIP`, whether `ok` or `not ok`.
    Skip,
    /// `# TODO`, whether `ok` or `not ok`: per TAP, not a failure.
    Todo,
    /// `# XFAIL`: failed as expected, not a failure.
    Xfail,
    /// `# TIMEOUT`.
    Timeout,
    /// `# ERROR`: the test could not be run properly.
    Error,
    /// The test started (its header was seen, or it was running when the
    /// kernel panicked) but never reported a result.
    Crashed,
    /// The plan promised the test but it was never reported.
    Missing,
}

impl Status {
    /// All statuses, in declaration order.
    pub const ALL: [Status; 9] = [
        Status::Pass,
        Status::Fail,
        Status::Skip,
        Status::Todo,
        Status::Xfail,
        Status::Timeout,
        Status::Error,
        Status::Crashed,
        Status::Missing,
    ];

    /// Whether this status makes a run fail: fail, timeout, error, crashed
    /// and missing do; pass, skip, todo and xfail do not.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Status::Fail | Status::Timeout | Status::Error | Status::Crashed | Status::Missing
        )
    }

    /// The lowercase name used in JSON and in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Todo => "todo",
            Status::Xfail => "xfail",
            Status::Timeout => "timeout",
            Status::Error => "error",
            Status::Crashed => "crashed",
            Status::Missing => "missing",
        }
    }

    /// The status from a result line's `ok`/`not ok` and directive text.
    ///
    /// The directive keyword is the first word of the text after `#`,
    /// matched case-insensitively; unknown keywords fall back to `ok`/`not ok`
    /// as the KTAP specification asks.
    pub(crate) fn from_result(ok: bool, directive: Option<&str>) -> Status {
        let keyword = directive
            .and_then(|d| d.split_whitespace().next())
            .map(|w| w.trim_end_matches([':', ',', '.']).to_ascii_uppercase());
        match keyword.as_deref() {
            Some("SKIP" | "SKIPPED") => Status::Skip,
            Some("TODO") => Status::Todo,
            Some("XFAIL") => Status::Xfail,
            Some("TIMEOUT") => Status::Timeout,
            Some("ERROR") => Status::Error,
            _ if ok => Status::Pass,
            _ => Status::Fail,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One test: a test case, or a suite with subtests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The name from the result line (or the `# Subtest:` header), without
    /// the optional `- `; empty when the producer gave none.
    pub name: String,
    /// The test number from the result line; for tests the parser made up
    /// (`crashed`, `missing`), the number they were expected to have.
    pub number: u32,
    /// The outcome.
    pub status: Status,
    /// Everything after `#` on the result line, including the directive
    /// keyword (`"SKIP no hardware"`, `"TIMEOUT 45 seconds"`, `"exit=1"`).
    pub directive: Option<String>,
    /// Nested tests, in order.
    pub subtests: Vec<Node>,
    /// Diagnostic and unknown lines attributed to this test, dedented and
    /// redacted; when more than the cap arrived, the first and last halves
    /// are kept around a `[… N lines dropped …]` marker.
    pub log: Vec<String>,
    /// How many log lines were dropped to respect the cap.
    pub log_dropped: usize,
    /// For a run of made-up `missing` tests, the number of the last one:
    /// the node stands for tests `number..=last` (one node, however long
    /// the run, so that a plan of `1..1000000` costs one node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
}

impl Node {
    /// The name used in paths: the name, `#N` when it is empty, or
    /// `#N..#M` for a run of missing tests.
    pub fn path_segment(&self) -> String {
        if let Some(last) = self.last {
            format!("#{}..#{last}", self.number)
        } else if self.name.is_empty() {
            format!("#{}", self.number)
        } else {
            self.name.clone()
        }
    }

    /// Whether this test or any test under it has a failing status.
    pub fn has_failure(&self) -> bool {
        self.status.is_failure() || self.subtests.iter().any(Node::has_failure)
    }
}

/// How serious a [`Diagnostic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, not a problem (a parameterised test without a plan).
    Info,
    /// The input deviates from KTAP but the meaning is clear.
    Warning,
    /// Something went wrong in the run (a crash, no KTAP output at all).
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A remark about the input, tied to a line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// 1-based input line number (for end-of-input remarks, the last line).
    pub line: usize,
    /// How serious it is.
    pub severity: Severity,
    /// What happened, without a trailing period.
    pub message: String,
}

/// Number of tests per status.
///
/// Test cases (tests without subtests) are counted by their status. A suite
/// is counted only when it has a failing status that none of its subtests
/// explains (say `not ok` with every subtest passing, or a crash after the
/// last subtest), so that a failure is never invisible in the counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Passed.
    pub pass: usize,
    /// Failed.
    pub fail: usize,
    /// Skipped.
    pub skip: usize,
    /// TODO.
    pub todo: usize,
    /// Expected failures.
    pub xfail: usize,
    /// Timed out.
    pub timeout: usize,
    /// Errored.
    pub error: usize,
    /// Crashed.
    pub crashed: usize,
    /// Planned but never reported.
    pub missing: usize,
}

impl Counts {
    /// The count for one status.
    pub fn get(&self, status: Status) -> usize {
        match status {
            Status::Pass => self.pass,
            Status::Fail => self.fail,
            Status::Skip => self.skip,
            Status::Todo => self.todo,
            Status::Xfail => self.xfail,
            Status::Timeout => self.timeout,
            Status::Error => self.error,
            Status::Crashed => self.crashed,
            Status::Missing => self.missing,
        }
    }

    fn bump(&mut self, status: Status) {
        self.bump_n(status, 1);
    }

    fn bump_n(&mut self, status: Status, n: usize) {
        let slot = match status {
            Status::Pass => &mut self.pass,
            Status::Fail => &mut self.fail,
            Status::Skip => &mut self.skip,
            Status::Todo => &mut self.todo,
            Status::Xfail => &mut self.xfail,
            Status::Timeout => &mut self.timeout,
            Status::Error => &mut self.error,
            Status::Crashed => &mut self.crashed,
            Status::Missing => &mut self.missing,
        };
        *slot += n;
    }

    /// All counted tests.
    pub fn total(&self) -> usize {
        Status::ALL.iter().map(|s| self.get(*s)).sum()
    }

    /// Tests with a failing status (fail, timeout, error, crashed, missing).
    pub fn failed(&self) -> usize {
        Status::ALL
            .iter()
            .filter(|s| s.is_failure())
            .map(|s| self.get(*s))
            .sum()
    }

    /// Counts the tests of a forest under the rule in the type's docs.
    pub(crate) fn of(tests: &[Node]) -> Counts {
        let mut counts = Counts::default();
        for t in tests {
            counts.add_tree(t);
        }
        counts
    }

    /// Adds `node`'s subtree; returns whether it holds a counted failure.
    fn add_tree(&mut self, node: &Node) -> bool {
        if node.subtests.is_empty() {
            let n = node
                .last
                .map_or(1, |l| l.saturating_sub(node.number) as usize + 1);
            self.bump_n(node.status, n);
            return node.status.is_failure();
        }
        let mut failing = false;
        for t in &node.subtests {
            failing |= self.add_tree(t);
        }
        if !failing && node.status.is_failure() {
            self.bump(node.status);
            failing = true;
        }
        failing
    }
}

/// Most cases [`Report::write_kunit_json`] writes for one run of missing
/// tests; one more case names the rest.
pub const KUNIT_JSON_RUN: u32 = 1000;

/// A group of kunit.py's JSON: a test with subtests, or the whole run.
struct KunitGroup<'a> {
    name: &'a str,
    tests: &'a [Node],
}

impl serde::Serialize for KunitGroup<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap as _, SerializeSeq as _};
        struct Groups<'a>(&'a [Node]);
        impl serde::Serialize for Groups<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(None)?;
                for n in self.0.iter().filter(|n| !n.subtests.is_empty()) {
                    seq.serialize_element(&KunitGroup {
                        name: &n.name,
                        tests: &n.subtests,
                    })?;
                }
                seq.end()
            }
        }
        struct Cases<'a>(&'a [Node]);
        impl serde::Serialize for Cases<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                struct Case<'a>(&'a str, &'static str);
                impl serde::Serialize for Case<'_> {
                    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                        let mut m = s.serialize_map(Some(2))?;
                        m.serialize_entry("name", self.0)?;
                        m.serialize_entry("status", self.1)?;
                        m.end()
                    }
                }
                let mut seq = s.serialize_seq(None)?;
                for n in self.0.iter().filter(|n| n.subtests.is_empty()) {
                    let status = match n.status {
                        Status::Pass | Status::Xfail | Status::Todo => "PASS",
                        Status::Skip => "SKIP",
                        Status::Crashed | Status::Missing => "ERROR",
                        Status::Fail | Status::Timeout | Status::Error => "FAIL",
                    };
                    // kunit.py lists every missing test; so does this, up
                    // to a bound, then one case stands for the rest.
                    let count = n.last.map_or(1, |l| l.saturating_sub(n.number) + 1);
                    for _ in 0..count.min(KUNIT_JSON_RUN) {
                        seq.serialize_element(&Case(&n.name, status))?;
                    }
                    if count > KUNIT_JSON_RUN {
                        let rest = format!(
                            "#{}..#{} ({} more missing tests)",
                            n.number + KUNIT_JSON_RUN,
                            n.number + count - 1,
                            count - KUNIT_JSON_RUN
                        );
                        seq.serialize_element(&Case(&rest, status))?;
                    }
                }
                seq.end()
            }
        }
        let mut m = s.serialize_map(Some(10))?;
        m.serialize_entry("name", self.name)?;
        m.serialize_entry("sub_groups", &Groups(self.tests))?;
        m.serialize_entry("test_cases", &Cases(self.tests))?;
        m.serialize_entry("arch", "")?;
        m.serialize_entry("defconfig", "")?;
        m.serialize_entry("build_environment", "")?;
        m.serialize_entry("lab_name", &())?;
        m.serialize_entry("kernel", &())?;
        m.serialize_entry("job", &())?;
        m.serialize_entry("git_branch", "kselftest")?;
        m.end()
    }
}

/// [`Report`] as `kmm parse --format json` writes it.
struct JsonReport<'a>(&'a Report);

impl serde::Serialize for JsonReport<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let r = self.0;
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("counts", &JsonCounts(&r.counts))?;
        m.serialize_entry("diagnostics", &JsonDiagnostics(&r.diagnostics))?;
        m.serialize_entry("failed", &r.failed())?;
        m.serialize_entry("tests", &JsonNodes(&r.tests, ""))?;
        m.serialize_entry("version", &r.version)?;
        m.end()
    }
}

struct JsonCounts<'a>(&'a Counts);

impl serde::Serialize for JsonCounts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut all: Vec<Status> = Status::ALL.to_vec();
        all.sort_by_key(|st| st.as_str());
        let mut m = s.serialize_map(Some(all.len()))?;
        for st in all {
            m.serialize_entry(st.as_str(), &self.0.get(st))?;
        }
        m.end()
    }
}

struct JsonDiagnostics<'a>(&'a [Diagnostic]);

impl serde::Serialize for JsonDiagnostics<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap as _, SerializeSeq as _};
        struct One<'a>(&'a Diagnostic);
        impl serde::Serialize for One<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("line", &self.0.line)?;
                m.serialize_entry("message", &self.0.message)?;
                m.serialize_entry("severity", &self.0.severity.to_string())?;
                m.end()
            }
        }
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for d in self.0 {
            seq.serialize_element(&One(d))?;
        }
        seq.end()
    }
}

/// Tests under the path `.1` (empty at the top level).
struct JsonNodes<'a>(&'a [Node], &'a str);

impl serde::Serialize for JsonNodes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap as _, SerializeSeq as _};
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for n in self.0 {
            let path = if self.1.is_empty() {
                n.path_segment()
            } else {
                format!("{}/{}", self.1, n.path_segment())
            };
            struct One<'a>(&'a Node, &'a str);
            impl serde::Serialize for One<'_> {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    let (n, path) = (self.0, self.1);
                    let mut m = s.serialize_map(None)?;
                    m.serialize_entry("directive", &n.directive)?;
                    if let Some(last) = n.last {
                        m.serialize_entry("last", &last)?;
                    }
                    m.serialize_entry("log", &n.log)?;
                    m.serialize_entry("log_dropped", &n.log_dropped)?;
                    m.serialize_entry("name", &n.name)?;
                    m.serialize_entry("number", &n.number)?;
                    m.serialize_entry("path", path)?;
                    m.serialize_entry("status", n.status.as_str())?;
                    m.serialize_entry("subtests", &JsonNodes(&n.subtests, path))?;
                    m.end()
                }
            }
            seq.serialize_element(&One(n, &path))?;
        }
        seq.end()
    }
}

/// The outcome of parsing one log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The first version line seen, e.g. `KTAP version 1`; `None` if the
    /// input held no KTAP output.
    pub version: Option<String>,
    /// The top-level tests (the children of the implicit root).
    pub tests: Vec<Node>,
    /// Remarks about the input, in line order except for end-of-input ones.
    pub diagnostics: Vec<Diagnostic>,
    /// Tests per status.
    pub counts: Counts,
}

/// A test together with its position in the tree, from [`Report::iter`].
#[derive(Clone, Debug)]
pub struct TestRef<'a> {
    /// Path segments joined by `/` (see [`Node::path_segment`]); not
    /// injective when names themselves contain `/`, as kselftest's
    /// `selftests: kvm: x86_64/foo` do.
    pub path: String,
    /// Nesting depth, 0 for top-level tests.
    pub depth: usize,
    /// The test.
    pub node: &'a Node,
}

/// Pre-order iterator over all tests of a [`Report`].
#[derive(Debug)]
pub struct Iter<'a> {
    stack: Vec<(usize, &'a [Node])>,
    prefix: Vec<String>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = TestRef<'a>;

    fn next(&mut self) -> Option<TestRef<'a>> {
        loop {
            let (depth, nodes) = self.stack.last_mut()?;
            let depth = *depth;
            let Some((node, rest)) = nodes.split_first() else {
                self.stack.pop();
                self.prefix.pop();
                continue;
            };
            *nodes = rest;
            let mut path = self.prefix.last().cloned().unwrap_or_default();
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(&node.path_segment());
            if !node.subtests.is_empty() {
                self.stack.push((depth + 1, &node.subtests));
                self.prefix.push(path.clone());
            }
            return Some(TestRef { path, depth, node });
        }
    }
}

impl Report {
    /// Whether the run failed: some test has status fail, timeout, error,
    /// crashed or missing. Skip, todo (`not ok # TODO` included, as in TAP)
    /// and xfail do not fail a run.
    ///
    /// An input with no tests at all does not count as failed here; check
    /// [`Report::has_errors`] (it carries a "no KTAP output" error) too.
    pub fn failed(&self) -> bool {
        self.tests.iter().any(Node::has_failure)
    }

    /// Whether any diagnostic has severity [`Severity::Error`].
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// Iterates over every test, parents before children, with paths.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            stack: vec![(0, &self.tests)],
            prefix: Vec::new(),
        }
    }

    /// Finds a test by its `/`-joined path.
    pub fn find(&self, path: &str) -> Option<&Node> {
        self.iter().find(|t| t.path == path).map(|t| t.node)
    }

    /// The report as a JSON value: every test with its full `path`,
    /// `name`, `number`, `status`, `directive`, `log`, `log_dropped`,
    /// `last` (runs of missing tests only) and `subtests`, plus
    /// `diagnostics`, `counts` and `failed`. Prefer [`Report::write_json`]
    /// for large reports: it does not build this tree.
    pub fn to_json_value(&self) -> Value {
        serde_json::to_value(JsonReport(self)).unwrap_or(Value::Null)
    }

    /// The report as pretty-printed JSON (see [`Report::write_json`]).
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_json(&mut out, true);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Streams the report as JSON into `w` (schema of
    /// [`Report::to_json_value`], keys sorted), without building it in
    /// memory first.
    pub fn write_json<W: std::io::Write>(&self, w: W, pretty: bool) -> std::io::Result<()> {
        let r = if pretty {
            serde_json::to_writer_pretty(w, &JsonReport(self))
        } else {
            serde_json::to_writer(w, &JsonReport(self))
        };
        r.map_err(std::io::Error::from)
    }

    /// Streams the report in the JSON schema of the kernel's `kunit.py
    /// parse --json` (`tools/testing/kunit/kunit_json.py`, KernelCI's test
    /// API): nested `sub_groups` for tests with subtests, `test_cases`
    /// with `PASS`, `SKIP`, `FAIL` or `ERROR` for the others, the common
    /// fields kunit.py writes when it knows nothing of the build, and the
    /// same 4-space indentation. Statuses map as kunit.py's would: pass,
    /// xfail and todo are `PASS`; crashed and missing (kunit.py's
    /// crashed) `ERROR`; fail, timeout and error `FAIL`. A run of missing
    /// tests gives one case per test, unnamed as in kunit.py, up to
    /// [`KUNIT_JSON_RUN`]; one more case stands for the rest.
    pub fn write_kunit_json<W: std::io::Write>(&self, w: W) -> std::io::Result<()> {
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(w, fmt);
        serde::Serialize::serialize(
            &KunitGroup {
                name: "KUnit Test Group",
                tests: &self.tests,
            },
            &mut ser,
        )
        .map_err(std::io::Error::from)
    }

    /// A human-readable rendering: an indented tree with one line per
    /// test, then warnings and errors, then a summary ending in the line
    /// `N passed, N failed, N skipped`.
    ///
    /// "failed" there counts every failing status (fail, timeout, error,
    /// crashed, missing); a breakdown line lists the statuses other than
    /// pass, fail and skip when there are any.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        for t in self.iter() {
            let label = t.node.status.as_str().to_ascii_uppercase();
            let _ = write!(
                out,
                "{:indent$}[{label}] {}",
                "",
                t.node.path_segment(),
                indent = t.depth * 2
            );
            if let Some(d) = &t.node.directive {
                let _ = write!(out, " # {d}");
            }
            out.push('\n');
        }
        for d in self
            .diagnostics
            .iter()
            .filter(|d| d.severity > Severity::Info)
        {
            let _ = writeln!(out, "{}: line {}: {}", d.severity, d.line, d.message);
        }
        let c = &self.counts;
        let unusual = Status::ALL
            .iter()
            .any(|s| !matches!(s, Status::Pass | Status::Fail | Status::Skip) && c.get(*s) > 0);
        if unusual {
            let breakdown: Vec<String> = Status::ALL
                .iter()
                .filter(|s| !matches!(s, Status::Pass | Status::Skip) && c.get(**s) > 0)
                .map(|s| format!("{} {}", c.get(*s), s))
                .collect();
            let _ = writeln!(out, "{}", breakdown.join(", "));
        }
        // Where the kernel died: the innermost crashed tests, by name.
        let died: Vec<String> = self
            .iter()
            .filter(|t| {
                t.node.status == Status::Crashed
                    && !t.node.subtests.iter().any(|s| s.status == Status::Crashed)
            })
            .map(|t| t.path)
            .collect();
        if !died.is_empty() {
            let _ = writeln!(out, "crashed in: {}", died.join(", "));
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} skipped",
            c.pass,
            c.failed(),
            c.skip
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(name: &str, number: u32, status: Status) -> Node {
        Node {
            name: name.into(),
            number,
            status,
            directive: None,
            subtests: vec![],
            log: vec![],
            log_dropped: 0,
            last: None,
        }
    }

    #[test]
    fn directive_keywords() {
        assert_eq!(Status::from_result(true, None), Status::Pass);
        assert_eq!(Status::from_result(false, Some("exit=1")), Status::Fail);
        assert_eq!(Status::from_result(true, Some("rcode=0")), Status::Pass);
        assert_eq!(
            Status::from_result(false, Some("skip: no hw")),
            Status::Skip
        );
        assert_eq!(
            Status::from_result(false, Some("TODO not yet")),
            Status::Todo
        );
        assert_eq!(Status::from_result(true, Some("Xfail")), Status::Xfail);
        assert_eq!(
            Status::from_result(false, Some("TIMEOUT 45 seconds")),
            Status::Timeout
        );
        assert_eq!(
            Status::from_result(false, Some("error bad fd")),
            Status::Error
        );
        assert_eq!(Status::from_result(true, Some("SKIPPING")), Status::Pass);
    }

    #[test]
    fn failure_classes() {
        let failing: Vec<_> = Status::ALL.iter().filter(|s| s.is_failure()).collect();
        assert_eq!(
            failing,
            [
                &Status::Fail,
                &Status::Timeout,
                &Status::Error,
                &Status::Crashed,
                &Status::Missing
            ]
        );
    }

    #[test]
    fn counts_leaves_and_unexplained_parent_failures() {
        let mut suite = leaf("suite", 1, Status::Fail);
        suite.subtests = vec![leaf("a", 1, Status::Pass), leaf("b", 2, Status::Pass)];
        let mut explained = leaf("explained", 2, Status::Fail);
        explained.subtests = vec![leaf("c", 1, Status::Fail), leaf("d", 2, Status::Skip)];
        let counts = Counts::of(&[suite, explained]);
        assert_eq!(counts.pass, 2);
        assert_eq!(counts.fail, 2);
        assert_eq!(counts.skip, 1);
        assert_eq!(counts.total(), 5);
        assert_eq!(counts.failed(), 2);
    }

    #[test]
    fn paths_and_rendering() {
        let mut suite = leaf("suite", 1, Status::Fail);
        let mut skipped = leaf("", 2, Status::Skip);
        skipped.directive = Some("SKIP no hardware".into());
        suite.subtests = vec![leaf("a", 1, Status::Fail), skipped];
        let tests = vec![suite, leaf("other", 2, Status::Todo)];
        let report = Report {
            version: None,
            counts: Counts::of(&tests),
            tests,
            diagnostics: vec![],
        };
        let paths: Vec<_> = report.iter().map(|t| (t.path, t.depth)).collect();
        assert_eq!(
            paths,
            [
                ("suite".into(), 0),
                ("suite/a".into(), 1),
                ("suite/#2".into(), 1),
                ("other".into(), 0)
            ]
        );
        assert_eq!(
            report.find("suite/#2").map(|n| n.status),
            Some(Status::Skip)
        );
        assert!(report.failed());
        assert_eq!(
            report.render_human(),
            "[FAIL] suite\n  [FAIL] a\n  [SKIP] #2 # SKIP no hardware\n[TODO] other\n\
             1 fail, 1 todo\n0 passed, 1 failed, 1 skipped\n"
        );
        let json = report.to_json_value();
        assert_eq!(json["tests"][0]["subtests"][1]["path"], "suite/#2");
        assert_eq!(
            json["tests"][0]["subtests"][1]["directive"],
            "SKIP no hardware"
        );
        assert_eq!(json["counts"]["todo"], 1);
        assert_eq!(json["failed"], true);
    }

    #[test]
    fn todo_and_xfail_do_not_fail() {
        let tests = vec![
            leaf("t", 1, Status::Todo),
            leaf("x", 2, Status::Xfail),
            leaf("s", 3, Status::Skip),
        ];
        let report = Report {
            version: None,
            counts: Counts::of(&tests),
            tests,
            diagnostics: vec![],
        };
        assert!(!report.failed());
        assert!(report
            .render_human()
            .ends_with("0 passed, 0 failed, 1 skipped\n"));
    }
}
