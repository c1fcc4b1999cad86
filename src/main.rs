//! `rampart`: one binary for local development and operations.
//!
//! - `rampart dev` starts three storage nodes and a proxy on loopback (as child
//!   processes of this same binary), initialises the cluster and prints
//!   `ready` once the proxy answers. Ctrl-C / SIGTERM stops everything.
//! - `rampart node ...` / `rampart proxy ...` run one node / one proxy, with
//!   the same flags as `rampart-node` / `rampart-proxy`.
//! - `rampart admin ...` talks to a node's Admin gRPC service.
//! - `rampart certs ...` makes a throwaway CA and certificates for the
//!   cluster's mutual TLS.
//!
//! The launcher re-executes itself for its children, so `cargo run --bin
//! rampart -- dev` needs no other binary to be built.

mod admin;
mod certs;
mod dev;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "Rampart: Redis-compatible, Raft-replicated, abuse-resistant"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local three-node cluster and a proxy on loopback.
    Dev(dev::DevArgs),
    /// Run one storage node.
    Node(rampart_node::NodeArgs),
    /// Run one RESP proxy.
    Proxy(rampart_proxy::ProxyArgs),
    /// Cluster administration through a node's Admin service.
    Admin(admin::AdminArgs),
    /// Make a throwaway cluster CA and certificates for mutual TLS.
    Certs(certs::CertsArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Inside the runtime: the trace exporter (when OTEL_EXPORTER_OTLP_*
    // configures one) runs on it.
    let telemetry = {
        let _runtime = runtime.enter();
        rampart_telemetry::init(&telemetry_options(&cli.command))
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Dev(args) => dev::run(args).await,
            Command::Node(args) => Ok(rampart_node::run(args).await?),
            Command::Proxy(args) => Ok(rampart_proxy::run(args).await?),
            Command::Admin(args) => admin::run(args).await,
            Command::Certs(args) => certs::run(args),
        }
    });
    // Flushes buffered spans; the runtime is still alive for the exporter.
    telemetry.shutdown();
    result
}

/// Logs for every subcommand; traces only for the processes that serve
/// requests (`dev`'s children are `rampart node` / `rampart proxy` processes
/// of their own and set up theirs).
fn telemetry_options(command: &Command) -> rampart_telemetry::Options {
    let (service_name, traces) = match command {
        Command::Node(_) => ("rampart-node", true),
        Command::Proxy(_) => ("rampart-proxy", true),
        Command::Dev(_) | Command::Admin(_) | Command::Certs(_) => ("rampart", false),
    };
    rampart_telemetry::Options {
        service_name,
        default_log_filter: "info",
        traces,
    }
}
