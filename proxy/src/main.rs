//! `rampart-proxy`: the proxy as its own process.

use clap::Parser;
use rampart_proxy::ProxyArgs;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "rampart-proxy",
    version,
    about = "Redis-compatible proxy in front of Rampart storage nodes"
)]
struct Cli {
    #[command(flatten)]
    proxy: ProxyArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    rampart_proxy::run(cli.proxy).await?;
    Ok(())
}
