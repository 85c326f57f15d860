//! mboxrd mailboxes, as lore.kernel.org serves them and `git am
//! --patch-format=mboxrd` and b4 read them.

/// The separator line of every message, lore's.
pub const FROM_LINE: &str = "From mboxrd@z Thu Jan  1 00:00:00 1970";

/// Builds an mboxrd mailbox from raw messages (as an SMTP server receives
/// them: CRLF or LF line ends): LF line ends, a `From ` line before each
/// message, `>` added to body lines that match `^>*From `, and a blank
/// line after each message.
pub fn from_messages<M: AsRef<[u8]>>(messages: &[M]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.extend_from_slice(FROM_LINE.as_bytes());
        out.push(b'\n');
        let text = m.as_ref();
        let mut lines = text.split(|&b| b == b'\n').peekable();
        while let Some(line) = lines.next() {
            if lines.peek().is_none() && line.is_empty() {
                break;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let quoted = line.iter().position(|&b| b != b'>').unwrap_or(line.len());
            if line[quoted..].starts_with(b"From ") {
                out.push(b'>');
            }
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// Splits an mboxrd mailbox into its messages, undoing the `>From `
/// quoting; the inverse of [`from_messages`] up to line ends.
pub fn split(mbox: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for line in mbox.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"From ") {
            out.push(Vec::new());
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        let quoted = line.iter().position(|&b| b != b'>').unwrap_or(line.len());
        if quoted > 0 && line[quoted..].starts_with(b"From ") {
            cur.extend_from_slice(&line[1..]);
        } else {
            cur.extend_from_slice(line);
        }
    }
    for m in &mut out {
        // The blank line that ends every message in the mailbox.
        if m.ends_with(b"\n\n") {
            m.pop();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_from_lines_and_round_trips() {
        let a = b"Subject: a\r\n\r\nFrom here on\r\n>From there\r\nend\r\n".to_vec();
        let b = b"Subject: b\n\nbody\n".to_vec();
        let mbox = from_messages(&[a, b.clone()]);
        assert_eq!(
            String::from_utf8(mbox.clone()).unwrap(),
            format!(
                "{FROM_LINE}\nSubject: a\n\n>From here on\n>>From there\nend\n\n\
                 {FROM_LINE}\nSubject: b\n\nbody\n\n"
            )
        );
        let back = split(&mbox);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], b"Subject: a\n\nFrom here on\n>From there\nend\n");
        assert_eq!(back[1], b);
    }
}
