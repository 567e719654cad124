/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gstest.h"
#include "macro.h"

const char *gt_backend_binary(void)
{
	static char path[4096];
	const char *top = getenv("top_builddir");

	snprintf(path, sizeof(path), "%s/backend/vhost-user-vsock", top ? top : ".");
	return access(path, X_OK) == 0 ? path : NULL;
}

int gt_backend_start(struct gt_backend *b, const char *const *args)
{
	const char *bin = gt_backend_binary();
	char sock_arg[400], uds_arg[400];
	const char *argv[32];
	unsigned n = 0;
	int fd;

	if (!bin)
		return -ENOENT;
	/* Host clients write to sockets the backend may close (that is often the
	 * point of the test): a write must fail with EPIPE, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	memset(b, 0, sizeof(*b));
	/* TMPDIR when socket paths still fit in sun_path (108 bytes with "_<port>"). */
	{
		const char *t = getenv("TMPDIR");

		if (!t || !*t || strlen(t) > 60)
			t = "/tmp";
		snprintf(b->dir, sizeof(b->dir), "%s/guestsim-test.XXXXXX", t);
	}
	if (!mkdtemp(b->dir))
		return -errno;
	snprintf(b->socket_path, sizeof(b->socket_path), "%s/vhost.sock", b->dir);
	snprintf(b->uds_path, sizeof(b->uds_path), "%s/vm.vsock", b->dir);
	snprintf(b->log_path, sizeof(b->log_path), "%s/backend.log", b->dir);
	snprintf(sock_arg, sizeof(sock_arg), "--socket-path=%s", b->socket_path);
	snprintf(uds_arg, sizeof(uds_arg), "--uds-path=%s", b->uds_path);
	argv[n++] = bin;
	argv[n++] = sock_arg;
	argv[n++] = uds_arg;
	argv[n++] = "--guest-cid=3";
	for (unsigned i = 0; args && args[i] && n < ELEMENTSOF(argv) - 1; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	b->pid = fork();
	if (b->pid < 0)
		return -errno;
	if (b->pid == 0) {
		int log = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		if (log >= 0) {
			dup2(log, STDERR_FILENO);
			dup2(log, STDOUT_FILENO);
		}
		/* Never outlive a test that crashed before stopping us. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(127);
		unsetenv("LISTEN_FDS");
		unsetenv("NOTIFY_SOCKET");
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	/* Ready when the vhost-user socket accepts (probe connections are dropped again). */
	for (int i = 0; i < 500; i++) {
		struct stat st;

		if (!gt_backend_alive(b))
			return -ECHILD;
		if (stat(b->socket_path, &st) == 0 && stat(b->uds_path, &st) == 0 &&
			gs_unix_connect(b->socket_path, &fd) == 0) {
			close(fd);
			usleep(20000);
			return 0;
		}
		usleep(10000);
	}
	return -ETIMEDOUT;
}

bool gt_backend_alive(struct gt_backend *b)
{
	int status;

	if (b->pid <= 0)
		return false;
	if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
		fprintf(stdout, "# back-end exited: status %#x\n", status);
		b->pid = -1;
		return false;
	}
	return true;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

int gt_backend_stop(struct gt_backend *b, long *ret_ms)
{
	uint64_t t0 = gs_now_ms();
	int status = -1, ret = -1;

	if (b->pid > 0) {
		kill(b->pid, SIGTERM);
		for (int i = 0; i < 500; i++) {
			if (waitpid(b->pid, &status, WNOHANG) == b->pid)
				break;
			usleep(10000);
			if (i == 499) {
				kill(b->pid, SIGKILL);
				waitpid(b->pid, &status, 0);
			}
		}
		if (WIFEXITED(status))
			ret = WEXITSTATUS(status);
		b->pid = -1;
	}
	if (ret_ms)
		*ret_ms = (long)(gs_now_ms() - t0);
	/* ASan/UBSan reports (leaks come at exit) fail the stop like a bad status. */
	if (gt_backend_log_contains(b, "Sanitizer") ||
		gt_backend_log_contains(b, "runtime error:")) {
		char cmd[600];

		snprintf(cmd, sizeof(cmd),
			"grep -A12 -E 'Sanitizer|runtime error:' %s | sed 's/^/# /' | head -60",
			b->log_path);
		if (system(cmd) < 0)
			fprintf(stderr, "cannot show the log\n");
		ret = -2;
	}
	if (getenv("GUESTSIM_KEEP_LOG")) {
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "sed 's/^/# backend: /' %s | tail -n 400", b->log_path);
		if (system(cmd) < 0)
			fprintf(stderr, "cannot show the log\n");
	}
	if (b->dir[0])
		nftw(b->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	b->dir[0] = 0;
	return ret;
}

long gt_backend_rss_kb(const struct gt_backend *b)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)b->pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

bool gt_backend_log_contains(const struct gt_backend *b, const char *s)
{
	char buf[65536];
	FILE *f = fopen(b->log_path, "re");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strstr(buf, s) != NULL;
}

void gt_options(struct gs_options *o, const struct gt_backend *b)
{
	gs_options_init(o);
	o->socket_path = b->socket_path;
	o->guest_cid = 3;
}

int gt_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

int gt_host_open(const struct gt_backend *b, int *ret_fd)
{
	int fd, r;

	r = gs_unix_connect(b->uds_path, &fd);
	if (r < 0)
		return r;
	gt_set_nonblock(fd);
	*ret_fd = fd;
	return 0;
}

int gt_host_wait_ok(int fd, struct gs *gs, int timeout_ms)
{
	uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms;
	char line[64];
	size_t len = 0;

	/* One byte at a time: nothing after the newline may be consumed here. */
	while (len < sizeof(line) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = gs_now_ms();
		ssize_t n;

		if (now >= deadline)
			return -ETIMEDOUT;
		if (gs) {
			int r = gs_step(gs, &p, 1, 50);

			if (r < 0)
				return r;
		} else if (poll(&p, 1, 50) < 0) {
			return -errno;
		}
		if (!p.revents)
			continue;
		n = read(fd, line + len, 1);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			return -ECONNREFUSED;
		if (line[len] == '\n') {
			line[len] = 0;
			return strncmp(line, "OK ", 3) == 0 ? 0 : -EPROTO;
		}
		len++;
	}
	return -EPROTO;
}

int gt_host_connect(const struct gt_backend *b, struct gs *gs, uint32_t port, int timeout_ms,
	int *ret_fd)
{
	char line[32];
	int fd, r, n;

	r = gt_host_open(b, &fd);
	if (r < 0)
		return r;
	n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	if (write(fd, line, (size_t)n) != n) {
		close(fd);
		return -EIO;
	}
	r = gt_host_wait_ok(fd, gs, timeout_ms);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

struct gs_conn *gt_guest_conn(const struct gt_backend *b, uint32_t buf_alloc, uint32_t port,
	struct gs **ret_gs, int *ret_fd)
{
	struct gs_conn *c = NULL;
	struct gs_options o;
	uint64_t deadline;

	gt_options(&o, b);
	if (buf_alloc)
		o.buf_alloc = buf_alloc;
	if (gs_new(&o, ret_gs) < 0)
		return NULL;
	gs_listen(*ret_gs, port);
	if (gt_host_connect(b, *ret_gs, port, 5000, ret_fd) < 0)
		return NULL;
	deadline = gs_now_ms() + 5000;
	while (!(c = gs_accept(*ret_gs, port)) && gs_now_ms() < deadline)
		gs_step(*ret_gs, NULL, 0, 10);
	return c;
}

int gt_unix_listen(const char *path, int *ret_fd)
{
	return gt_unix_listen_type(path, SOCK_STREAM, ret_fd);
}

int gt_unix_listen_type(const char *path, int type, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

ssize_t gt_read_to_eof(int fd, struct gs *gs, void *buf, size_t cap, int timeout_ms)
{
	uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms;
	size_t len = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (gs_now_ms() >= deadline)
			return -ETIMEDOUT;
		if (gs) {
			int r = gs_step(gs, &p, 1, 50);

			if (r < 0)
				return r;
		} else {
			poll(&p, 1, 50);
		}
		if (!p.revents)
			continue;
		n = read(fd, (char *)buf + len, cap - len);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0 || cap == len)
			return (ssize_t)len;
		len += (size_t)n;
	}
}

void gt_random(void *buf, size_t len, uint64_t *seed)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		*seed ^= *seed << 13;
		*seed ^= *seed >> 7;
		*seed ^= *seed << 17;
		p[i] = (uint8_t)*seed;
	}
}

/* SHA-256 per FIPS 180-4, for comparing transfers. */
static uint32_t ror(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static void sha256_block(uint32_t h[8], const uint8_t *b)
{
	static const uint32_t k[64] = {
		0x428a2f98,
		0x71374491,
		0xb5c0fbcf,
		0xe9b5dba5,
		0x3956c25b,
		0x59f111f1,
		0x923f82a4,
		0xab1c5ed5,
		0xd807aa98,
		0x12835b01,
		0x243185be,
		0x550c7dc3,
		0x72be5d74,
		0x80deb1fe,
		0x9bdc06a7,
		0xc19bf174,
		0xe49b69c1,
		0xefbe4786,
		0x0fc19dc6,
		0x240ca1cc,
		0x2de92c6f,
		0x4a7484aa,
		0x5cb0a9dc,
		0x76f988da,
		0x983e5152,
		0xa831c66d,
		0xb00327c8,
		0xbf597fc7,
		0xc6e00bf3,
		0xd5a79147,
		0x06ca6351,
		0x14292967,
		0x27b70a85,
		0x2e1b2138,
		0x4d2c6dfc,
		0x53380d13,
		0x650a7354,
		0x766a0abb,
		0x81c2c92e,
		0x92722c85,
		0xa2bfe8a1,
		0xa81a664b,
		0xc24b8b70,
		0xc76c51a3,
		0xd192e819,
		0xd6990624,
		0xf40e3585,
		0x106aa070,
		0x19a4c116,
		0x1e376c08,
		0x2748774c,
		0x34b0bcb5,
		0x391c0cb3,
		0x4ed8aa4a,
		0x5b9cca4f,
		0x682e6ff3,
		0x748f82ee,
		0x78a5636f,
		0x84c87814,
		0x8cc70208,
		0x90befffa,
		0xa4506ceb,
		0xbef9a3f7,
		0xc67178f2,
	};
	uint32_t w[64], v[8];

	for (unsigned i = 0; i < 16; i++)
		w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
		       (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
	for (unsigned i = 16; i < 64; i++) {
		uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	memcpy(v, h, sizeof(v));
	for (unsigned i = 0; i < 64; i++) {
		uint32_t t1 = v[7] + (ror(v[4], 6) ^ ror(v[4], 11) ^ ror(v[4], 25)) +
			      ((v[4] & v[5]) ^ (~v[4] & v[6])) + k[i] + w[i];
		uint32_t t2 = (ror(v[0], 2) ^ ror(v[0], 13) ^ ror(v[0], 22)) +
			      ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));

		memmove(v + 1, v, 7 * sizeof(uint32_t));
		v[4] += t1;
		v[0] = t1 + t2;
	}
	for (unsigned i = 0; i < 8; i++)
		h[i] += v[i];
}

void gt_sha256_hex(const void *data, size_t len, char out[65])
{
	uint32_t h[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c,
		0x1f83d9ab, 0x5be0cd19 };
	const uint8_t *p = data;
	uint8_t tail[128] = { 0 };
	size_t full = len / 64 * 64, rest = len - full, tl;
	uint64_t bits = (uint64_t)len * 8;

	for (size_t i = 0; i < full; i += 64)
		sha256_block(h, p + i);
	memcpy(tail, p + full, rest);
	tail[rest] = 0x80;
	tl = rest < 56 ? 64 : 128;
	for (unsigned i = 0; i < 8; i++)
		tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
	sha256_block(h, tail);
	if (tl == 128)
		sha256_block(h, tail + 64);
	for (unsigned i = 0; i < 8; i++)
		sprintf(out + 8 * i, "%08x", h[i]);
}

int gt_check_service(const struct gt_backend *b, struct gs *gs, uint32_t port, size_t len)
{
	_cleanup_free_ uint8_t *out = malloc(len + 1), *in = malloc(len + 1);
	uint64_t seed = 0x1234567 + len, deadline;
	struct gs_conn *c = NULL;
	size_t sent = 0, got = 0;
	ssize_t n;
	int fd = -1, r;

	if (!out || !in)
		return -ENOMEM;
	gt_random(out, len, &seed);
	r = gt_host_connect(b, gs, port, 5000, &fd);
	if (r < 0)
		return r;
	deadline = gs_now_ms() + 10000;
	while (!(c = gs_accept(gs, port))) {
		if (gs_now_ms() > deadline) {
			close(fd);
			return -ETIMEDOUT;
		}
		r = gs_step(gs, NULL, 0, 50);
		if (r < 0)
			goto out;
	}
	/* host -> guest */
	while (got < len) {
		struct pollfd p = { .fd = fd, .events = sent < len ? POLLOUT : 0 };

		if (gs_now_ms() > deadline) {
			r = -ETIMEDOUT;
			goto out;
		}
		r = gs_step(gs, &p, 1, 20);
		if (r < 0)
			goto out;
		if (sent < len && (p.revents & POLLOUT)) {
			n = write(fd, out + sent, len - sent);
			if (n > 0)
				sent += (size_t)n;
		}
		n = gs_conn_recv(c, in + got, len - got);
		if (n > 0)
			got += (size_t)n;
		else if (n != -EAGAIN) {
			r = n < 0 ? (int)n : -EPIPE;
			goto out;
		}
	}
	if (memcmp(in, out, len) != 0) {
		r = -EBADMSG;
		goto out;
	}
	/* guest -> host, the host reading while the guest sends */
	for (got = 0, sent = 0; got < len;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (gs_now_ms() > deadline) {
			r = -ETIMEDOUT;
			goto out;
		}
		if (sent < len) {
			n = gs_conn_send(c, out + sent, len - sent);
			if (n > 0)
				sent += (size_t)n;
			else if (n != -EAGAIN) {
				r = (int)n;
				goto out;
			}
		}
		r = gs_step(gs, &p, 1, 20);
		if (r < 0)
			goto out;
		n = read(fd, in + got, len - got);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0) {
			r = -EPIPE;
			goto out;
		}
	}
	r = memcmp(in, out, len) == 0 ? 0 : -EBADMSG;
out:
	if (r < 0)
		printf("# service check on port %u failed (%d): host sent %zu, got %zu of %zu; "
		       "guest peer_free %u, rx pending %zu\n",
			port, r, sent, got, len, c ? gs_conn_peer_free(c) : 0,
			c ? gs_conn_rx_pending(c) : 0);
	close(fd);
	if (c)
		gs_conn_close(c);
	return r;
}

unsigned gt_backend_log_count(const struct gt_backend *b, const char *s)
{
	_cleanup_free_ char *buf = malloc(1 << 20);
	FILE *f = fopen(b->log_path, "re");
	unsigned count = 0;
	size_t n;

	if (!f || !buf) {
		if (f)
			fclose(f);
		return 0;
	}
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	buf[n] = 0;
	for (char *p = buf; (p = strstr(p, s)); p += strlen(s))
		count++;
	return count;
}

long gt_backend_cpu_ms(const struct gt_backend *b)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)b->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	/* after "(comm)": state is field 3, utime 14, stime 15 */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (long)((ut + st) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}
