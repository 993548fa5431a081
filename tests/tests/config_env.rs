//! Configuration through the environment alone (issue 16, points 3 and 4):
//! dev mode only without a JWT key and without production settings, bound to
//! loopback unless `listen` says otherwise; unknown `HUBBUB_*` variables warn
//! with the nearest key; Kubernetes service-link variables are ignored; env
//! namespaces follow the same rule as a TOML table.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use std::process::{Command, Output};

use hubbub_tests::SECRET;

const BIN: &str = env!("CARGO_BIN_EXE_hubbub-node");

/// Runs the binary with exactly `env` as its `HUBBUB_*` environment.
fn hubbub(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HUBBUB_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn production_settings_without_a_jwt_key_are_refused() {
    // The reproduction of the issue: Redis and a public listen, no key.
    let out = hubbub(
        &["check-config"],
        &[
            ("HUBBUB_REDIS_URL", "redis://127.0.0.1:1"),
            ("HUBBUB_LISTEN", "0.0.0.0:0"),
        ],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("HUBBUB_REDIS_URL") && err.contains("HUBBUB_AUTH__JWT_SECRET"),
        "says what was seen and what to set: {err}"
    );
    let keys = format!(
        "[{{name=\"svc\", key_sha256=\"{}\", publish=[\"*\"]}}]",
        "ab".repeat(32)
    );
    let out = hubbub(&["check-config"], &[("HUBBUB_API_KEYS", &keys)]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("HUBBUB_API_KEYS"));
    // With a key, the same settings are fine.
    let out = hubbub(
        &["check-config"],
        &[
            ("HUBBUB_API_KEYS", &keys),
            ("HUBBUB_AUTH__JWT_SECRET", SECRET),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn dev_mode_binds_loopback_and_survives_port_and_namespace_changes() {
    let out = hubbub(&["check-config"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("dev mode"), "{printed}");
    assert!(
        printed.contains("127.0.0.1:8080") && !printed.contains("0.0.0.0"),
        "dev mode binds loopback by default: {printed}"
    );
    let out = hubbub(
        &["check-config"],
        &[
            ("HUBBUB_LISTEN", "127.0.0.1:9000"),
            ("HUBBUB_NAMESPACES__CHAT__CLIENT_PUBLISH", "true"),
            ("HUBBUB_LIMITS__MAX_SUBSCRIPTIONS", "10"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("dev mode"), "still dev mode");
}

#[test]
fn env_namespaces_replace_the_built_in_set_like_a_toml_table() {
    let out = hubbub(
        &["check-config"],
        &[("HUBBUB_NAMESPACES__CHAT__CLIENT_PUBLISH", "true")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("chat"), "{printed}");
    assert!(
        !printed.contains("bookings"),
        "a configured namespace replaces the built-in set: {printed}"
    );
}

#[tokio::test]
async fn dev_mode_on_a_public_address_warns_louder_and_tells_the_truth() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(BIN)
        .env_remove("HUBBUB_CONFIG")
        .env("HUBBUB_LISTEN", "0.0.0.0:0")
        .env("HUBBUB_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(hubbub_tests::WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(line.starts_with("listening on http://0.0.0.0:"), "{line}");
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let log = text(&out.stderr);
    assert!(log.contains("DEV MODE"), "{log}");
    assert!(
        !log.contains("no configuration given"),
        "the environment was given: {log}"
    );
    assert!(
        log.contains("ERROR") && log.contains("0.0.0.0"),
        "dev mode on a non-loopback address is louder: {log}"
    );
}

#[test]
fn kubernetes_service_links_are_ignored() {
    let out = hubbub(
        &["check-config"],
        &[
            ("HUBBUB_AUTH__JWT_SECRET", SECRET),
            ("HUBBUB_PORT", "tcp://10.96.0.12:8080"),
            ("HUBBUB_PORT_8080_TCP", "tcp://10.96.0.12:8080"),
            ("HUBBUB_PORT_8080_TCP_PROTO", "tcp"),
            ("HUBBUB_PORT_8080_TCP_PORT", "8080"),
            ("HUBBUB_PORT_8080_TCP_ADDR", "10.96.0.12"),
            ("HUBBUB_SERVICE_HOST", "10.96.0.12"),
            ("HUBBUB_SERVICE_PORT", "8080"),
            ("HUBBUB_SERVICE_PORT_HTTP", "8080"),
        ],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("HUBBUB_"), "nothing to warn about: {err}");
}

#[test]
fn unknown_variables_warn_with_the_nearest_key() {
    for (var, value) in [("HUBBUB_LISTN", "0.0.0.0:9000"), ("HUBBUB_PORT", "9000")] {
        let out = hubbub(
            &["check-config"],
            &[("HUBBUB_AUTH__JWT_SECRET", SECRET), (var, value)],
        );
        let err = text(&out.stderr);
        assert!(out.status.success(), "{var}: {err}");
        assert!(
            err.contains(var) && err.contains("did you mean `HUBBUB_LISTEN=0.0.0.0:9000`"),
            "{var}: {err}"
        );
    }
    // A near miss of a secret names the key but never echoes the value.
    let out = hubbub(
        &["check-config"],
        &[
            ("HUBBUB_AUTH__JWT_SECRET", SECRET),
            ("HUBBUB_AUTH__JWT_SECRT", "do-not-print-me-0123456789"),
        ],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("did you mean `HUBBUB_AUTH__JWT_SECRET`"),
        "{err}"
    );
    assert!(!err.contains("do-not-print-me"), "{err}");
    // Unknown keys in the TOML file stay errors.
    let dir = std::env::temp_dir().join(format!("hubbub-cfgenv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hub.toml");
    std::fs::write(
        &file,
        format!("listn = \"0.0.0.0:9000\"\n[auth]\njwt_secret = \"{SECRET}\"\n"),
    )
    .unwrap();
    let out = hubbub(&["--config", file.to_str().unwrap(), "check-config"], &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("listn"));
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 16, point 9: `hubbub check-config | head` must not panic when the
/// reader goes away, and prints TOML (secrets redacted), not a debug dump.
#[test]
fn check_config_prints_redacted_toml_and_survives_a_closed_pipe() {
    let out = hubbub(
        &["check-config"],
        &[
            ("HUBBUB_AUTH__JWT_SECRET", SECRET),
            (
                "HUBBUB_REDIS_URL",
                "redis://user:hunter2-password@127.0.0.1:6379",
            ),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let parsed: toml::Table = printed.parse().expect("check-config prints TOML");
    assert_eq!(parsed["auth"]["jwt_secret"].as_str(), Some("[redacted]"));
    assert!(
        !printed.contains(SECRET) && !printed.contains("hunter2"),
        "{printed}"
    );
    for _ in 0..20 {
        let mut child = Command::new(BIN)
            .arg("check-config")
            .env_remove("HUBBUB_CONFIG")
            .env("HUBBUB_AUTH__JWT_SECRET", SECRET)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before anything is written
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(out.status.code(), Some(0), "{err}");
    }
}
