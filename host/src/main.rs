//! The `stagegate` binary: see [`stagegate::cli`].

/// mimalloc: a decision allocates dozens of small strings; mimalloc cut
/// the native floor's instruction count by a tenth against glibc's malloc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stagegate::cli::main()
}
