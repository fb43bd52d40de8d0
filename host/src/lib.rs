//! stagegate: deployment governance for AI systems.
//!
//! Compliance teams write the rules for when an AI release may go live and
//! how it may widen its exposure as a policy, compile it to a sandboxed
//! WebAssembly component, sign it and ship it as a versioned bundle. This
//! crate loads verified bundles and answers decisions (docs/decisions.md)
//! from the command line and over HTTP.
//!
//! - [`decision`]: requests, conversion to WIT, the response envelope;
//! - [`wit`]: the WIT package versions this host serves, read from a
//!   component's bytes;
//! - [`policy`]: the wasmtime sandbox that runs policy components;
//! - [`bundle`]: signed bundle archives, keys and the trust store;
//! - [`attest`]: attested evidence in (DSSE, in-toto) and signed decision
//!   receipts out;
//! - [`distribution`]: fetching and publishing bundles (HTTP(S), OCI registries);
//! - [`records`]: deployment records and the decision log (a Merkle tree);
//! - [`config`]: the `stagegate serve` configuration, one file per section;
//! - [`auth`]: roles and the static token table;
//! - `service`: the engine without HTTP: bundle registry and sources,
//!   lanes, the one decision pipeline, the scheduler;
//! - [`integrations`]: each outside tool's rules, on typed inputs;
//! - [`server`]: HTTP only: the router, extractors, handlers, the console;
//! - [`cli`]: the `stagegate` command line.
//!
//! The dependencies point one way: `server` → `service` → `policy`,
//! `bundle`, `records` → `decision`; `config` and `auth` sit below
//! `server` and never import it (`architecture_test` holds the map).
//!
//! The public API is what the binary, the end-to-end tests and the benches
//! use: the modules declared `pub` below. `identity` and `service` are the
//! crate's own (`pub(crate)`), and an item that nothing outside its module
//! reaches is `pub(crate)` or private: `unreachable_pub` makes a `pub`
//! that the crate root cannot reach a lint error (`just lint` denies
//! warnings).

#![warn(unreachable_pub)]

pub mod attest;
pub mod auth;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod decision;
pub mod distribution;
pub(crate) mod identity;
pub mod integrations;
pub mod policy;
pub mod records;
pub mod server;
pub(crate) mod service;
pub mod wit;

#[cfg(test)]
mod architecture_test;
#[cfg(test)]
mod parser_properties;
