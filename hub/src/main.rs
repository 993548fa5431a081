//! The `hubbub` binary: see [`hubbub::cli`].

fn main() -> std::process::ExitCode {
    hubbub::cli::main()
}
