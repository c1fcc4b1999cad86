//! `COMMAND DOCS` facts beyond a row's summary, since and group: complexity,
//! doc flags, history and Redis 7 argument specs. The data is generated from
//! redis-server (`command_docs_table.rs`, see `proto/gen/command_docs.py`);
//! [`docs`] finds a command's entry by its `COMMAND` name.

/// An argument's type, as `COMMAND DOCS` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    String,
    Integer,
    Double,
    /// A key; its index into the command's key specs is [`Arg::key_spec_index`].
    Key,
    Pattern,
    UnixTime,
    PureToken,
    OneOf,
    Block,
}

impl ArgType {
    pub fn name(self) -> &'static str {
        match self {
            ArgType::String => "string",
            ArgType::Integer => "integer",
            ArgType::Double => "double",
            ArgType::Key => "key",
            ArgType::Pattern => "pattern",
            ArgType::UnixTime => "unix-time",
            ArgType::PureToken => "pure-token",
            ArgType::OneOf => "oneof",
            ArgType::Block => "block",
        }
    }
}

pub const OPTIONAL: u8 = 1;
pub const MULTIPLE: u8 = 2;
pub const MULTIPLE_TOKEN: u8 = 4;

/// One argument spec (Redis's `redisCommandArg`).
#[derive(Debug, Clone, Copy)]
pub struct Arg {
    pub name: &'static str,
    pub kind: ArgType,
    pub key_spec_index: Option<u32>,
    pub display_text: Option<&'static str>,
    pub token: Option<&'static str>,
    pub summary: Option<&'static str>,
    pub since: Option<&'static str>,
    pub deprecated_since: Option<&'static str>,
    /// [`OPTIONAL`] | [`MULTIPLE`] | [`MULTIPLE_TOKEN`].
    pub flags: u8,
    /// The members of a `oneof` or `block`.
    pub arguments: &'static [Arg],
}

impl Arg {
    pub const fn new(name: &'static str, kind: ArgType) -> Arg {
        Arg {
            name,
            kind,
            key_spec_index: None,
            display_text: None,
            token: None,
            summary: None,
            since: None,
            deprecated_since: None,
            flags: 0,
            arguments: &[],
        }
    }

    pub const fn key(name: &'static str, key_spec_index: u32) -> Arg {
        let mut arg = Arg::new(name, ArgType::Key);
        arg.key_spec_index = Some(key_spec_index);
        arg
    }

    /// The key spec a non-key argument names keys by (SORT's BY and GET
    /// patterns).
    pub const fn key_spec(mut self, index: u32) -> Arg {
        self.key_spec_index = Some(index);
        self
    }

    pub const fn display_text(mut self, text: &'static str) -> Arg {
        self.display_text = Some(text);
        self
    }

    pub const fn token(mut self, token: &'static str) -> Arg {
        self.token = Some(token);
        self
    }

    pub const fn summary(mut self, summary: &'static str) -> Arg {
        self.summary = Some(summary);
        self
    }

    pub const fn since(mut self, since: &'static str) -> Arg {
        self.since = Some(since);
        self
    }

    pub const fn deprecated_since(mut self, version: &'static str) -> Arg {
        self.deprecated_since = Some(version);
        self
    }

    pub const fn flags(mut self, flags: u8) -> Arg {
        self.flags = flags;
        self
    }

    pub const fn args(mut self, arguments: &'static [Arg]) -> Arg {
        self.arguments = arguments;
        self
    }

    /// The flag names `COMMAND DOCS` lists, in Redis's order.
    pub fn flag_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        [
            (OPTIONAL, "optional"),
            (MULTIPLE, "multiple"),
            (MULTIPLE_TOKEN, "multiple_token"),
        ]
        .into_iter()
        .filter(|(bit, _)| self.flags & bit != 0)
        .map(|(_, name)| name)
    }
}

/// A command's documentation beyond its row.
#[derive(Debug, Clone, Copy)]
pub struct Docs {
    pub complexity: &'static str,
    pub doc_flags: &'static [&'static str],
    pub deprecated_since: Option<&'static str>,
    pub replaced_by: Option<&'static str>,
    /// (version, change) pairs.
    pub history: &'static [(&'static str, &'static str)],
    pub arguments: &'static [Arg],
}

/// The docs of `name` (`parent|sub` for a subcommand); None for Rampart's
/// internal commands, which Redis does not document.
pub fn docs(name: &str) -> Option<&'static Docs> {
    crate::command_docs_table::lookup(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command_table::COMMANDS;

    #[test]
    fn every_redis_command_has_docs() {
        let specs = COMMANDS
            .iter()
            .flat_map(|spec| std::iter::once(spec).chain(spec.subcommands));
        for spec in specs {
            if spec.name.starts_with("rampart.") {
                continue;
            }
            assert!(docs(spec.name).is_some(), "{} has no docs", spec.name);
        }
    }

    #[test]
    fn set_arguments_follow_redis() {
        let set = docs("set").unwrap();
        assert_eq!(set.complexity, "O(1)");
        let names: Vec<_> = set.arguments.iter().map(|a| a.name).collect();
        assert_eq!(names, ["key", "value", "condition", "get", "expiration"]);
        assert_eq!(set.arguments[0].key_spec_index, Some(0));
        let expiration = &set.arguments[4];
        assert_eq!(expiration.kind, ArgType::OneOf);
        assert_eq!(expiration.flag_names().collect::<Vec<_>>(), ["optional"]);
        assert_eq!(expiration.arguments[2].token, Some("EXAT"));
    }
}
