//! `stagegate token --name NAME --role ROLE…`: a new bearer token and the
//! config entry that grants it, holding only the token's hash.

use clap::Args;

use super::{CliResult, Exit};
use crate::auth::Role;

#[derive(Debug, Args)]
pub(super) struct TokenArgs {
    /// Who will hold the token (recorded as the actor of what it does)
    #[arg(long)]
    name: String,
    /// Role to grant (repeat for several): publisher, gateway, auditor, approver, operator
    #[arg(long = "role", required = true, value_parser = parse_role)]
    roles: Vec<Role>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::ALL
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| {
            format!(
                "unknown role '{s}': expected publisher, gateway, auditor, approver or operator"
            )
        })
}

pub(super) fn run(args: TokenArgs) -> CliResult {
    let (token, hash) = crate::auth::new_token();
    let roles: Vec<String> = args
        .roles
        .iter()
        .map(|r| format!("\"{}\"", r.as_str()))
        .collect();
    eprintln!(
        "token for {} (shown once; store it in the caller's secret store):",
        args.name
    );
    println!("{token}");
    eprintln!("\nadd to the service configuration:\n");
    eprintln!(
        "[[tokens]]\nname = \"{}\"\nsha256 = \"{hash}\"\nroles = [{}]",
        args.name,
        roles.join(", ")
    );
    Ok(Exit::Success)
}
