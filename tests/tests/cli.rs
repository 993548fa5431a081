//! The `hubbub` command line: bad configuration exits 64 naming the key,
//! `check-config` validates, `token` mints tokens the hub accepts, and dev
//! mode starts with no configuration at all.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use std::process::Command;

use hubbub_tests::{Client, Proto};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_hubbub-node");

fn hubbub(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
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

#[test]
fn bad_configuration_exits_64_and_names_the_key() {
    let dir = std::env::temp_dir().join(format!("hubbub-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[auth]\njwt_secret = \"0123456789abcdef0123\"\n[limits]\nmax_frame_bytes = 12\n",
    )
    .unwrap();
    let out = hubbub(&["--config", file.to_str().unwrap(), "check-config"], &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("limits.max_frame_bytes"));
    let out = hubbub(
        &["check-config"],
        &[("HUBBUB_LIMITS__MAX_FRAME_BYTES", "64k")],
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HUBBUB_LIMITS__MAX_FRAME_BYTES"));
    // An unknown variable is a warning naming it (tests/tests/config_env.rs).
    let out = hubbub(&["check-config"], &[("HUBBUB_LIMITS__NO_SUCH_KEY", "1")]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HUBBUB_LIMITS__NO_SUCH_KEY"));
    let out = hubbub(
        &["--config", dir.join("missing.toml").to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(64));
    std::fs::write(&file, "[auth]\njwt_secret = \"0123456789abcdef0123\"\n").unwrap();
    let out = hubbub(&["--config", file.to_str().unwrap(), "check-config"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("configuration ok") && !printed.contains("0123456789abcdef0123"),
        "secrets stay redacted"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn dev_mode_starts_without_configuration_and_accepts_minted_tokens() {
    let mut child = tokio::process::Command::new(BIN)
        .env_remove("HUBBUB_CONFIG")
        .env("HUBBUB_LISTEN", "127.0.0.1:0")
        .env("HUBBUB_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(hubbub_tests::WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = line
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let warning = tokio::time::timeout(hubbub_tests::WAIT, stderr.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(warning.contains("DEV MODE"), "{warning}");
    let out = hubbub(
        &[
            "token",
            "--sub",
            "alice",
            "--subscribe",
            "bookings:*",
            "--ttl",
            "10m",
        ],
        &[],
    );
    assert!(out.status.success());
    let tok = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (mut c, connected) = Client::connect(&format!("ws://{addr}/ws"), Proto::Json, &tok)
        .await
        .unwrap();
    assert!(connected["expires_in"].as_u64().unwrap() > 500);
    let sub = c.subscribe("bookings:42", None).await.unwrap();
    assert_eq!(
        sub["type"], "subscribed",
        "the default namespaces are served"
    );
    let publisher = hubbub(&["token", "--sub", "svc", "--publish", "bookings:*"], &[]);
    let publisher = String::from_utf8(publisher.stdout)
        .unwrap()
        .trim()
        .to_owned();
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/publish"))
        .bearer_auth(publisher)
        .json(
            &json!({"topic": "bookings:42", "event": "booking.created", "data": {"guest": "Ada"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(c.next_of("pub").await.unwrap()["data"]["guest"], "Ada");
    let bad = hubbub(&["token", "--sub", "x", "--info", "[1]"], &[]);
    assert_eq!(bad.status.code(), Some(64));
}

/// The README's first command is `cargo run --release -p hubbub`. The package
/// has two binaries (`hubbub`, `hubbub-api`), so without `default-run` cargo
/// refuses to pick one and the command fails before anything starts.
#[test]
fn cargo_run_of_the_hub_package_picks_the_hub() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{dir}/README.md")).unwrap();
    assert!(
        readme.contains("cargo run --release -p hubbub "),
        "the README's run command changed; update this test"
    );
    let manifest = std::fs::read_to_string(format!("{dir}/hub/Cargo.toml")).unwrap();
    let manifest: toml::Table = manifest.parse().unwrap();
    assert_eq!(
        manifest["package"]
            .get("default-run")
            .and_then(|v| v.as_str()),
        Some("hubbub"),
        "hub/Cargo.toml needs default-run = \"hubbub\" for `cargo run -p hubbub`"
    );
}
