//! `hubbub outbox init [--apply]`: prints the outbox schema for the
//! configured table (`hubbub_outbox` without `[outbox]`), or applies it to
//! `outbox.postgres_url`.

use std::process::ExitCode;

use super::session::Session;
use super::sql::init_script;
use crate::cli::EXIT_CONFIG;
use crate::config::{Config, DEFAULT_OUTBOX_TABLE};

/// Runs `hubbub outbox init`; returns the process exit code.
pub fn init(config: &Config, apply: bool) -> ExitCode {
    let table = config
        .outbox
        .as_ref()
        .map_or(DEFAULT_OUTBOX_TABLE, |o| o.table.as_str());
    let script = init_script(table);
    if !apply {
        print!("{script}");
        return ExitCode::SUCCESS;
    }
    let Some(outbox) = &config.outbox else {
        eprintln!(
            "hubbub outbox init --apply: needs [outbox] postgres_url (or HUBBUB_OUTBOX__POSTGRES_URL)"
        );
        return ExitCode::from(EXIT_CONFIG);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hubbub outbox init: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let applied = runtime.block_on(async {
        let session = Session::connect(&outbox.postgres_url, "hubbub outbox init").await?;
        session.client.batch_execute(&script).await?;
        Ok::<_, super::OutboxError>(())
    });
    match applied {
        Ok(()) => {
            println!(
                "outbox tables `{table}` and `{table}_dead` and trigger `{table}_notify` are in place on {}",
                outbox.postgres_url
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "hubbub outbox init: cannot apply to {}: {e}",
                outbox.postgres_url
            );
            ExitCode::FAILURE
        }
    }
}
