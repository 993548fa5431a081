//! The `hubbub-api` binary (the REST API alone), built inside the test
//! package so that `cargo test` always runs against a fresh build.

fn main() -> std::process::ExitCode {
    hubbub::cli::api_main()
}
