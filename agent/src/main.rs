//! The `arka` binary: everything lives in the library; see `arka_agent::cli`.

fn main() -> std::process::ExitCode {
    arka_agent::cli::main()
}
