//! A small C lexer that knows just enough to find item boundaries.
//!
//! It never fails: unterminated comments and literals end at the end of the
//! file (literals also at the end of their line), and any byte it does not
//! recognise becomes a one-character punctuation token.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokKind {
    /// An identifier or keyword.
    Ident,
    /// A numeric literal.
    Number,
    /// A string literal, quotes included.
    Str,
    /// A character literal, quotes included.
    Char,
    /// One punctuation character.
    Punct,
    /// A `/* */` or `//` comment.
    Comment,
    /// A whole preprocessor line, continuations and comments included,
    /// without the final newline.
    Preproc,
}

/// One token: its kind and byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: TokKind,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Byte offsets of line starts, to map offsets to lines and columns.
#[derive(Debug)]
pub(crate) struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub(crate) fn new(src: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            src.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Lines { starts }
    }

    /// The 1-based line that holds byte `pos`.
    pub(crate) fn line(&self, pos: usize) -> usize {
        self.starts.partition_point(|&s| s <= pos)
    }

    /// The byte offset where the line holding `pos` starts.
    pub(crate) fn line_start(&self, pos: usize) -> usize {
        self.starts[self.line(pos) - 1]
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b'$'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// Length of a backslash-newline splice at `i`, or 0.
fn splice_len(b: &[u8], i: usize) -> usize {
    match (b.get(i), b.get(i + 1), b.get(i + 2)) {
        (Some(b'\\'), Some(b'\n'), _) => 2,
        (Some(b'\\'), Some(b'\r'), Some(b'\n')) => 3,
        _ => 0,
    }
}

/// End of the block comment starting at `i` (which holds `/*`).
fn block_comment_end(src: &str, i: usize) -> usize {
    src[i + 2..].find("*/").map_or(src.len(), |p| i + 2 + p + 2)
}

/// End of the string or char literal starting at `i` (its opening quote).
/// An unescaped newline ends an unterminated literal before the newline.
fn literal_end(b: &[u8], i: usize) -> usize {
    let quote = b[i];
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'\n' => return j,
            c if c == quote => return j + 1,
            _ => j += 1,
        }
    }
    b.len()
}

/// End of the preprocessor line starting at `i` (its `#`), without the
/// newline that ends it.
fn preproc_end(src: &str, i: usize) -> usize {
    let b = src.as_bytes();
    let mut j = i + 1;
    while j < b.len() {
        let splice = splice_len(b, j);
        if splice > 0 {
            j += splice;
            continue;
        }
        match b[j] {
            b'\n' => return j,
            b'/' if b.get(j + 1) == Some(&b'*') => j = block_comment_end(src, j),
            b'/' if b.get(j + 1) == Some(&b'/') => {
                return src[j..].find('\n').map_or(b.len(), |p| j + p);
            }
            b'"' | b'\'' => j = literal_end(b, j),
            _ => j += 1,
        }
    }
    b.len()
}

/// Splits `src` into tokens; whitespace and line splices are dropped.
pub(crate) fn lex(src: &str) -> Vec<Token> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // Only whitespace (or nothing) since the last newline: a `#` here starts
    // a preprocessor line.
    let mut line_start = true;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line_start = true;
            i += 1;
            continue;
        }
        if matches!(c, b' ' | b'\t' | b'\r' | 0x0b | 0x0c) {
            i += 1;
            continue;
        }
        let splice = splice_len(b, i);
        if splice > 0 {
            i += splice;
            continue;
        }
        let (kind, end) = match c {
            b'/' if b.get(i + 1) == Some(&b'*') => (TokKind::Comment, block_comment_end(src, i)),
            b'/' if b.get(i + 1) == Some(&b'/') => (
                TokKind::Comment,
                src[i..].find('\n').map_or(b.len(), |p| i + p),
            ),
            b'#' if line_start => (TokKind::Preproc, preproc_end(src, i)),
            b'"' => (TokKind::Str, literal_end(b, i)),
            b'\'' => (TokKind::Char, literal_end(b, i)),
            c if is_ident_start(c) => {
                let mut j = i + 1;
                while j < b.len() && is_ident_char(b[j]) {
                    j += 1;
                }
                (TokKind::Ident, j)
            }
            c if c.is_ascii_digit() => {
                let hex = matches!(b.get(i + 1), Some(b'x' | b'X'));
                let mut j = i + 1;
                while j < b.len() {
                    let d = b[j];
                    let exponent_sign = matches!(d, b'+' | b'-')
                        && (matches!(b[j - 1], b'p' | b'P')
                            || (!hex && matches!(b[j - 1], b'e' | b'E')));
                    if is_ident_char(d) || d == b'.' || exponent_sign {
                        j += 1;
                    } else {
                        break;
                    }
                }
                (TokKind::Number, j)
            }
            c if c >= 0x80 => {
                // Keep multi-byte UTF-8 characters whole so every token
                // boundary is a char boundary.
                let mut j = i + 1;
                while j < b.len() && (0x80..0xc0).contains(&b[j]) {
                    j += 1;
                }
                (TokKind::Punct, j)
            }
            _ => (TokKind::Punct, i + 1),
        };
        let end = end.min(b.len());
        out.push(Token {
            kind,
            start: i,
            end,
        });
        line_start = false;
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(TokKind, &str)> {
        lex(src)
            .into_iter()
            .map(|t| (t.kind, &src[t.start..t.end]))
            .collect()
    }

    #[test]
    fn literals_hide_braces_and_comment_markers() {
        let src = r#"a = "}/*\"{"; b = '{'; c = '\''; d = "//";"#;
        let toks = kinds(src);
        assert!(toks.contains(&(TokKind::Str, r#""}/*\"{""#)));
        assert!(toks.contains(&(TokKind::Char, "'{'")));
        assert!(toks.contains(&(TokKind::Char, r"'\''")));
        assert!(toks.contains(&(TokKind::Str, r#""//""#)));
        assert!(!toks.iter().any(|t| t.0 == TokKind::Comment));
    }

    #[test]
    fn preproc_line_with_continuations_and_comments() {
        let src = "#define X(a) { \\\n\t(a); } /* c\n d */ more\nint y;\n";
        let toks = kinds(src);
        assert_eq!(
            toks[0],
            (
                TokKind::Preproc,
                "#define X(a) { \\\n\t(a); } /* c\n d */ more"
            )
        );
        assert_eq!(toks[1], (TokKind::Ident, "int"));
    }

    #[test]
    fn hash_not_at_line_start_is_punct() {
        let toks = kinds("a # b\n  #if X\n");
        assert_eq!(toks[1], (TokKind::Punct, "#"));
        assert_eq!(toks[3], (TokKind::Preproc, "#if X"));
    }

    #[test]
    fn apostrophe_in_error_directive_stops_at_line_end() {
        let toks = kinds("#error don't\nint x;\n");
        assert_eq!(toks[0], (TokKind::Preproc, "#error don't"));
        assert_eq!(toks[1], (TokKind::Ident, "int"));
    }

    #[test]
    fn unterminated_comment_and_utf8() {
        let toks = kinds("é /* open");
        assert_eq!(toks[0], (TokKind::Punct, "é"));
        assert_eq!(toks[1], (TokKind::Comment, "/* open"));
    }

    #[test]
    fn numbers_with_exponents() {
        let toks = kinds("1e+5 0x1fUL 1.5 0x1e+5");
        assert_eq!(toks[0], (TokKind::Number, "1e+5"));
        assert_eq!(toks[3], (TokKind::Number, "0x1e"));
        assert_eq!(toks[1], (TokKind::Number, "0x1fUL"));
        assert_eq!(toks[2], (TokKind::Number, "1.5"));
    }

    #[test]
    fn lines_map_offsets() {
        let l = Lines::new("ab\ncd\n");
        assert_eq!(l.line(0), 1);
        assert_eq!(l.line(2), 1);
        assert_eq!(l.line(3), 2);
        assert_eq!(l.line_start(4), 3);
        assert_eq!(l.line(6), 3);
    }
}
