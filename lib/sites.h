/*
 * sites.h: the call-site table (DESIGN.md 6). A fixed array of slots keyed
 * by return address, open addressing with linear probing; a slot is claimed
 * by a CAS of its key from 0 and never released (hak_sites_reset zeroes the
 * table, for tests), so recording never allocates and never locks. A
 * record that finds the table full counts in an overflow counter.
 */
#ifndef HAK_SITES_H
#define HAK_SITES_H

#include "internal.h"

#define SITES_SLOTS 1024 /* a power of two */
#define SITES_PROBES 32  /* slots tried before a record counts as overflow */

/* Whether malloc samples its callers (HAKMEM_SITE_PROFILE=1); set at init. */
extern HAK_HIDDEN bool sites_sampling;

/* Records one allocation of size bytes served by lane (or a free, when
 * is_free) at call site addr. Thread-safe, lock-free, never allocates. */
void sites_record(uintptr_t addr, size_t size, int lane, bool is_free);

/* malloc's sampling path (HAKMEM_SITE_PROFILE=1): counts down the calling
 * thread's sampling interval and records p's site when it runs out. */
void sites_sample(uintptr_t addr, size_t size, const void *p);

/* Reads HAKMEM_SITE_PROFILE / HAKMEM_SITE_SAMPLE (hak_init, constructor). */
void sites_configure(void);

/* Appends the top sites to the report: text lines or a JSON array. Returns
 * the length written into buf (< cap). */
size_t sites_report(bool json, char *buf, size_t cap);

#endif /* HAK_SITES_H */
