//! The guest heap allocator: enforces the memory limit and remembers that it did.
//!
//! QuickJS's own limit check fails the allocation before any allocator sees it, and when the
//! heap is so full that even the "out of memory" error cannot be allocated, the guest just
//! sees a thrown `null`, indistinguishable from `throw null`. Enforcing the limit here instead
//! lets the driver know that a failure came from memory exhaustion and report
//! `MemoryLimitError` reliably.

use std::alloc::{self, Layout};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rquickjs::allocator::Allocator;

use crate::pool::{Budget, limit_of};

const ALIGN: usize = 16;
const HEADER: usize = 16;

/// Allocator with a byte budget; marks the budget exhausted when a request does not fit.
pub(crate) struct LimitedAllocator {
    used: usize,
    budget: Arc<Budget>,
}

impl LimitedAllocator {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        Self { used: 0, budget }
    }

    fn reserve(&mut self, size: usize) -> bool {
        match self.used.checked_add(size) {
            Some(total) if total <= limit_of(&self.budget) => {
                self.used = total;
                true
            }
            _ => {
                self.budget.exhausted.store(true, Ordering::Relaxed);
                false
            }
        }
    }
}

fn padded(size: usize) -> Option<usize> {
    size.checked_add(ALIGN - 1)
        .map(|s| s / ALIGN * ALIGN)?
        .checked_add(HEADER)
}

unsafe fn header(ptr: *mut u8) -> *mut usize {
    // SAFETY (caller): `ptr` was returned by this allocator, so a header precedes it.
    unsafe { ptr.sub(HEADER).cast::<usize>() }
}

// SAFETY: every pointer handed out is preceded by a header holding the padded size of its
// block, which `dealloc`, `realloc` and `usable_size` read back; layouts are rebuilt from
// that size with the same alignment.
unsafe impl Allocator for LimitedAllocator {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        let Some(total) = padded(size.max(1)) else {
            return ptr::null_mut();
        };
        if !self.reserve(total) {
            return ptr::null_mut();
        }
        let Ok(layout) = Layout::from_size_align(total, ALIGN) else {
            self.used -= total;
            return ptr::null_mut();
        };
        // SAFETY: `layout` has a non-zero size.
        let base = unsafe { alloc::alloc(layout) };
        if base.is_null() {
            self.used -= total;
            self.budget.exhausted.store(true, Ordering::Relaxed);
            return ptr::null_mut();
        }
        // SAFETY: the block is `total >= HEADER` bytes, aligned for `usize`.
        unsafe {
            base.cast::<usize>().write(total);
            base.add(HEADER)
        }
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        let Some(bytes) = count.checked_mul(size) else {
            return ptr::null_mut();
        };
        let p = self.alloc(bytes);
        if !p.is_null() {
            // SAFETY: `alloc` returned at least `bytes` writable bytes.
            unsafe { ptr::write_bytes(p, 0, bytes) };
        }
        p
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        // SAFETY: `ptr` came from this allocator (QuickJS contract).
        unsafe {
            let total = header(ptr).read();
            self.used = self.used.saturating_sub(total);
            alloc::dealloc(
                ptr.sub(HEADER),
                Layout::from_size_align_unchecked(total, ALIGN),
            );
        }
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        let Some(new_total) = padded(new_size.max(1)) else {
            return ptr::null_mut();
        };
        // SAFETY: `ptr` came from this allocator (QuickJS contract).
        let old_total = unsafe { header(ptr).read() };
        if new_total > old_total && !self.reserve(new_total - old_total) {
            return ptr::null_mut();
        }
        // SAFETY: same layout as the allocation; `new_total` is non-zero.
        let base = unsafe {
            alloc::realloc(
                ptr.sub(HEADER),
                Layout::from_size_align_unchecked(old_total, ALIGN),
                new_total,
            )
        };
        if base.is_null() {
            if new_total > old_total {
                self.used -= new_total - old_total;
            }
            self.budget.exhausted.store(true, Ordering::Relaxed);
            return ptr::null_mut();
        }
        if new_total < old_total {
            self.used = self.used.saturating_sub(old_total - new_total);
        }
        // SAFETY: the new block is `new_total >= HEADER` bytes.
        unsafe {
            base.cast::<usize>().write(new_total);
            base.add(HEADER)
        }
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        // SAFETY: `ptr` came from this allocator.
        unsafe { header(ptr).read() - HEADER }
    }
}
