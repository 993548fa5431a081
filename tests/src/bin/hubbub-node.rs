//! The `hubbub` binary, built inside the test package so that `cargo test`
//! always runs the black-box tests against a freshly built binary.

fn main() -> std::process::ExitCode {
    hubbub::cli::main()
}
