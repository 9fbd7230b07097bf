/*
 * compiler.h: the only place that spells compiler extensions
 * (__builtin_expect, __attribute__). Everything else uses these names.
 */
#ifndef HAK_COMPILER_H
#define HAK_COMPILER_H

#define HAK_LIKELY(x) __builtin_expect(!!(x), 1)
#define HAK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HAK_NOINLINE __attribute__((noinline))
#define HAK_COLD __attribute__((cold))
#define HAK_ALWAYS_INLINE inline __attribute__((always_inline))
#define HAK_NORETURN __attribute__((noreturn))
/* On declarations of variables defined elsewhere in the library: hidden
 * (as -fvisibility=hidden makes their definitions), so that position-
 * independent code reads them at a fixed offset, not through the GOT. */
#define HAK_HIDDEN __attribute__((visibility("hidden")))
/* Exported from the shared library despite -fvisibility=hidden. */
#define HAK_EXPORT __attribute__((visibility("default")))
/* Defines name as another symbol for the function target (same address). */
#define HAK_ALIAS(target) __attribute__((alias(#target), visibility("default")))
#define HAK_MALLOC_ATTR __attribute__((malloc))
#define HAK_CONSTRUCTOR __attribute__((constructor))
#define HAK_DESTRUCTOR __attribute__((destructor))
#define HAK_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define HAK_UNUSED __attribute__((unused))
#define HAK_TLS_IE __thread __attribute__((tls_model("initial-exec")))

/* The return address of the current function (its caller's call site). */
#define HAK_RETURN_ADDRESS() __builtin_return_address(0)

#define HAK_CLZ64(x) __builtin_clzll(x)
#define HAK_CTZ64(x) __builtin_ctzll(x)
#define HAK_POPCOUNT32(x) __builtin_popcount(x)
#define HAK_ADD_OVERFLOW(a, b, res) __builtin_add_overflow(a, b, res)
#define HAK_MUL_OVERFLOW(a, b, res) __builtin_mul_overflow(a, b, res)
/* Hides the value of the variable x from the optimiser (no instruction),
 * so that it computes from x's register what it would otherwise rebuild
 * from where x came from (free: the chunk base as the chunk index shifted
 * back, one instruction, not a copy of the pointer and a mask). */
#define HAK_OPAQUE(x) __asm__("" : "+r"(x))

/* Atomics, named by memory order (STYLE.md 14). */
#include <stdatomic.h>
#define atomic_load_relaxed(p) atomic_load_explicit(p, memory_order_relaxed)
#define atomic_load_acquire(p) atomic_load_explicit(p, memory_order_acquire)
#define atomic_store_relaxed(p, v) atomic_store_explicit(p, v, memory_order_relaxed)
#define atomic_store_release(p, v) atomic_store_explicit(p, v, memory_order_release)
#define atomic_fetch_add_relaxed(p, v) atomic_fetch_add_explicit(p, v, memory_order_relaxed)
#define atomic_fetch_sub_relaxed(p, v) atomic_fetch_sub_explicit(p, v, memory_order_relaxed)
#define atomic_exchange_acq_rel(p, v) atomic_exchange_explicit(p, v, memory_order_acq_rel)
#define atomic_cas_weak_acq_rel(p, expected, desired)                                       \
    atomic_compare_exchange_weak_explicit(p, expected, desired, memory_order_acq_rel,      \
                                          memory_order_acquire)
#define atomic_cas_strong_acq_rel(p, expected, desired)                                     \
    atomic_compare_exchange_strong_explicit(p, expected, desired, memory_order_acq_rel,    \
                                            memory_order_acquire)

#include <stdint.h>
/* Raises *p to v if v is larger (relaxed: a high-water mark). */
static inline void atomic_max_relaxed(_Atomic uint64_t *p, uint64_t v) {
    uint64_t old = atomic_load_relaxed(p);
    while (v > old && !atomic_compare_exchange_weak_explicit(p, &old, v, memory_order_relaxed,
                                                             memory_order_relaxed)) {
    }
}

#endif /* HAK_COMPILER_H */
