/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A FUSE filesystem for tests whose server can be stopped (SIGSTOP): then
 * every syscall on a path below its mount point blocks in the kernel, like a
 * hung NFS or FUSE mount. One directory with one file "f" ("hello\n").
 * Usage: hangfs MOUNTPOINT -f -s (foreground, single-threaded). */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <fuse.h>

static const char hangfs_data[] = "hello\n";

static int hangfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	memset(st, 0, sizeof(*st));
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, "/f") == 0) {
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = 1;
		st->st_size = sizeof(hangfs_data) - 1;
		return 0;
	}
	return -ENOENT;
}

static int hangfs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
	struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, "f", NULL, 0, 0);
	return 0;
}

static int hangfs_open(const char *path, struct fuse_file_info *fi)
{
	return strcmp(path, "/f") == 0 ? 0 : -ENOENT;
}

static int hangfs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	size_t len = sizeof(hangfs_data) - 1;

	if (off < 0 || (size_t)off >= len)
		return 0;
	if (size > len - (size_t)off)
		size = len - (size_t)off;
	memcpy(buf, hangfs_data + off, size);
	return (int)size;
}

static const struct fuse_operations hangfs_ops = {
	.getattr = hangfs_getattr,
	.readdir = hangfs_readdir,
	.open = hangfs_open,
	.read = hangfs_read,
};

int main(int argc, char *argv[])
{
	return fuse_main(argc, argv, &hangfs_ops, NULL);
}
