/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A FUSE filesystem for tests whose server can be stopped (SIGSTOP): then
 * every syscall on a path below its mount point blocks in the kernel, like a
 * hung NFS or FUSE mount. One flat directory, starting with one file "f"
 * ("hello\n"); files can be created, written, renamed and removed (kept in
 * memory, at most HANGFS_MAX_FILES of HANGFS_MAX_SIZE bytes).
 * Usage: hangfs MOUNTPOINT -f -s (foreground, single-threaded). */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fuse.h>

#define HANGFS_MAX_FILES 64
#define HANGFS_MAX_SIZE (1u << 20)

static struct hangfs_file {
	char name[256];
	char *data;
	size_t size;
	mode_t mode;
	bool used;
} hangfs_files[HANGFS_MAX_FILES];

static struct hangfs_file *hangfs_find(const char *path)
{
	if (path[0] != '/' || strchr(path + 1, '/'))
		return NULL;
	for (size_t i = 0; i < HANGFS_MAX_FILES; i++)
		if (hangfs_files[i].used && strcmp(hangfs_files[i].name, path + 1) == 0)
			return &hangfs_files[i];
	return NULL;
}

static int hangfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct hangfs_file *f;

	memset(st, 0, sizeof(*st));
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	f = hangfs_find(path);
	if (!f)
		return -ENOENT;
	st->st_mode = S_IFREG | f->mode;
	st->st_nlink = 1;
	st->st_size = (off_t)f->size;
	return 0;
}

static int hangfs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
	struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	for (size_t i = 0; i < HANGFS_MAX_FILES; i++)
		if (hangfs_files[i].used)
			fill(buf, hangfs_files[i].name, NULL, 0, 0);
	return 0;
}

static int hangfs_open(const char *path, struct fuse_file_info *fi)
{
	return hangfs_find(path) ? 0 : -ENOENT;
}

static int hangfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (hangfs_find(path))
		return (fi->flags & O_EXCL) ? -EEXIST : 0;
	if (path[0] != '/' || strchr(path + 1, '/') || strlen(path + 1) >= 256)
		return -EINVAL;
	for (size_t i = 0; i < HANGFS_MAX_FILES; i++)
		if (!hangfs_files[i].used) {
			struct hangfs_file *f = &hangfs_files[i];
			*f = (struct hangfs_file){ .used = true, .mode = mode & 07777 };
			strcpy(f->name, path + 1);
			return 0;
		}
	return -ENOSPC;
}

static int hangfs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct hangfs_file *f = hangfs_find(path);

	if (!f)
		return -ENOENT;
	if (off < 0 || (size_t)off >= f->size)
		return 0;
	if (size > f->size - (size_t)off)
		size = f->size - (size_t)off;
	memcpy(buf, f->data + off, size);
	return (int)size;
}

static int hangfs_resize(struct hangfs_file *f, size_t size)
{
	char *d;

	if (size > HANGFS_MAX_SIZE)
		return -EFBIG;
	d = realloc(f->data, size ? size : 1);
	if (!d)
		return -ENOMEM;
	if (size > f->size)
		memset(d + f->size, 0, size - f->size);
	f->data = d;
	f->size = size;
	return 0;
}

static int hangfs_write(const char *path, const char *buf, size_t size, off_t off,
	struct fuse_file_info *fi)
{
	struct hangfs_file *f = hangfs_find(path);
	int r;

	if (!f)
		return -ENOENT;
	if (off < 0 || size > HANGFS_MAX_SIZE || (size_t)off > HANGFS_MAX_SIZE - size)
		return -EFBIG;
	if ((size_t)off + size > f->size && (r = hangfs_resize(f, (size_t)off + size)) < 0)
		return r;
	memcpy(f->data + off, buf, size);
	return (int)size;
}

static int hangfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct hangfs_file *f = hangfs_find(path);

	if (!f)
		return -ENOENT;
	return size < 0 ? -EINVAL : hangfs_resize(f, (size_t)size);
}

static int hangfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct hangfs_file *f = hangfs_find(path);

	if (!f)
		return -ENOENT;
	f->mode = mode & 07777;
	return 0;
}

static int hangfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	return hangfs_find(path) ? 0 : -ENOENT;
}

static int hangfs_unlink(const char *path)
{
	struct hangfs_file *f = hangfs_find(path);

	if (!f)
		return -ENOENT;
	free(f->data);
	*f = (struct hangfs_file){ 0 };
	return 0;
}

static int hangfs_rename(const char *from, const char *to, unsigned int flags)
{
	struct hangfs_file *f = hangfs_find(from), *old = hangfs_find(to);

	if (!f)
		return -ENOENT;
	if (flags || to[0] != '/' || strchr(to + 1, '/') || strlen(to + 1) >= 256)
		return -EINVAL;
	if (old && old != f)
		hangfs_unlink(to);
	strcpy(f->name, to + 1);
	return 0;
}

static const struct fuse_operations hangfs_ops = {
	.getattr = hangfs_getattr,
	.readdir = hangfs_readdir,
	.open = hangfs_open,
	.create = hangfs_create,
	.read = hangfs_read,
	.write = hangfs_write,
	.truncate = hangfs_truncate,
	.chmod = hangfs_chmod,
	.chown = hangfs_chown,
	.unlink = hangfs_unlink,
	.rename = hangfs_rename,
};

int main(int argc, char *argv[])
{
	static const char hello[] = "hello\n";
	struct hangfs_file *f = &hangfs_files[0];

	*f = (struct hangfs_file){ .used = true, .mode = 0644 };
	strcpy(f->name, "f");
	if (hangfs_resize(f, sizeof(hello) - 1) < 0)
		return 1;
	memcpy(f->data, hello, sizeof(hello) - 1);
	return fuse_main(argc, argv, &hangfs_ops, NULL);
}
