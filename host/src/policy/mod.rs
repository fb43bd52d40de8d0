//! The sandbox: wasmtime configured for untrusted policy components.
//!
//! - [`Runtime`]: one engine per process (pooling allocator, epoch ticker).
//! - [`LoadedPolicy`]: a linked component and its warm instances.
//! - [`ActivePolicy`]: a loaded policy with its bundle identity and control
//!   map, answering decisions from request to envelope and failing closed.

mod active;
pub(crate) mod bindings;
mod cache;
mod error;
mod inert;
mod limits;
mod loaded;
mod runtime;
pub mod set;

pub use crate::wit::WitVersion;
pub use active::{ActivePolicy, Decided, LoadError};
pub use cache::{CacheOutcome, ComponentCache};
pub use error::PolicyError;
pub use limits::{BundleLimits, Isolation, Limits};
pub use loaded::{LoadedPolicy, Policy};
pub use runtime::Runtime;
