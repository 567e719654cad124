/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "guest_memory.h"
#include "log.h"

/* [a, a+alen) and [b, b+blen) intersect; both are known not to overflow. */
static bool guest_memory_ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static int guest_memory_check_new(const struct guest_memory *m, uint64_t gpa, uint64_t size,
	uint64_t uva)
{
	uint64_t end;

	if (size == 0 || __builtin_add_overflow(gpa, size, &end) ||
		__builtin_add_overflow(uva, size, &end) || size > SIZE_MAX)
		return log_error_errno(-EINVAL, "Memory region 0x%llx+0x%llx is empty or wraps",
			(unsigned long long)gpa, (unsigned long long)size);
	if (m->n_regions >= GUEST_MEMORY_MAX_REGIONS)
		return log_error_errno(-ENOSPC, "Too many memory regions (max %u)",
			GUEST_MEMORY_MAX_REGIONS);
	for (unsigned i = 0; i < m->n_regions; i++) {
		const struct guest_region *r = &m->regions[i];
		if (guest_memory_ranges_overlap(gpa, size, r->gpa, r->size) ||
			guest_memory_ranges_overlap(uva, size, r->uva, r->size))
			return log_error_errno(-EINVAL,
				"Memory region 0x%llx+0x%llx overlaps region %u",
				(unsigned long long)gpa, (unsigned long long)size, i);
	}
	return 0;
}

/* A front-end that truncates a memory file after we mapped it turns our next
 * load or store there into SIGBUS. The handler puts a private zero page over
 * the faulting page when it lies in one of our mappings, so the access
 * completes harmlessly, and wakes the fault eventfd so the owner drops that
 * front-end. A SIGBUS anywhere else keeps its default action. The registry is
 * only changed outside the handler, on the one thread, so plain stores do. */
#define GUEST_MEMORY_MAX_MAPS (4 * GUEST_MEMORY_MAX_REGIONS)
static struct {
	uintptr_t start, end;
} guest_memory_maps[GUEST_MEMORY_MAX_MAPS];
static int guest_memory_fault_efd = -1;

static void guest_memory_sigbus(int sig, siginfo_t *si, void *ctx)
{
	uintptr_t a = (uintptr_t)si->si_addr, page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uint64_t one = 1;

	for (size_t i = 0; i < GUEST_MEMORY_MAX_MAPS; i++) {
		if (a < guest_memory_maps[i].start || a >= guest_memory_maps[i].end)
			continue;
		if (mmap((void *)(a & ~(page - 1)), page, PROT_READ | PROT_WRITE,
			    MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
			break;
		if (write(guest_memory_fault_efd, &one, sizeof(one)) < 0) {
			/* nothing to do in a signal handler: the next fault retries */
		}
		return;
	}
	signal(SIGBUS, SIG_DFL); /* the access runs again and ends the process */
}

int guest_memory_fault_fd(void)
{
	struct sigaction sa = { .sa_sigaction = guest_memory_sigbus, .sa_flags = SA_SIGINFO };

	if (guest_memory_fault_efd >= 0)
		return guest_memory_fault_efd;
	guest_memory_fault_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (guest_memory_fault_efd < 0)
		return -errno;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) < 0)
		return -errno;
	return guest_memory_fault_efd;
}

static void guest_memory_track(void *addr, size_t size, bool on)
{
	for (size_t i = 0; i < GUEST_MEMORY_MAX_MAPS; i++) {
		if (on && guest_memory_maps[i].start == 0) {
			guest_memory_maps[i].end = (uintptr_t)addr + size;
			guest_memory_maps[i].start = (uintptr_t)addr;
			return;
		}
		if (!on && guest_memory_maps[i].start == (uintptr_t)addr) {
			guest_memory_maps[i].start = guest_memory_maps[i].end = 0;
			return;
		}
	}
}

int guest_memory_add(struct guest_memory *m, uint64_t gpa, uint64_t size, uint64_t uva,
	uint64_t offset, int fd)
{
	uint64_t map_size;
	struct stat st;
	void *p;
	int r;

	r = guest_memory_check_new(m, gpa, size, uva);
	if (r < 0)
		return r;
	/* The fd offset is where the region starts inside the file; map from 0 so
	 * the mapping stays page aligned whatever the offset is. */
	if (__builtin_add_overflow(size, offset, &map_size) || map_size > SIZE_MAX)
		return log_error_errno(-EINVAL, "Memory region offset 0x%llx overflows",
			(unsigned long long)offset);
	/* Pages past the end of the file fault with SIGBUS when the guest's rings or
	 * buffers are placed there: refuse such a region up front. */
	if (fstat(fd, &st) < 0)
		return log_error_errno(-errno, "Failed to stat memory region fd: %m");
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < map_size)
		return log_error_errno(-EINVAL, "Memory region 0x%llx+0x%llx at offset 0x%llx is larger than its file (%lld bytes)",
			(unsigned long long)gpa, (unsigned long long)size,
			(unsigned long long)offset, (long long)st.st_size);
	p = mmap(NULL, (size_t)map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED)
		return log_error_errno(-errno, "Failed to map memory region 0x%llx+0x%llx: %m",
			(unsigned long long)gpa, (unsigned long long)size);
	m->regions[m->n_regions++] = (struct guest_region){
		.gpa = gpa,
		.size = size,
		.uva = uva,
		.host = (uint8_t *)p + offset,
		.map_addr = p,
		.map_size = (size_t)map_size,
	};
	guest_memory_track(p, (size_t)map_size, true);
	return 0;
}

int guest_memory_add_host(struct guest_memory *m, uint64_t gpa, uint64_t size, uint64_t uva,
	void *host)
{
	int r;

	r = guest_memory_check_new(m, gpa, size, uva);
	if (r < 0)
		return r;
	m->regions[m->n_regions++] = (struct guest_region){
		.gpa = gpa,
		.size = size,
		.uva = uva,
		.host = host,
	};
	return 0;
}

static void guest_region_unmap(struct guest_region *r)
{
	if (r->map_addr) {
		guest_memory_track(r->map_addr, r->map_size, false);
		munmap(r->map_addr, r->map_size);
	}
	*r = (struct guest_region){};
}

int guest_memory_remove(struct guest_memory *m, uint64_t gpa, uint64_t size, uint64_t uva)
{
	for (unsigned i = 0; i < m->n_regions; i++) {
		struct guest_region *r = &m->regions[i];
		if (r->gpa != gpa || r->size != size || r->uva != uva)
			continue;
		guest_region_unmap(r);
		m->regions[i] = m->regions[--m->n_regions];
		return 0;
	}
	return -ENOENT;
}

void guest_memory_clear(struct guest_memory *m)
{
	for (unsigned i = 0; i < m->n_regions; i++)
		guest_region_unmap(&m->regions[i]);
	m->n_regions = 0;
}

/* Offset of [addr, addr+len) inside [base, base+size), overflow-safe. */
static bool guest_memory_inside(uint64_t base, uint64_t size, uint64_t addr, uint64_t len,
	uint64_t *ret_off)
{
	uint64_t off;

	if (addr < base)
		return false;
	off = addr - base;
	if (off > size || len > size - off)
		return false;
	*ret_off = off;
	return true;
}

void *guest_memory_gpa(const struct guest_memory *m, uint64_t gpa, uint64_t len)
{
	uint64_t off;

	for (unsigned i = 0; i < m->n_regions; i++)
		if (guest_memory_inside(m->regions[i].gpa, m->regions[i].size, gpa, len, &off))
			return m->regions[i].host + off;
	return NULL;
}

void *guest_memory_uva(const struct guest_memory *m, uint64_t uva, uint64_t len)
{
	uint64_t off;

	for (unsigned i = 0; i < m->n_regions; i++)
		if (guest_memory_inside(m->regions[i].uva, m->regions[i].size, uva, len, &off))
			return m->regions[i].host + off;
	return NULL;
}

int guest_memory_iovec(const struct guest_memory *m, uint64_t gpa, uint64_t len, struct iovec *iov,
	size_t *n, size_t max)
{
	size_t k = *n;

	while (len > 0) {
		const struct guest_region *r = NULL;
		uint64_t off = 0, chunk;

		for (unsigned i = 0; i < m->n_regions; i++)
			if (guest_memory_inside(m->regions[i].gpa, m->regions[i].size, gpa, 1, &off)) {
				r = &m->regions[i];
				break;
			}
		if (!r)
			return -EFAULT;
		if (k >= max)
			return -ENOBUFS;
		chunk = r->size - off;
		if (chunk > len)
			chunk = len;
		iov[k++] = (struct iovec){ .iov_base = r->host + off, .iov_len = (size_t)chunk };
		len -= chunk;
		/* Cannot wrap: the region check proved gpa + chunk <= r->gpa + r->size. */
		gpa += chunk;
	}
	*n = k;
	return 0;
}
