/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest_memory: translation and every bounds rejection. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../tap.h"
#include "guest_memory.h"

static uint8_t a[8192], b[4096];

static void test_translate(void)
{
	struct guest_memory m = {};

	is_int(guest_memory_add_host(&m, 0x10000, sizeof(a), 0x7000000, a), 0, "add region A");
	is_int(guest_memory_add_host(&m, 0x10000 + sizeof(a), sizeof(b), 0x9000000, b), 0,
		"add adjacent region B");
	ok(guest_memory_gpa(&m, 0x10000, 16) == a, "start of A");
	ok(guest_memory_gpa(&m, 0x10000 + 100, 1) == a + 100, "inside A");
	ok(guest_memory_gpa(&m, 0x10000 + sizeof(a) - 8, 8) == a + sizeof(a) - 8, "end of A");
	ok(guest_memory_gpa(&m, 0x10000 + sizeof(a) - 8, 9) == NULL,
		"straddling A and B is not one pointer");
	ok(guest_memory_gpa(&m, 0xffff, 1) == NULL, "below memory");
	ok(guest_memory_gpa(&m, 0x10000 + sizeof(a) + sizeof(b), 1) == NULL, "above memory");
	ok(guest_memory_gpa(&m, 0x10000, sizeof(a) + sizeof(b) + 1) == NULL, "longer than memory");
	ok(guest_memory_gpa(&m, UINT64_MAX - 4, 16) == NULL, "address + length wraps");
	ok(guest_memory_gpa(&m, 0x10010, UINT64_MAX) == NULL, "huge length");
	ok(guest_memory_gpa(&m, 0x10000 + sizeof(a), 0) != NULL,
		"zero length at a region boundary");
	ok(guest_memory_uva(&m, 0x7000000 + 4, 4) == a + 4, "uva translation");
	ok(guest_memory_uva(&m, 0x7000000 + sizeof(a) - 2, 4) == NULL, "uva past the end");
	ok(guest_memory_uva(&m, UINT64_MAX - 1, 8) == NULL, "uva wrap");

	/* Splitting across the two regions. */
	struct iovec iov[4];
	size_t n = 0;
	is_int(guest_memory_iovec(&m, 0x10000 + sizeof(a) - 100, 300, iov, &n, 4), 0,
		"span across A and B");
	is_int(n, 2, "two iovecs");
	ok(iov[0].iov_base == a + sizeof(a) - 100 && iov[0].iov_len == 100, "first piece in A");
	ok(iov[1].iov_base == b && iov[1].iov_len == 200, "second piece in B");
	n = 3;
	is_int(guest_memory_iovec(&m, 0x10000, 16, iov, &n, 4), 0, "appends after existing iovecs");
	is_int(n, 4, "n advanced by one");
	n = 0;
	is_int(guest_memory_iovec(&m, 0x10000 + sizeof(a) - 100, 300, iov, &n, 1), -ENOBUFS,
		"too few iovec slots");
	is_int(n, 0, "n unchanged on failure");
	is_int(guest_memory_iovec(&m, 0x10000 + sizeof(a), sizeof(b) + 1, iov, &n, 4), -EFAULT,
		"span past the end");
	is_int(guest_memory_iovec(&m, UINT64_MAX - 10, 100, iov, &n, 4), -EFAULT, "span wrapping");
	is_int(guest_memory_iovec(&m, 0x10000, 0, iov, &n, 4), 0, "empty span");
	is_int(n, 0, "empty span adds nothing");

	/* A hole between regions. */
	struct guest_memory h = {};
	guest_memory_add_host(&h, 0, 4096, 0, a);
	guest_memory_add_host(&h, 8192, 4096, 8192, b);
	n = 0;
	is_int(guest_memory_iovec(&h, 4000, 200, iov, &n, 4), -EFAULT, "span over a hole");
	guest_memory_clear(&h);
	guest_memory_clear(&m);
	is_int(m.n_regions, 0, "cleared");
}

static void test_reject(void)
{
	struct guest_memory m = {};

	is_int(guest_memory_add_host(&m, 0x1000, 0, 0, a), -EINVAL, "empty region rejected");
	is_int(guest_memory_add_host(&m, UINT64_MAX - 100, 4096, 0, a), -EINVAL, "gpa wrap rejected");
	is_int(guest_memory_add_host(&m, 0, 4096, UINT64_MAX - 100, a), -EINVAL, "uva wrap rejected");
	is_int(guest_memory_add_host(&m, 0x1000, 0x2000, 0x100000, a), 0, "region 1");
	is_int(guest_memory_add_host(&m, 0x2000, 0x1000, 0x200000, b), -EINVAL,
		"gpa overlap rejected");
	is_int(guest_memory_add_host(&m, 0x0, 0x1001, 0x300000, b), -EINVAL,
		"gpa overlap at start rejected");
	is_int(guest_memory_add_host(&m, 0x0, 0x20000, 0x300000, b), -EINVAL,
		"gpa containing rejected");
	is_int(guest_memory_add_host(&m, 0x10000, 0x1000, 0x101000, b), -EINVAL,
		"uva overlap rejected");
	is_int(guest_memory_add_host(&m, 0x3000, 0x1000, 0x102000, b), 0, "adjacent region accepted");
	is_int(guest_memory_remove(&m, 0x3000, 0x1000, 0x999), -ENOENT,
		"remove needs an exact match");
	is_int(guest_memory_remove(&m, 0x3000, 0x1000, 0x102000), 0, "remove");
	ok(guest_memory_gpa(&m, 0x3000, 1) == NULL, "removed region is gone");
	for (unsigned i = m.n_regions; i < GUEST_MEMORY_MAX_REGIONS; i++)
		guest_memory_add_host(&m, 0x100000 + i * 0x1000ull, 0x1000,
			0x1000000 + i * 0x1000ull, a);
	is_int(m.n_regions, GUEST_MEMORY_MAX_REGIONS, "all slots used");
	is_int(guest_memory_add_host(&m, 0x900000, 0x1000, 0x9000000, a), -ENOSPC,
		"one more is refused");
	guest_memory_clear(&m);
}

static void test_mmap(void)
{
	struct guest_memory m = {};
	long page = sysconf(_SC_PAGESIZE);
	int fd = memfd_create("gm", MFD_CLOEXEC);
	uint8_t *p;

	ok(fd >= 0 && ftruncate(fd, 4 * page) == 0, "memfd");
	/* Region starts one page into the file. */
	is_int(guest_memory_add(&m, 0x40000000, 2 * page, 0x5000, page, fd), 0,
		"map with an fd offset");
	p = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	memcpy(p + page + 10, "hello", 5);
	ok(memcmp(guest_memory_gpa(&m, 0x4000000a, 5), "hello", 5) == 0,
		"offset honoured: same bytes");
	is_int(guest_memory_add(&m, 0x50000000, page, 0x900000, UINT64_MAX - 10, fd), -EINVAL,
		"offset overflow rejected");
	is_int(guest_memory_add(&m, 0x60000000, page, 0xa00000, 0, -1), -EBADF, "bad fd rejected");
	is_int(m.n_regions, 1, "failed adds leave no region");
	munmap(p, 4 * page);
	guest_memory_clear(&m);
	close(fd);
}

int main(void)
{
	test_translate();
	test_reject();
	test_mmap();
	return tap_done();
}
