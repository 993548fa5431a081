//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator for the Hubbub hub.
#[derive(Debug, Parser)]
#[command(name = "hubbub-loadtest", version)]
pub(crate) struct Cli {
    /// Tokio worker threads (default: one per core this process may use).
    #[arg(long, global = true)]
    pub(crate) threads: Option<usize>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// N connections, connected and subscribed, held; memory per connection.
    Idle(Idle),
    /// S subscribers of one topic, publications at rate R through REST.
    Fanout(Fanout),
    /// N connections each on its own topic plus a shared group topic.
    Topics(Topics),
    /// Connect + authenticate + subscribe as fast as possible.
    Storm(Storm),
    /// REST publish throughput, single or batch.
    Publish(Publish),
    /// Markdown tables and an SVG chart from collected JSON lines.
    Report(Report),
}

/// Where the hub is, and how to talk to it. Shared by every scenario.
#[derive(Debug, Clone, Args)]
pub(crate) struct Common {
    /// Base URL of a running hub node (repeat for several nodes), e.g. http://127.0.0.1:8080.
    #[arg(long = "url")]
    pub(crate) urls: Vec<String>,
    /// Pid of a running hub process, for memory and CPU figures (repeat per node).
    #[arg(long = "hub-pid")]
    pub(crate) hub_pids: Vec<u32>,
    /// Start the hub from this binary instead (on 127.0.0.1, port 0) and stop it after.
    #[arg(long)]
    pub(crate) hub_bin: Option<PathBuf>,
    /// Configuration file for a started hub (default: a generated bench config).
    #[arg(long)]
    pub(crate) hub_config: Option<PathBuf>,
    /// CPU list for a started hub (`taskset -c`), e.g. `0`.
    #[arg(long)]
    pub(crate) hub_cpus: Option<String>,
    /// Number of hub nodes to start (more than one needs --redis).
    #[arg(long, default_value_t = 1)]
    pub(crate) hub_nodes: usize,
    /// Redis URL for started hubs (the Redis engine); absent: the memory broker.
    #[arg(long)]
    pub(crate) redis: Option<String>,
    /// Which nodes REST publications go to: the first, or all in turn.
    #[arg(long, value_enum, default_value_t = PublishVia::First)]
    pub(crate) publish_via: PublishVia,
    /// HS256 secret the hub verifies tokens with (default: the dev-mode
    /// secret for a running hub; a generated one for a started hub).
    #[arg(long, env = "LOADTEST_SECRET")]
    pub(crate) secret: Option<String>,
    /// REST API key (default for a started hub: the generated config's key;
    /// otherwise a JWT with a `publish` claim is minted from --secret).
    #[arg(long, env = "LOADTEST_API_KEY")]
    pub(crate) api_key: Option<String>,
    /// Namespace the scenario's topics live in.
    #[arg(long, default_value = "bench")]
    pub(crate) namespace: String,
    /// Spread client sockets over this many loopback source addresses
    /// (127.0.0.2, 127.0.0.3, …); 0 lets the kernel choose.
    #[arg(long, default_value_t = 0)]
    pub(crate) source_addrs: u8,
    /// Connections opened concurrently while setting up clients.
    #[arg(long, default_value_t = 256)]
    pub(crate) connect_concurrency: usize,
    /// Append the run's JSON line to this file.
    #[arg(long)]
    pub(crate) json_out: Option<PathBuf>,
    /// Free-form label recorded with the run (e.g. `memory/1core`); default:
    /// `memory`, `redis-1node` or `redis-Nnode`.
    #[arg(long)]
    pub(crate) label: Option<String>,
}

impl Common {
    /// The run's label: `--label`, or the broker and node count.
    pub(crate) fn label(&self) -> String {
        match (&self.label, &self.redis) {
            (Some(l), _) => l.clone(),
            (None, None) => "memory".into(),
            (None, Some(_)) => format!("redis-{}node", self.hub_nodes.max(1)),
        }
    }
}

/// Where REST publications go when there are several nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PublishVia {
    /// The first node only (subscribers on the others receive through the broker).
    First,
    /// Every node in turn, round-robin per request.
    All,
}

/// `idle`.
#[derive(Debug, Args)]
pub(crate) struct Idle {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Connections.
    #[arg(long, default_value_t = 1000)]
    pub(crate) clients: usize,
    /// Seconds to hold them before measuring.
    #[arg(long, default_value_t = 10)]
    pub(crate) hold: u64,
    /// Subscribe every client to one shared topic instead of its own.
    #[arg(long)]
    pub(crate) shared_topic: bool,
}

/// `fanout`.
#[derive(Debug, Args)]
pub(crate) struct Fanout {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Subscribers of the topic.
    #[arg(long, default_value_t = 2000)]
    pub(crate) subs: usize,
    /// Publications per second.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) rate: f64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    pub(crate) bytes: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    pub(crate) duration: u64,
    /// Concurrent publishing tasks.
    #[arg(long, default_value_t = 2)]
    pub(crate) publishers: usize,
}

/// `topics`.
#[derive(Debug, Args)]
pub(crate) struct Topics {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Connections, each subscribed to its own topic and the group topic.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) clients: usize,
    /// Publications per second spread over the own topics.
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) rate: f64,
    /// Publications per second to the shared group topic (reach every client).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) group_rate: f64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    pub(crate) bytes: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    pub(crate) duration: u64,
    /// Concurrent publishing tasks.
    #[arg(long, default_value_t = 8)]
    pub(crate) publishers: usize,
}

/// `storm`.
#[derive(Debug, Args)]
pub(crate) struct Storm {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) clients: usize,
}

/// `publish`.
#[derive(Debug, Args)]
pub(crate) struct Publish {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Publications in total.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) count: usize,
    /// Publications per request (1: `/publish`; more: `/batch`).
    #[arg(long, default_value_t = 1)]
    pub(crate) batch: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 32)]
    pub(crate) concurrency: usize,
    /// Topics the publications are spread over.
    #[arg(long, default_value_t = 100)]
    pub(crate) topics: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    pub(crate) bytes: usize,
    /// Stop after this many seconds even if not all were sent.
    #[arg(long, default_value_t = 60)]
    pub(crate) max_seconds: u64,
}

/// `report`.
#[derive(Debug, Args)]
pub(crate) struct Report {
    /// JSON lines written by the scenarios (`--json-out`).
    #[arg(long)]
    pub(crate) results: PathBuf,
    /// Where to write the SVG chart of fan-out latency against subscribers.
    #[arg(long)]
    pub(crate) chart: Option<PathBuf>,
    /// Only runs whose label starts with this go into the chart.
    #[arg(long, default_value = "memory/1core/sweep")]
    pub(crate) chart_label: String,
}
