//! A log that keeps at most a fixed number of lines.

use std::collections::VecDeque;

/// Longest kept log line, in bytes; longer lines are cut (printk itself
/// limits a record to 1024 bytes).
pub(crate) const MAX_LINE_BYTES: usize = 1024;

/// Keeps the first and the last `cap / 2` lines and counts the rest.
///
/// # Invariants
///
/// `head.len() <= cap - cap / 2` and `tail.len() <= cap / 2`.
#[derive(Debug, Default)]
pub(crate) struct BoundedLog {
    head: Vec<String>,
    tail: VecDeque<String>,
    dropped: usize,
}

impl BoundedLog {
    /// Appends a line, dropping a middle line when over `cap`.
    pub(crate) fn push(&mut self, line: String, cap: usize) {
        let tail_cap = cap / 2;
        if self.head.len() < cap - tail_cap {
            self.head.push(line);
            return;
        }
        if tail_cap == 0 {
            self.dropped += 1;
            return;
        }
        // INVARIANT: the tail grows by one and shrinks back to `tail_cap`.
        self.tail.push_back(line);
        if self.tail.len() > tail_cap {
            self.tail.pop_front();
            self.dropped += 1;
        }
    }

    /// Appends all of `other`, carrying its dropped count over.
    pub(crate) fn append(&mut self, other: BoundedLog, cap: usize) {
        self.dropped += other.dropped;
        for line in other.head.into_iter().chain(other.tail) {
            self.push(line, cap);
        }
    }

    /// The kept lines, oldest first.
    pub(crate) fn lines(&self) -> impl DoubleEndedIterator<Item = &String> {
        self.head.iter().chain(self.tail.iter())
    }

    /// The kept lines, with a marker where lines were dropped, and the
    /// number dropped.
    pub(crate) fn into_parts(self) -> (Vec<String>, usize) {
        let mut lines = self.head;
        if self.dropped > 0 {
            lines.push(format!("[… {} lines dropped …]", self.dropped));
        }
        lines.extend(self.tail);
        (lines, self.dropped)
    }
}

/// Cuts `s` to at most [`MAX_LINE_BYTES`] on a character boundary.
pub(crate) fn clip(s: &str) -> &str {
    if s.len() <= MAX_LINE_BYTES {
        return s;
    }
    let mut end = MAX_LINE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_head_and_tail() {
        let mut log = BoundedLog::default();
        for i in 0..10 {
            log.push(i.to_string(), 4);
        }
        let (lines, dropped) = log.into_parts();
        assert_eq!(lines, ["0", "1", "[… 6 lines dropped …]", "8", "9"]);
        assert_eq!(dropped, 6);
    }

    #[test]
    fn under_cap_is_untouched() {
        let mut log = BoundedLog::default();
        log.push("a".into(), 4);
        log.push("b".into(), 4);
        let mut other = BoundedLog::default();
        other.push("c".into(), 4);
        log.append(other, 4);
        assert_eq!(
            log.into_parts(),
            (vec!["a".into(), "b".into(), "c".into()], 0)
        );
    }

    #[test]
    fn zero_and_one_caps() {
        let mut log = BoundedLog::default();
        log.push("a".into(), 0);
        assert_eq!(log.into_parts(), (vec!["[… 1 lines dropped …]".into()], 1));
        let mut log = BoundedLog::default();
        log.push("a".into(), 1);
        log.push("b".into(), 1);
        assert_eq!(log.into_parts().1, 1);
    }

    #[test]
    fn clips_on_char_boundary() {
        let long = "é".repeat(MAX_LINE_BYTES);
        let clipped = clip(&long);
        assert!(clipped.len() <= MAX_LINE_BYTES);
        assert!(clipped.chars().all(|c| c == 'é'));
        assert_eq!(clip("short"), "short");
    }
}
