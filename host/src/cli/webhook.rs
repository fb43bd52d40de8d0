//! `stagegate webhook test --url URL --secret SECRET`: sends a signed sample
//! escalation, exactly as the service would, to check a receiver.

use clap::{Args, Subcommand};
use serde_json::json;

use super::{CliError, CliResult, Exit};
use crate::decision::Timestamp;
use crate::records::webhooks;

#[derive(Debug, Args)]
pub struct WebhookArgs {
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
        #[arg(long, default_value = "alert")]
        event: String,
    },
}

pub fn run(args: WebhookArgs) -> CliResult {
    let WebhookCommand::Test { url, secret, event } = args.command;
    if !webhooks::EVENTS.contains(&event.as_str()) {
        return Err(CliError::bad_input(format!(
            "unknown event '{event}': expected one of {}",
            webhooks::EVENTS.join(", ")
        )));
    }
    let event_id = format!("test-{}", ulid::Ulid::new());
    let payload = json!({
        "event_id": event_id, "event": event, "test": true, "seq": 1,
        "system_id": "example-system", "deployment_id": "example-deployment",
        "at": Timestamp::now(), "status": "active", "stage": "pilot",
        "reason": "stagegate webhook test: a sample event, not a real one",
    })
    .to_string();
    match webhooks::send(&url, &secret, &event_id, 1, &payload) {
        Ok(status) => {
            println!("delivered {event_id} to {url}: HTTP {status}");
            Ok(Exit::Success)
        }
        Err(e) => Err(CliError::failure(format!("delivery to {url} failed: {e}"))),
    }
}
