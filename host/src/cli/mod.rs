//! The `stagegate` command line (README.md#command-line).
//!
//! Exit codes are part of the interface: 0 success (whatever a decision's
//! outcome), 1 a check failed (verification, a failing test, a `check` whose
//! outcome is not positive), 2 bad input or usage, 3 the policy itself (or,
//! for `check --server`, the service) failed.

mod attest;
mod audit;
mod build;
mod check;
mod completions;
mod coverage;
mod credentials;
mod eval;
mod inspect;
mod keygen;
mod log;
mod new;
pub mod output;
mod receipt;
mod registry;
mod serve;
mod sign;
mod test;
mod token;
mod verify;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::bundle::{ArchiveLimits, Bundle, BundleError, TrustStore};
use crate::policy::{Isolation, Limits};

#[derive(Debug, Parser)]
#[command(
    name = "stagegate",
    version,
    about = "Deployment governance for AI systems: signed WebAssembly policies decide when a release may go live",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write an Ed25519 key pair: KEY (secret, mode 0600) and KEY.pub
    Keygen(keygen::KeygenArgs),
    /// Scaffold a policy directory (`new policy DIR --lang rust|python`)
    New(new::NewArgs),
    /// Build the bundle in a policy directory into one bundle file
    Build(build::BuildArgs),
    /// Add a signature to a bundle (run once per signer, or pass --key several times)
    Sign(sign::SignArgs),
    /// Verify a bundle's signatures and file digests against a trust store
    Verify(verify::VerifyArgs),
    /// Print a bundle's manifest, files, digests, signers and WIT world
    Inspect(inspect::InspectArgs),
    /// Evaluate one decision and print the decision JSON
    Eval(eval::EvalArgs),
    /// A CI gate step: ask for a decision, summarise it, exit 0 only on allow/promote/healthy
    Check(check::CheckArgs),
    /// Run a policy directory's test cases (tests/*.json)
    Test(test::TestArgs),
    /// Run the HTTP decision service
    Serve(serve::ServeArgs),
    /// Verify the decision log's hash chain, or export a deployment's record
    Audit(audit::AuditArgs),
    /// Send a signed sample escalation to a webhook receiver
    Webhook(webhook::WebhookArgs),
    /// Create a bearer token and print the config entry (its hash) that grants it
    Token(token::TokenArgs),
    /// Decision receipts: verify one offline
    Receipt(receipt::ReceiptArgs),
    /// The decision log's witnesses: cosign a checkpoint, print a witness key
    Log(log::LogArgs),
    /// Sign an in-toto statement about an artifact as a DSSE envelope (release evidence)
    Attest(attest::AttestArgs),
    /// Publish a bundle file to an OCI registry: stagegate push FILE oci://HOST/REPO:TAG
    Push(registry::PushArgs),
    /// Fetch a bundle from an OCI registry into a file: stagegate pull oci://HOST/REPO:TAG --out FILE
    Pull(registry::PullArgs),
    /// Print a shell completion script: stagegate completions bash|zsh|fish
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff) to standard output
    Man,
}

/// Exit codes (docs/decisions.md#command-line-exit-codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Failure = 1,
    BadInput = 2,
    PolicyError = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// A command's failure: what to print and how to exit.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn bad_input(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::BadInput,
            message: message.into(),
        }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::Failure,
            message: message.into(),
        }
    }
}

impl From<BundleError> for CliError {
    fn from(e: BundleError) -> Self {
        CliError::failure(e.to_string())
    }
}

type CliResult = Result<Exit, CliError>;

/// Parses arguments, runs the command and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_) | Command::Webhook(_)) {
        stop_quietly_on_closed_stdout();
    }
    let result = match cli.command {
        Command::Keygen(a) => keygen::run(a),
        Command::New(a) => new::run(a),
        Command::Build(a) => build::run(a),
        Command::Sign(a) => sign::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Check(a) => check::run(a),
        Command::Test(a) => test::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Token(a) => token::run(a),
        Command::Audit(a) => audit::run(a),
        Command::Webhook(a) => webhook::run(a),
        Command::Receipt(a) => receipt::run(a),
        Command::Log(a) => log::run(a),
        Command::Attest(a) => attest::run(a),
        Command::Push(a) => registry::push(a),
        Command::Pull(a) => registry::pull(a),
        Command::Completions(a) => completions::completions(a),
        Command::Man => completions::man(),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("error: {}", e.message);
            e.exit.into()
        }
    }
}

/// Lets a command whose reader has gone (`stagegate audit export … | head`)
/// end the way `cat` does, killed by SIGPIPE without a word, instead of
/// panicking in `println!`: Rust starts every program with SIGPIPE ignored,
/// which turns the closed pipe into a write error that `println!` cannot
/// return. The records database client (`audit`, plain TCP through sqlx)
/// sends with `MSG_NOSIGNAL`, so a database hanging up is still an error it
/// reports. Two commands keep SIGPIPE ignored: `serve`, where a client
/// hanging up must cost that client's connection, never the process; and
/// `webhook`, whose TLS layer writes with `writev`, which would raise the
/// signal if the receiver hung up mid-request.
fn stop_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: called on the main thread before any other thread exists
    // (the CLI commands start their runtimes later); `signal` with the
    // default action installs no handler, so nothing can run concurrently
    // with it or observe a half-installed state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Options shared by commands that check signatures.
#[derive(Debug, Clone, Args)]
struct TrustArgs {
    /// Directory of trusted public keys (*.pub)
    #[arg(long, value_name = "DIR")]
    trust: Option<PathBuf>,
    /// Valid signatures by distinct trusted keys required (k of n)
    #[arg(long, value_name = "K", default_value_t = 1)]
    min_signatures: usize,
}

impl TrustArgs {
    /// Verifies `bundle` if a trust store was given; returns the signers.
    fn verify(&self, bundle: &Bundle) -> Result<Option<Vec<crate::bundle::Signer>>, CliError> {
        let Some(dir) = &self.trust else {
            return Ok(None);
        };
        let trust = TrustStore::load(dir)?;
        Ok(Some(bundle.verify(&trust, self.min_signatures)?))
    }
}

/// Sandbox limits a command can override.
#[derive(Debug, Clone, Args)]
struct LimitArgs {
    /// Wall-clock budget of one policy call, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = Limits::default().deadline_ms())]
    deadline_ms: u64,
    /// Largest linear memory of one policy instance, in MiB
    #[arg(long, value_name = "MIB", default_value_t = Limits::default().memory_mib())]
    memory_mib: usize,
    /// Reuse warm instances (`warm`) or make one per decision (`fresh`)
    #[arg(long, default_value_t = Isolation::default())]
    isolation: Isolation,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            deadline: std::time::Duration::from_millis(self.deadline_ms),
            memory_bytes: self.memory_mib << 20,
            ..Limits::default()
        }
    }
}

/// Reads a bundle file, or builds one from a policy directory (for local
/// development: such a bundle is unsigned).
fn open_bundle(path: &std::path::Path) -> Result<Bundle, CliError> {
    if path.is_dir() {
        Ok(crate::bundle::source::PolicySource::open(path)?.bundle()?)
    } else {
        // Name the file: "bundle has no manifest.json" alone does not say
        // which bundle (an I/O error already names its path).
        Bundle::read(path, &ArchiveLimits::default()).map_err(|e| match e {
            BundleError::Io { .. } => CliError::failure(format!("bundle {e}")),
            e => CliError::failure(format!("bundle {}: {e}", path.display())),
        })
    }
}
