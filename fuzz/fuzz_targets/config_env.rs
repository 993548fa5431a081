//! The configuration reader's environment path on arbitrary variables: each
//! input line `NAME=VALUE` becomes `HUBBUB_NAME=VALUE`, loaded without a file
//! and over a minimal file. Loading never panics; an accepted configuration
//! prints as TOML that parses again, and its warnings print.
#![no_main]

use hubbub::config::Config;
use libfuzzer_sys::fuzz_target;

const FILE: &str = "[auth]\njwt_secret = \"fuzz-secret-0123456789abcdef\"\n";

fuzz_target!(|s: &str| {
    let env: Vec<(String, String)> = s
        .lines()
        .take(64)
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (format!("HUBBUB_{name}"), value.to_owned()))
        .collect();
    for loaded in [Config::load(None, &env), Config::from_toml_str(FILE, &env)] {
        match loaded {
            Ok(config) => {
                let printed = config.to_toml();
                assert!(
                    printed.parse::<toml::Table>().is_ok(),
                    "check-config output is not TOML: {printed}"
                );
                for warning in &config.warnings {
                    assert!(!warning.to_string().is_empty());
                }
                if config.dev_mode {
                    assert!(config.redis_url.is_none() && config.api_keys.is_empty());
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
