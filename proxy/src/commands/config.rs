//! CONFIG GET / SET / RESETSTAT / REWRITE / HELP with Redis 7.2's replies
//! and error texts. The parameters, their syntax and where each lives are
//! in [`rampart_proto::redis_config`]; the values in
//! [`crate::redis_config`]. docs/config.md has the table.

use rampart_proto::command_table::CommandSpec;
use rampart_proto::redis_config::{self, HELP};
use rampart_proto::{errors, reply, Reply};

use super::Shared;
use crate::redis_config::ConfigError;

pub async fn config(spec: &CommandSpec, args: &[Vec<u8>], shared: &Shared) -> Reply {
    let Some(sub) = args.first() else {
        return reply::error(errors::wrong_arity("config"));
    };
    let Some(sub_spec) = spec.subcommand(sub) else {
        return reply::error(errors::unknown_subcommand("config", sub));
    };
    if !sub_spec.arity_ok(args.len() + 1) {
        return reply::error(errors::wrong_arity(sub_spec.name));
    }
    let rest = &args[1..];
    match sub_spec.name {
        "config|get" => get(rest, shared).await,
        "config|set" => set(rest, shared).await,
        // INFO's stats section holds gauges only (connected clients,
        // pub/sub counts), and Prometheus counters are never reset (their
        // consumers compute rates), so there is nothing to reset.
        "config|resetstat" => reply::ok(),
        "config|rewrite" => match shared.redis_config.rewrite() {
            Ok(()) => reply::ok(),
            Err(ConfigError::Reply(text)) => reply::error(text),
            Err(ConfigError::Rewrite(why)) => {
                tracing::warn!(%why, "CONFIG REWRITE failed");
                reply::error(format!("ERR Rewriting config file: {why}"))
            }
        },
        _ => reply::array(HELP.iter().map(|l| reply::status(*l)).collect()),
    }
}

/// A map (RESP3) / flat array (RESP2) of the matching parameters.
async fn get(patterns: &[Vec<u8>], shared: &Shared) -> Reply {
    let found = redis_config::matching(patterns);
    if found
        .iter()
        .any(|(_, p)| p.scope == redis_config::Scope::Cluster)
    {
        if let Err(error) = shared
            .redis_config
            .refresh_cluster(&shared.upstream, &shared.proxy_id)
            .await
        {
            tracing::debug!(%error, "CONFIG GET shows the cluster values last read");
        }
    }
    reply::map(
        found
            .into_iter()
            .map(|(name, param)| {
                (
                    reply::bulk(name),
                    reply::bulk(shared.redis_config.value(param)),
                )
            })
            .collect(),
    )
}

async fn set(args: &[Vec<u8>], shared: &Shared) -> Reply {
    let changes = match redis_config::check_set(args) {
        Ok(changes) => changes,
        Err(text) => return reply::error(text),
    };
    match shared
        .redis_config
        .apply(&changes, &shared.upstream, &shared.proxy_id)
        .await
    {
        Ok(()) => reply::ok(),
        Err(error) => reply::error(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::tests::{shared, text};
    use rampart_proto::command_table::lookup;

    fn argv(line: &str) -> Vec<Vec<u8>> {
        line.split(' ').map(|s| s.as_bytes().to_vec()).collect()
    }

    async fn run(shared: &Shared, line: &str) -> String {
        let spec = lookup(b"config").expect("config row");
        text(&config(spec, &argv(line), shared).await)
    }

    #[tokio::test]
    async fn proxy_parameters_are_set_and_shown_without_the_cluster() {
        let shared = shared(None);
        assert_eq!(run(&shared, "GET timeout").await, "%{$timeout, $0}");
        assert_eq!(
            run(&shared, "SET timeout 30 slowlog-max-len 5").await,
            "+OK"
        );
        assert_eq!(
            run(&shared, "GET TIMEOUT slowlog-max-*").await,
            "%{$TIMEOUT, $30, $slowlog-max-len, $5}"
        );
        assert_eq!(*shared.redis_config.idle_timeout().borrow(), 30);
        assert_eq!(
            run(&shared, "GET proto-max-bulk-len databases").await,
            "%{$proto-max-bulk-len, $16777216, $databases, $1}"
        );
        assert_eq!(
            run(&shared, "SET proto-max-bulk-len 1mb").await,
            "-ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - can't set immutable config"
        );
        assert_eq!(
            run(&shared, "SET timeout").await,
            "-ERR wrong number of arguments for 'config|set' command"
        );
        assert_eq!(
            run(&shared, "FOO").await,
            "-ERR unknown subcommand 'FOO'. Try CONFIG HELP."
        );
        assert_eq!(
            run(&shared, "REWRITE").await,
            "-ERR The server is running without a config file"
        );
        assert_eq!(run(&shared, "RESETSTAT").await, "+OK");
        assert!(run(&shared, "HELP")
            .await
            .starts_with("*[+CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"));
    }
}
