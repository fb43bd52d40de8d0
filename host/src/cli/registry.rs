//! `stagegate push FILE oci://HOST/REPO:TAG` and
//! `stagegate pull oci://HOST/REPO:TAG --out FILE`: bundles in OCI
//! registries (docs/distribution.md).

use std::path::PathBuf;

use clap::Args;

use super::{CliError, CliResult, Exit, TrustArgs};
use crate::bundle::{ArchiveLimits, Bundle};
use crate::distribution::credentials::{Credential, SecretSource};
use crate::distribution::oci::{self, Reference, Resolution};
use crate::distribution::{FetchError, TransportOptions};

/// How to reach the registry.
#[derive(Debug, Clone, Args)]
pub(super) struct RegistryArgs {
    /// Speak plain HTTP to the registry (loopback registries; others also need --allow-insecure)
    #[arg(long)]
    plain_http: bool,
    /// Allow --plain-http to a registry that is not on this machine
    #[arg(long)]
    allow_insecure: bool,
    /// File holding USER:PASSWORD for the registry (default: the Docker config.json login)
    #[arg(long, value_name = "FILE")]
    basic_auth_file: Option<PathBuf>,
    /// Environment variable holding USER:PASSWORD for the registry
    #[arg(long, value_name = "VAR")]
    basic_auth_env: Option<String>,
    /// Docker config.json to take the login from (default $DOCKER_CONFIG/config.json, else ~/.docker/config.json)
    #[arg(long, value_name = "FILE")]
    docker_config: Option<PathBuf>,
    /// PEM CA certificates to trust for the registry's TLS instead of the web PKI roots
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

impl RegistryArgs {
    fn client(&self, reference: &str) -> Result<oci::Client, CliError> {
        let reference: Reference = reference
            .parse()
            .map_err(|e: FetchError| CliError::bad_input(e.to_string()))?;
        let credential = match (&self.basic_auth_file, &self.basic_auth_env) {
            (Some(f), None) => Some(Credential::Basic(SecretSource::File(f.clone()))),
            (None, Some(v)) => Some(Credential::Basic(SecretSource::Env(v.clone()))),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(CliError::bad_input(
                    "give at most one of --basic-auth-file, --basic-auth-env",
                ));
            }
        };
        oci::Client::new(
            reference,
            oci::ClientOptions {
                plain_http: self.plain_http,
                allow_insecure: self.allow_insecure,
                credential,
                docker_config: self.docker_config.clone(),
                transport: TransportOptions {
                    ca_file: self.ca_file.clone(),
                    ..TransportOptions::default()
                },
            },
        )
        .map_err(fetch_error)
    }
}

fn fetch_error(e: FetchError) -> CliError {
    match e {
        FetchError::Config(_) => CliError::bad_input(e.to_string()),
        other => CliError::failure(other.to_string()),
    }
}

#[derive(Debug, Args)]
pub(super) struct PushArgs {
    /// Bundle file (as `stagegate build`/`sign` wrote it)
    file: PathBuf,
    /// Where to publish it: oci://HOST[:PORT]/REPOSITORY:TAG
    reference: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub(super) fn push(args: PushArgs) -> CliResult {
    let limits = ArchiveLimits::default();
    let bytes = std::fs::File::open(&args.file)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", args.file.display())))
        .and_then(|f| {
            crate::bundle::read_bounded(f, limits.max_archive_bytes)
                .map_err(|e| CliError::bad_input(format!("{}: {e}", args.file.display())))
        })?;
    // Only a readable bundle is published; whether it is trusted is each
    // instance's decision.
    let bundle = Bundle::from_bytes(&bytes, &limits)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", args.file.display())))?;
    if bundle.signatures.signatures.is_empty() {
        eprintln!(
            "warning: {} is unsigned: every instance will refuse it",
            args.file.display()
        );
    }
    let client = args.registry.client(&args.reference)?;
    let name = &bundle.manifest.name;
    let version = bundle.manifest.version.to_string();
    let annotations = [
        ("org.opencontainers.image.title".to_string(), name.clone()),
        (
            "org.opencontainers.image.version".to_string(),
            version.clone(),
        ),
        ("dev.stagegate.bundle.digest".to_string(), bundle.digest()),
    ]
    .into();
    let digest = client
        .push(&bytes, &format!("{name}-{version}.bundle"), annotations)
        .map_err(fetch_error)?;
    println!(
        "pushed {name} {version} to {}\nmanifest {digest}",
        client.reference()
    );
    Ok(Exit::Success)
}

#[derive(Debug, Args)]
pub(super) struct PullArgs {
    /// What to fetch: oci://HOST[:PORT]/REPOSITORY:TAG (or @sha256:…)
    reference: String,
    /// Where to write the bundle file
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Also verify the pulled bundle against a trust store
    #[command(flatten)]
    trust: TrustArgs,
}

pub(super) fn pull(args: PullArgs) -> CliResult {
    let client = args.registry.client(&args.reference)?;
    let resolved = match client.resolve(None).map_err(fetch_error)? {
        Resolution::Manifest(r) => r,
        Resolution::Unchanged => {
            return Err(CliError::failure(
                "the registry answered 304 to an unconditional request",
            ));
        }
    };
    let limits = ArchiveLimits::default();
    let bytes = client
        .fetch_blob(&resolved.layer, limits.max_archive_bytes)
        .map_err(fetch_error)?;
    let bundle = Bundle::from_bytes(&bytes, &limits)
        .map_err(|e| CliError::failure(format!("{}: {e}", client.reference())))?;
    let signers = args.trust.verify(&bundle)?;
    let tmp = args.out.with_extension("partial");
    std::fs::write(&tmp, &bytes)
        .and_then(|_| std::fs::rename(&tmp, &args.out))
        .map_err(|e| CliError::failure(format!("{}: {e}", args.out.display())))?;
    println!(
        "pulled {} {} from {} into {}\nmanifest {}\ndigest {}{}",
        bundle.manifest.name,
        bundle.manifest.version,
        client.reference(),
        args.out.display(),
        resolved.digest,
        bundle.digest(),
        match signers {
            Some(s) => format!("\nverified: signed by {} trusted key(s)", s.len()),
            None => String::new(),
        }
    );
    Ok(Exit::Success)
}
