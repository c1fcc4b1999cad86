//! docs/compatibility.md is generated from Redis's command list and this
//! crate's command table; this keeps the two from drifting apart when a
//! command is added without regenerating the document.

use std::collections::BTreeMap;

use rampart_proto::command_table::COMMANDS;

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/compatibility.md"
));

/// Row name (`CLIENT LIST` → `client|list`) → status column.
fn doc_rows() -> BTreeMap<String, String> {
    DOC.lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix("| `")?.splitn(2, "` | ");
            let name = cells.next()?.to_ascii_lowercase().replace(' ', "|");
            let status = cells.next()?.split(" |").next()?.to_string();
            Some((name, status))
        })
        .collect()
}

#[test]
fn compatibility_doc_matches_the_command_table() {
    let rows = doc_rows();
    assert!(rows.len() > 300, "parsed only {} rows", rows.len());
    let served: Vec<&str> = COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c.name).chain(c.subcommands.iter().map(|s| s.name)))
        .filter(|name| !name.starts_with("rampart."))
        .collect();
    let regenerate = "regenerate it: python3 docs/gen/compatibility.py";
    for name in &served {
        let status = rows.get(*name).map(String::as_str);
        assert!(
            matches!(status, Some("supported" | "partial")),
            "{name} is served but docs/compatibility.md says {status:?}; {regenerate}"
        );
    }
    for (name, status) in &rows {
        let is_container = COMMANDS
            .iter()
            .any(|c| c.name == name && !c.subcommands.is_empty());
        if status != "not supported" && !is_container {
            assert!(
                served.contains(&name.as_str()),
                "docs/compatibility.md says {name} is {status} but the command table lacks it; {regenerate}"
            );
        }
    }
}
