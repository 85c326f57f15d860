//! The streaming push parser.
//!
//! The parser keeps one [`Frame`] per open test (a test whose version line
//! or `# Subtest:` header was seen but whose result line was not), so its
//! memory is bounded by the nesting depth plus the result tree it builds.
//! Lines are classified by [`crate::line`] and placed by position: a result
//! line belongs to the innermost open frame at its position, and closes any
//! frame nested deeper.

use std::borrow::Cow;
use std::io::{BufRead, ErrorKind};
use std::mem;

use crate::line::{self, CrashMarker, Kind, Pos, ResultLine};
use crate::log::{clip, BoundedLog, MAX_LINE_BYTES};
use crate::report::{Counts, Diagnostic, Node, Report, Severity, Status};

/// Deepest nesting the parser follows; deeper structure is kept as log.
const MAX_DEPTH: usize = 64;
/// Most diagnostics kept; further ones are counted.
const MAX_DIAGNOSTICS: usize = 1000;
/// Largest plan believed; larger ones are ignored.
const MAX_PLAN: u64 = 1_000_000;
/// Most `missing`/`crashed` tests the parser makes up in one report.
const MAX_SYNTHESIZED: usize = 1_000_000;
/// Largest numbering gap filled with `missing` tests when there is no plan.
const MAX_GAP_WITHOUT_PLAN: u32 = 1000;
/// Longest line [`Parser::feed_reader`] reads; the rest of a line is skipped.
const MAX_READ_LINE: usize = 64 * 1024;

/// Tuning knobs for a [`Parser`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Most log lines kept per test (the first and last halves are kept).
    pub max_log_lines: usize,
    /// Whether kept log lines go through [`crate::redact`].
    pub redact: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_log_lines: 200,
            redact: true,
        }
    }
}

/// An open test.
#[derive(Debug, Default)]
struct Frame {
    /// Position of this test's own version, plan and subtest result lines.
    pos: Pos,
    /// Name from `# Subtest:`.
    name: Option<String>,
    /// The number this test was expected to get in its parent.
    number: u32,
    /// Whether a version line opened (or named) this frame.
    has_version: bool,
    /// The plan, if one was seen.
    plan: Option<u32>,
    /// The number the next subtest should have.
    next_number: u32,
    /// How many subtest result lines arrived.
    reported: u32,
    /// Finished subtests.
    children: Vec<Node>,
    /// Lines that came before this test opened and after its last subtest.
    own_log: BoundedLog,
    /// Lines since the last subtest result, for the next subtest.
    pending: BoundedLog,
}

impl Frame {
    fn new(pos: Pos, name: Option<String>, number: u32, has_version: bool) -> Self {
        Frame {
            pos,
            name,
            number,
            has_version,
            next_number: 1,
            ..Frame::default()
        }
    }

    /// The name as used in paths.
    fn segment(&self) -> String {
        match &self.name {
            Some(n) if !n.is_empty() => n.clone(),
            _ => format!("#{}", self.number),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No version line seen yet.
    Searching,
    /// Inside a KTAP stream.
    Running,
    /// After a kernel panic: nothing more is read.
    Ended,
}

/// Why open tests are being closed without a result line.
#[derive(Clone, Copy, Debug)]
enum Cause {
    /// A shallower structural line arrived.
    NoResult,
    /// `Kernel panic - not syncing`.
    Panic(usize),
    /// The input ended.
    Eof,
}

/// A streaming KTAP parser: feed it lines, then [`finish`](Parser::finish).
///
/// ```
/// let mut parser = ktap::Parser::new();
/// for line in ["KTAP version 1", "1..1", "not ok 1 broken"] {
///     parser.feed_line(line);
/// }
/// let report = parser.finish();
/// assert!(report.failed());
/// ```
#[derive(Debug)]
pub struct Parser {
    opts: Options,
    line_no: usize,
    state: State,
    console_prefix: Option<String>,
    version: Option<String>,
    root: Frame,
    open: Vec<Frame>,
    diagnostics: Vec<Diagnostic>,
    suppressed: usize,
    last_result_line: usize,
    oops_line: Option<usize>,
    panic_before_start: Option<usize>,
    synthesized: usize,
    depth_warned: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    /// A parser with default [`Options`].
    pub fn new() -> Self {
        Parser::with_options(Options::default())
    }

    /// A parser with the given options.
    pub fn with_options(opts: Options) -> Self {
        Parser {
            opts,
            line_no: 0,
            state: State::Searching,
            console_prefix: None,
            version: None,
            root: Frame::new(Pos::default(), None, 0, false),
            open: Vec::new(),
            diagnostics: Vec::new(),
            suppressed: 0,
            last_result_line: 0,
            oops_line: None,
            panic_before_start: None,
            synthesized: 0,
            depth_warned: false,
        }
    }

    /// Feeds one line (a trailing `\n` or `\r\n` is ignored; a string with
    /// embedded newlines counts as several lines).
    pub fn feed_line(&mut self, line: &str) {
        let line = line.strip_suffix('\n').unwrap_or(line);
        for part in line.split('\n') {
            self.feed_one(part);
        }
    }

    /// Feeds one line given as bytes; invalid UTF-8 is replaced by U+FFFD.
    pub fn feed_bytes(&mut self, line: &[u8]) {
        self.feed_line(&String::from_utf8_lossy(line));
    }

    /// Feeds every line of `reader`.
    ///
    /// Lines longer than 64 KiB are cut. A read error ends the input: it is
    /// recorded as an error diagnostic and the lines before it are kept.
    pub fn feed_reader<R: BufRead>(&mut self, mut reader: R) {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let chunk = match reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    let line = self.line_no + 1;
                    self.diag(
                        line,
                        Severity::Error,
                        format!("read error, input ends here: {e}"),
                    );
                    break;
                }
            };
            if chunk.is_empty() {
                if !buf.is_empty() {
                    self.feed_bytes(&buf);
                }
                break;
            }
            let (used, complete) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            let room = MAX_READ_LINE.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..used.min(room)]);
            reader.consume(if complete { used + 1 } else { used });
            if complete {
                self.feed_bytes(&buf);
                buf.clear();
            }
        }
    }

    /// Ends the input and returns the report.
    ///
    /// Tests still open are `crashed`, planned tests never reported are
    /// `missing`.
    pub fn finish(mut self) -> Report {
        match self.state {
            State::Searching => {
                let msg = match self.panic_before_start {
                    Some(l) => format!("no KTAP output found (kernel panic at line {l})"),
                    None => "no KTAP output found".to_owned(),
                };
                self.diag(self.line_no, Severity::Error, msg);
            }
            State::Running => self.close_all(Cause::Eof),
            State::Ended => {}
        }
        if self.suppressed > 0 {
            self.diagnostics.push(Diagnostic {
                line: self.line_no,
                severity: Severity::Info,
                message: format!("{} further diagnostics suppressed", self.suppressed),
            });
        }
        let tests = mem::take(&mut self.root.children);
        Report {
            version: self.version,
            counts: Counts::of(&tests),
            tests,
            diagnostics: self.diagnostics,
        }
    }

    fn feed_one(&mut self, raw: &str) {
        self.line_no += 1;
        let line = line::strip_printk_prefix(raw.trim_end());
        match self.state {
            State::Ended => {}
            State::Searching => self.search(line),
            State::Running => self.process(line),
        }
    }

    /// Looks for the start of a KTAP stream.
    fn search(&mut self, line: &str) {
        if let Some((before, _, _)) = line::find_version(line) {
            let core = before.trim_end_matches([' ', '\t']);
            if !core.chars().all(|c| matches!(c, ' ' | '\t' | '#')) {
                // Something other than indentation precedes the version
                // line: a console prefix, stripped from every later line.
                let sep = before[core.len()..]
                    .chars()
                    .next()
                    .map_or(0, char::len_utf8);
                self.console_prefix = Some(before[..core.len() + sep].to_owned());
            }
            self.state = State::Running;
            self.process(line);
        } else if line::crash_marker(line) == Some(CrashMarker::Panic) {
            self.panic_before_start.get_or_insert(self.line_no);
        } else if let Some(i) = line.find("kunit executor: ") {
            let msg = format!("kunit executor: {}", &line[i + "kunit executor: ".len()..]);
            self.diag(self.line_no, Severity::Warning, msg);
        }
    }

    fn process(&mut self, line: &str) {
        let line = match &self.console_prefix {
            Some(p) => line
                .strip_prefix(p.as_str())
                .or_else(|| line.strip_prefix(p.trim_end()))
                .unwrap_or(line),
            None => line,
        };
        if let Some(marker) = line::crash_marker(line) {
            self.crash(marker, line);
            return;
        }
        let classified = line::classify(line);
        let pos = classified.pos;
        match classified.kind {
            Kind::Blank => {}
            Kind::Version { ktap, version } => self.on_version(pos, ktap, version, line),
            Kind::Plan { count } => self.on_plan(pos, count, line),
            Kind::Result(r) => self.on_result(pos, r, line),
            Kind::Subtest { name } => self.on_subtest(pos, name, line),
            Kind::Diagnostic | Kind::Unknown => {
                if line
                    .trim_start_matches([' ', '\t', '#'])
                    .starts_with("Bail out!")
                {
                    let msg = format!("{}: bailed out", self.running());
                    self.diag(self.line_no, Severity::Warning, msg);
                }
                self.log(line);
            }
        }
    }

    // ---- Structural lines -------------------------------------------------

    fn on_version(&mut self, pos: Pos, ktap: bool, version: u32, line: &str) {
        let known = if ktap {
            version == 1
        } else {
            matches!(version, 13 | 14)
        };
        let text = format!("{} version {version}", if ktap { "KTAP" } else { "TAP" });
        if !known {
            self.diag(
                self.line_no,
                Severity::Warning,
                format!("unsupported {text}"),
            );
        }
        if !self.reachable(pos) {
            self.log(line);
            return;
        }
        self.version.get_or_insert(text);
        if pos < self.top().pos {
            self.close_above(pos);
        }
        let is_root = self.open.is_empty();
        let top = self.top();
        if pos > top.pos {
            self.open_frame(pos, None, true, line);
            return;
        }
        let fresh = !top.has_version && top.plan.is_none() && top.children.is_empty();
        let unplanned_empty = top.plan.is_none() && top.children.is_empty();
        let complete = top.plan.is_some_and(|p| top.next_number > p);
        if fresh {
            self.top_mut().has_version = true;
        } else if !is_root && unplanned_empty {
            self.diag(
                self.line_no,
                Severity::Info,
                "repeated version line".to_owned(),
            );
        } else if is_root && complete {
            self.diag(
                self.line_no,
                Severity::Info,
                "a new KTAP stream starts; numbering restarts".to_owned(),
            );
            let root = self.top_mut();
            root.plan = None;
            root.next_number = 1;
            root.reported = 0;
        } else {
            self.diag(
                self.line_no,
                Severity::Info,
                "subtest is not indented".to_owned(),
            );
            self.open_frame(pos, None, true, line);
        }
    }

    fn on_subtest(&mut self, pos: Pos, name: &str, line: &str) {
        if pos.hashes > self.top().pos.hashes {
            self.log(line);
            return;
        }
        if pos < self.top().pos {
            self.close_above(pos);
        }
        let is_root = self.open.is_empty();
        let top = self.top();
        let unnamed_fresh = top.name.is_none() && top.plan.is_none() && top.children.is_empty();
        let name = clip(name).to_owned();
        if pos == top.pos && !is_root && unnamed_fresh {
            self.top_mut().name = Some(name);
            return;
        }
        if pos == top.pos {
            self.diag(
                self.line_no,
                Severity::Info,
                "subtest is not indented".to_owned(),
            );
        }
        self.open_frame(pos, Some(name), false, line);
    }

    fn on_plan(&mut self, pos: Pos, count: u64, line: &str) {
        if pos.hashes > self.top().pos.hashes {
            self.log(line);
            return;
        }
        if pos > self.top().pos {
            self.diag(
                self.line_no,
                Severity::Info,
                "subtest has no version line or header".to_owned(),
            );
            if !self.open_frame(pos, None, false, line) {
                return;
            }
        } else if pos < self.top().pos {
            // A trailing plan for an enclosing test closes the tests nested in it.
            let level = (0..=self.open.len())
                .rev()
                .find(|&l| self.frame(l).pos == pos);
            match level {
                Some(l) if self.frame(l).plan.is_none() => {
                    while self.open.len() > l {
                        self.abandon_top(Cause::NoResult, false);
                    }
                }
                _ => {
                    self.diag(
                        self.line_no,
                        Severity::Warning,
                        "plan line belongs to no open test".to_owned(),
                    );
                    self.log(line);
                    return;
                }
            }
        }
        if count > MAX_PLAN {
            let msg = format!("plan 1..{count} is implausibly large, ignored");
            self.diag(self.line_no, Severity::Warning, msg);
            return;
        }
        // CAST: `count <= MAX_PLAN`, which fits in `u32`.
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        match self.top().plan {
            None => self.top_mut().plan = Some(count),
            Some(p) if p == count => {
                self.diag(self.line_no, Severity::Info, "repeated plan".to_owned());
            }
            Some(p) => {
                let msg = format!(
                    "plan 1..{count} conflicts with earlier plan 1..{p}, keeping the first"
                );
                self.diag(self.line_no, Severity::Warning, msg);
            }
        }
    }

    fn on_result(&mut self, pos: Pos, r: ResultLine<'_>, line: &str) {
        if pos.hashes > self.top().pos.hashes {
            self.log(line);
            return;
        }
        self.last_result_line = self.line_no;
        if pos > self.top().pos {
            self.diag(
                self.line_no,
                Severity::Info,
                "subtest has no version line or header".to_owned(),
            );
            if !self.open_frame(pos, None, false, line) {
                return;
            }
        }
        let name = line::unescape(r.name);
        let name = clip(&name);
        // The innermost test at or above this position owns the line.
        let mut target = (0..=self.open.len())
            .rev()
            .find(|&l| self.frame(l).pos <= pos)
            .unwrap_or(0);
        if self.frame(target).pos != pos {
            self.diag(
                self.line_no,
                Severity::Info,
                "result line is indented inconsistently".to_owned(),
            );
        }
        // A subtest that is not indented ends when its plan is complete or
        // when a result line repeats its header's name.
        if target == self.open.len()
            && target > 0
            && self.frame(target - 1).pos == self.frame(target).pos
        {
            let f = self.frame(target);
            let complete = f.plan.is_some_and(|p| f.next_number > p);
            let named = f.plan.is_none() && f.name.as_deref() == Some(name);
            if complete || named {
                target -= 1;
            }
        }
        while self.open.len() > target + 1 {
            self.abandon_top(Cause::NoResult, false);
        }
        let status = Status::from_result(r.ok, r.directive);
        let directive = r.directive.map(|d| clip(d).to_owned());
        let child = if self.open.len() > target {
            self.open.pop()
        } else {
            None
        };
        let node = match child {
            Some(frame) => self.close_frame(frame, name, r.number, status, directive),
            None => {
                let (log, log_dropped) = mem::take(&mut self.top_mut().pending).into_parts();
                Node {
                    name: name.to_owned(),
                    number: r.number,
                    status,
                    directive,
                    subtests: vec![],
                    log,
                    log_dropped,
                    last: None,
                }
            }
        };
        self.add_child(node);
    }

    // ---- Frames -----------------------------------------------------------

    /// The frame at `level` (0 is the root).
    fn frame(&self, level: usize) -> &Frame {
        level
            .checked_sub(1)
            .and_then(|i| self.open.get(i))
            .unwrap_or(&self.root)
    }

    fn top(&self) -> &Frame {
        self.open.last().unwrap_or(&self.root)
    }

    fn top_mut(&mut self) -> &mut Frame {
        match self.open.last_mut() {
            Some(f) => f,
            None => &mut self.root,
        }
    }

    /// Whether a version line at `pos` can be placed: `# ` nesting goes at
    /// most one level deeper than the innermost open test.
    fn reachable(&self, pos: Pos) -> bool {
        pos.hashes <= self.top().pos.hashes.saturating_add(1)
    }

    /// The path of the innermost open test, for messages.
    fn running(&self) -> String {
        if self.open.is_empty() {
            return "top level".to_owned();
        }
        let segments: Vec<String> = self.open.iter().map(Frame::segment).collect();
        segments.join("/")
    }

    /// Opens a subtest; returns `false` (and logs the line) if too deep.
    fn open_frame(
        &mut self,
        pos: Pos,
        name: Option<String>,
        has_version: bool,
        line: &str,
    ) -> bool {
        if self.open.len() >= MAX_DEPTH {
            if !self.depth_warned {
                self.depth_warned = true;
                let msg =
                    format!("tests nested deeper than {MAX_DEPTH} levels are kept as log lines");
                self.diag(self.line_no, Severity::Error, msg);
            }
            self.log(line);
            return false;
        }
        let parent = self.top_mut();
        let number = parent.next_number;
        let own_log = mem::take(&mut parent.pending);
        let mut frame = Frame::new(pos, name, number, has_version);
        frame.own_log = own_log;
        self.open.push(frame);
        true
    }

    /// Closes open tests nested deeper than `pos` (they never reported).
    fn close_above(&mut self, pos: Pos) {
        while self.top().pos > pos && !self.open.is_empty() {
            self.abandon_top(Cause::NoResult, false);
        }
    }

    /// Turns a frame closed by its result line into a node.
    fn close_frame(
        &mut self,
        mut f: Frame,
        name: &str,
        number: u32,
        status: Status,
        directive: Option<String>,
    ) -> Node {
        let path = self.child_path(&f, name);
        self.fill_plan(&mut f, &path, false);
        if f.plan.is_none() {
            self.diag(
                self.line_no,
                Severity::Info,
                format!("{path}: subtest has no plan"),
            );
        }
        if let Some(header) = f.name.as_deref().filter(|h| !name.is_empty() && h != &name) {
            let msg = format!("{path}: result line name differs from header name `{header}`");
            self.diag(self.line_no, Severity::Warning, msg);
        }
        if !status.is_failure()
            && status != Status::Skip
            && f.children.iter().any(Node::has_failure)
        {
            let msg = format!("{path}: reported {status} but a subtest failed");
            self.diag(self.line_no, Severity::Warning, msg);
        }
        let name = if name.is_empty() {
            f.name.take().unwrap_or_default()
        } else {
            name.to_owned()
        };
        let mut log = f.own_log;
        log.append(f.pending, self.opts.max_log_lines);
        let (log, log_dropped) = log.into_parts();
        Node {
            name,
            number,
            status,
            directive,
            subtests: f.children,
            log,
            log_dropped,
            last: None,
        }
    }

    /// Closes the innermost open test as `crashed`.
    ///
    /// `in_progress` says that a subtest was running: the first subtest the
    /// plan still expects becomes `crashed` too, and gets the pending log.
    fn abandon_top(&mut self, cause: Cause, in_progress: bool) {
        let Some(mut f) = self.open.pop() else {
            return;
        };
        let path = self.child_path(&f, "");
        self.fill_plan(&mut f, &path, in_progress);
        let msg = match cause {
            Cause::NoResult => format!("{path}: no result line, treated as crashed"),
            Cause::Panic(l) => format!("{path}: crashed, kernel panic at line {l}"),
            Cause::Eof => match self.oops_line.filter(|&l| l > self.last_result_line) {
                Some(l) => format!("{path}: crashed, input ended after kernel oops at line {l}"),
                None => format!("{path}: crashed, input ended before its result line"),
            },
        };
        self.diag(self.line_no, Severity::Error, msg);
        let mut log = f.own_log;
        log.append(f.pending, self.opts.max_log_lines);
        let (log, log_dropped) = log.into_parts();
        let node = Node {
            name: f.name.unwrap_or_default(),
            number: f.number,
            status: Status::Crashed,
            directive: None,
            subtests: f.children,
            log,
            log_dropped,
            last: None,
        };
        self.add_child(node);
    }

    /// Adds `missing` (and, if `in_progress`, one `crashed`) subtests for
    /// what the plan still expects, and checks the plan count.
    fn fill_plan(&mut self, f: &mut Frame, path: &str, in_progress: bool) {
        let Some(plan) = f.plan else {
            return;
        };
        if f.reported > plan {
            let msg = format!(
                "{path}: planned {} but {} reported",
                tests(plan),
                f.reported
            );
            self.diag(self.line_no, Severity::Warning, msg);
        }
        if f.next_number > plan {
            return;
        }
        let first = f.next_number;
        if !in_progress {
            let msg = format!(
                "{path}: planned {} but only {} reported",
                tests(plan),
                f.reported
            );
            self.diag(self.line_no, Severity::Warning, msg);
        }
        // The first test not reported is the one that was running or
        // about to: it gets what was printed since the last result, and
        // with it the name the runner announced. The rest are one run.
        let mut rest = first;
        if in_progress || Self::announced(&f.pending).is_some() {
            let status = if in_progress {
                Status::Crashed
            } else {
                Status::Missing
            };
            let pending = mem::take(&mut f.pending);
            if self.synthesize(&mut f.children, first, status, pending) {
                rest = first.saturating_add(1);
            } else {
                rest = u32::MAX;
            }
        }
        if rest <= plan {
            self.synthesize_run(&mut f.children, rest, plan);
        }
        f.next_number = plan.saturating_add(1);
    }

    /// The name the kselftest runner announced for the test it was about
    /// to run (`# selftests: kvm: NAME` before the test's output): the
    /// name its result line would have carried.
    fn announced(log: &BoundedLog) -> Option<String> {
        log.lines().rev().find_map(|l| {
            let t = l.trim_start_matches(['#', ' ', '\t']);
            let (dir, name) = t.strip_prefix("selftests: ")?.split_once(": ")?;
            let name = name.trim();
            let plain = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
            (plain(dir) && plain(name)).then(|| format!("selftests: {dir}: {name}"))
        })
    }

    /// Appends made-up `missing` tests `first..=last`: one node for the
    /// whole run.
    fn synthesize_run(&mut self, into: &mut Vec<Node>, first: u32, last: u32) -> bool {
        if !self.synthesize(into, first, Status::Missing, BoundedLog::default()) {
            return false;
        }
        if last > first {
            if let Some(n) = into.last_mut() {
                n.last = Some(last);
            }
        }
        true
    }

    /// Appends a made-up test; `false` once the budget is spent.
    fn synthesize(
        &mut self,
        into: &mut Vec<Node>,
        number: u32,
        status: Status,
        log: BoundedLog,
    ) -> bool {
        if self.synthesized >= MAX_SYNTHESIZED {
            let msg = format!("more than {MAX_SYNTHESIZED} missing tests, the rest are not listed");
            self.diag(self.line_no, Severity::Warning, msg);
            return false;
        }
        self.synthesized += 1;
        // A test the runner announced keeps that name.
        let name = Self::announced(&log).unwrap_or_default();
        let (log, log_dropped) = log.into_parts();
        into.push(Node {
            name,
            number,
            status,
            directive: None,
            subtests: vec![],
            log,
            log_dropped,
            last: None,
        });
        true
    }

    /// Adds a finished test to the innermost open test, checking numbering.
    fn add_child(&mut self, node: Node) {
        let number = node.number;
        let expected = self.top().next_number;
        if number != expected {
            let plan = self.top().plan;
            let fill = number > expected
                && match plan {
                    Some(p) => number <= p.saturating_add(1),
                    None => number - expected <= MAX_GAP_WITHOUT_PLAN,
                };
            let msg = if fill {
                format!(
                    "{}: test number {number} follows {}, tests in between are missing",
                    self.running(),
                    expected - 1
                )
            } else {
                format!(
                    "{}: test number {number} where {expected} was expected",
                    self.running()
                )
            };
            self.diag(self.line_no, Severity::Warning, msg);
            if fill {
                let mut children = mem::take(&mut self.top_mut().children);
                self.synthesize_run(&mut children, expected, number - 1);
                self.top_mut().children = children;
            }
        }
        let top = self.top_mut();
        top.next_number = top.next_number.max(number.saturating_add(1));
        top.reported = top.reported.saturating_add(1);
        top.children.push(node);
    }

    /// Path of a subtest of the innermost open test, for messages.
    fn child_path(&self, f: &Frame, name: &str) -> String {
        let mut segments: Vec<String> = self.open.iter().map(Frame::segment).collect();
        segments.push(if name.is_empty() {
            f.segment()
        } else {
            name.to_owned()
        });
        segments.join("/")
    }

    // ---- Crashes and the end ----------------------------------------------

    fn crash(&mut self, marker: CrashMarker, line: &str) {
        self.log(line);
        match marker {
            CrashMarker::Oops => {
                // One warning per oops: its report has several marker lines.
                if self.oops_line.is_none_or(|l| l < self.last_result_line) {
                    let msg = format!("{}: kernel oops", self.running());
                    self.diag(self.line_no, Severity::Warning, msg);
                }
                self.oops_line = Some(self.line_no);
            }
            CrashMarker::Panic => {
                self.close_all(Cause::Panic(self.line_no));
                self.state = State::Ended;
            }
        }
    }

    /// Closes everything: open tests crashed, unreported planned tests
    /// missing (or crashed, for the one that was running).
    fn close_all(&mut self, cause: Cause) {
        self.promote_root();
        let oops_since_result = self.oops_line.is_some_and(|l| l > self.last_result_line);
        let evidence = matches!(cause, Cause::Panic(_)) || oops_since_result;
        let mut innermost = true;
        while !self.open.is_empty() {
            self.abandon_top(cause, innermost);
            innermost = false;
        }
        let mut root = mem::take(&mut self.root);
        if innermost && evidence && root.plan.is_some_and(|p| root.next_number <= p) {
            let test = match Self::announced(&root.pending) {
                Some(name) => format!("test #{} ({name})", root.next_number),
                None => format!("test #{}", root.next_number),
            };
            let msg = match cause {
                Cause::Panic(l) => format!("{test} crashed, kernel panic at line {l}"),
                _ => format!("{test} crashed, input ended after a kernel oops"),
            };
            self.diag(self.line_no, Severity::Error, msg);
        }
        self.fill_plan(&mut root, "top level", innermost && evidence);
        if root.plan.is_none() && !root.children.is_empty() {
            self.diag(
                self.line_no,
                Severity::Warning,
                "top level has no plan".to_owned(),
            );
        }
        if root.children.is_empty() {
            self.diag(
                self.line_no,
                Severity::Warning,
                "no tests were run".to_owned(),
            );
        }
        self.root = root;
    }

    /// When the first version line was indented and never closed, the
    /// indentation was a console prefix: that test is the real root.
    fn promote_root(&mut self) {
        let root = &self.root;
        let virtual_root = !root.has_version && root.plan.is_none() && root.children.is_empty();
        if !virtual_root || self.open.first().is_none_or(|f| f.name.is_some()) {
            return;
        }
        let f = self.open.remove(0);
        self.root = Frame {
            pos: Pos::default(),
            number: 0,
            ..f
        };
    }

    // ---- Logs and diagnostics ---------------------------------------------

    /// Keeps a non-structural line in the innermost open test's log.
    fn log(&mut self, line: &str) {
        let cap = self.opts.max_log_lines;
        let redact = self.opts.redact;
        let top = self.top_mut();
        let text = line::dedent(line, top.pos).trim_end();
        if text.is_empty() || text == "#" {
            return;
        }
        let text = clip(text);
        let text = if redact {
            line::redact(text)
        } else {
            Cow::Borrowed(text)
        };
        top.pending.push(text.into_owned(), cap);
    }

    fn diag(&mut self, line: usize, severity: Severity, message: String) {
        if self.diagnostics.len() >= MAX_DIAGNOSTICS {
            self.suppressed += 1;
            return;
        }
        let message = if message.len() > MAX_LINE_BYTES {
            clip(&message).to_owned()
        } else {
            message
        };
        self.diagnostics.push(Diagnostic {
            line,
            severity,
            message,
        });
    }
}

/// "1 test", "2 tests".
fn tests(n: u32) -> String {
    if n == 1 {
        "1 test".to_owned()
    } else {
        format!("{n} tests")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_str;

    fn statuses(report: &Report) -> Vec<(String, Status)> {
        report.iter().map(|t| (t.path, t.node.status)).collect()
    }

    fn s(path: &str, status: Status) -> (String, Status) {
        (path.to_owned(), status)
    }

    #[test]
    fn spec_example() {
        let report = parse_str(
            "KTAP version 1\n1..1\n  KTAP version 1\n  1..3\n    KTAP version 1\n    1..1\n\
             \x20   # test_1: initializing test_1\n    ok 1 test_1\n  ok 1 example_test_1\n\
             \x20   KTAP version 1\n    1..2\n    ok 1 test_1 # SKIP test_1 skipped\n    ok 2 test_2\n\
             \x20 ok 2 example_test_2\n    KTAP version 1\n    1..3\n    ok 1 test_1\n\
             \x20   # test_2: FAIL\n    not ok 2 test_2\n    ok 3 test_3 # SKIP test_3 skipped\n\
             \x20 not ok 3 example_test_3\nnot ok 1 main_test\n",
        );
        assert_eq!(
            statuses(&report),
            [
                s("main_test", Status::Fail),
                s("main_test/example_test_1", Status::Pass),
                s("main_test/example_test_1/test_1", Status::Pass),
                s("main_test/example_test_2", Status::Pass),
                s("main_test/example_test_2/test_1", Status::Skip),
                s("main_test/example_test_2/test_2", Status::Pass),
                s("main_test/example_test_3", Status::Fail),
                s("main_test/example_test_3/test_1", Status::Pass),
                s("main_test/example_test_3/test_2", Status::Fail),
                s("main_test/example_test_3/test_3", Status::Skip),
            ]
        );
        let t1 = report
            .find("main_test/example_test_1/test_1")
            .map(|n| n.log.clone());
        assert_eq!(t1, Some(vec!["# test_1: initializing test_1".to_owned()]));
        assert_eq!(report.diagnostics, []);
        assert_eq!(
            (report.counts.pass, report.counts.fail, report.counts.skip),
            (3, 1, 2)
        );
    }

    #[test]
    fn an_announced_test_that_never_reports_has_its_name() {
        let head = "TAP version 13\n1..3\n# selftests: kvm: a_test\nok 1 selftests: kvm: a_test\n\
                    # selftests: kvm: kvm_clock_test\n# ==== Test Assertion Failure ====\n";
        // The kernel dies inside it: crashed, by name.
        let report = parse_str(&format!(
            "{head}Kernel panic - not syncing: Fatal exception\n"
        ));
        assert_eq!(
            statuses(&report),
            [
                s("selftests: kvm: a_test", Status::Pass),
                s("selftests: kvm: kvm_clock_test", Status::Crashed),
                s("#3", Status::Missing),
            ]
        );
        assert!(report.diagnostics.iter().any(|d| d.message
            == "test #2 (selftests: kvm: kvm_clock_test) crashed, kernel panic at line 7"));
        let human = report.render_human();
        assert!(
            human.contains("\ncrashed in: selftests: kvm: kvm_clock_test\n"),
            "{human}"
        );
        // The log just ends: missing, by name, with what it printed.
        let report = parse_str(head);
        assert_eq!(
            statuses(&report)[1],
            s("selftests: kvm: kvm_clock_test", Status::Missing)
        );
        let n = report.find("selftests: kvm: kvm_clock_test").unwrap();
        assert_eq!(
            n.log.last().map(String::as_str),
            Some("# ==== Test Assertion Failure ====")
        );
        assert!(!report.render_human().contains("crashed in:"));
    }

    #[test]
    fn crash_mid_test_by_eof() {
        let report = parse_str("KTAP version 1\n1..2\n    KTAP version 1\n    # Subtest: s\n    1..3\n    ok 1 a\n    # b: starting\n");
        assert_eq!(
            statuses(&report),
            [
                s("s", Status::Crashed),
                s("s/a", Status::Pass),
                s("s/#2", Status::Crashed),
                s("s/#3", Status::Missing),
                s("#2", Status::Missing),
            ]
        );
        assert_eq!(
            report.find("s/#2").map(|n| n.log.clone()),
            Some(vec!["# b: starting".to_owned()])
        );
        assert!(report.failed());
        assert!(report.has_errors());
    }

    #[test]
    fn panic_ends_input() {
        let report = parse_str(
            "TAP version 13\n1..3\nok 1 a\n[   1.0] Kernel panic - not syncing: oops\nok 2 b\n",
        );
        assert_eq!(
            statuses(&report),
            [
                s("a", Status::Pass),
                s("#2", Status::Crashed),
                s("#3", Status::Missing)
            ]
        );
        let crashed = report.find("#2").map(|n| n.log.clone());
        assert_eq!(
            crashed,
            Some(vec!["Kernel panic - not syncing: oops".to_owned()])
        );
    }

    #[test]
    fn oops_then_recovery_is_not_a_crash() {
        let report = parse_str(
            "KTAP version 1\n1..2\nBUG: unable to handle page fault\nnot ok 1 a\nok 2 b\n",
        );
        assert_eq!(
            statuses(&report),
            [s("a", Status::Fail), s("b", Status::Pass)]
        );
        assert_eq!(report.find("a").map(|n| n.log.len()), Some(1));
        let oops: Vec<_> = report
            .diagnostics
            .iter()
            .filter(|d| d.message.contains("oops"))
            .collect();
        assert_eq!(oops.len(), 1);
        assert_eq!(
            (oops[0].line, oops[0].message.as_str()),
            (3, "top level: kernel oops")
        );
    }

    #[test]
    fn oops_then_eof_crashes_the_running_test() {
        let report = parse_str("KTAP version 1\n1..2\nok 1 a\nOops: 0000 [#1] SMP\n");
        assert_eq!(
            statuses(&report),
            [s("a", Status::Pass), s("#2", Status::Crashed)]
        );
    }

    #[test]
    fn truncated_top_level_is_missing_not_crashed() {
        let report = parse_str("KTAP version 1\n1..3\nok 1 a\n");
        // Tests 2 and 3, as one run.
        assert_eq!(
            statuses(&report),
            [s("a", Status::Pass), s("#2..#3", Status::Missing)]
        );
        assert_eq!(report.counts.missing, 2);
    }

    #[test]
    fn runs_of_missing_tests_cost_one_node() {
        // A 26-byte log that plans a million tests.
        let report = parse_str("KTAP version 1\n1..1000000\n");
        assert_eq!(statuses(&report), [s("#1..#1000000", Status::Missing)]);
        assert_eq!(report.counts.missing, 1_000_000);
        // Numbered 1, 1000, 1999, ...: one run per gap.
        let mut log = String::from("KTAP version 1\n");
        for i in 0..1000u32 {
            log.push_str(&format!("ok {} t\n", 1 + 999 * i));
        }
        let report = parse_str(&log);
        assert_eq!(report.tests.len(), 1999);
        assert_eq!(report.counts.missing, 999 * 998);
        assert_eq!(report.tests[1].path_segment(), "#2..#999");
    }

    #[test]
    fn kselftest_hash_nesting() {
        let report = parse_str(
            "TAP version 13\n1..2\n# selftests: m: t1\n# TAP version 13\n# 1..2\n# ok 1 first\n\
             # # diag for second\n# not ok 2 second\n# # Totals: pass:1\nnot ok 1 selftests: m: t1 # exit=1\n\
             # selftests: m: t2\n# plain output\n# ok 1 not a result\nok 2 selftests: m: t2 # SKIP\n",
        );
        assert_eq!(
            statuses(&report),
            [
                s("selftests: m: t1", Status::Fail),
                s("selftests: m: t1/first", Status::Pass),
                s("selftests: m: t1/second", Status::Fail),
                s("selftests: m: t2", Status::Skip),
            ]
        );
        let t1 = report.find("selftests: m: t1");
        assert_eq!(
            t1.and_then(|n| n.directive.clone()),
            Some("exit=1".to_owned())
        );
        assert_eq!(
            t1.map(|n| n.log.clone()),
            Some(vec![
                "# selftests: m: t1".to_owned(),
                "# Totals: pass:1".to_owned()
            ])
        );
        let second = report
            .find("selftests: m: t1/second")
            .map(|n| n.log.clone());
        assert_eq!(second, Some(vec!["# diag for second".to_owned()]));
        let t2 = report.find("selftests: m: t2").map(|n| n.log.clone());
        assert_eq!(
            t2,
            Some(vec![
                "# selftests: m: t2".to_owned(),
                "# plain output".to_owned(),
                "# ok 1 not a result".to_owned()
            ])
        );
    }

    #[test]
    fn missing_plan_and_wrong_count() {
        let report = parse_str("KTAP version 1\nok 1 a\nok 2 b\n");
        assert_eq!(report.counts.pass, 2);
        assert!(report
            .diagnostics
            .iter()
            .any(|d| d.message == "top level has no plan"));
        let report = parse_str("KTAP version 1\n1..2\nok 1 a\nok 2 b\nok 3 c\n");
        assert_eq!(report.counts.pass, 3);
        assert!(report
            .diagnostics
            .iter()
            .any(|d| d.message.contains("planned 2 tests but 3 reported")));
        assert!(!report.failed());
    }

    #[test]
    fn numbering_gap_fills_missing() {
        let report = parse_str("KTAP version 1\n1..4\nok 1 a\nok 3 c\nok 4 d\n");
        assert_eq!(
            statuses(&report),
            [
                s("a", Status::Pass),
                s("#2", Status::Missing),
                s("c", Status::Pass),
                s("d", Status::Pass)
            ]
        );
    }

    #[test]
    fn flat_nesting_like_kunit_py() {
        let report = parse_str(
            "KTAP version 1\n1..2\n# Subtest: s\n1..2\nok 1 a\nok 2 b\nok 1 s\nKTAP version 1\n# Subtest: p\nok 1 x\nok 2 y\nok 2 p\n",
        );
        assert_eq!(
            statuses(&report),
            [
                s("s", Status::Pass),
                s("s/a", Status::Pass),
                s("s/b", Status::Pass),
                s("p", Status::Pass),
                s("p/x", Status::Pass),
                s("p/y", Status::Pass),
            ]
        );
    }

    #[test]
    fn module_load_without_top_level_header() {
        let report = parse_str(
            "    KTAP version 1\n    # Subtest: kvm_mm\n    1..2\n    ok 1 a\n    not ok 2 b\nnot ok 1 kvm_mm\n",
        );
        assert_eq!(
            statuses(&report),
            [
                s("kvm_mm", Status::Fail),
                s("kvm_mm/a", Status::Pass),
                s("kvm_mm/b", Status::Fail)
            ]
        );
    }

    #[test]
    fn whitespace_console_prefix_is_promoted() {
        let report =
            parse_str(" TAP version 14\n 1..1\n \t# Subtest: s\n \t1..1\n \tok 1 a\n ok 1 s\n");
        assert_eq!(
            statuses(&report),
            [s("s", Status::Pass), s("s/a", Status::Pass)]
        );
        assert!(!report.has_errors());
    }

    #[test]
    fn console_prefix_is_stripped() {
        let report = parse_str(
            "noise\nvm0: KTAP version 1\nvm0: 1..1\nvm0:     ok 1 case\nother line\nvm0: ok 1 s\n",
        );
        assert_eq!(report.version.as_deref(), Some("KTAP version 1"));
        assert_eq!(
            statuses(&report),
            [s("s", Status::Pass), s("s/case", Status::Pass)]
        );
        assert_eq!(
            report.find("s").map(|n| n.log.clone()),
            Some(vec!["other line".to_owned()])
        );
    }

    #[test]
    fn empty_and_garbage() {
        let report = parse_str("");
        assert!(report.tests.is_empty());
        assert!(report.has_errors());
        assert!(!report.failed());
        let report = parse_str("\u{0}\u{7f}garbage\nok 1 looks like a result\n1..3\n");
        assert!(report.tests.is_empty());
    }

    #[test]
    fn invalid_utf8_bytes() {
        let mut p = Parser::new();
        p.feed_bytes(b"KTAP version 1");
        p.feed_bytes(b"1..1");
        p.feed_bytes(b"# \xff\xfe broken");
        p.feed_bytes(b"ok 1 t\xc3");
        let report = p.finish();
        assert_eq!(report.tests[0].name, "t\u{fffd}");
        assert_eq!(report.tests[0].log, ["# \u{fffd}\u{fffd} broken"]);
    }

    #[test]
    fn log_is_capped() {
        let mut input = String::from("KTAP version 1\n1..1\n");
        for i in 0..1000 {
            input.push_str(&format!("# line {i}\n"));
        }
        input.push_str("ok 1 t\n");
        let report = parse_str(&input);
        let t = &report.tests[0];
        assert_eq!(t.log.len(), 201);
        assert_eq!(t.log_dropped, 800);
        assert_eq!(t.log[0], "# line 0");
        assert_eq!(t.log[200], "# line 999");
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut input = String::from("KTAP version 1\n1..1\n");
        for d in 1..=200 {
            input.push_str(&format!(
                "{}KTAP version 1\n{}1..1\n",
                " ".repeat(d * 2),
                " ".repeat(d * 2)
            ));
        }
        for d in (0..=200).rev() {
            input.push_str(&format!("{}ok 1 level{d}\n", " ".repeat(d * 2)));
        }
        let report = parse_str(&input);
        let depth = report.iter().map(|t| t.depth).max();
        assert_eq!(depth, Some(MAX_DEPTH));
        assert!(report.has_errors());
    }

    #[test]
    fn reader_handles_long_lines_and_no_final_newline() {
        let mut input = b"KTAP version 1\n1..1\n# ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 200_000));
        input.extend_from_slice(b"\nok 1 t");
        let report = crate::parse_reader(&input[..]);
        assert_eq!(report.tests[0].status, Status::Pass);
        assert_eq!(report.tests[0].log[0].len(), MAX_LINE_BYTES);
    }

    /// Random soups of KTAP fragments never panic and always yield a
    /// consistent report.
    #[test]
    fn random_input_never_panics() {
        const FRAGMENTS: [&str; 24] = [
            "KTAP version 1",
            "TAP version 13",
            "1..3",
            "1..0 # SKIP",
            "ok 1 a",
            "not ok 2 b # TODO",
            "ok 3 # SKIP",
            "ok 9 far",
            "# Subtest: s",
            "# diag",
            "# ok 1 x",
            "# TAP version 13",
            "Kernel panic - not syncing: x",
            "BUG: oops",
            "[    1.000000] ",
            "\t",
            "  ",
            "    ",
            "# # ",
            "garbage \u{fffd}",
            "ok 4294967295 max",
            "1..4294967295",
            "Bail out!",
            "#",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let mut input = String::new();
            for _ in 0..next() % 40 {
                for _ in 0..1 + next() % 3 {
                    let frag = FRAGMENTS[(next() % FRAGMENTS.len() as u64) as usize];
                    input.push_str(frag);
                }
                input.push('\n');
            }
            let report = parse_str(&input);
            assert_eq!(report.counts, Counts::of(&report.tests), "{input}");
            assert_eq!(report.failed(), report.counts.failed() > 0, "{input}");
        }
    }

    #[test]
    fn reader_error_is_a_diagnostic() {
        struct Failing(bool);
        impl std::io::Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 {
                    return Err(std::io::Error::other("boom"));
                }
                self.0 = true;
                let data = b"KTAP version 1\n1..1\n";
                buf[..data.len()].copy_from_slice(data);
                Ok(data.len())
            }
        }
        let report = crate::parse_reader(std::io::BufReader::new(Failing(false)));
        assert!(report
            .diagnostics
            .iter()
            .any(|d| d.message.contains("boom")));
        assert_eq!(statuses(&report), [s("#1", Status::Missing)]);
    }
}
