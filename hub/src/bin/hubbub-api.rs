//! `hubbub-api`: the REST publish API alone, against Redis, for deployments
//! where publishers and hub nodes scale apart. It publishes through the same
//! Redis engine as the nodes, so every node serving a topic delivers.
//!
//! Why this binary lives in package `hubbub` and not in `hubbub-api`: the
//! `hubbub-api` package is transport only (router, types, the `Backend`
//! trait) and the hub depends on it; serving the API for real needs the
//! hub's `Backend` implementation (auth, validation, the Redis engine), and
//! `hubbub-api` depending on `hubbub` would be a dependency cycle.

fn main() -> std::process::ExitCode {
    hubbub::cli::api_main()
}
