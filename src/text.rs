//! Text that came from outside (a request, a file) on its way back out: clipped to a
//! length, and with control characters escaped, so it can never move a terminal's cursor,
//! clear its screen or start a line of its own in a log.

use std::borrow::Cow;
use std::fmt::Write;

/// `bytes` as lowercase hexadecimal: tokens, digests and ids that must travel as text.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String can not fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// `text` cut to at most `max_chars` characters.
pub fn clip(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// `clip` that marks a cut with `…`, for text quoted back to whoever sent it.
pub fn clip_marked(text: &str, max_chars: usize) -> String {
    let clipped = clip(text, max_chars);
    if clipped.len() < text.len() {
        format!("{clipped}…")
    } else {
        clipped.to_owned()
    }
}

/// `text` with every control character (C0, DEL, C1: what a terminal acts on) written as
/// a visible escape: `\n`, `\t`, `\r`, or `\u{1b}`. Borrowed when there is none.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text);
    Cow::Owned(out)
}

/// Appends `text` to `out` with its control characters escaped as in [`escape_controls`].
pub fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn controls_become_visible_and_nothing_else_changes() {
        assert!(matches!(escape_controls("plain é ✓"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\u{1b}[2J\nimported 0 posts\r\u{7f}\u{9b}"),
            "a\\u{1b}[2J\\nimported 0 posts\\r\\u{7f}\\u{9b}"
        );
        assert_eq!(clip("héllo", 2), "hé");
        assert_eq!(clip_marked("héllo", 2), "hé…");
        assert_eq!(clip_marked("hé", 2), "hé");
    }
}
