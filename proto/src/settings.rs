//! One declaration per setting of a binary (the storage node, the proxy):
//! its flag, environment variable, file key, default and help text.
//!
//! [`settings!`](crate::settings) turns a list of declarations into
//!
//! - the clap flags struct: every field an `Option<T>` with `long` and
//!   `env`, and a help text ending in `[default: ...]` rendered from the
//!   declared default, so the flag (or its variable) is "present" only when
//!   the user gave it;
//! - the TOML file struct (`deny_unknown_fields`), one `Option<T>` per
//!   setting the file can set, keyed by the setting's name;
//! - a "layered" struct and `Args::layer(file)`: flag or env, else the file,
//!   else the declared default, so a setting with a default is a plain `T`
//!   there and one without is still an `Option<T>` for the code to decide;
//! - `Args::settings()`, the [`Setting`] list that `docs/operations.md` is
//!   checked against ([`check_doc_table`]).
//!
//! A declaration, after its doc comment (the help) and any extra
//! `#[arg(...)]` attributes for clap, reads
//! `name: Type, env "VAR", FILE, DEFAULT;` where FILE is `file` (the file
//! key is `name`), `file "section.key"` (set in a section that the binary
//! reads itself; the key is shown in the help) or `no_file`, and DEFAULT is
//! `default EXPR` (a `Type` value applied by `layer`), `unset TEXT` (no
//! value: `layer` leaves `None` and the code decides; TEXT says what
//! happens, e.g. `"off"` or a constant the code uses) or `no_default`.
//!
//! The macro expands in the calling crate, which must depend on `clap`
//! (with `derive` and `env`) and `serde` (with `derive`).

use std::net::SocketAddr;

/// One setting as `--help`, the docs and the tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The declared name: the flag is `--name` with `-` for `_`.
    pub name: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// Where the TOML file sets it: the name itself for a top-level key,
    /// a dotted path for one in a section, `None` if the file cannot.
    pub file_key: Option<&'static str>,
    /// The default as shown after `[default: ...]`, if any is shown.
    pub default: Option<String>,
    /// The doc comment, merged into one line.
    pub doc: String,
}

impl Setting {
    /// `--raft-addr` for `raft_addr`, as clap derives it.
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }

    /// The flag's help: the doc comment as clap would show it (without a
    /// final period), a file key in a section in parentheses, then the
    /// default.
    pub fn help(&self) -> String {
        let mut help = self.doc.clone();
        if help.ends_with('.') && !help.ends_with("..") {
            help.pop();
        }
        if let Some(key) = self.file_key.filter(|key| *key != self.name) {
            help.push_str(&format!(" ({key})"));
        }
        if let Some(default) = &self.default {
            help.push_str(&format!(" [default: {default}]"));
        }
        help
    }
}

/// Doc comment lines (`#[doc = " ..."]`) merged as clap merges a
/// one-paragraph doc comment.
pub fn merge_doc(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// How a default is written after `[default: ...]` and in the docs.
pub trait ShowDefault {
    fn show(&self) -> String;
}

macro_rules! show_with_display {
    ($($ty:ty),*) => {$(
        impl ShowDefault for $ty {
            fn show(&self) -> String {
                ToString::to_string(self)
            }
        }
    )*};
}

show_with_display!(bool, i32, u32, u64, usize, String, &str, SocketAddr);

/// A list is written as its flag takes it: comma-separated.
impl ShowDefault for Vec<String> {
    fn show(&self) -> String {
        self.join(",")
    }
}

/// Declares a binary's settings once; see the [module docs](crate::settings).
#[macro_export]
macro_rules! settings {
    (
        $(#[$args_attr:meta])*
        $vis:vis struct $Args:ident;
        $(#[$file_attr:meta])*
        file struct $File:ident { $($extra:tt)* }
        $(#[$layered_attr:meta])*
        layered struct $Layered:ident;
        $(
            $(#[doc = $doc:literal])*
            $(#[arg($($arg:tt)*)])*
            $name:ident : $ty:ty, env $env:literal, $fkind:ident $($fkey:literal)?,
                $dkind:ident $($dval:expr)?;
        )*
    ) => {
        $(#[$args_attr])*
        #[derive(Debug, Clone, Default, clap::Args)]
        $vis struct $Args {
            $(
                $(#[doc = $doc])*
                #[arg(long, env = $env, help = $Args::help_of(stringify!($name)))]
                $(#[arg($($arg)*)])*
                pub $name: Option<$ty>,
            )*
        }

        $crate::__settings_file_struct! {
            [
                $(#[$file_attr])*
                #[derive(Debug, Default, serde::Deserialize)]
                #[serde(deny_unknown_fields)]
            ]
            $File {} { $($extra)* }
            $([$fkind $($fkey)?] $name: $ty,)*
        }

        $(#[$layered_attr])*
        // Not every binary reads every setting from here (`config` is read
        // before the file exists; section overrides are applied apart).
        #[allow(dead_code)]
        #[derive(Debug)]
        struct $Layered {
            $($name: $crate::__setting_type!($ty; $dkind $($dval)?),)*
        }

        impl $Args {
            /// Every setting, in declaration order (the order of `--help`).
            pub fn settings() -> Vec<$crate::settings::Setting> {
                vec![$(
                    $crate::settings::Setting {
                        name: stringify!($name),
                        env: $env,
                        file_key: $crate::__setting_file_key!($name; $fkind $($fkey)?),
                        default: $crate::__setting_default_text!($ty; $dkind $($dval)?),
                        doc: $crate::settings::merge_doc(&[$($doc),*]),
                    },
                )*]
            }

            fn help_of(name: &str) -> String {
                Self::settings()
                    .iter()
                    .find(|setting| setting.name == name)
                    .map(|setting| setting.help())
                    .unwrap_or_default()
            }

            /// Each setting from its flag or environment variable, else
            /// from `file`, else its declared default.
            fn layer(&self, file: $File) -> $Layered {
                $Layered {
                    $($name: $crate::__setting_value!(
                        $ty; $dkind $($dval)?;
                        self.$name.clone().or($crate::__setting_from_file!(file.$name; $fkind $($fkey)?))
                    ),)*
                }
            }
        }
    };
}

/// The file struct of [`settings!`]: only the settings declared `file`,
/// then the extra fields (sections the binary reads itself).
#[doc(hidden)]
#[macro_export]
macro_rules! __settings_file_struct {
    ([$($attr:tt)*] $File:ident { $($field:tt)* } { $($extra:tt)* }) => {
        $($attr)*
        struct $File {
            $($field)*
            $($extra)*
        }
    };
    ([$($attr:tt)*] $File:ident { $($field:tt)* } { $($extra:tt)* }
        [file] $name:ident : $ty:ty, $($rest:tt)*) => {
        $crate::__settings_file_struct! {
            [$($attr)*] $File { $($field)* $name: Option<$ty>, } { $($extra)* } $($rest)*
        }
    };
    ([$($attr:tt)*] $File:ident { $($field:tt)* } { $($extra:tt)* }
        [$($elsewhere:tt)*] $name:ident : $ty:ty, $($rest:tt)*) => {
        $crate::__settings_file_struct! {
            [$($attr)*] $File { $($field)* } { $($extra)* } $($rest)*
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __setting_type {
    ($ty:ty; default $value:expr) => { $ty };
    ($ty:ty; $kind:ident $($text:expr)?) => { Option<$ty> };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __setting_value {
    ($ty:ty; default $value:expr; $given:expr) => {
        $given.unwrap_or_else(|| -> $ty { $value })
    };
    ($ty:ty; unset $text:expr; $given:expr) => {
        $given
    };
    ($ty:ty; no_default; $given:expr) => {
        $given
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __setting_default_text {
    ($ty:ty; default $value:expr) => {
        Some({
            let value: $ty = $value;
            $crate::settings::ShowDefault::show(&value)
        })
    };
    ($ty:ty; unset $text:expr) => {
        Some($crate::settings::ShowDefault::show(&$text))
    };
    ($ty:ty; no_default) => {
        None
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __setting_file_key {
    ($name:ident; file) => {
        Some(stringify!($name))
    };
    ($name:ident; file $key:literal) => {
        Some($key)
    };
    ($name:ident; no_file) => {
        None
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __setting_from_file {
    ($file:ident . $name:ident; file) => {
        $file.$name
    };
    ($file:ident . $name:ident; $($elsewhere:tt)*) => {
        None
    };
}

/// Checks the settings table that follows `heading` in `doc` (a Markdown
/// file): columns flag, env, file key and default must be those of
/// `settings`, one row each, in order; the last column (meaning) is free.
/// On a difference, the error holds the table to paste (keeping the
/// meanings of the rows it found, the doc comment for new ones).
pub fn check_doc_table(doc: &str, heading: &str, settings: &[Setting]) -> Result<(), String> {
    let mut lines = doc.lines().skip_while(|line| line.trim() != heading);
    if lines.next().is_none() {
        return Err(format!("no heading {heading:?}"));
    }
    let table: Vec<&str> = lines
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .collect();
    let cells = |row: &str| -> Vec<String> {
        row.trim()
            .trim_matches('|')
            .split(" | ")
            .map(|cell| cell.trim().to_string())
            .collect()
    };
    let found: Vec<Vec<String>> = table.iter().skip(2).map(|row| cells(row)).collect();
    let code = |text: &str| format!("`{text}`");
    let mut expected = vec![
        "| flag | env | file key | default | meaning |".to_string(),
        "| --- | --- | --- | --- | --- |".to_string(),
    ];
    for setting in settings {
        let flag = code(&setting.flag());
        let meaning = found
            .iter()
            .find(|row| row.first() == Some(&flag) && row.len() == 5)
            .map_or(setting.doc.clone(), |row| row[4].clone());
        expected.push(format!(
            "| {flag} | {} | {} | {} | {meaning} |",
            code(setting.env),
            setting.file_key.map_or("—".to_string(), code),
            setting.default.as_deref().map_or("—".to_string(), code),
        ));
    }
    if table == expected {
        Ok(())
    } else {
        Err(format!(
            "the table after {heading:?} does not match the declared settings; it should be:\n\n{}\n",
            expected.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(name: &'static str, file_key: Option<&'static str>) -> Setting {
        Setting {
            name,
            env: "RAMPART_X",
            file_key,
            default: Some("5".into()),
            doc: merge_doc(&[" How long to wait", " before giving up."]),
        }
    }

    #[test]
    fn help_is_the_doc_then_section_key_then_default() {
        assert_eq!(setting("wait_ms", Some("wait_ms")).flag(), "--wait-ms");
        assert_eq!(
            setting("wait_ms", Some("wait_ms")).help(),
            "How long to wait before giving up [default: 5]"
        );
        assert_eq!(
            setting("wait_ms", Some("policies.admission.wait_ms")).help(),
            "How long to wait before giving up (policies.admission.wait_ms) [default: 5]"
        );
        assert_eq!(vec!["a:1".to_string(), "b:2".into()].show(), "a:1,b:2");
    }

    #[test]
    fn doc_table_is_checked_and_the_fix_printed() {
        let settings = [setting("wait_ms", None)];
        let good = "## Flags\n\n| flag | env | file key | default | meaning |\n| --- | --- | --- | --- | --- |\n| `--wait-ms` | `RAMPART_X` | — | `5` | waits |\n\nmore\n";
        assert_eq!(check_doc_table(good, "## Flags", &settings), Ok(()));
        let stale = good.replace("`5`", "`6`");
        let err = check_doc_table(&stale, "## Flags", &settings).unwrap_err();
        assert!(
            err.contains("| `--wait-ms` | `RAMPART_X` | — | `5` | waits |"),
            "{err}"
        );
        assert!(check_doc_table(good, "## Other", &settings).is_err());
    }
}
