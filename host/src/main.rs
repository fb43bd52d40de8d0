//! The `stagegate` binary: see [`stagegate::cli`].

fn main() -> std::process::ExitCode {
    stagegate::cli::main()
}
