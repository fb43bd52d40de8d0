//! The end-to-end tests, in one binary (one link instead of one per file).
//!
//! Each file beside this one is a module named after it, so
//! `cargo test -p stagegate --test e2e records::` runs one file's tests.
//! A new file: declare it here (`mod name;`, in order), and begin it with
//! `use crate::support;` rather than `mod support;`. What the files share
//! — bundles built once, servers, the tool gate — is in `support/`.
//!
//! Tests in one binary share a process: none may change the environment,
//! the current directory or another global; each takes its own ports,
//! directories and servers.

mod support;

mod admission;
mod admission_access;
mod attestations;
mod bundle_authority;
mod bundle_bombs;
mod bundle_cli;
mod capacity;
mod check_cli;
mod console;
mod console_roles;
mod coverage_cli;
mod deploy;
mod docs_links;
mod enforcement;
mod eval_cli;
mod gateway_authz;
mod gateway_envoy;
mod gateway_nginx;
mod github_protection;
mod hardening;
mod http_api;
mod http_bundles;
mod http_faults;
mod identities;
mod integrations;
mod log_replicas;
mod log_tree;
mod monitoring;
mod openapi_contract;
mod oscal;
mod policy_sets;
mod python_policies;
mod records;
mod refs_evaluations;
mod registry_bundles;
mod rego_parity;
mod sandbox;
mod scenario;
mod wit_versions;
