/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest memory regions shared by the front-end (SET_MEM_TABLE, ADD/REM_MEM_REG).
 * This is the only module that turns guest addresses into pointers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define GUEST_MEMORY_MAX_REGIONS 32

struct guest_region {
	uint64_t gpa; /* guest physical address */
	uint64_t size;
	uint64_t uva;   /* the front-end's user address, used for ring addresses */
	uint8_t *host;  /* our mapping of gpa */
	void *map_addr; /* what to munmap, NULL if the memory is not ours */
	size_t map_size;
};

struct guest_memory {
	struct guest_region regions[GUEST_MEMORY_MAX_REGIONS];
	unsigned n_regions;
};

/* Map `size` bytes of `fd` at `offset` as guest range [gpa, gpa+size). The fd
 * is not taken: the caller closes it. -EINVAL for an empty, overflowing or
 * overlapping region, -ENOSPC when all slots are used. */
int guest_memory_add(struct guest_memory *m, uint64_t gpa, uint64_t size, uint64_t uva,
	uint64_t offset, int fd);
/* Register memory the caller already owns (tests, fuzzers); never unmapped. */
int guest_memory_add_host(struct guest_memory *m, uint64_t gpa, uint64_t size, uint64_t uva,
	void *host);
/* Remove the region matching gpa, size and uva exactly; -ENOENT if none. */
int guest_memory_remove(struct guest_memory *m, uint64_t gpa, uint64_t size, uint64_t uva);
void guest_memory_clear(struct guest_memory *m);

/* An eventfd that becomes readable when the front-end truncated a memory file
 * under one of our mappings (the SIGBUS that caused is absorbed: the page reads
 * as zeros from then on). Installs the SIGBUS handler on first use. */
int guest_memory_fault_fd(void);

/* Pointer to [gpa, gpa+len) if it lies inside one region, else NULL. */
void *guest_memory_gpa(const struct guest_memory *m, uint64_t gpa, uint64_t len);
/* Same for a front-end user address (vring addresses are given that way). */
void *guest_memory_uva(const struct guest_memory *m, uint64_t uva, uint64_t len);

/* Split [gpa, gpa+len) into iovecs across adjacent regions, appending to
 * iov[*n .. max). -EFAULT if any byte lies outside memory, -ENOBUFS if more
 * than max iovecs would be needed. *n is advanced only on success. */
int guest_memory_iovec(const struct guest_memory *m, uint64_t gpa, uint64_t len, struct iovec *iov,
	size_t *n, size_t max);
