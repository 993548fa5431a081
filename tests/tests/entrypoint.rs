//! The container image without a container engine: reads the runtime stage of
//! the repository's `Dockerfile` (its `ENV`, `COPY`, `ENTRYPOINT`, `CMD` and
//! `HEALTHCHECK` lines) and runs the hub binary exactly that way — same
//! arguments, an environment holding only the image's variables, files at the
//! paths the image copies them to mapped back to the repository — with only
//! `HUBBUB_LISTEN` changed to `127.0.0.1:0` and the JWT secret given as the
//! deployment would (an environment variable / Fly secret).
//!
//! The binary is the test package's `hubbub-node` (the same `hubbub::cli::main`
//! as `hubbub`, always freshly built); set `ENTRYPOINT_BIN` to a path
//! (e.g. `target/release/hubbub`) to check the release build instead.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use hubbub_tests::{Client, Proto, SECRET, WAIT, token};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The runtime stage of the Dockerfile, as far as running the binary goes.
#[derive(Debug, Default)]
struct Image {
    /// `ENV KEY=VALUE`, in order.
    env: BTreeMap<String, String>,
    /// `COPY SRC DST` from the build context (not `--from=`): DST → SRC.
    copies: BTreeMap<String, String>,
    /// `COPY --from=STAGE SRC DST` destinations.
    built: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
    user: Option<String>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package sits in the workspace")
        .to_path_buf()
}

fn json_array(text: &str, what: &str) -> Vec<String> {
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{what} must be in exec (JSON array) form: {e}: {text}"))
}

/// Parses the last stage of `Dockerfile`.
fn image() -> Image {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("reading Dockerfile");
    // Join continuation lines, drop comments.
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.starts_with('#') || trimmed.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM line");
    let mut image = Image::default();
    for line in &lines[last_from + 1..] {
        let (instr, rest) = line.split_once(' ').unwrap_or((line, ""));
        match instr {
            "ENV" => {
                let (k, v) = rest
                    .split_once('=')
                    .unwrap_or_else(|| panic!("ENV must be KEY=VALUE: {line}"));
                assert!(
                    !v.contains(' ') && !v.contains('"'),
                    "one unquoted KEY=VALUE per ENV line: {line}"
                );
                image.env.insert(k.to_owned(), v.to_owned());
            }
            "COPY" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                match words.as_slice() {
                    [from, _src, dst] if from.starts_with("--from=") => {
                        image.built.push((*dst).to_owned());
                    }
                    [src, dst] => {
                        image.copies.insert((*dst).to_owned(), (*src).to_owned());
                    }
                    _ => panic!("unexpected COPY: {line}"),
                }
            }
            "ENTRYPOINT" => image.entrypoint = json_array(rest, "ENTRYPOINT"),
            "CMD" => image.cmd = json_array(rest, "CMD"),
            "HEALTHCHECK" => {
                let (_, cmd) = rest
                    .split_once("CMD ")
                    .unwrap_or_else(|| panic!("HEALTHCHECK needs CMD: {line}"));
                image.healthcheck = json_array(cmd, "HEALTHCHECK CMD");
            }
            "USER" => image.user = Some(rest.to_owned()),
            _ => {}
        }
    }
    image
}

fn binary() -> PathBuf {
    std::env::var_os("ENTRYPOINT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hubbub-node")))
}

/// The image's environment, with files it copies mapped back to the
/// repository, `HUBBUB_LISTEN` on an ephemeral loopback port, and `extra`.
fn environment(image: &Image, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = image
        .env
        .iter()
        .map(|(k, v)| {
            let v = match image.copies.get(v) {
                Some(src) => repo_root().join(src).display().to_string(),
                None => v.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    // Debian's default PATH (the healthcheck needs bash from it).
    env.insert(
        "PATH".into(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
    );
    env.insert("HUBBUB_LISTEN".into(), "127.0.0.1:0".into());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    env
}

/// Spawns the entrypoint the way the image does.
fn spawn(image: &Image, extra: &[(&str, &str)]) -> Child {
    let (_, args) = image.entrypoint.split_first().expect("an ENTRYPOINT");
    Command::new(binary())
        .args(args)
        .args(&image.cmd)
        .env_clear()
        .envs(environment(image, extra))
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning the entrypoint")
}

/// Runs the image's HEALTHCHECK command against `addr`; true when it passes.
async fn healthcheck(image: &Image, addr: &str) -> bool {
    let (program, args) = image.healthcheck.split_first().expect("a HEALTHCHECK");
    let mut env = environment(image, &[]);
    env.insert("HUBBUB_LISTEN".into(), addr.into());
    let run = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    tokio::time::timeout(WAIT, run)
        .await
        .expect("the healthcheck finished in time")
        .expect("running the healthcheck")
        .success()
}

#[test]
fn the_dockerfile_runs_only_hubbub_as_a_non_root_user_on_port_8080() {
    let image = image();
    assert_eq!(image.entrypoint, ["/usr/local/bin/hubbub"]);
    assert_eq!(image.built, ["/usr/local/bin/hubbub"], "only the binary");
    assert_eq!(image.cmd, ["serve"]);
    assert_eq!(
        image.env.get("HUBBUB_LISTEN").map(String::as_str),
        Some("0.0.0.0:8080")
    );
    let user = image.user.as_deref().expect("a USER line");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
    assert!(
        image
            .env
            .keys()
            .all(|k| !k.contains("SECRET") && k != "HUBBUB_API_KEYS" && k != "HUBBUB_REDIS_URL"),
        "secrets come from the deployment, never the image: {:?}",
        image.env
    );
    for dst in image.copies.keys() {
        let src = &image.copies[dst];
        assert!(repo_root().join(src).is_file(), "COPY source {src} exists");
    }
}

#[tokio::test]
async fn the_entrypoint_serves_health_and_drains_on_sigterm() {
    let image = image();
    let mut child = spawn(&image, &[("HUBBUB_AUTH__JWT_SECRET", SECRET)]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, stdout.next_line())
        .await
        .expect("the node reported its address in time")
        .unwrap()
        .expect("the node exited before listening");
    let addr = line
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    let logs = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Ok(Some(l)) = stderr.next_line().await {
            lines.push(l);
        }
        lines
    });

    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let resp = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    assert!(
        healthcheck(&image, &addr).await,
        "the image's HEALTHCHECK passes"
    );

    let tok = token("docker", &["bookings:*"], &[], 600);
    let (mut c, _) = Client::connect(&format!("ws://{addr}/ws"), Proto::Json, &tok)
        .await
        .unwrap();
    c.subscribe("bookings:1", None).await.unwrap();

    let pid = child.id().expect("running");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let closed = c.closed().await.unwrap();
    assert_eq!(closed.code, Some(4200), "{closed:?}");
    assert_eq!(
        closed.disconnect.as_ref().map(|d| d["reconnect"].clone()),
        Some(Value::Bool(true))
    );
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the node exited within the drain time")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        !healthcheck(&image, &addr).await,
        "the HEALTHCHECK fails once the node is gone"
    );

    // HUBBUB_LOG_FORMAT=json from the image: every log line is a JSON object
    // (what Fly's log shipping and most collectors expect), and the secret
    // never appears.
    let logs = logs.await.unwrap();
    assert!(!logs.is_empty(), "the node logged its start and drain");
    for l in &logs {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"));
        assert!(v.is_object(), "{l}");
        assert!(!l.contains(SECRET), "the secret leaked into the log: {l}");
    }
}

#[tokio::test]
async fn the_image_refuses_to_start_without_a_jwt_key() {
    // The image carries a configuration file, so no key means an error
    // (exit 64), never dev mode with the public dev secret.
    let image = image();
    let child = spawn(&image, &[]);
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the node exited in time")
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("jwt_secret"), "{stderr}");
    assert!(out.stdout.is_empty(), "never listened: {out:?}");
}

fn seconds(v: &toml::Value) -> u64 {
    let s = v.as_str().expect("a duration string such as \"30s\"");
    s.strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected whole seconds like \"30s\": {s}"))
}

#[test]
fn fly_toml_agrees_with_the_image_and_the_hub() {
    let text = std::fs::read_to_string(repo_root().join("fly.toml")).expect("reading fly.toml");
    let fly: toml::Table = text.parse().expect("fly.toml is TOML");
    assert_eq!(fly["kill_signal"].as_str(), Some("SIGTERM"));
    let service = fly["http_service"].as_table().expect("[http_service]");
    assert_eq!(service["internal_port"].as_integer(), Some(8080));
    assert_eq!(service["auto_stop_machines"].as_str(), Some("off"));
    let concurrency = service["concurrency"].as_table().expect("concurrency");
    assert_eq!(concurrency["type"].as_str(), Some("connections"));
    let hard = concurrency["hard_limit"].as_integer().expect("hard_limit");
    let soft = concurrency["soft_limit"].as_integer().expect("soft_limit");
    assert!(0 < soft && soft < hard, "soft {soft} < hard {hard}");
    let hub_limit = fly["env"]["HUBBUB_LIMITS__MAX_CONNECTIONS"]
        .as_str()
        .expect("the hub's connection limit in [env]");
    assert_eq!(
        hub_limit.parse::<i64>().ok(),
        Some(hard),
        "fly's hard_limit is the hub's max_connections"
    );
    let checks = service["checks"]
        .as_array()
        .expect("[[http_service.checks]]");
    assert!(checks.iter().all(|c| c["path"].as_str() == Some("/readyz")));
    assert_eq!(fly["metrics"]["path"].as_str(), Some("/metrics"));
    assert_eq!(fly["metrics"]["port"].as_integer(), Some(8080));

    // The [env] of fly.toml on top of the image's, plus the documented
    // secrets, is a configuration the hub accepts; its drain ends before
    // Fly's SIGKILL.
    let image = image();
    let mut env = environment(&image, &[]);
    for (k, v) in fly["env"].as_table().expect("[env]") {
        env.insert(k.clone(), v.as_str().expect("string env values").to_owned());
    }
    env.insert("HUBBUB_AUTH__JWT_SECRET".into(), SECRET.into());
    env.insert(
        "HUBBUB_API_KEYS".into(),
        r#"[{name="booking-service", key_sha256="0000000000000000000000000000000000000000000000000000000000000000", publish=["bookings:*"]}]"#.into(),
    );
    let file = env.get("HUBBUB_CONFIG").map(PathBuf::from);
    let pairs: Vec<(String, String)> = env.into_iter().collect();
    let config = hubbub::config::Config::load(file.as_deref(), &pairs)
        .unwrap_or_else(|e| panic!("fly.toml's [env] is refused by the hub: {e}"));
    assert_eq!(config.listen.port(), 8080);
    // Behind Fly's proxy the TCP peer is the proxy: the per-IP limit must
    // read `Fly-Client-IP`, and only from the proxy's private addresses.
    assert_eq!(
        config.trusted_proxies.header,
        hubbub::config::ClientIpHeader::FlyClientIp
    );
    for proxy in ["172.16.0.2", "fdaa:0:1::3"] {
        let ip = proxy.parse().expect("an address");
        assert!(config.trusted_proxies.trusts(ip), "{proxy} is trusted");
    }
    for client in ["203.0.113.7", "2001:db8::1", "127.0.0.1"] {
        let ip = client.parse().expect("an address");
        assert!(
            !config.trusted_proxies.trusts(ip),
            "{client} is not trusted"
        );
    }
    let kill = seconds(&fly["kill_timeout"]);
    assert!(
        config.drain_timeout.as_secs() + 5 <= kill,
        "drain {:?} must end well before kill_timeout {kill}s",
        config.drain_timeout
    );
}
