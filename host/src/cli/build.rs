//! `stagegate build DIR --out FILE`

use std::path::PathBuf;

use clap::Args;

use super::{CliResult, Exit};
use crate::bundle::source::PolicySource;

#[derive(Debug, Args)]
pub(super) struct BuildArgs {
    /// Policy directory (holds bundle.toml)
    dir: PathBuf,
    /// Bundle file to write
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub(super) fn run(args: BuildArgs) -> CliResult {
    let source = PolicySource::open(&args.dir)?;
    let progress =
        source.config.component.python.as_ref().map(|module| {
            Progress::start(&format!("componentize-py: compiling {}", module.display()))
        });
    let built = source.bundle();
    if let Some(p) = progress {
        p.finish(built.is_ok());
    }
    let bundle = built?;
    bundle.write(&args.out)?;
    println!(
        "built {} {} ({} bytes of component) -> {}\ndigest {}\nunsigned: sign it with `stagegate sign {} --key KEY`",
        bundle.manifest.name,
        bundle.manifest.version,
        bundle.wasm().len(),
        args.out.display(),
        bundle.digest(),
        args.out.display()
    );
    Ok(Exit::Success)
}

/// Progress while componentize-py compiles a Python policy (10–40 s of
/// silence otherwise): a spinner with the elapsed time on a terminal; on
/// CI, where a spinner would print nothing useful, a line at the start and
/// one with the time taken at the end.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: std::time::Instant,
    what: String,
}

impl Progress {
    fn start(what: &str) -> Progress {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            {
                bar.set_style(style);
            }
            bar.set_message(what.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            eprintln!("{what} (this takes 10-40 s) ...");
        }
        Progress {
            bar,
            started: std::time::Instant::now(),
            what: what.to_string(),
        }
    }

    fn finish(self, ok: bool) {
        let took = self.started.elapsed().as_secs_f64();
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
        eprintln!(
            "{}: {} in {took:.1} s",
            self.what,
            if ok { "done" } else { "failed" }
        );
    }
}
