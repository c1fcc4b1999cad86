//! Command templates and the weighted command mix.
//!
//! A template is a command line such as `SET key:__key__ __data__`. Arguments
//! are separated by whitespace; `"..."` or `'...'` group an argument that
//! contains spaces (inside double quotes `\"` and `\\` are escapes).
//! Placeholders, anywhere inside an argument:
//!
//! | placeholder | replaced by |
//! | --- | --- |
//! | `__key__` | a key index in `0..keyspace` (random, or sequential with `--key-pattern sequential`) |
//! | `__data__` | the value: `--value-size` bytes of random alphanumerics, generated once |
//! | `__rand_int__` | a random integer in `0..1_000_000_000` |
//!
//! Every occurrence of a placeholder in one command gets the same draw, so
//! `SET k:__key__ v:__key__` writes a matching key and value.

use crate::conn::{decimal_len, push_decimal};
use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bound (exclusive) of `__rand_int__`.
pub const RAND_INT_RANGE: u64 = 1_000_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkloadError {
    #[error("empty command template")]
    Empty,
    #[error("unterminated quote in template {0:?}")]
    UnterminatedQuote(String),
    #[error("{weights} weights given for {commands} commands")]
    WeightCount { weights: usize, commands: usize },
    #[error("the weights add up to zero")]
    ZeroWeights,
    #[error("--keyspace must be at least 1")]
    EmptyKeyspace,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(Vec<u8>),
    Key,
    Data,
    RandInt,
}

/// One parsed command template.
#[derive(Clone, Debug)]
pub struct Template {
    /// The template as given, used as its name in reports.
    pub text: String,
    args: Vec<Vec<Part>>,
}

/// Placeholder values for one command.
#[derive(Clone, Copy, Debug)]
pub struct Draw {
    pub key: u64,
    pub rand_int: u64,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, WorkloadError> {
        let args = split_args(text)?
            .into_iter()
            .map(|arg| split_placeholders(&arg))
            .collect::<Vec<_>>();
        if args.is_empty() {
            return Err(WorkloadError::Empty);
        }
        Ok(Template {
            text: text.trim().to_string(),
            args,
        })
    }

    /// Appends the command, placeholders filled from `draw` and `data`, to
    /// `out` as a RESP array.
    pub fn encode(&self, out: &mut Vec<u8>, draw: Draw, data: &[u8]) {
        out.push(b'*');
        push_decimal(out, self.args.len() as u64);
        out.extend_from_slice(b"\r\n");
        for arg in &self.args {
            let len: usize = arg
                .iter()
                .map(|p| match p {
                    Part::Literal(b) => b.len(),
                    Part::Key => decimal_len(draw.key),
                    Part::Data => data.len(),
                    Part::RandInt => decimal_len(draw.rand_int),
                })
                .sum();
            out.push(b'$');
            push_decimal(out, len as u64);
            out.extend_from_slice(b"\r\n");
            for p in arg {
                match p {
                    Part::Literal(b) => out.extend_from_slice(b),
                    Part::Key => push_decimal(out, draw.key),
                    Part::Data => out.extend_from_slice(data),
                    Part::RandInt => push_decimal(out, draw.rand_int),
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Splits a template into arguments (whitespace-separated, quotes group).
fn split_args(text: &str) -> Result<Vec<Vec<u8>>, WorkloadError> {
    let mut args = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(args);
        }
        let mut arg = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '"' | '\'' => {
                    let quote = c;
                    loop {
                        match chars.next() {
                            None => return Err(WorkloadError::UnterminatedQuote(text.into())),
                            Some(q) if q == quote => break,
                            Some('\\') if quote == '"' => match chars.next() {
                                Some(e @ ('"' | '\\')) => arg.push(e),
                                Some(other) => {
                                    arg.push('\\');
                                    arg.push(other);
                                }
                                None => return Err(WorkloadError::UnterminatedQuote(text.into())),
                            },
                            Some(other) => arg.push(other),
                        }
                    }
                }
                _ => arg.push(c),
            }
        }
        args.push(arg.into_bytes());
    }
}

/// Cuts one argument into literals and placeholders.
fn split_placeholders(arg: &[u8]) -> Vec<Part> {
    const PLACEHOLDERS: [(&[u8], Part); 3] = [
        (b"__key__", Part::Key),
        (b"__data__", Part::Data),
        (b"__rand_int__", Part::RandInt),
    ];
    let mut parts = Vec::new();
    let mut literal = Vec::new();
    let mut i = 0;
    'outer: while i < arg.len() {
        for (name, part) in &PLACEHOLDERS {
            if arg[i..].starts_with(name) {
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(part.clone());
                i += name.len();
                continue 'outer;
            }
        }
        literal.push(arg[i]);
        i += 1;
    }
    if !literal.is_empty() || parts.is_empty() {
        parts.push(Part::Literal(literal));
    }
    parts
}

/// How `__key__` is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyPattern {
    /// Uniformly random in `0..keyspace`.
    Random,
    /// 0, 1, 2, ... shared by all connections, wrapping at the keyspace.
    Sequential,
}

/// The weighted set of templates a benchmark draws from.
#[derive(Debug)]
pub struct Mix {
    pub templates: Vec<Template>,
    pub weights: Vec<u32>,
    cumulative: Vec<u64>,
    keyspace: u64,
    pattern: KeyPattern,
    next_key: AtomicU64,
    data: Vec<u8>,
}

impl Mix {
    /// `weights` empty means equal weights.
    pub fn new(
        commands: &[String],
        weights: &[u32],
        keyspace: u64,
        pattern: KeyPattern,
        data: Vec<u8>,
    ) -> Result<Mix, WorkloadError> {
        if keyspace == 0 {
            return Err(WorkloadError::EmptyKeyspace);
        }
        let templates = commands
            .iter()
            .map(|c| Template::parse(c))
            .collect::<Result<Vec<_>, _>>()?;
        if templates.is_empty() {
            return Err(WorkloadError::Empty);
        }
        let weights = if weights.is_empty() {
            vec![1; templates.len()]
        } else if weights.len() != templates.len() {
            return Err(WorkloadError::WeightCount {
                weights: weights.len(),
                commands: templates.len(),
            });
        } else {
            weights.to_vec()
        };
        let cumulative: Vec<u64> = weights
            .iter()
            .scan(0u64, |acc, &w| {
                *acc += u64::from(w);
                Some(*acc)
            })
            .collect();
        if cumulative.last().copied().unwrap_or(0) == 0 {
            return Err(WorkloadError::ZeroWeights);
        }
        Ok(Mix {
            templates,
            weights,
            cumulative,
            keyspace,
            pattern,
            next_key: AtomicU64::new(0),
            data,
        })
    }

    /// Index of a template, drawn by weight.
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        if self.templates.len() == 1 {
            return 0;
        }
        let total = *self.cumulative.last().expect("at least one template");
        let x = rng.gen_range(0..total);
        self.cumulative.partition_point(|&c| c <= x)
    }

    /// Placeholder values for the next command.
    pub fn draw(&self, rng: &mut impl Rng) -> Draw {
        let key = match self.pattern {
            KeyPattern::Random => rng.gen_range(0..self.keyspace),
            KeyPattern::Sequential => self.next_key.fetch_add(1, Ordering::Relaxed) % self.keyspace,
        };
        Draw {
            key,
            rand_int: rng.gen_range(0..RAND_INT_RANGE),
        }
    }

    /// Draws a template and appends the encoded command; returns its index.
    pub fn encode_next(&self, out: &mut Vec<u8>, rng: &mut impl Rng) -> usize {
        let t = self.pick(rng);
        let draw = self.draw(rng);
        self.templates[t].encode(out, draw, &self.data);
        t
    }
}

/// `len` random alphanumeric bytes (random so that RocksDB's compression
/// does not flatter the storage side).
pub fn random_data(len: usize, rng: &mut impl Rng) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn encode(t: &str, draw: Draw, data: &[u8]) -> String {
        let mut out = Vec::new();
        Template::parse(t).unwrap().encode(&mut out, draw, data);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fills_placeholders() {
        let d = Draw {
            key: 42,
            rand_int: 7,
        };
        assert_eq!(
            encode("SET key:__key__ __data__", d, b"xyz"),
            "*3\r\n$3\r\nSET\r\n$6\r\nkey:42\r\n$3\r\nxyz\r\n"
        );
        assert_eq!(
            encode("ZADD z __rand_int__ m:__key__:__key__", d, b""),
            "*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$1\r\n7\r\n$7\r\nm:42:42\r\n"
        );
        assert_eq!(
            encode("SET k __data__", d, b""),
            "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn quotes_group_arguments() {
        let d = Draw {
            key: 1,
            rand_int: 1,
        };
        assert_eq!(
            encode(r#"SET "a b" 'c "d"' "e\"f""#, d, b""),
            "*4\r\n$3\r\nSET\r\n$3\r\na b\r\n$5\r\nc \"d\"\r\n$3\r\ne\"f\r\n"
        );
        assert_eq!(
            encode(r#"ECHO """#, d, b""),
            "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
        );
        assert!(matches!(
            Template::parse("SET \"a"),
            Err(WorkloadError::UnterminatedQuote(_))
        ));
        assert!(matches!(Template::parse("   "), Err(WorkloadError::Empty)));
    }

    #[test]
    fn weights_are_respected() {
        let cmds = vec!["GET a".to_string(), "SET a b".to_string()];
        let mix = Mix::new(&cmds, &[80, 20], 10, KeyPattern::Random, vec![]).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = [0u32; 2];
        for _ in 0..10_000 {
            counts[mix.pick(&mut rng)] += 1;
        }
        assert!((7_500..8_500).contains(&counts[0]), "{counts:?}");
        let mix = Mix::new(&cmds, &[0, 1], 10, KeyPattern::Random, vec![]).unwrap();
        assert!((0..100).all(|_| mix.pick(&mut rng) == 1));
        assert_eq!(
            Mix::new(&cmds, &[1], 10, KeyPattern::Random, vec![]).unwrap_err(),
            WorkloadError::WeightCount {
                weights: 1,
                commands: 2
            }
        );
        assert_eq!(
            Mix::new(&cmds, &[0, 0], 10, KeyPattern::Random, vec![]).unwrap_err(),
            WorkloadError::ZeroWeights
        );
    }

    #[test]
    fn keys_stay_in_the_keyspace() {
        let cmds = vec!["GET __key__".to_string()];
        let mut rng = StdRng::seed_from_u64(2);
        let mix = Mix::new(&cmds, &[], 5, KeyPattern::Random, vec![]).unwrap();
        assert!((0..1000).all(|_| mix.draw(&mut rng).key < 5));
        let mix = Mix::new(&cmds, &[], 3, KeyPattern::Sequential, vec![]).unwrap();
        let keys: Vec<u64> = (0..5).map(|_| mix.draw(&mut rng).key).collect();
        assert_eq!(keys, vec![0, 1, 2, 0, 1]);
    }
}
