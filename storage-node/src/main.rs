//! `rampart-node`: one Rampart storage node.

use clap::Parser;
use rampart_node::NodeArgs;
use tracing_subscriber::EnvFilter;

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn")),
        )
        .init();
    let cli = Cli::parse();
    rampart_node::run(cli.node).await?;
    Ok(())
}
