//! stagegate: deployment governance for AI systems.
//!
//! Compliance teams write the rules for when an AI release may go live and
//! how it may widen its exposure as a policy, compile it to a sandboxed
//! WebAssembly component, sign it and ship it as a versioned bundle. This
//! crate loads verified bundles and answers decisions (docs/decisions.md)
//! from the command line and over HTTP.
//!
//! - [`decision`]: requests, conversion to WIT, the response envelope;
//! - [`policy`]: the wasmtime sandbox that runs policy components;
//! - [`bundle`]: signed bundle archives, keys and the trust store;
//! - [`attest`]: attested evidence in (DSSE, in-toto) and signed decision
//!   receipts out;
//! - [`distribution`]: fetching and publishing bundles (HTTP(S), OCI registries);
//! - [`records`]: deployment records and the hash-chained decision log;
//! - [`server`]: the HTTP decision service;
//! - [`cli`]: the `stagegate` command line.

pub mod attest;
pub mod bundle;
pub mod cli;
pub mod decision;
pub mod distribution;
pub mod integrations;
pub mod policy;
pub mod records;
pub mod server;

#[cfg(test)]
mod parser_properties;
