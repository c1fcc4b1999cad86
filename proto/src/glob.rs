//! Redis's glob matching (`stringmatchlen` in util.c) for KEYS and SCAN
//! MATCH: `*`, `?`, `[abc]`, `[^a]`, `[a-z]` (reversed ranges allowed) and
//! `\` escapes, byte-wise and case-sensitive. Edge cases (an unterminated
//! `[`, a trailing `\`) behave as in Redis.

/// Whether `text` matches the glob `pattern`.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let mut skip_longer = false;
    match_from(pattern, text, &mut skip_longer, 0)
}

/// Recursion guard against abusive patterns, as in Redis.
const MAX_NESTING: usize = 1000;

fn match_from(mut pat: &[u8], mut text: &[u8], skip_longer: &mut bool, nesting: usize) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    while !pat.is_empty() && !text.is_empty() {
        match pat[0] {
            b'*' => {
                while pat.len() > 1 && pat[1] == b'*' {
                    pat = &pat[1..];
                }
                if pat.len() == 1 {
                    return true;
                }
                while !text.is_empty() {
                    if match_from(&pat[1..], text, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    text = &text[1..];
                }
                // The rest of the pattern matches nowhere in the rest of the
                // text, so no earlier `*` can help either.
                *skip_longer = true;
                return false;
            }
            b'?' => text = &text[1..],
            b'[' => {
                pat = &pat[1..];
                let negate = pat.first() == Some(&b'^');
                if negate {
                    pat = &pat[1..];
                }
                let c = text[0];
                let mut matched = false;
                loop {
                    match pat {
                        [b'\\', escaped, ..] => {
                            pat = &pat[1..];
                            if *escaped == c {
                                matched = true;
                            }
                        }
                        [b']', ..] => break,
                        [] => {
                            // Unterminated class: stop at the pattern's end.
                            break;
                        }
                        [start, b'-', end, ..] => {
                            let (lo, hi) = if start <= end {
                                (*start, *end)
                            } else {
                                (*end, *start)
                            };
                            if lo <= c && c <= hi {
                                matched = true;
                            }
                            pat = &pat[2..];
                        }
                        [single, ..] => {
                            if *single == c {
                                matched = true;
                            }
                        }
                    }
                    pat = &pat[1..];
                }
                if negate {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                text = &text[1..];
                if pat.is_empty() {
                    // Redis steps back onto the terminator here; the shared
                    // advance below would step past it, so finish now.
                    return text.is_empty();
                }
            }
            b'\\' if pat.len() >= 2 => {
                pat = &pat[1..];
                if pat[0] != text[0] {
                    return false;
                }
                text = &text[1..];
            }
            literal => {
                if literal != text[0] {
                    return false;
                }
                text = &text[1..];
            }
        }
        pat = &pat[1..];
        if text.is_empty() {
            while pat.first() == Some(&b'*') {
                pat = &pat[1..];
            }
            break;
        }
    }
    pat.is_empty() && text.is_empty()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn pathological_patterns_do_not_backtrack_exponentially() {
        // Naive backtracking would never finish on this input.
        let text = [b'a'; 200];
        assert!(!glob_match(b"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", &text));
        let stars = [b'*'; 500];
        assert!(glob_match(&stars, &text));
    }

    #[test]
    fn globs_match_like_redis() {
        let cases: &[(&str, &str, bool)] = &[
            // Redis never enters its loop for an empty text, so only an
            // empty pattern matches it (KEYS * / MATCH * special-case "*").
            ("*", "", false),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "hllo", true),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h[b-a]llo", "hallo", true),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("[\\]]", "]", true),
            ("[\\-]", "-", true),
            // Redis reads "a-]" as the range ']'..='a', leaving the class
            // unterminated; "-" is not in it.
            ("[a-]", "-", false),
            ("[a-]", "_", true),
            ("user:*:name", "user:42:name", true),
            ("user:*:name", "user:42:age", false),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c*", "xxaxxcxxbxx", false),
            ("a*", "a", true),
            ("a**", "a", true),
            ("**", "", false),
            ("?", "", false),
            ("foo\\", "foo\\", true),
            ("[abc", "a", true),
            ("[abc", "ab", false),
            ("ab[", "abc", false),
        ];
        for &(pattern, text, expected) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                expected,
                "pattern {pattern:?} text {text:?}"
            );
        }
    }

    #[test]
    fn binary_bytes_and_pathological_patterns_are_safe() {
        assert!(glob_match(b"\xff*", b"\xff\x00\x01"));
        assert!(glob_match(b"[\x00-\xff]", b"\x80"));
        let pattern = "*a".repeat(200) + "b";
        let text = "a".repeat(300);
        assert!(!glob_match(pattern.as_bytes(), text.as_bytes()));
    }
}
