//! `stagegate webhook test --url URL --secret SECRET`: sends a signed sample
//! escalation, exactly as the service would, to check a receiver.

use clap::{Args, Subcommand};
use serde_json::json;

use super::{CliError, CliResult, Exit};
use crate::decision::Timestamp;
use crate::records::model::Escalation;
use crate::records::webhooks;

#[derive(Debug, Args)]
pub(super) struct WebhookArgs {
    #[command(subcommand)]
    command: WebhookCommand,
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Send one signed sample event
    Test {
        /// Receiver URL
        #[arg(long)]
        url: String,
        /// The HMAC secret configured for the receiver
        #[arg(long)]
        secret: String,
        /// Event kind: alert, held, rolled_back, suspended or gate_denied
        #[arg(long, default_value = "alert", value_parser = parse_event)]
        event: Escalation,
    },
}

pub(super) fn run(args: WebhookArgs) -> CliResult {
    let WebhookCommand::Test { url, secret, event } = args.command;
    let event_id = format!("test-{}", ulid::Ulid::new());
    let payload = json!({
        "event_id": event_id, "event": event.as_str(), "test": true, "seq": 1,
        "system_id": "example-system", "deployment_id": "example-deployment",
        "at": Timestamp::now(), "status": "active", "stage": "pilot",
        "reason": "stagegate webhook test: a sample event, not a real one",
    })
    .to_string();
    // A test from the operator's own shell may reach any destination.
    let anywhere = crate::records::destinations::Destinations::parse(&[
        "0.0.0.0/0".to_string(),
        "::/0".to_string(),
    ])
    .map_err(|e| CliError::bad_input(e.to_string()))?;
    let timeout = std::time::Duration::from_secs(10);
    match webhooks::send(&anywhere, timeout, &url, &secret, &event_id, 1, &payload) {
        Ok(status) => {
            println!("delivered {event_id} to {url}: HTTP {status}");
            Ok(Exit::Success)
        }
        Err(e) => Err(CliError::failure(format!("delivery to {url} failed: {e}"))),
    }
}

fn parse_event(text: &str) -> Result<Escalation, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).map_err(|_| {
        format!(
            "unknown event '{text}': expected alert, held, rolled_back, suspended or gate_denied"
        )
    })
}
