//! Inert answers to the few WASI calls an interpreter makes whether or not
//! the policy asks for anything: an empty environment and argument list,
//! no working directory, and "random" bytes that are all zero. They grant
//! nothing (no variable, no entropy) and keep a decision deterministic; a
//! componentize-py component calls them while starting, and would trap
//! otherwise. Every other WASI import still traps.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

/// Defines the inert functions for every version of the interfaces that
/// `component` imports, whatever the store holds (they touch none of it).
pub(super) fn define<T: 'static>(
    linker: &mut Linker<T>,
    component: &Component,
) -> wasmtime::Result<()> {
    let engine = linker.engine().clone();
    let imports: Vec<String> = component
        .component_type()
        .imports(&engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .map(|(name, _)| name.to_string())
        .collect();
    for name in imports {
        if name.starts_with("wasi:cli/environment@") {
            let mut i = linker.instance(&name)?;
            i.func_wrap("get-environment", |_, (): ()| {
                Ok((Vec::<(String, String)>::new(),))
            })?;
            i.func_wrap("get-arguments", |_, (): ()| Ok((Vec::<String>::new(),)))?;
            i.func_wrap("initial-cwd", |_, (): ()| Ok((None::<String>,)))?;
        } else if name.starts_with("wasi:random/random@") {
            let mut i = linker.instance(&name)?;
            i.func_wrap("get-random-bytes", |_, (len,): (u64,)| {
                // Bounded like any allocation the guest could ask for.
                let len = usize::try_from(len.min(1 << 16)).unwrap_or(0);
                Ok((vec![0u8; len],))
            })?;
            i.func_wrap("get-random-u64", |_, (): ()| Ok((0u64,)))?;
        }
    }
    Ok(())
}
