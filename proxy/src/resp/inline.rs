//! Inline commands (`PING`, `SET k "a b"` typed into telnet or sent by
//! redis-cli for simple lines), split exactly like Redis's `sdssplitargs`.

use rampart_proto::Argv;

/// Splits one inline line into arguments. `None` when quotes are unbalanced
/// (or a closing quote is not followed by a space), which Redis reports as
/// `Protocol error: unbalanced quotes in request`.
pub fn split_args(line: &[u8]) -> Option<Argv> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            let c = line.get(i).copied();
            if in_double {
                match c {
                    None => return None,
                    Some(b'\\')
                        if i + 3 < line.len()
                            && line[i + 1] == b'x'
                            && hex(line[i + 2]).is_some()
                            && hex(line[i + 3]).is_some() =>
                    {
                        let (h, l) = (hex(line[i + 2]).unwrap_or(0), hex(line[i + 3]).unwrap_or(0));
                        current.push(h * 16 + l);
                        i += 3;
                    }
                    Some(b'\\') if i + 1 < line.len() => {
                        i += 1;
                        current.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        // The closing quote must be followed by a space or the end.
                        if i + 1 < line.len() && !is_space(line[i + 1]) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => current.push(other),
                }
            } else if in_single {
                match c {
                    None => return None,
                    Some(b'\\') if i + 1 < line.len() && line[i + 1] == b'\'' => {
                        i += 1;
                        current.push(b'\'');
                    }
                    Some(b'\'') => {
                        if i + 1 < line.len() && !is_space(line[i + 1]) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => current.push(other),
                }
            } else {
                match c {
                    None => break,
                    Some(b) if is_space(b) => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(other) => current.push(other),
                }
            }
            i += 1;
        }
        args.push(current);
    }
}

/// C's `isspace` in the "C" locale, as sdssplitargs uses it.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::split_args;

    fn split(s: &str) -> Option<Vec<String>> {
        split_args(s.as_bytes()).map(|v| {
            v.into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect()
        })
    }

    #[test]
    fn splits_on_whitespace() {
        assert_eq!(
            split("  SET  key\tvalue ").unwrap(),
            vec!["SET", "key", "value"]
        );
        assert_eq!(split("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn double_quotes_support_escapes() {
        assert_eq!(
            split(r#"SET k "a b\n\x41""#).unwrap(),
            vec!["SET", "k", "a b\nA"]
        );
        assert_eq!(
            split(r#"ECHO "say \"hi\"""#).unwrap(),
            vec!["ECHO", "say \"hi\""]
        );
        assert_eq!(split(r#"ECHO """#).unwrap(), vec!["ECHO", ""]);
    }

    #[test]
    fn single_quotes_are_literal_except_quote() {
        assert_eq!(split(r"ECHO 'a\nb\'c'").unwrap(), vec!["ECHO", "a\\nb'c"]);
    }

    #[test]
    fn unbalanced_quotes_are_rejected() {
        assert_eq!(split(r#"ECHO "abc"#), None);
        assert_eq!(split("ECHO 'abc"), None);
        assert_eq!(split(r#"ECHO "a"b"#), None);
    }
}
