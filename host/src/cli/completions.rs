//! `stagegate completions bash|zsh|fish` and `stagegate man`: generated
//! from the same clap definitions the parser uses, so they cannot drift.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, CliError, CliResult, Exit};

#[derive(Debug, Args)]
pub(super) struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell
    shell: Shell,
}

pub(super) fn completions(args: CompletionsArgs) -> CliResult {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "stagegate", &mut std::io::stdout());
    Ok(Exit::Success)
}

/// The manual page: the top-level page, then a section per subcommand.
pub(super) fn man() -> CliResult {
    let cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    let write = |e: std::io::Error| CliError::failure(format!("writing the manual page: {e}"));
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .map_err(write)?;
    for sub in cmd.get_subcommands() {
        // clap names are `&'static str` without its `string` feature; this
        // runs once in a process that exits right after.
        let name: &'static str = format!("stagegate-{}", sub.get_name()).leak();
        let sub = sub.clone().name(name);
        clap_mangen::Man::new(sub).render(&mut out).map_err(write)?;
    }
    Ok(Exit::Success)
}
