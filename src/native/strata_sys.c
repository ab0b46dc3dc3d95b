// strata_sys: the Linux syscalls Node's fs module does not offer (or offers lossily), for stratafs.
//
// Why it exists: overlay semantics need xattrs (trusted.overlay.opaque), mknod (whiteouts are
// character devices 0/0), utimensat with nanoseconds and UTIME_NOW/UTIME_OMIT (Node takes float
// seconds), renameat2 (RENAME_WHITEOUT/RENAME_EXCHANGE make whiteout+rename atomic), and
// SEEK_DATA/SEEK_HOLE + copy_file_range for sparse, in-kernel copy-up.
//
// Conventions, kept for speed on the request path:
// - paths and names are JS strings whose code units are the raw bytes (latin1), so any byte
//   sequence a layer holds (invalid UTF-8 included) round-trips exactly;
// - calls return a non-negative result or -errno; nothing throws except on wrong argument types;
// - nothing follows a symlink in the last component (l* variants, AT_SYMLINK_NOFOLLOW);
// - host paths longer than PATH_MAX work (opened a piece at a time, see get_at_path).
// Only copy_data (it moves file data) and warm_dirs (it waits on the disk) run off the JS thread;
// stat_names splits a big listing's lstats over a second thread and waits for it; the rest are
// quick metadata calls.
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <node_api.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <linux/fs.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef RENAME_WHITEOUT
#define RENAME_WHITEOUT (1 << 2)
#endif

#define PATH_BUF 4097
#define XATTR_BUF 65536

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, #call " failed"); return NULL; } } while (0)
#define ARGS(n) size_t argc = n; napi_value argv[n]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

static napi_value ret_int(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static napi_value ret_errno(napi_env env) { return ret_int(env, -errno); }

// Reads a latin1 string argument into buf; returns 0, or -ENAMETOOLONG / -EINVAL.
static int get_latin1(napi_env env, napi_value v, char *buf, size_t cap) {
  size_t len;
  if (napi_get_value_string_latin1(env, v, NULL, 0, &len) != napi_ok) return -EINVAL;
  if (len + 1 > cap) return -ENAMETOOLONG;
  if (napi_get_value_string_latin1(env, v, buf, cap, &len) != napi_ok) return -EINVAL;
  if (strlen(buf) != len) return -EINVAL; // embedded NUL
  return 0;
}

#define PATH_ARG(name, idx) char name[PATH_BUF]; { int e_ = get_latin1(env, argv[idx], name, sizeof(name)); if (e_) return ret_int(env, e_); }

static int64_t get_i64(napi_env env, napi_value v) {
  int64_t out = 0;
  napi_get_value_int64(env, v, &out);
  return out;
}

static uint32_t get_u32(napi_env env, napi_value v) {
  uint32_t out = 0;
  napi_get_value_uint32(env, v, &out);
  return out;
}

static napi_value latin1(napi_env env, const char *s, size_t len) {
  napi_value out;
  napi_create_string_latin1(env, s, len, &out);
  return out;
}

// stat layout shared with src/native/index.ts (STAT_* indices).
static void fill_stat(double *o, const struct stat *st) {
  o[0] = (double) st->st_dev;
  o[1] = (double) st->st_ino;
  o[2] = (double) st->st_mode;
  o[3] = (double) st->st_nlink;
  o[4] = (double) st->st_uid;
  o[5] = (double) st->st_gid;
  o[6] = (double) st->st_rdev;
  o[7] = (double) st->st_size;
  o[8] = (double) st->st_blksize;
  o[9] = (double) st->st_blocks;
  o[10] = (double) st->st_atim.tv_sec;
  o[11] = (double) st->st_atim.tv_nsec;
  o[12] = (double) st->st_mtim.tv_sec;
  o[13] = (double) st->st_mtim.tv_nsec;
  o[14] = (double) st->st_ctim.tv_sec;
  o[15] = (double) st->st_ctim.tv_nsec;
}

static int get_stat_out(napi_env env, napi_value v, double **out) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok) return -1;
  if (type != napi_float64_array || length < 16) return -1;
  *out = (double *) data;
  return 0;
}


// ---- paths longer than PATH_MAX -----------------------------------------------------------------
// A lower tree may be deeper than PATH_MAX (kernel overlayfs serves it). Such a host path is
// opened a PATH_MAX-sized piece at a time: `dirfd` is the directory all but the last piece lead
// to, `rel` the rest, and every call uses the *at() variant. Each piece resolves exactly as the
// whole path would (intermediate components only), so nothing is followed that a short path would
// not follow; the last component keeps each call's own no-follow rule.
typedef struct { int dirfd; char *path; const char *rel; } at_path_t;

static void put_at_path(at_path_t *p) {
  if (p->dirfd != AT_FDCWD && p->dirfd >= 0) close(p->dirfd);
  p->dirfd = AT_FDCWD;
  free(p->path);
  p->path = NULL;
}

static int get_at_path(napi_env env, napi_value v, at_path_t *out) {
  size_t len;
  out->dirfd = AT_FDCWD;
  out->path = NULL;
  if (napi_get_value_string_latin1(env, v, NULL, 0, &len) != napi_ok) return -EINVAL;
  out->path = malloc(len + 1);
  if (!out->path) return -ENOMEM;
  if (napi_get_value_string_latin1(env, v, out->path, len + 1, &len) != napi_ok || strlen(out->path) != len) {
    put_at_path(out);
    return -EINVAL; // embedded NUL
  }
  char *rel = out->path;
  while (strlen(rel) >= PATH_MAX) {
    char *cut = NULL;
    for (char *c = rel + PATH_MAX - 2; c > rel; c--) if (*c == '/') { cut = c; break; }
    if (!cut) { put_at_path(out); return -ENAMETOOLONG; } // one name over PATH_MAX
    *cut = 0;
    int fd = openat(out->dirfd, rel, O_PATH | O_DIRECTORY | O_CLOEXEC);
    *cut = '/';
    if (fd < 0) { int e = errno; put_at_path(out); return -e; }
    if (out->dirfd != AT_FDCWD) close(out->dirfd);
    out->dirfd = fd;
    rel = cut + 1;
    while (*rel == '/') rel++;
  }
  out->rel = rel;
  return 0;
}

// AT_ARG(p, i): argument i as an at_path_t; every exit after it must put_at_path(&p).
#define AT_ARG(name, idx) at_path_t name; { int e_ = get_at_path(env, argv[idx], &name); if (e_) return ret_int(env, e_); }

// The result of a call (< 0: -errno), after releasing the path(s) it used.
static napi_value at_done(napi_env env, long r, int err, at_path_t *a, at_path_t *b) {
  put_at_path(a);
  if (b) put_at_path(b);
  return ret_int(env, r < 0 ? -err : (double) r);
}

// The xattr calls have no *at() variants (before Linux 6.13): for a long path, the entry is opened
// O_PATH|O_NOFOLLOW and named through /proc/self/fd. A symlink cannot be reached that way without
// following it, so xattrs of a symlink deeper than PATH_MAX answer ENAMETOOLONG.
typedef struct { int fd; char proc[40]; const char *name; } xattr_path_t;

static int xattr_path(at_path_t *p, xattr_path_t *x) {
  x->fd = -1;
  if (p->dirfd == AT_FDCWD) { x->name = p->rel; return 0; }
  x->fd = openat(p->dirfd, p->rel, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (x->fd < 0) return -errno;
  struct stat st;
  if (fstat(x->fd, &st) < 0 || S_ISLNK(st.st_mode)) { close(x->fd); x->fd = -1; return -ENAMETOOLONG; }
  snprintf(x->proc, sizeof(x->proc), "/proc/self/fd/%d", x->fd);
  x->name = x->proc;
  return 0;
}

static void put_xattr_path(xattr_path_t *x) { if (x->fd >= 0) close(x->fd); }

// lstat(path, out: Float64Array(16)) -> 0 | -errno
static napi_value n_lstat(napi_env env, napi_callback_info info) {
  ARGS(2);
  double *out;
  if (get_stat_out(env, argv[1], &out)) { napi_throw_type_error(env, NULL, "out must be Float64Array(16)"); return NULL; }
  AT_ARG(path, 0);
  struct stat st;
  int r = fstatat(path.dirfd, path.rel, &st, AT_SYMLINK_NOFOLLOW);
  if (r == 0) fill_stat(out, &st);
  return at_done(env, r, errno, &path, NULL);
}

// fstat(fd, out) -> 0 | -errno
static napi_value n_fstat(napi_env env, napi_callback_info info) {
  ARGS(2);
  double *out;
  if (get_stat_out(env, argv[1], &out)) { napi_throw_type_error(env, NULL, "out must be Float64Array(16)"); return NULL; }
  struct stat st;
  if (fstat((int) get_i64(env, argv[0]), &st) < 0) return ret_errno(env);
  fill_stat(out, &st);
  return ret_int(env, 0);
}

// statvfs(path, out: Float64Array(16)) -> 0 | -errno; out = bsize, frsize, blocks, bfree, bavail,
// files, ffree, favail, fsid, flag, namemax
static napi_value n_statvfs(napi_env env, napi_callback_info info) {
  ARGS(2);
  PATH_ARG(path, 0);
  double *o;
  if (get_stat_out(env, argv[1], &o)) { napi_throw_type_error(env, NULL, "out must be Float64Array(16)"); return NULL; }
  struct statvfs s;
  if (statvfs(path, &s) < 0) return ret_errno(env);
  o[0] = s.f_bsize; o[1] = s.f_frsize; o[2] = s.f_blocks; o[3] = s.f_bfree; o[4] = s.f_bavail;
  o[5] = s.f_files; o[6] = s.f_ffree; o[7] = s.f_favail; o[8] = s.f_fsid; o[9] = s.f_flag; o[10] = s.f_namemax;
  return ret_int(env, 0);
}

// The d_type of `name` in `dirfd` with character devices told apart: DT_WHT for a whiteout (0/0),
// DT_CHR for a device; DT_UNKNOWN resolved. An lstat failure (the entry gone included) leaves
// DT_UNKNOWN, for the caller to look again and decide.
static unsigned char resolved_dtype(int dirfd, const char *name, unsigned char dtype) {
  if (dtype != DT_CHR && dtype != DT_UNKNOWN) return dtype;
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return DT_UNKNOWN;
  if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) return DT_WHT;
  return IFTODT(st.st_mode);
}

#define SN_STATTED 1      // bits of an entry's state, as src/layers/lower-tree.ts keeps them
#define SN_XATTRS_KNOWN 2
#define SN_XATTR_FREE 4

// ---- a directory as read: what readdir and warmDirs hand to JS ----------------------------------
// Names NUL-separated in one latin1 string (no name holds a NUL), which src/native/index.ts splits:
// one string made here instead of one per name and an element set each (~0.35 µs an entry, a
// third of a 100-entry directory's read); d_types and d_inos beside them.
typedef struct {
  char *joined;
  size_t jlen, jcap, n, cap;
  unsigned char *types;
  double *inos;
  // entries read ahead with their lstat (warmDirs): entry index, 16 stat numbers (fill_stat) and
  // the bits statNames sets, per statted entry
  uint32_t *stat_idx;
  double *stats;
  unsigned char *stat_bits;
  size_t ns, scap;
} dir_list_t;

static void dir_list_free(dir_list_t *l) {
  free(l->joined);
  free(l->types);
  free(l->inos);
  free(l->stat_idx);
  free(l->stats);
  free(l->stat_bits);
  memset(l, 0, sizeof(*l));
}

// Keeps the lstat (and xattr bits) of the entry added last; false when out of memory (nothing kept).
static bool dir_list_stat_last(dir_list_t *l, const struct stat *st, unsigned char bits) {
  if (l->ns == l->scap) {
    size_t cap = l->scap ? l->scap * 2 : 16;
    uint32_t *i = realloc(l->stat_idx, cap * sizeof(uint32_t));
    if (i) l->stat_idx = i;
    double *v = realloc(l->stats, cap * 16 * sizeof(double));
    if (v) l->stats = v;
    unsigned char *b = realloc(l->stat_bits, cap);
    if (b) l->stat_bits = b;
    if (!i || !v || !b) return false;
    l->scap = cap;
  }
  l->stat_idx[l->ns] = (uint32_t) (l->n - 1);
  fill_stat(l->stats + l->ns * 16, st);
  l->stat_bits[l->ns] = bits;
  l->ns++;
  return true;
}

// Adds one entry to `l`; false (and `l` freed) when out of memory.
static bool dir_list_add(dir_list_t *l, const char *name, unsigned char type, uint64_t ino) {
  size_t len = strlen(name);
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    unsigned char *t = realloc(l->types, cap);
    if (t) l->types = t;
    double *i = realloc(l->inos, cap * sizeof(double));
    if (i) l->inos = i;
    if (!t || !i) { dir_list_free(l); return false; }
    l->cap = cap;
  }
  if (l->jlen + len + 1 > l->jcap) {
    size_t jcap = (l->jlen + len + 1) * 2;
    char *j = realloc(l->joined, jcap);
    if (!j) { dir_list_free(l); return false; }
    l->joined = j;
    l->jcap = jcap;
  }
  if (l->n) l->joined[l->jlen++] = 0;
  memcpy(l->joined + l->jlen, name, len);
  l->jlen += len;
  l->types[l->n] = type;
  l->inos[l->n] = (double) ino; // exact below 2^53; folded to 48 bits by whoever packs it
  l->n++;
  return true;
}

// { joined, types: Uint8Array, inos: Float64Array } of `l` (an empty one included).
static napi_value dir_list_value(napi_env env, const dir_list_t *l) {
  void *tdata, *idata;
  napi_value ab, tarr, iab, iarr, out;
  napi_create_arraybuffer(env, l->n, &tdata, &ab);
  if (l->n) memcpy(tdata, l->types, l->n);
  napi_create_typedarray(env, napi_uint8_array, l->n, ab, 0, &tarr);
  napi_create_arraybuffer(env, l->n * sizeof(double), &idata, &iab);
  if (l->n) memcpy(idata, l->inos, l->n * sizeof(double));
  napi_create_typedarray(env, napi_float64_array, l->n, iab, 0, &iarr);
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "joined", latin1(env, l->joined ? l->joined : "", l->jlen));
  napi_set_named_property(env, out, "types", tarr);
  napi_set_named_property(env, out, "inos", iarr);
  if (l->ns > 0) {
    void *d;
    napi_value buf, arr;
    napi_create_arraybuffer(env, l->ns * sizeof(uint32_t), &d, &buf);
    memcpy(d, l->stat_idx, l->ns * sizeof(uint32_t));
    napi_create_typedarray(env, napi_uint32_array, l->ns, buf, 0, &arr);
    napi_set_named_property(env, out, "statIdx", arr);
    napi_create_arraybuffer(env, l->ns * 16 * sizeof(double), &d, &buf);
    memcpy(d, l->stats, l->ns * 16 * sizeof(double));
    napi_create_typedarray(env, napi_float64_array, l->ns * 16, buf, 0, &arr);
    napi_set_named_property(env, out, "stats", arr);
    napi_create_arraybuffer(env, l->ns, &d, &buf);
    memcpy(d, l->stat_bits, l->ns);
    napi_create_typedarray(env, napi_uint8_array, l->ns, buf, 0, &arr);
    napi_set_named_property(env, out, "statBits", arr);
  }
  return out;
}

// readdir(path, whiteouts) -> { joined, types, inos } (a dir_list_t) | -errno. Skips "." and "..".
// With `whiteouts`, character devices (and DT_UNKNOWN entries) are lstatted here and a whiteout is
// typed DT_WHT: an upper directory full of whiteouts (rm -rf of a lower tree) is listed without an
// lstat crossing from JS per entry.
static napi_value n_readdir(napi_env env, napi_callback_info info) {
  ARGS(2);
  bool whiteouts = false;
  napi_get_value_bool(env, argv[1], &whiteouts); // undefined: false
  AT_ARG(path, 0);
  int fd = openat(path.dirfd, path.rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return at_done(env, -1, errno, &path, NULL);
  put_at_path(&path);
  DIR *dir = fdopendir(fd);
  if (!dir) { int e = errno; close(fd); return ret_int(env, -e); }
  dir_list_t l = { 0 };
  struct dirent *de;
  int e = 0;
  for (;;) {
    errno = 0; // per call: the fstatat of the last entry may have set it
    if ((de = readdir(dir)) == NULL) { e = errno; break; }
    const char *nm = de->d_name;
    if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
    unsigned char dtype = whiteouts ? resolved_dtype(fd, nm, de->d_type) : de->d_type;
    if (!dir_list_add(&l, nm, dtype, de->d_ino)) { e = ENOMEM; break; }
  }
  closedir(dir);
  napi_value out = e ? ret_int(env, -e) : dir_list_value(env, &l);
  dir_list_free(&l);
  return out;
}

// ---- remove_tree(path): a tree this process owns (work-dir leftovers), depth-first -------------
// One crossing from JS for the whole tree, and no lstat per entry: d_type says which entries are
// directories. Nothing is followed: directories are opened O_NOFOLLOW relative to their parent's fd,
// so a symlink put in place of one is unlinked, never entered. Deeper than REMOVE_DEPTH it answers
// -ELOOP before touching that level, and the caller removes the rest by path.
#define REMOVE_DEPTH 64

static int remove_at(int dirfd, const char *name, unsigned char dtype, int depth) {
  if (dtype == DT_UNKNOWN) {
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return errno == ENOENT ? 0 : -errno;
    dtype = IFTODT(st.st_mode);
  }
  if (dtype != DT_DIR) {
    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return 0;
    if (errno != EISDIR) return -errno; // else it became a directory meanwhile
  }
  if (depth >= REMOVE_DEPTH) return -ELOOP;
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -errno;
  DIR *dir = fdopendir(fd);
  if (!dir) { int e = errno; close(fd); return -e; }
  int r = 0;
  struct dirent *de;
  for (;;) {
    errno = 0;
    if ((de = readdir(dir)) == NULL) { r = -errno; break; }
    const char *nm = de->d_name;
    if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
    if ((r = remove_at(fd, nm, de->d_type, depth + 1)) < 0) break;
  }
  closedir(dir);
  if (r == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) r = -errno;
  return r;
}

// removeTree(path) -> 0 | -errno (nothing there: 0)
static napi_value n_remove_tree(napi_env env, napi_callback_info info) {
  ARGS(1);
  AT_ARG(path, 0);
  int r = remove_at(path.dirfd, path.rel, DT_UNKNOWN, 0);
  put_at_path(&path);
  return ret_int(env, r);
}

// open(path, flags, mode) -> fd | -errno. Callers add O_NOFOLLOW where the last component must not be a link.
static napi_value n_open(napi_env env, napi_callback_info info) {
  ARGS(3);
  AT_ARG(path, 0);
  int fd = openat(path.dirfd, path.rel, (int) get_i64(env, argv[1]) | O_CLOEXEC, (mode_t) get_u32(env, argv[2]));
  return at_done(env, fd, errno, &path, NULL);
}

static napi_value n_mkdir(napi_env env, napi_callback_info info) {
  ARGS(2);
  AT_ARG(path, 0);
  int r = mkdirat(path.dirfd, path.rel, (mode_t) get_u32(env, argv[1]));
  return at_done(env, r, errno, &path, NULL);
}

static napi_value n_rmdir(napi_env env, napi_callback_info info) {
  ARGS(1);
  AT_ARG(path, 0);
  int r = unlinkat(path.dirfd, path.rel, AT_REMOVEDIR);
  return at_done(env, r, errno, &path, NULL);
}

static napi_value n_unlink(napi_env env, napi_callback_info info) {
  ARGS(1);
  AT_ARG(path, 0);
  int r = unlinkat(path.dirfd, path.rel, 0);
  return at_done(env, r, errno, &path, NULL);
}

// symlink(target, linkpath)
static napi_value n_symlink(napi_env env, napi_callback_info info) {
  ARGS(2);
  PATH_ARG(target, 0);
  AT_ARG(path, 1);
  int r = symlinkat(target, path.dirfd, path.rel);
  return at_done(env, r, errno, &path, NULL);
}

// readlink(path) -> string | -errno
static napi_value n_readlink(napi_env env, napi_callback_info info) {
  ARGS(1);
  AT_ARG(path, 0);
  char buf[PATH_BUF];
  ssize_t n = readlinkat(path.dirfd, path.rel, buf, sizeof(buf));
  int e = errno;
  put_at_path(&path);
  if (n < 0) return ret_int(env, -e);
  if ((size_t) n >= sizeof(buf)) return ret_int(env, -ENAMETOOLONG);
  return latin1(env, buf, (size_t) n);
}

// link(existing, newpath): never follows a symlink at existing (linkat without AT_SYMLINK_FOLLOW).
static napi_value n_link(napi_env env, napi_callback_info info) {
  ARGS(2);
  AT_ARG(from, 0);
  at_path_t to;
  int e_ = get_at_path(env, argv[1], &to);
  if (e_) { put_at_path(&from); return ret_int(env, e_); }
  int r = linkat(from.dirfd, from.rel, to.dirfd, to.rel, 0);
  return at_done(env, r, errno, &from, &to);
}

// rename(from, to, flags): renameat2 with RENAME_NOREPLACE / RENAME_EXCHANGE / RENAME_WHITEOUT.
static napi_value n_rename(napi_env env, napi_callback_info info) {
  ARGS(3);
  unsigned int flags = get_u32(env, argv[2]);
  AT_ARG(from, 0);
  at_path_t to;
  int e_ = get_at_path(env, argv[1], &to);
  if (e_) { put_at_path(&from); return ret_int(env, e_); }
  long r = flags ? syscall(SYS_renameat2, from.dirfd, from.rel, to.dirfd, to.rel, flags) : renameat(from.dirfd, from.rel, to.dirfd, to.rel);
  return at_done(env, r, errno, &from, &to);
}

// mknod(path, mode, major, minor)
static napi_value n_mknod(napi_env env, napi_callback_info info) {
  ARGS(4);
  dev_t dev = makedev(get_u32(env, argv[2]), get_u32(env, argv[3]));
  AT_ARG(path, 0);
  int r = mknodat(path.dirfd, path.rel, (mode_t) get_u32(env, argv[1]), dev);
  return at_done(env, r, errno, &path, NULL);
}

// lchown(path, uid, gid); -1 (as 0xffffffff) leaves a field unchanged.
static napi_value n_lchown(napi_env env, napi_callback_info info) {
  ARGS(3);
  AT_ARG(path, 0);
  int r = fchownat(path.dirfd, path.rel, (uid_t) get_u32(env, argv[1]), (gid_t) get_u32(env, argv[2]), AT_SYMLINK_NOFOLLOW);
  return at_done(env, r, errno, &path, NULL);
}

// chmod(path, mode): the last component must not be a symlink (checked by open O_PATH|O_NOFOLLOW).
static napi_value n_chmod(napi_env env, napi_callback_info info) {
  ARGS(2);
  AT_ARG(path, 0);
  int fd = openat(path.dirfd, path.rel, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return at_done(env, -1, errno, &path, NULL);
  put_at_path(&path);
  char proc[64];
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
  struct stat st;
  int r;
  if (fstat(fd, &st) == 0 && S_ISLNK(st.st_mode)) { errno = EOPNOTSUPP; r = -1; }
  else r = chmod(proc, (mode_t) get_u32(env, argv[1]));
  int e = errno;
  close(fd);
  return r < 0 ? ret_int(env, -e) : ret_int(env, 0);
}

// utimens(path, atime_sec, atime_nsec, mtime_sec, mtime_nsec); nsec may be UTIME_NOW / UTIME_OMIT.
static napi_value n_utimens(napi_env env, napi_callback_info info) {
  ARGS(5);
  struct timespec ts[2];
  ts[0].tv_sec = (time_t) get_i64(env, argv[1]);
  ts[0].tv_nsec = (long) get_i64(env, argv[2]);
  ts[1].tv_sec = (time_t) get_i64(env, argv[3]);
  ts[1].tv_nsec = (long) get_i64(env, argv[4]);
  AT_ARG(path, 0);
  int r = utimensat(path.dirfd, path.rel, ts, AT_SYMLINK_NOFOLLOW);
  return at_done(env, r, errno, &path, NULL);
}

// futimens(fd, atime_sec, atime_nsec, mtime_sec, mtime_nsec)
static napi_value n_futimens(napi_env env, napi_callback_info info) {
  ARGS(5);
  struct timespec ts[2];
  ts[0].tv_sec = (time_t) get_i64(env, argv[1]);
  ts[0].tv_nsec = (long) get_i64(env, argv[2]);
  ts[1].tv_sec = (time_t) get_i64(env, argv[3]);
  ts[1].tv_nsec = (long) get_i64(env, argv[4]);
  return futimens((int) get_i64(env, argv[0]), ts) < 0 ? ret_errno(env) : ret_int(env, 0);
}

// lgetxattr(path, name) -> Buffer | -errno
static napi_value n_lgetxattr(napi_env env, napi_callback_info info) {
  ARGS(2);
  PATH_ARG(name, 1);
  AT_ARG(path, 0);
  xattr_path_t x;
  int e_ = xattr_path(&path, &x);
  if (e_) { put_at_path(&path); return ret_int(env, e_); }
  char *buf = malloc(XATTR_BUF);
  ssize_t n = x.fd >= 0 ? getxattr(x.name, name, buf, XATTR_BUF) : lgetxattr(x.name, name, buf, XATTR_BUF);
  int e = errno;
  put_xattr_path(&x);
  put_at_path(&path);
  if (n < 0) { free(buf); return ret_int(env, -e); }
  napi_value out;
  void *data;
  napi_create_buffer_copy(env, (size_t) n, buf, &data, &out);
  free(buf);
  return out;
}

// lsetxattr(path, name, value: Buffer, flags) -> 0 | -errno
static napi_value n_lsetxattr(napi_env env, napi_callback_info info) {
  ARGS(4);
  PATH_ARG(name, 1);
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) { napi_throw_type_error(env, NULL, "value must be a Buffer"); return NULL; }
  AT_ARG(path, 0);
  xattr_path_t x;
  int e_ = xattr_path(&path, &x);
  if (e_) { put_at_path(&path); return ret_int(env, e_); }
  int flags = (int) get_u32(env, argv[3]);
  int r = x.fd >= 0 ? setxattr(x.name, name, data, len, flags) : lsetxattr(x.name, name, data, len, flags);
  int e = errno;
  put_xattr_path(&x);
  return at_done(env, r, e, &path, NULL);
}

// llistxattr(path) -> string[] | -errno
static napi_value n_llistxattr(napi_env env, napi_callback_info info) {
  ARGS(1);
  AT_ARG(path, 0);
  xattr_path_t x;
  int e_ = xattr_path(&path, &x);
  if (e_) { put_at_path(&path); return ret_int(env, e_); }
  char *buf = malloc(XATTR_BUF);
  ssize_t n = x.fd >= 0 ? listxattr(x.name, buf, XATTR_BUF) : llistxattr(x.name, buf, XATTR_BUF);
  int e = errno;
  put_xattr_path(&x);
  put_at_path(&path);
  if (n < 0) { free(buf); return ret_int(env, -e); }
  napi_value out;
  napi_create_array(env, &out);
  uint32_t i = 0;
  for (ssize_t p = 0; p < n;) {
    size_t l = strlen(buf + p);
    if (l) napi_set_element(env, out, i++, latin1(env, buf + p, l));
    p += (ssize_t) l + 1;
  }
  free(buf);
  return out;
}

static napi_value n_lremovexattr(napi_env env, napi_callback_info info) {
  ARGS(2);
  PATH_ARG(name, 1);
  AT_ARG(path, 0);
  xattr_path_t x;
  int e_ = xattr_path(&path, &x);
  if (e_) { put_at_path(&path); return ret_int(env, e_); }
  int r = x.fd >= 0 ? removexattr(x.name, name) : lremovexattr(x.name, name);
  int e = errno;
  put_xattr_path(&x);
  return at_done(env, r, e, &path, NULL);
}

// ---- jobs on libuv's thread pool ----

static void queue_job(napi_env env, const char *name, napi_async_execute_callback execute, napi_async_complete_callback complete,
                      void *job, napi_async_work *work) {
  napi_value n;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &n);
  napi_create_async_work(env, NULL, n, execute, complete, job, work);
  napi_queue_async_work(env, *work);
}

/** Calls the job's JS callback with argv, then lets go of it and of the work. */
static void job_done(napi_env env, napi_ref cb, napi_async_work work, size_t argc, napi_value *argv) {
  napi_value fn, global;
  napi_get_reference_value(env, cb, &fn);
  napi_get_global(env, &global);
  napi_call_function(env, global, fn, argc, argv, NULL);
  napi_delete_reference(env, cb);
  napi_delete_async_work(env, work);
}

// ---- copy_data(srcFd, dstFd, fsync, callback(err, bytes)): sparse-preserving copy (and fsync) on a worker thread ----

typedef struct {
  int src, dst;
  int fsync; // fsync dst after the copy when data moved: one trip to the thread pool, not two
  int err;
  double bytes;
  napi_ref cb;
  napi_async_work work;
} copy_job_t;

// Copies [off, end) from src to dst at the same offsets: copy_file_range (reflink or in-kernel
// copy on most filesystems), falling back to pread/pwrite where it is not supported.
static int copy_extent(int src, int dst, off_t off, off_t end, double *bytes) {
  static __thread char *buf = NULL;
  while (off < end) {
    size_t want = (size_t) (end - off > (1 << 30) ? (1 << 30) : end - off);
    loff_t in = off, out = off;
    ssize_t n = copy_file_range(src, &in, dst, &out, want, 0);
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
      if (!buf) buf = malloc(1 << 20);
      ssize_t r = pread(src, buf, want > (1 << 20) ? (1 << 20) : want, off);
      if (r < 0) return -errno;
      if (r == 0) return 0;
      ssize_t w = 0;
      while (w < r) {
        ssize_t k = pwrite(dst, buf + w, (size_t) (r - w), off + w);
        if (k < 0) return -errno;
        w += k;
      }
      n = r;
    } else if (n < 0) {
      return -errno;
    } else if (n == 0) {
      return 0; // source shrank
    }
    off += n;
    *bytes += (double) n;
  }
  return 0;
}

static void copy_execute(napi_env env, void *data) {
  (void) env;
  copy_job_t *job = data;
  struct stat st;
  if (fstat(job->src, &st) < 0) { job->err = -errno; return; }
  off_t size = st.st_size, off = 0;
  while (off < size) {
    off_t data_at = lseek(job->src, off, SEEK_DATA);
    if (data_at < 0) {
      if (errno == ENXIO) break; // only a hole remains
      if (errno == EINVAL) { data_at = off; } // no SEEK_DATA support: copy everything
      else { job->err = -errno; return; }
    }
    off_t hole_at = lseek(job->src, data_at, SEEK_HOLE);
    if (hole_at < 0) hole_at = size;
    if (hole_at > size) hole_at = size;
    int e = copy_extent(job->src, job->dst, data_at, hole_at, &job->bytes);
    if (e) { job->err = e; return; }
    off = hole_at;
  }
  // Trailing hole (and files that are all hole): set the size without writing blocks.
  if (ftruncate(job->dst, size) < 0) { job->err = -errno; return; }
  if (job->fsync && job->bytes > 0 && fsync(job->dst) < 0) job->err = -errno;
}

static void copy_complete(napi_env env, napi_status status, void *data) {
  copy_job_t *job = data;
  napi_value argv[2] = { ret_int(env, status == napi_ok ? job->err : -ECANCELED), ret_int(env, job->bytes) };
  job_done(env, job->cb, job->work, 2, argv);
  free(job);
}

static napi_value n_copy_data(napi_env env, napi_callback_info info) {
  ARGS(4);
  copy_job_t *job = calloc(1, sizeof(copy_job_t));
  if (!job) { napi_throw_error(env, "ENOMEM", "copyData: out of memory"); return NULL; }
  job->src = (int) get_i64(env, argv[0]);
  job->dst = (int) get_i64(env, argv[1]);
  bool fsync_after = false;
  napi_get_value_bool(env, argv[2], &fsync_after);
  job->fsync = fsync_after;
  napi_create_reference(env, argv[3], 1, &job->cb);
  queue_job(env, "strata:copy_data", copy_execute, copy_complete, job, &job->work);
  return NULL;
}

// ---- warmDirs(paths, statAll, callback(statted, us, lists)): reads directories ahead, on a worker thread ----
//
// A walk of a cold tree waits on the disk once per directory it lists and per inode it stats, one
// after the other. Reading the next directories (and statting their subdirectories, or every
// entry with statAll) off the JS thread while the walker still works on this one brings their
// blocks and inodes into the host's caches: the listing made when the walker gets there finds
// them. What each directory held comes back too (lists[i], in readdir's form: lower layers never
// change, so the JS thread builds the listing from it instead of reading the directory again),
// with the lstat of each entry statted and whether it has xattrs (statIdx, stats, statBits). Nothing is followed (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW).

#define WARM_MAX_ENTRIES 4096 // per directory: a huge one is left to its own listing

typedef struct {
  char **paths;
  uint32_t *index;   // paths[i] is argument paths[index[i]]
  dir_list_t *lists; // per path; joined NULL: not kept (unreadable, too big, out of memory)
  size_t n;
  uint32_t n_args;
  int stat_all;
  double statted;
  double us; // how long the reading took
  napi_ref cb;
  napi_async_work work;
} warm_job_t;

/** SN_XATTRS_KNOWN (and SN_XATTR_FREE) for dir/name, as statNames learns them; 0 when not known. */
static unsigned char warm_xattr_bits(const char *dir, const char *name) {
  char path[PATH_BUF];
  size_t dl = strlen(dir), nl = strlen(name);
  if (dl + 1 + nl >= sizeof(path)) return 0;
  memcpy(path, dir, dl);
  path[dl] = '/';
  memcpy(path + dl + 1, name, nl + 1);
  ssize_t n = llistxattr(path, NULL, 0);
  return n < 0 ? 0 : SN_XATTRS_KNOWN | (n == 0 ? SN_XATTR_FREE : 0);
}

static void warm_execute(napi_env env, void *data) {
  (void) env;
  warm_job_t *job = data;
  char buf[32768];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (size_t i = 0; i < job->n; i++) {
    int fd = open(job->paths[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    dir_list_t *l = job->lists ? &job->lists[i] : NULL;
    bool keep = l != NULL;
    size_t seen = 0;
    long got = -1;
    while (seen < WARM_MAX_ENTRIES && (got = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
      for (long at = 0; at < got && seen < WARM_MAX_ENTRIES;) {
        struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; } *d = (void *) (buf + at);
        at += d->reclen;
        if (d->name[0] == '.' && (d->name[1] == 0 || (d->name[1] == '.' && d->name[2] == 0))) continue;
        seen++;
        if (keep && !dir_list_add(l, d->name, d->type, d->ino)) keep = false;
        struct stat st;
        if ((job->stat_all || d->type == DT_DIR || d->type == DT_UNKNOWN) && fstatat(fd, d->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
          job->statted++;
          // kept with the entry, and whether it has xattrs: the listing then needs neither call on the JS thread
          if (keep && !dir_list_stat_last(l, &st, SN_STATTED | warm_xattr_bits(job->paths[i], d->name))) keep = false;
        }
      }
    }
    // kept only when read to its end: a directory cut short (too big, an error) is read again by its listing
    if (keep && (seen >= WARM_MAX_ENTRIES || got != 0)) keep = false;
    if (keep && !l->joined && !(l->joined = malloc(1))) keep = false; // an empty directory is kept too
    if (!keep && l) dir_list_free(l);
    close(fd);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  job->us = (double) (t1.tv_sec - t0.tv_sec) * 1e6 + (double) (t1.tv_nsec - t0.tv_nsec) / 1e3;
}

// lists[i]: { joined, types, inos } of argument paths[i] as read, or null.
static napi_value warm_lists(napi_env env, warm_job_t *job) {
  napi_value out, nul;
  napi_create_array_with_length(env, job->n_args, &out);
  napi_get_null(env, &nul);
  for (uint32_t k = 0; k < job->n_args; k++) napi_set_element(env, out, k, nul);
  for (size_t i = 0; job->lists && i < job->n; i++) {
    if (!job->lists[i].joined) continue;
    napi_value o = dir_list_value(env, &job->lists[i]);
    napi_set_element(env, out, job->index[i], o);
  }
  return out;
}

static void warm_complete(napi_env env, napi_status status, void *data) {
  warm_job_t *job = data;
  napi_value nul;
  napi_get_null(env, &nul);
  napi_value argv[3] = { ret_int(env, status == napi_ok ? job->statted : 0), ret_int(env, status == napi_ok ? job->us : 0),
    status == napi_ok ? warm_lists(env, job) : nul };
  job_done(env, job->cb, job->work, 3, argv);
  for (size_t i = 0; i < job->n; i++) {
    free(job->paths[i]);
    if (job->lists) dir_list_free(&job->lists[i]);
  }
  free(job->paths);
  free(job->index);
  free(job->lists);
  free(job);
}

static napi_value n_warm_dirs(napi_env env, napi_callback_info info) {
  ARGS(3);
  uint32_t n = 0;
  CHECK(napi_get_array_length(env, argv[0], &n));
  warm_job_t *job = calloc(1, sizeof(warm_job_t));
  if (job) {
    job->paths = calloc(n ? n : 1, sizeof(char *));
    job->index = calloc(n ? n : 1, sizeof(uint32_t));
    job->lists = calloc(n ? n : 1, sizeof(dir_list_t)); // NULL: read ahead, nothing kept
  }
  if (!job || !job->paths || !job->index) { // out of memory: nothing read ahead, the caller told so at once
    if (job) { free(job->paths); free(job->index); free(job->lists); }
    free(job);
    napi_value fn, global, nul, argv2[3];
    napi_get_null(env, &nul);
    argv2[0] = ret_int(env, 0);
    argv2[1] = ret_int(env, 0);
    argv2[2] = nul;
    napi_get_global(env, &global);
    fn = argv[2];
    napi_call_function(env, global, fn, 3, argv2, NULL);
    return NULL;
  }
  job->n_args = n;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    char path[PATH_BUF];
    if (napi_get_element(env, argv[0], i, &v) != napi_ok || get_latin1(env, v, path, sizeof(path)) != 0) continue; // too long: not read ahead
    char *copy = strdup(path);
    if (!copy) continue; // out of memory: not read ahead
    job->index[job->n] = i;
    job->paths[job->n++] = copy;
  }
  bool stat_all = false;
  napi_get_value_bool(env, argv[1], &stat_all);
  job->stat_all = stat_all;
  napi_create_reference(env, argv[2], 1, &job->cb);
  queue_job(env, "strata:warm_dirs", warm_execute, warm_complete, job, &job->work);
  return NULL;
}

// ---- stat_names: the attributes of a listing's entries, one crossing from JS ---------------------
// A listing with attributes (READDIRPLUS) needs an lstat of every entry and whether it has xattrs
// (llistxattr's size alone). Asked one entry at a time from JS that is ~10 µs an entry here; in one
// call, fstatat against the directory's fd and no array per llistxattr, it is the two syscalls, and
// a big directory is split over two threads (the JS thread would otherwise wait alone).
#define SN_SPLIT 256      // entries from which a second thread takes half

typedef struct {
  int dirfd;
  const char *dir;  // the directory's path, for llistxattr (NULL: longer than PATH_MAX, not asked)
  size_t dir_len;
  char **names;
  uint32_t *slots;
  double *stats;
  uint8_t *state;
  bool xattrs;
  size_t from, to;
  uint32_t statted;
} stat_names_t;

static void *stat_names_range(void *arg) {
  stat_names_t *j = arg;
  char path[PATH_BUF];
  for (size_t i = j->from; i < j->to; i++) {
    const char *name = j->names[i];
    if (!name) continue;
    uint32_t slot = j->slots[i];
    uint8_t st8 = j->state[slot];
    if (!(st8 & SN_STATTED)) {
      struct stat st;
      if (fstatat(j->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue; // left to the caller's own lstat
      fill_stat(j->stats + (size_t) slot * 16, &st);
      st8 |= SN_STATTED;
      j->statted++;
    }
    if (j->xattrs && j->dir && !(st8 & SN_XATTRS_KNOWN)) {
      size_t nl = strlen(name);
      if (j->dir_len + 1 + nl < sizeof(path)) {
        memcpy(path, j->dir, j->dir_len);
        path[j->dir_len] = '/';
        memcpy(path + j->dir_len + 1, name, nl + 1);
        ssize_t n = llistxattr(path, NULL, 0);
        if (n >= 0) st8 |= SN_XATTRS_KNOWN | (n == 0 ? SN_XATTR_FREE : 0);
      }
    }
    j->state[slot] = st8;
  }
  return NULL;
}

// statNames(dir, names: string[], slots: Uint32Array, stats: Float64Array, state: Uint8Array,
//   xattrs: boolean) -> entries statted | -errno (the directory could not be opened).
// Entry i is `dir`/names[i]; its lstat goes to stats[slots[i] * 16 ..] and its bits to
// state[slots[i]]. Entries already statted (or whose xattrs are known) are not asked again; one
// that fails is left without its bit, for the caller's own call to report. The directory is opened
// O_NOFOLLOW: its path's components were all seen as directories by the caller.
static napi_value n_stat_names(napi_env env, napi_callback_info info) {
  ARGS(6);
  uint32_t n = 0;
  CHECK(napi_get_array_length(env, argv[1], &n));
  napi_typedarray_type type;
  size_t slots_len, stats_len, state_len;
  void *slots_data, *stats_data, *state_data;
  if (napi_get_typedarray_info(env, argv[2], &type, &slots_len, &slots_data, NULL, NULL) != napi_ok || type != napi_uint32_array
      || napi_get_typedarray_info(env, argv[3], &type, &stats_len, &stats_data, NULL, NULL) != napi_ok || type != napi_float64_array
      || napi_get_typedarray_info(env, argv[4], &type, &state_len, &state_data, NULL, NULL) != napi_ok || type != napi_uint8_array
      || slots_len < n) {
    napi_throw_type_error(env, NULL, "statNames(dir, names, Uint32Array, Float64Array, Uint8Array, xattrs)");
    return NULL;
  }
  uint32_t *slots = slots_data;
  for (uint32_t i = 0; i < n; i++) {
    if ((size_t) slots[i] >= state_len || ((size_t) slots[i] + 1) * 16 > stats_len) {
      napi_throw_range_error(env, NULL, "statNames: slot out of range");
      return NULL;
    }
  }
  bool xattrs = false;
  napi_get_value_bool(env, argv[5], &xattrs);
  AT_ARG(path, 0);
  int dirfd = openat(path.dirfd, path.rel, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dirfd < 0) return at_done(env, -1, errno, &path, NULL);
  // llistxattr takes a whole path: only for a directory reached in one piece
  bool whole = path.dirfd == AT_FDCWD;
  // names as C strings, in one block: N-API is for this thread only
  char **names = calloc(n ? n : 1, sizeof(char *));
  size_t *offsets = calloc(n ? n : 1, sizeof(size_t)); // into the block, which may move while it grows
  size_t used = 0, cap = (size_t) n * 16 + 64;
  char *block = malloc(cap);
  if (!names || !offsets || !block) {
    free(names); free(offsets); free(block); close(dirfd); put_at_path(&path);
    return ret_int(env, -ENOMEM);
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    size_t len;
    offsets[i] = SIZE_MAX;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok || napi_get_value_string_latin1(env, v, NULL, 0, &len) != napi_ok) continue;
    if (len == 0 || len > 255) continue; // not a name: the caller's own call reports it
    if (used + len + 1 > cap) {
      size_t ncap = (used + len + 1) * 2;
      char *b = realloc(block, ncap);
      if (!b) continue;
      block = b;
      cap = ncap;
    }
    size_t got;
    napi_get_value_string_latin1(env, v, block + used, len + 1, &got);
    if (got != len || strlen(block + used) != len) continue; // embedded NUL
    offsets[i] = used;
    used += len + 1;
  }
  for (uint32_t i = 0; i < n; i++) names[i] = offsets[i] == SIZE_MAX ? NULL : block + offsets[i];
  free(offsets);
  stat_names_t jobs[2];
  for (int k = 0; k < 2; k++) {
    jobs[k] = (stat_names_t) { .dirfd = dirfd, .dir = whole ? path.rel : NULL, .dir_len = whole ? strlen(path.rel) : 0,
      .names = names, .slots = slots, .stats = stats_data, .state = state_data, .xattrs = xattrs,
      .from = 0, .to = n, .statted = 0 };
  }
  pthread_t helper;
  bool split = false;
  if (n >= SN_SPLIT) {
    jobs[0].to = jobs[1].from = n / 2;
    split = pthread_create(&helper, NULL, stat_names_range, &jobs[1]) == 0;
    if (!split) jobs[0].to = n;
  }
  stat_names_range(&jobs[0]);
  if (split) pthread_join(helper, NULL);
  free(names);
  free(block);
  close(dirfd);
  put_at_path(&path);
  return ret_int(env, jobs[0].statted + (split ? jobs[1].statted : 0));
}

/** mallocTrim(): hands free heap memory back to the kernel (glibc keeps it otherwise). */
static napi_value n_malloc_trim(napi_env env, napi_callback_info info) {
  (void) info;
  return ret_int(env, malloc_trim(0));
}

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f);
  napi_set_named_property(env, exports, name, f);
}

static void export_num(napi_env env, napi_value exports, const char *name, double v) {
  napi_set_named_property(env, exports, name, ret_int(env, v));
}

static napi_value init(napi_env env, napi_value exports) {
  export_fn(env, exports, "lstat", n_lstat);
  export_fn(env, exports, "fstat", n_fstat);
  export_fn(env, exports, "statvfs", n_statvfs);
  export_fn(env, exports, "readdir", n_readdir);
  export_fn(env, exports, "open", n_open);
  export_fn(env, exports, "mkdir", n_mkdir);
  export_fn(env, exports, "rmdir", n_rmdir);
  export_fn(env, exports, "removeTree", n_remove_tree);
  export_fn(env, exports, "unlink", n_unlink);
  export_fn(env, exports, "symlink", n_symlink);
  export_fn(env, exports, "readlink", n_readlink);
  export_fn(env, exports, "link", n_link);
  export_fn(env, exports, "rename", n_rename);
  export_fn(env, exports, "mknod", n_mknod);
  export_fn(env, exports, "lchown", n_lchown);
  export_fn(env, exports, "chmod", n_chmod);
  export_fn(env, exports, "utimens", n_utimens);
  export_fn(env, exports, "futimens", n_futimens);
  export_fn(env, exports, "lgetxattr", n_lgetxattr);
  export_fn(env, exports, "lsetxattr", n_lsetxattr);
  export_fn(env, exports, "llistxattr", n_llistxattr);
  export_fn(env, exports, "lremovexattr", n_lremovexattr);
  export_fn(env, exports, "copyData", n_copy_data);
  export_fn(env, exports, "warmDirs", n_warm_dirs);
  export_fn(env, exports, "statNames", n_stat_names);
  export_fn(env, exports, "mallocTrim", n_malloc_trim);
  export_num(env, exports, "RENAME_NOREPLACE", RENAME_NOREPLACE);
  export_num(env, exports, "RENAME_EXCHANGE", RENAME_EXCHANGE);
  export_num(env, exports, "RENAME_WHITEOUT", RENAME_WHITEOUT);
  export_num(env, exports, "UTIME_NOW", UTIME_NOW);
  export_num(env, exports, "UTIME_OMIT", UTIME_OMIT);
  export_num(env, exports, "XATTR_CREATE", XATTR_CREATE);
  export_num(env, exports, "XATTR_REPLACE", XATTR_REPLACE);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
