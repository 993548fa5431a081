//! `hubbub-loadtest`: a native load generator for the Hubbub hub.
//!
//! One tokio task per simulated client; scenarios `idle`, `fanout`, `topics`,
//! `storm` and `publish`, each printing a human table and one JSON line; and
//! `report`, which turns collected JSON lines into Markdown tables and an SVG
//! chart for `BENCHMARKS.md`.
//!
//! ## Layout
//! - `cli`: the command line.
//! - `hubs`: the hub processes under test (started here or given by pid) and
//!   their `/proc` figures (resident memory, CPU time).
//! - `client`: dialling (spread over loopback source addresses), tokens,
//!   `connect` + `subscribe`.
//! - `receiver`: the receive loop, latency from the send time in the payload.
//! - `publisher`: REST publishing at a fixed rate or as fast as possible.
//! - `scenario/*`: one file per scenario.
//! - `report`: the per-run result (table + JSON line) and the Markdown/SVG report.

mod cli;
mod client;
mod hubs;
mod publisher;
mod receiver;
mod report;
mod scenario;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    raise_nofile();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.threads {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(scenario::run(cli.command))
}

/// Raises the soft open-file limit to the hard limit: every client is a socket.
fn raise_nofile() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => eprintln!("open-file limit: {n}"),
        Err(e) => eprintln!("could not raise the open-file limit: {e}"),
    }
}
