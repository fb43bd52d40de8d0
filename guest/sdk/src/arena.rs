//! A per-call arena for a policy's allocations.
//!
//! A decision's allocations all die together. The host lowers the request
//! into the policy's memory with one `cabi_realloc` per string and list,
//! the policy builds its findings, the host reads the answer, and the
//! export's post-return function frees all of it. With the default
//! allocator (dlmalloc, in wasm32-wasip2's std) each of those blocks is a
//! `malloc` and a `free`: profiled on the reference gate, allocation was
//! half of the time spent inside the guest. [`CallArena`] serves the same
//! blocks by moving a pointer, and forgets them all at once when the last
//! one is freed.
//!
//! How a policy uses it (the reference policy does):
//!
//! ```ignore
//! #[cfg(target_arch = "wasm32")]
//! #[global_allocator]
//! static ALLOC: stagegate_sdk::arena::CallArena = stagegate_sdk::arena::CallArena;
//!
//! fn configure(params: String) -> Result<(), String> {
//!     // ... parse and store what every decision reads ...
//!     stagegate_sdk::arena::begin();
//!     Ok(())
//! }
//! ```
//!
//! The rules that keep it correct:
//!
//! - Before [`begin`], every allocation goes to the system allocator:
//!   what `configure` keeps (parsed parameters in a static) lives there
//!   and never pins the arena.
//! - After it, a block comes from the arena while the arena has room, and
//!   from the system allocator otherwise (a very large request, or a
//!   policy that keeps something alive across calls). Nothing fails for
//!   want of arena space.
//! - The arena starts over only when no block of it is live, so no pointer
//!   into it can dangle. A policy that keeps an arena block past its call
//!   (in a static, say) keeps the arena from starting over: it fills once,
//!   and from then on the system allocator serves, as if the arena were
//!   not there. Slower, never wrong.
//!
//! Only a single-threaded guest can use it: the allocator keeps its state
//! without locks, so the type is an allocator only on `wasm32` without the
//! `atomics` feature, which is how `wasm32-wasip2` components are built.

use core::alloc::Layout;

/// Arena bytes per instance: two orders of magnitude above the reference
/// examples' whole requests (3–5 KiB), whose strings and findings are what a
/// decision allocates. A larger request overflows to the system allocator;
/// pages the arena never reaches cost nothing.
pub const ARENA_BYTES: usize = 512 << 10;

/// Bump allocation over one chunk, counting live blocks. The allocator's
/// logic, kept apart from the global state so it is testable natively.
pub struct Bump {
    base: *mut u8,
    capacity: usize,
    /// Offset of the first free byte.
    top: usize,
    /// Blocks handed out and not yet freed.
    live: usize,
}

impl Bump {
    /// No chunk yet: every request is refused (and so goes to the system
    /// allocator).
    pub const fn empty() -> Self {
        Bump {
            base: core::ptr::null_mut(),
            capacity: 0,
            top: 0,
            live: 0,
        }
    }

    /// Starts serving from `capacity` bytes at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be valid for reads and writes of `capacity` bytes for as
    /// long as this `Bump` hands out blocks, and used by nothing else.
    pub unsafe fn start(&mut self, base: *mut u8, capacity: usize) {
        *self = Bump {
            base,
            capacity,
            top: 0,
            live: 0,
        };
    }

    /// Whether a chunk is being served from.
    pub fn started(&self) -> bool {
        !self.base.is_null()
    }

    /// A block for `layout`, or `None` when the chunk has no room for it.
    pub fn alloc(&mut self, layout: Layout) -> Option<*mut u8> {
        if !self.started() {
            return None;
        }
        let base = self.base as usize;
        let at = base.checked_add(self.top)?;
        // `align` is a power of two (Layout guarantees it).
        let aligned = at.checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let offset = aligned - base;
        let end = offset.checked_add(layout.size())?;
        if end > self.capacity {
            return None;
        }
        self.top = end;
        self.live += 1;
        // `offset + size <= capacity`: in bounds of the chunk.
        Some(self.base.wrapping_add(offset))
    }

    /// Whether `ptr` is a block of this chunk.
    pub fn owns(&self, ptr: *mut u8) -> bool {
        self.started() && (ptr as usize).wrapping_sub(self.base as usize) < self.capacity
    }

    /// Frees a block of this chunk; the chunk starts over once none is
    /// live.
    pub fn free(&mut self) {
        self.live = self.live.saturating_sub(1);
        if self.live == 0 {
            self.top = 0;
        }
    }

    /// Grows the block at `ptr` of `old` bytes to `new` bytes where it is,
    /// which only the newest block can do. Whether it did.
    pub fn grow_in_place(&mut self, ptr: *mut u8, old: usize, new: usize) -> bool {
        let offset = (ptr as usize).wrapping_sub(self.base as usize);
        if offset.checked_add(old) != Some(self.top) {
            return false;
        }
        match offset.checked_add(new) {
            Some(end) if end <= self.capacity => {
                self.top = end;
                true
            }
            _ => false,
        }
    }

    /// Blocks handed out and not freed.
    pub fn live(&self) -> usize {
        self.live
    }
}

/// The global allocator a policy installs (see the module documentation).
pub struct CallArena;

/// Starts the arena: allocations from now on come from it while it has
/// room. Call it at the end of `configure`, once what the policy keeps
/// across calls is allocated. Calling it again changes nothing; off
/// `wasm32` (native unit tests of a policy) it does nothing.
pub fn begin() {
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    global::begin();
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod global {
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::UnsafeCell;
    use std::alloc::System;

    use super::{ARENA_BYTES, Bump, CallArena};

    struct Shared(UnsafeCell<Bump>);

    // SAFETY: a wasm32 module built without the `atomics` feature runs on
    // one thread, so no two accesses to the state can overlap; and no
    // method below holds a reference to it across a call that could come
    // back into the allocator (the system allocator never does).
    unsafe impl Sync for Shared {}

    static STATE: Shared = Shared(UnsafeCell::new(Bump::empty()));

    /// The state, for the duration of one allocator step.
    fn state() -> &'static mut Bump {
        // SAFETY: single-threaded and never re-entered (see `Shared`); each
        // caller drops the reference before calling anything else that
        // could take it.
        unsafe { &mut *STATE.0.get() }
    }

    pub(super) fn begin() {
        if state().started() {
            return;
        }
        let Ok(layout) = Layout::from_size_align(ARENA_BYTES, 16) else {
            return;
        };
        // SAFETY: `layout` has a non-zero size.
        let chunk = unsafe { System.alloc(layout) };
        if !chunk.is_null() {
            // SAFETY: the chunk is ours alone for the life of the instance:
            // it is never freed.
            unsafe { state().start(chunk, ARENA_BYTES) };
        }
    }

    // SAFETY: blocks come either from the chunk (in bounds, aligned as
    // asked, never handed out twice while live: the chunk starts over only
    // when no block is live) or from `System`; `dealloc` and `realloc` send
    // each block back to where it came from, told apart by address.
    unsafe impl GlobalAlloc for CallArena {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            match state().alloc(layout) {
                Some(ptr) => ptr,
                // SAFETY: forwarded contract.
                None => unsafe { System.alloc(layout) },
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            let s = state();
            if s.owns(ptr) {
                s.free();
            } else {
                // SAFETY: not the chunk's, so `System` gave it out.
                unsafe { System.dealloc(ptr, layout) }
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let s = state();
            if !s.owns(ptr) {
                // SAFETY: `System` gave it out; forwarded contract.
                return unsafe { System.realloc(ptr, layout, new_size) };
            }
            if new_size <= layout.size() || s.grow_in_place(ptr, layout.size(), new_size) {
                return ptr;
            }
            // SAFETY: the caller guarantees `new_size` is a valid size for
            // `layout.align()`.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            // SAFETY: non-zero size (it is larger than the old one).
            let moved = unsafe { self.alloc(new_layout) };
            if !moved.is_null() {
                // SAFETY: both blocks are valid for `layout.size()` bytes
                // and distinct (the old one is still live).
                unsafe { core::ptr::copy_nonoverlapping(ptr, moved, layout.size()) };
                // SAFETY: the old block, as given out.
                unsafe { self.dealloc(ptr, layout) };
            }
            moved
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(bytes: usize) -> (Vec<u64>, Bump) {
        let mut backing = vec![0u64; bytes / 8];
        let mut bump = Bump::empty();
        // SAFETY: the vector outlives the bump in every test and is not
        // touched otherwise.
        unsafe { bump.start(backing.as_mut_ptr().cast(), bytes) };
        (backing, bump)
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn before_it_starts_the_arena_refuses_so_the_system_allocator_serves() {
        let mut bump = Bump::empty();
        assert_eq!(bump.alloc(layout(8, 8)), None);
        assert!(!bump.owns(8 as *mut u8));
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_inside_the_chunk() {
        let (_backing, mut bump) = chunk(4096);
        let a = bump.alloc(layout(3, 1)).unwrap();
        let b = bump.alloc(layout(16, 16)).unwrap();
        let c = bump.alloc(layout(5, 8)).unwrap();
        assert_eq!(b as usize % 16, 0);
        assert_eq!(c as usize % 8, 0);
        assert!(b as usize >= a as usize + 3);
        assert!(c as usize >= b as usize + 16);
        assert!(bump.owns(a) && bump.owns(b) && bump.owns(c));
        assert_eq!(bump.live(), 3);
    }

    #[test]
    fn the_chunk_starts_over_only_once_every_block_is_freed() {
        let (_backing, mut bump) = chunk(4096);
        let first = bump.alloc(layout(64, 8)).unwrap();
        let _second = bump.alloc(layout(64, 8)).unwrap();
        bump.free();
        // One block still live: the next block must not overlap it.
        let third = bump.alloc(layout(64, 8)).unwrap();
        assert!(third as usize >= first as usize + 128);
        bump.free();
        bump.free();
        assert_eq!(bump.live(), 0);
        assert_eq!(bump.alloc(layout(64, 8)).unwrap(), first);
    }

    #[test]
    fn a_block_that_does_not_fit_is_refused_and_a_kept_block_pins_the_chunk() {
        let (_backing, mut bump) = chunk(256);
        assert_eq!(bump.alloc(layout(512, 8)), None);
        let kept = bump.alloc(layout(8, 8)).unwrap();
        for _ in 0..100 {
            match bump.alloc(layout(32, 8)) {
                Some(_) => bump.free(),
                None => break,
            }
        }
        // Freeing the others never freed the kept block's bytes.
        assert_eq!(bump.live(), 1);
        assert!(bump.owns(kept));
        assert_eq!(bump.alloc(layout(240, 8)), None);
    }

    #[test]
    fn only_the_newest_block_grows_in_place_and_never_past_the_chunk() {
        let (_backing, mut bump) = chunk(256);
        let a = bump.alloc(layout(16, 8)).unwrap();
        let b = bump.alloc(layout(16, 8)).unwrap();
        assert!(!bump.grow_in_place(a, 16, 32));
        assert!(bump.grow_in_place(b, 16, 64));
        let c = bump.alloc(layout(8, 8)).unwrap();
        assert!(c as usize >= b as usize + 64);
        assert!(!bump.grow_in_place(c, 8, 4096));
    }

    #[test]
    fn a_pointer_outside_the_chunk_is_not_the_arenas() {
        let (backing, bump) = chunk(256);
        let other = [0u8; 16];
        assert!(!bump.owns(other.as_ptr() as *mut u8));
        assert!(!bump.owns(backing.as_ptr().cast::<u8>().wrapping_add(256) as *mut u8));
        assert!(bump.owns(backing.as_ptr().cast::<u8>().wrapping_add(255) as *mut u8));
    }
}
