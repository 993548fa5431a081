//! Log output when stderr is not a terminal (a file, a pipe, a log
//! collector): plain text, no colour codes (issue 13 point 8).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_hubbub-node");

#[test]
fn text_logs_into_a_pipe_have_no_colour_codes() {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HUBBUB_")) {
        cmd.env_remove(k);
    }
    // Dev mode (no configuration) logs a warning at start.
    let mut child = cmd
        .env("HUBBUB_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEV MODE"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a pipe: {stderr:?}"
    );
}
