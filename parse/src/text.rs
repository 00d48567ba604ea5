//! String rules: every text value that reaches a `text` column passes [`clean_text`].
//!
//! Rules, in order (each is counted by the caller when it changes something):
//! 1. `lone_surrogate`: invalid UTF-8 and lone UTF-16 surrogates, raw or written as
//!    `\uD83D`-style escapes, become U+FFFD.
//! 2. `control_chars`: control characters are removed, except `\n` and `\t` (NUL included:
//!    PostgreSQL `text` rejects a 0x00 byte).
//! 3. `nfc`: the text is put in Unicode Normalization Form C.
//! 4. trimmed; an empty result is `None`.

use std::borrow::Cow;
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// What [`clean_text`] had to repair in one value.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TextRepairs {
    /// A lone surrogate (escaped) or invalid UTF-8 was replaced by U+FFFD.
    pub surrogates: bool,
    /// Control characters were removed.
    pub control: bool,
    /// The text was not in NFC.
    pub nfc: bool,
}

/// Cleans one string for a `text` column; `None` when nothing is left.
pub fn clean_text(s: &str) -> (Option<String>, TextRepairs) {
    let mut repairs = TextRepairs::default();
    // Fast path, the common case by far: printable ASCII, and from the first byte that is not
    // on, no control character, no backslash, and every character one that is in NFC on its
    // own and never combines (see `plainly_nfc`): only trimming. (That byte starts a
    // character: every byte before it is ASCII.)
    let simple = |b: u8| (0x20..0x7f).contains(&b) && b != b'\\' || b == b'\n' || b == b'\t';
    let plain = |c: char| plainly_nfc(c) && (!c.is_control() || c == '\n' || c == '\t') && c != '\\';
    if s.bytes().position(|b| !simple(b)).is_none_or(|i| s[i..].chars().all(plain)) {
        let t = s.trim();
        return ((!t.is_empty()).then(|| t.to_owned()), repairs);
    }
    let mut text: Cow<str> = Cow::Borrowed(s);
    if text.contains("\\u") || text.contains("\\U") {
        let (fixed, changed) = replace_lone_surrogate_escapes(&text);
        if changed {
            repairs.surrogates = true;
            text = Cow::Owned(fixed);
        }
    }
    if text.chars().any(is_removed_control) {
        repairs.control = true;
        text = Cow::Owned(text.chars().filter(|c| !is_removed_control(*c)).collect());
    }
    if is_nfc_quick(text.chars()) != IsNormalized::Yes {
        let n: String = text.nfc().collect();
        if n != text {
            repairs.nfc = true;
            text = Cow::Owned(n);
        }
    }
    let t = text.trim();
    ((!t.is_empty()).then(|| t.to_owned()), repairs)
}

/// Tells whether `c` lies where every character is NFC on its own with combining class 0
/// (so any text of them is NFC): below U+0300, where the combining marks begin, and the
/// emoji and pictograph blocks U+1F300–U+1FAFF. A test checks every character of both.
pub(crate) fn plainly_nfc(c: char) -> bool {
    c < '\u{300}' || ('\u{1F300}'..='\u{1FAFF}').contains(&c)
}

/// Cleans raw bytes: invalid UTF-8 becomes U+FFFD, then [`clean_text`].
pub fn clean_bytes(b: &[u8]) -> (Option<String>, TextRepairs) {
    match std::str::from_utf8(b) {
        Ok(s) => clean_text(s),
        Err(_) => {
            let lossy = String::from_utf8_lossy(b);
            let (out, mut r) = clean_text(&lossy);
            r.surrogates = true;
            (out, r)
        }
    }
}

/// Tells whether `c` is a control character that [`clean_text`] removes.
pub fn is_removed_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// Replaces escaped lone surrogates (`\uD83D` not followed by a low surrogate escape, or a
/// lone `\uDC00`) with U+FFFD in free text. Valid pairs and other text stay as they are.
fn replace_lone_surrogate_escapes(s: &str) -> (String, bool) {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut i = 0;
    let mut copied = 0;
    while i + 6 <= b.len() {
        if b[i] == b'\\' && (b[i + 1] == b'u' || b[i + 1] == b'U') {
            if let Some(u) = hex4(&b[i + 2..i + 6]) {
                if (0xD800..0xDC00).contains(&u) {
                    let paired = i + 12 <= b.len()
                        && b[i + 6] == b'\\'
                        && (b[i + 7] == b'u' || b[i + 7] == b'U')
                        && hex4(&b[i + 8..i + 12]).is_some_and(|l| (0xDC00..0xE000).contains(&l));
                    if paired {
                        i += 12;
                        continue;
                    }
                }
                if (0xD800..0xE000).contains(&u) {
                    out.push_str(&s[copied..i]);
                    out.push('\u{FFFD}');
                    changed = true;
                    i += 6;
                    copied = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    (out, changed)
}

/// Parses four hex digits.
pub(crate) fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() != 4 {
        return None;
    }
    b.iter().try_fold(0u32, |acc, c| {
        let d = (*c as char).to_digit(16)?;
        Some(acc * 16 + d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> Option<String> {
        clean_text(s).0
    }

    #[test]
    fn control_characters_are_removed_but_newline_and_tab_stay() {
        assert_eq!(clean("a\u{0}b\u{7}c\r\nd\te\u{9f}").as_deref(), Some("abc\nd\te"));
    }

    #[test]
    fn every_plainly_nfc_character_is_nfc_alone_and_never_combines() {
        use unicode_normalization::char::canonical_combining_class;
        let ranges = [0..0x300u32, 0x1F300..0x1FB00];
        for c in ranges.into_iter().flatten().filter_map(char::from_u32) {
            assert!(plainly_nfc(c));
            assert_eq!(is_nfc_quick(std::iter::once(c)), IsNormalized::Yes, "{c:?}");
            assert_eq!(canonical_combining_class(c), 0, "{c:?}");
        }
        assert!(!plainly_nfc('\u{301}') && !plainly_nfc('\u{1100}'));
    }

    #[test]
    fn text_is_nfc() {
        let (out, r) = clean_text("Cafe\u{301}");
        assert_eq!(out.as_deref(), Some("Caf\u{e9}"));
        assert!(r.nfc);
    }

    #[test]
    fn escaped_lone_surrogates_become_replacement_characters() {
        assert_eq!(clean(r"hi \ud83d there").as_deref(), Some("hi \u{FFFD} there"));
        assert_eq!(clean(r"x\uDC00").as_deref(), Some("x\u{FFFD}"));
        // A valid escaped pair and a plain backslash are left alone.
        assert_eq!(clean(r"\ud83d\ude00 a\b").as_deref(), Some(r"\ud83d\ude00 a\b"));
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let (out, r) = clean_bytes(b"ok\xff\xfe!");
        assert_eq!(out.as_deref(), Some("ok\u{FFFD}\u{FFFD}!"));
        assert!(r.surrogates);
    }

    #[test]
    fn blank_text_is_none() {
        assert_eq!(clean("  \u{0} \t\n"), None);
        assert_eq!(clean(""), None);
        assert_eq!(clean("  x ").as_deref(), Some("x"));
    }
}
