//! The `hubbub` command line: `hubbub [serve]` runs a node, `hubbub token`
//! mints a client token with the configured secret, `hubbub check-config`
//! validates a configuration, `hubbub outbox init [--apply]` prints or
//! applies the PostgreSQL outbox schema, `hubbub publish` publishes through a
//! running hub (`publish`). A bad configuration exits with code 64.

mod publish;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use tracing::{error, warn};

use crate::auth::{Claims, mint};
use crate::config::{Config, LogFormat};

/// Exit code for a bad configuration (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

/// Hubbub: a realtime WebSocket hub.
#[derive(Debug, Parser)]
#[command(name = "hubbub", version, about)]
pub struct Cli {
    /// TOML configuration file (without one, without a JWT key and without
    /// production settings such as HUBBUB_REDIS_URL or HUBBUB_API_KEYS, hubbub
    /// runs in dev mode on 127.0.0.1 with a documented secret).
    #[arg(long, global = true, env = "HUBBUB_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a hub node (the default).
    Serve,
    /// Mint a client token (JWT) signed with the configured HS secret.
    Token {
        /// The user id (`sub` claim).
        #[arg(long)]
        sub: String,
        /// Topic patterns the token may subscribe to (repeatable).
        #[arg(long)]
        subscribe: Vec<String>,
        /// Topic patterns the token may publish to (repeatable).
        #[arg(long)]
        publish: Vec<String>,
        /// Lifetime, e.g. `1h`, `30m`.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// JSON object shown in presence (`info` claim).
        #[arg(long)]
        info: Option<String>,
    },
    /// Validate the configuration and print it (secrets redacted).
    CheckConfig,
    /// Publish one publication through a running hub's REST API, e.g.
    /// `hubbub publish bookings:42 booking.created '{"guest":"Ada"}'`.
    Publish {
        /// The topic, e.g. `bookings:42`.
        topic: String,
        /// The event name, e.g. `booking.created`.
        event: String,
        /// The data: any JSON value (quote it for the shell).
        json: String,
        /// The hub's URL (default: the configured `listen` address).
        #[arg(long)]
        url: Option<String>,
        /// An API key that may publish to the topic (default: a one-minute
        /// token minted with the configured HS secret).
        #[arg(long)]
        key: Option<String>,
        /// Idempotency key: a retry with the same key publishes nothing new.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// The PostgreSQL outbox (docs/outbox.md).
    Outbox {
        /// What to do with it.
        #[command(subcommand)]
        command: OutboxCommand,
    },
}

/// `hubbub outbox` subcommands.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Print the SQL (table, `_dead` twin, index, NOTIFY trigger) for the
    /// configured `outbox.table`.
    Init {
        /// Run it against `outbox.postgres_url` instead of printing it.
        #[arg(long)]
        apply: bool,
    },
}

fn load(cli: &Cli) -> Result<Config, ExitCode> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    Config::load(cli.config.as_deref(), &env).map_err(|e| {
        eprintln!("hubbub: invalid configuration: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load(&cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let command = cli.command.unwrap_or(Command::Serve);
    if !matches!(command, Command::Serve) {
        for warning in &config.warnings {
            eprintln!("hubbub: warning: {warning}");
        }
    }
    match command {
        Command::CheckConfig => {
            let text = format!(
                "# configuration ok{}\n{}",
                if config.dev_mode { " (dev mode)" } else { "" },
                config.to_toml()
            );
            print_stdout(&text)
        }
        Command::Token {
            sub,
            subscribe,
            publish,
            ttl,
            info,
        } => token(&config, sub, subscribe, publish, ttl, info),
        Command::Publish {
            topic,
            event,
            json,
            url,
            key,
            idempotency_key,
        } => publish::run(
            &config,
            publish::PublishArgs {
                topic,
                event,
                data: json,
                url,
                key,
                idempotency_key,
            },
        ),
        Command::Serve => run(config, Role::Node),
        Command::Outbox {
            command: OutboxCommand::Init { apply },
        } => crate::outbox::cli::init(&config, apply),
    }
}

/// What a process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A hub node: WebSocket and REST API.
    Node,
    /// The REST API alone, against Redis (`hubbub-api`).
    Api,
}

/// The `hubbub-api` binary: `hubbub-api [--config FILE]` serves the REST API
/// alone against the Redis engine (same configuration file and environment as
/// a node; `redis_url` is required). Returns the process exit code.
pub fn api_main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load(&cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.redis_url.is_none() {
        eprintln!("hubbub-api: invalid configuration: redis_url is required");
        return ExitCode::from(EXIT_CONFIG);
    }
    run(config, Role::Api)
}

fn token(
    config: &Config,
    sub: String,
    subscribe: Vec<String>,
    publish: Vec<String>,
    ttl: Duration,
    info: Option<String>,
) -> ExitCode {
    let info = match info
        .map(|s| serde_json::from_str::<serde_json::Value>(&s))
        .transpose()
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("hubbub token: --info must be a JSON object: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = Claims {
        sub,
        exp: now.saturating_add(ttl.as_secs()),
        iat: Some(now),
        subscribe,
        publish,
        info,
    };
    match mint(&config.auth, &claims) {
        Ok(jwt) => print_stdout(&format!("{jwt}\n")),
        Err(e) => {
            eprintln!("hubbub token: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Writes `text` to stdout. A closed pipe (`hubbub check-config | head`) is
/// not an error; any other write failure exits 1 (never a panic, as
/// `println!` would).
fn print_stdout(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hubbub: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUBBUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, never into files or
    // log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Says why the node is in dev mode; at ERROR when it listens beyond loopback.
fn warn_dev_mode(config: &Config) {
    let secret = crate::config::DEV_SECRET;
    if config.listen.ip().is_loopback() {
        warn!(
            listen = %config.listen,
            "DEV MODE: no JWT key and no production setting configured, so tokens are signed and \
             checked with the public dev secret `{secret}`; listening on loopback only. For \
             production set HUBBUB_AUTH__JWT_SECRET (or pass --config FILE with an [auth] key)."
        );
    } else {
        error!(
            listen = %config.listen,
            "DEV MODE ON A NON-LOOPBACK ADDRESS ({}): anyone who can reach it can sign tokens with \
             the public dev secret `{secret}` and publish anywhere. Set HUBBUB_AUTH__JWT_SECRET, \
             or unset HUBBUB_LISTEN to bind 127.0.0.1.",
            config.listen
        );
    }
}

fn run(config: Config, role: Role) -> ExitCode {
    init_tracing(config.log_format);
    for warning in &config.warnings {
        warn!("{warning}");
    }
    if config.dev_mode {
        warn_dev_mode(&config);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hubbub: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match bind(config.listen) {
            Ok(l) => l,
            Err(e) => {
                error!(listen = %config.listen, error = %e, "{}", bind_hint(config.listen, &e));
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(addr) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "listening on http://{addr}");
                let _ = out.flush();
            }
            Err(e) => warn!(error = %e, "cannot read the bound address"),
        }
        let served = match role {
            Role::Node => crate::serve(listener, config, shutdown_signal()).await,
            Role::Api => crate::server::serve_api(listener, config, shutdown_signal()).await,
        };
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e @ crate::server::ServeError::Redis(_))
            | Err(e @ crate::server::ServeError::ApiNeedsRedis)
            | Err(e @ crate::server::ServeError::Auth(_))
            | Err(e @ crate::server::ServeError::Webhooks(_)) => {
                error!(error = %e, "invalid configuration");
                ExitCode::from(EXIT_CONFIG)
            }
            Err(e) => {
                error!(error = %e, "server failed");
                ExitCode::FAILURE
            }
        }
    })
}

/// What to do when `listen` cannot be bound: which setting to change.
fn bind_hint(addr: std::net::SocketAddr, e: &std::io::Error) -> String {
    let next = std::net::SocketAddr::new(addr.ip(), addr.port().wrapping_add(1).max(1));
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "cannot bind {addr}: the address is in use (another hubbub or another program \
             listens there); stop it, or choose another address with `listen` in the \
             configuration file or HUBBUB_LISTEN={next} (port 0 picks a free port)"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "cannot bind {addr}: permission denied (ports below 1024 need privileges); choose \
             another address with `listen` in the configuration file or HUBBUB_LISTEN={next}"
        ),
        _ => {
            format!("cannot bind {addr}; check `listen` in the configuration file or HUBBUB_LISTEN")
        }
    }
}

/// Pending connections the kernel may queue before `accept`; it caps this at
/// `net.core.somaxconn`. Tokio's `TcpListener::bind` asks for 128, which a
/// burst of reconnecting clients overflows: the kernel then drops their SYNs
/// and they retry only after a second.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the listening socket with a backlog sized for connection storms.
fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
