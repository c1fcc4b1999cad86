//! `rampart-node`: one Rampart storage node.

use clap::Parser;
use rampart_node::NodeArgs;

#[derive(Parser)]
#[command(
    name = "rampart-node",
    version,
    about = "Rampart storage node (openraft + RocksDB)",
    long_about = None
)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let options = rampart_telemetry::Options {
        service_name: "rampart-node",
        default_log_filter: "info,openraft=warn",
        traces: true,
    };
    let result = rampart_telemetry::run_on_runtime(&options, rampart_node::run(cli.node))?;
    Ok(result?)
}
