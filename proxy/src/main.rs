//! `rampart-proxy`: the proxy as its own process.

use clap::Parser;
use rampart_proxy::ProxyArgs;

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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let options = rampart_telemetry::Options {
        service_name: "rampart-proxy",
        default_log_filter: "info",
        traces: true,
    };
    let result = rampart_telemetry::run_on_runtime(&options, rampart_proxy::run(cli.proxy))?;
    Ok(result?)
}
