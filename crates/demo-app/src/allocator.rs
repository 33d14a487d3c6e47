//! The global allocator: mimalloc, asked the way C asks `malloc` whenever
//! what `malloc` guarantees is enough.
//!
//! The mimalloc crate sends every allocation to `mi_malloc_aligned`. Its
//! fast path takes the next free block of the size class only if that
//! block happens to be aligned, and only up to 1 KiB. When the class's
//! local free list is empty, it over-allocates from a larger class, and so
//! never refills the list it looked at; above 1 KiB it always takes the
//! long way round. Measured with gdb and callgrind on `GET /api/info`,
//! most of a request's allocations went that way: its span's context (112
//! bytes at 16), header maps (96 at 8), hyper's 8 KiB read buffer (at 1).
//! Each cost 150 to 225 instructions instead of about 40.
//!
//! This holds for mimalloc built without `MI_GUARDED` (the default, and
//! this build's: libmimalloc-sys enables it only with its `debug` features).
//!
//! Like any `malloc`, mimalloc aligns its blocks for any type that fits
//! them. Its size classes are multiples of 16 bytes from 16 up, and of 8
//! below. So an alignment of at most 16, and at most the size, is what
//! `mi_malloc` gives.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

pub struct Allocator;

/// What `mi_malloc` aligns a block of `size` bytes to, at least, for sizes
/// from this up (`MI_MAX_ALIGN_SIZE`).
const MALLOC_ALIGN: usize = 16;

fn malloc_aligns(size: usize, align: usize) -> bool {
    align <= MALLOC_ALIGN && align <= size
}

// SAFETY: every block comes from mimalloc and goes back to it; the layouts
// sent to the plain calls are those `mi_malloc` aligns (module comment), the
// others go to the aligned calls, as the mimalloc crate sends them all.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if malloc_aligns(layout.size(), layout.align()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if malloc_aligns(layout.size(), layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            if malloc_aligns(new_size, layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size up to a few pages, at every alignment up to a page: the
    /// blocks are aligned as asked, through allocation, zeroed allocation
    /// and growth.
    #[test]
    fn every_block_has_the_alignment_asked_for() {
        let aligned = |ptr: *mut u8, align: usize| !ptr.is_null() && (ptr as usize).is_multiple_of(align);
        for align in (0..=12).map(|shift| 1usize << shift) {
            for size in (1..=256).chain((257..=16384).step_by(61)) {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; each block freed once, with its layout.
                unsafe {
                    let block = Allocator.alloc(layout);
                    assert!(aligned(block, align), "{size} bytes at {align}: {block:p}");
                    block.write_bytes(0xa5, size);
                    let grown = Allocator.realloc(block, layout, size * 3);
                    assert!(aligned(grown, align), "{size} bytes at {align} grown: {grown:p}");
                    assert_eq!(*grown.add(size - 1), 0xa5, "growth keeps the contents");
                    Allocator.dealloc(grown, Layout::from_size_align(size * 3, align).unwrap());
                    let zeroed = Allocator.alloc_zeroed(layout);
                    assert!(aligned(zeroed, align), "{size} zeroed bytes at {align}: {zeroed:p}");
                    assert!((0..size).all(|i| *zeroed.add(i) == 0), "{size} zeroed bytes at {align}");
                    Allocator.dealloc(zeroed, layout);
                }
            }
        }
    }
}
