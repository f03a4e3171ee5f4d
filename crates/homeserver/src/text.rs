//! Text rules of the user directory: the one normalisation applied to both
//! indexed display names and search terms, and splitting a search term into
//! words.

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Lowercase, then NFKC: what Synapse applies before indexing or searching.
/// The order matters: a few letters (e.g. mathematical capitals) lowercase to
/// themselves and only become ASCII capitals under NFKC, so they stay capital.
pub fn normalise(text: &str) -> String {
    text.to_lowercase().nfkc().collect()
}

/// A Python-`\w`-like test on the first character of a segment.
fn starts_with_word_char(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Splits an already normalised search term into words: Unicode (UAX #29)
/// word segments, further split on `@` and `:` (user ids), with `-`, `.` and
/// `_` between two words joined back into one word (`user-71`, `a.b`), other
/// punctuation and spaces dropped.
pub fn parse_words(term: &str) -> Vec<String> {
    let parts: Vec<&str> = term
        .split_word_bounds()
        .flat_map(|seg| seg.split(['@', ':']))
        .map(str::trim)
        .collect();
    let mut words: Vec<String> = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        let curr = parts[i];
        let prev = if i > 0 { Some(parts[i - 1]) } else { None };
        let next = parts.get(i + 1).copied();
        i += 1;
        if curr.is_empty() {
            continue;
        }
        if matches!(curr, "-" | "." | "_") {
            // Only a joiner when a word follows; a trailing joiner is dropped.
            let Some(suffix) = next.filter(|n| starts_with_word_char(n)) else {
                continue;
            };
            i += 1;
            let prefix = if prev.is_some_and(starts_with_word_char) {
                words.pop().unwrap_or_default()
            } else {
                String::new()
            };
            words.push(format!("{prefix}{curr}{suffix}"));
        } else if starts_with_word_char(curr) {
            words.push(curr.to_owned());
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_lowercases_then_nfkc() {
        assert_eq!(normalise("ALICE"), "alice");
        // Decomposed accent composes.
        assert_eq!(normalise("Re\u{301}mi"), "r\u{e9}mi");
        // Full-width letters and ligatures fold.
        assert_eq!(normalise("\u{ff21}\u{ff22}"), "ab");
        assert_eq!(normalise("\u{fb01}sh"), "fish");
        // Mathematical bold capital A: lowercase leaves it, NFKC makes it 'A'.
        assert_eq!(normalise("\u{1d400}"), "A");
    }

    #[test]
    fn words_split_on_user_id_separators() {
        assert_eq!(
            parse_words("@alice:example.org"),
            vec!["alice", "example.org"]
        );
        assert_eq!(parse_words("user-71"), vec!["user-71"]);
        assert_eq!(parse_words("foo bar"), vec!["foo", "bar"]);
        assert_eq!(parse_words("a_b c"), vec!["a_b", "c"]);
        assert_eq!(parse_words("-71"), vec!["-71"]);
        assert_eq!(parse_words("user- "), vec!["user"]);
        assert_eq!(parse_words("hello, world!"), vec!["hello", "world"]);
        assert!(parse_words("  !! ").is_empty());
    }
}
