/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vsock device's own state, shared by its files (not an interface):
 * vsock.c (connection table, lifetime, credit, control packets, stream rx/tx),
 * vsock_pend.c (bytes a host socket refused), vsock_seqpacket.c (SEQPACKET
 * paths) and vsock_host.c (host sockets: accept, CONNECT, callbacks). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include "hybrid.h"
#include "log.h"
#include "virtqueue.h"
#include "vsock.h"

#define VSOCK_HASH_SIZE 4096u
#define VSOCK_RST_QUEUE 1024u
#define VSOCK_MAX_PKT_PAYLOAD (64u * 1024)
#define VSOCK_TX_BUDGET 256
#define VSOCK_READ_BUDGET 16
#define VSOCK_RX_BATCH 16
#define VSOCK_RX_IOV 1024       /* IOV_MAX */
#define VSOCK_TX_BATCH_IOV 1024 /* IOV_MAX */
#define VSOCK_HOLD_MAX 64       /* tx chains held for a full host socket, at most */
#define VSOCK_HOST_PORT_FIRST (1u << 30)
#define VSOCK_HOST_PORT_END (1u << 31)
#define VSOCK_BUF_FLOOR_MAX (64u * 1024) /* idle window, at most */
#define VSOCK_HUP_POLL_MS 1000           /* hang-up checks while reads are paused */

/* A connection's lifecycle. Every change goes through vsock_conn_set_state(),
 * which allows only the moves in vsock_state_moves[] (vsock.c). */
enum vsock_state {
	VSOCK_STATE_NEW,        /* allocated, not yet set up */
	VSOCK_STATE_LINE,       /* host client: reading the CONNECT line */
	VSOCK_STATE_REQUESTED,  /* host-initiated: waiting for the guest's RESPONSE */
	VSOCK_STATE_CONNECTING, /* guest-initiated: connecting to <uds-path>_<port> */
	VSOCK_STATE_ESTABLISHED,
	VSOCK_STATE_CLOSING, /* guest closed; flushing to the host before RST */
	VSOCK_STATE_CLOSED,  /* host socket closed, waiting to be freed */
	_VSOCK_STATE_MAX,
};

/* Who asked for the connection: a host client's CONNECT, or the guest's REQUEST. */
enum vsock_origin {
	VSOCK_ORIGIN_HOST,
	VSOCK_ORIGIN_GUEST,
};

/* What a connection still owes the guest, sent when rx has room: control
 * packets, and host socket bytes it could not read for want of an rx buffer. */
enum {
	VSOCK_OWE_REQUEST = 1 << 0,
	VSOCK_OWE_RESPONSE = 1 << 1,
	VSOCK_OWE_CREDIT_UPDATE = 1 << 2,
	VSOCK_OWE_CREDIT_REQUEST = 1 << 3,
	VSOCK_OWE_SHUTDOWN_RCV = 1 << 4, /* the host takes nothing more */
	VSOCK_OWE_DATA = 1 << 5,         /* wants to read the host socket, rx had no buffer */
};

struct vsock_conn {
	struct vsock *v;
	uint32_t local_port, peer_port;   /* host side, guest side */
	struct vsock_conn *hnext, *pnext; /* by (local, peer); by local port */
	/* I/O bookkeeping only: on v->send_list (something owed, see owed). */
	TAILQ_ENTRY(vsock_conn) send_entry;
	bool on_send_list;
	int fd;
	/* Host socket events; whether one is armed is event_pending()'s answer. */
	struct event *ev_read, *ev_write, *timer;
	/* Hang-up watch while reads are paused: a poll() once a second. */
	struct event *ev_hup;
	enum vsock_state state; /* changed only by vsock_conn_set_state() */
	enum vsock_origin origin;
	unsigned owed; /* VSOCK_OWE_* bits */
	/* Each side's shutdown, as VSOCK_SHUTDOWN_RCV|SEND bits (the kernel's
	 * peer_shutdown): guest_shutdown is what the guest announced; host_shutdown
	 * what the host socket did: SEND at its EOF (we sent SHUTDOWN(SEND)), RCV
	 * once it takes nothing more (a write failed, or it closed); sock_shutdown
	 * what we did to the host socket: SEND once shutdown(SHUT_WR) is done (or
	 * moot, the host taking nothing more). */
	uint8_t guest_shutdown, host_shutdown, sock_shutdown;
	/* Credit: what the guest told us, and our counters. */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	uint32_t rx_cnt, fwd_cnt, fwd_cnt_sent;
	/* Guest->host bytes the socket refused, a ring of buf_alloc bytes. */
	uint8_t *pend;
	uint32_t pend_head, pend_len, pend_cap;
	/* The window we advertise (adaptive buf_alloc, within the VM's budget):
	 * rx_limit = fwd_cnt + buf_alloc as last advertised, never moved back
	 * (a Linux 6.1 guest computes credit unsigned); reserved = rx_limit -
	 * fwd_cnt then, counted in vsock.reserved; buf_target: what we would like
	 * to advertise; grow_mark: fwd_cnt when the window last grew. */
	uint32_t rx_limit, reserved, buf_target, grow_mark;
	struct hybrid_line line;
	TAILQ_ENTRY(vsock_conn) all_entry; /* live connections; then the dead list */
	/* SEQPACKET: the host socket is SOCK_SEQPACKET, one record per message. pend
	 * holds finished messages (lengths in seq_msgs, a FIFO) and then the bytes of
	 * the guest's unfinished one (seq_partial). */
	bool seqpacket;
	/* seq_need: next host message, waiting for credit; seq_credit_asked: a
	 * CREDIT_REQUEST went out for it and no CREDIT_UPDATE came since. */
	bool seq_credit_asked;
	uint32_t seq_partial, seq_need;
	uint32_t *seq_msgs;
	uint32_t seq_head, seq_count, seq_cap;
};

TAILQ_HEAD(vsock_conn_list, vsock_conn);

/* Guest->host RW payloads of one connection from consecutive tx chains, written
 * to its host socket with one sendmsg; the chains are held (not yet used) until
 * their bytes are written or copied. */
struct vsock_tx_batch {
	struct vsock_conn *c; /* NULL: empty */
	uint32_t len;
	unsigned n_heads;
	size_t n_iov;
	uint16_t heads[VSOCK_TX_BUDGET];
	uint32_t lens[VSOCK_TX_BUDGET]; /* payload bytes of each chain */
	struct iovec iov[VSOCK_TX_BATCH_IOV];
};

/* Guest->host bytes a full host socket refused, left where they are: the tx
 * chains are held (not yet used) until the socket takes their bytes, instead
 * of copying the bytes into the connection's pend ring and writing them from
 * there (a second copy per byte, the back-end's largest cost while a host
 * reader lags). One connection at a time, at most VSOCK_HOLD_MAX chains and
 * an eighth of the tx ring, so other connections' packets keep it moving; past
 * that, or when the rings or memory go away, the bytes are copied into pend
 * (vsock_hold_release()). Never both: a connection holds chains only while its
 * pend ring is empty. */
struct vsock_hold {
	struct vsock_conn *c; /* NULL: nothing held */
	uint32_t len;         /* bytes not yet written */
	unsigned head_first, head_end;
	size_t iov_first, iov_end;
	uint16_t heads[VSOCK_HOLD_MAX];
	uint32_t lens[VSOCK_HOLD_MAX]; /* bytes of each chain not yet written */
	struct iovec iov[VSOCK_TX_BATCH_IOV];
};

struct vsock_rst {
	uint32_t local_port, peer_port, fwd_cnt;
	uint16_t type;
};

struct vsock {
	struct event_base *base;
	struct vsock_config cfg;
	struct virtqueue *rx, *tx;
	struct event *listen_ev, *listen_pause, *reaper, *tx_again;
	struct event *seq_listen_ev;
	int seq_listen_fd;
	bool seqpacket; /* the driver acked VIRTIO_VSOCK_F_SEQPACKET */
	struct vsock_conn *hash[VSOCK_HASH_SIZE];
	struct vsock_conn *port_hash[VSOCK_HASH_SIZE];
	unsigned n_conns, n_guest_initiated;
	uint32_t next_host_port;
	/* Memory budget: the windows promised (sum of reserved) never exceed
	 * cfg.memory_budget; buf_floor is every connection's share when idle.
	 * pend_bytes: the refused-bytes rings allocated now. */
	uint64_t reserved, pend_bytes;
	uint32_t buf_floor;
	struct vsock_conn_list send_list, all, dead;
	struct vsock_rst rst[VSOCK_RST_QUEUE];
	unsigned rst_head, rst_len;
	bool rx_dirty, tx_dirty;
	/* Scratch chains, too big for the stack; rx and tx apart since handling a
	 * tx packet may send on rx. */
	struct virtqueue_elem rx_elem, tx_elem;
	struct virtqueue_elem rx_batch[VSOCK_RX_BATCH];
	struct vsock_tx_batch tx_batch;
	struct vsock_hold hold;
	struct iovec rx_iov[VSOCK_RX_IOV];
	/* One host message being split across rx buffers: their heads and lengths. */
	uint16_t seq_heads[VSOCK_RX_IOV];
	uint32_t seq_caps[VSOCK_RX_IOV];
};

extern struct log_ratelimit vsock_guest_rl, vsock_host_rl;

#define guest_warning(...) log_ratelimited(&vsock_guest_rl, LOG_WARNING, 0, __VA_ARGS__)
#define host_warning(...) log_ratelimited(&vsock_host_rl, LOG_WARNING, 0, __VA_ARGS__)

/* vsock.c */
int vsock_alloc_host_port(struct vsock *v, uint32_t *ret);
void vsock_conn_check_done(struct vsock_conn *c);
void vsock_conn_close(struct vsock_conn *c);
void vsock_conn_flush_pend(struct vsock_conn *c);
bool vsock_conn_may_read(const struct vsock_conn *c);
void vsock_conn_maybe_credit_update(struct vsock_conn *c);
void vsock_conn_read(struct vsock_conn *c);
void vsock_conn_reset(struct vsock_conn *c);
void vsock_conn_set_read(struct vsock_conn *c, bool on);
int vsock_conn_set_state(struct vsock_conn *c, enum vsock_state new_state);
bool vsock_state_move_allowed(enum vsock_state from, enum vsock_state to);
const char *vsock_state_name(enum vsock_state s);
void vsock_conn_set_timer(struct vsock_conn *c, int seconds);
void vsock_conn_set_write(struct vsock_conn *c, bool on);
void vsock_conn_update_read(struct vsock_conn *c);
void vsock_conn_wait_rx(struct vsock_conn *c);
void vsock_fill_hdr(struct vsock *v, struct vsock_hdr *h, uint32_t local, uint32_t peer,
	uint16_t op, uint32_t flags, uint32_t len, struct vsock_conn *c);
void vsock_hash_add(struct vsock *v, struct vsock_conn *c);
void vsock_conn_host_write_failed(struct vsock_conn *c, int err);
void vsock_conn_host_eof(struct vsock_conn *c, struct virtqueue_elem *e);
void vsock_conn_host_hangup(struct vsock_conn *c);
bool vsock_conn_credit_fits(const struct vsock_conn *c, uint32_t len);
int vsock_conn_rx_account(struct vsock_conn *c, const struct vsock_hdr *h, const char *hint);
uint32_t vsock_conn_window(struct vsock_conn *c);
bool vsock_conn_host_read_eof(int err);
uint32_t vsock_peer_free(const struct vsock_conn *c);
void vsock_rx_flush_notify(struct vsock *v);
int vsock_rx_pop(struct vsock *v, struct virtqueue_elem *e);
void vsock_rx_push(struct vsock *v, struct virtqueue_elem *e, const struct vsock_hdr *h);
ssize_t vsock_send_iov(int fd, const struct iovec *iov, size_t n);
void vsock_send_list_add(struct vsock_conn *c);

/* vsock_host.c */
void vsock_accept_cb(evutil_socket_t lfd, short what, void *userdata);
void vsock_conn_update_hup_watch(struct vsock_conn *c);
void vsock_conn_line_done(struct vsock_conn *c, uint32_t port);
int vsock_conn_new(struct vsock *v, int fd, struct vsock_conn **ret);
void vsock_listen_resume_cb(evutil_socket_t fd, short what, void *userdata);

/* vsock_pend.c */
uint32_t vsock_conn_unsent(const struct vsock_conn *c);
bool vsock_hold_add(struct vsock_conn *c, const struct iovec *iov, size_t n, size_t skip,
	uint32_t len, uint16_t head);
ssize_t vsock_hold_flush(struct vsock_conn *c);
void vsock_hold_release(struct vsock *v, bool copy);
void vsock_pend_release(struct vsock_conn *c);
int vsock_pend_append(struct vsock_conn *c, const struct iovec *iov, size_t n, size_t skip,
	size_t len);
void vsock_seq_drop_partial(struct vsock_conn *c);
int vsock_seq_queue_msg(struct vsock_conn *c, uint32_t len);

/* vsock_seqpacket.c */
void vsock_conn_flush_seq(struct vsock_conn *c);
void vsock_conn_line_seq(struct vsock_conn *c);
void vsock_conn_read_seq(struct vsock_conn *c);
void vsock_conn_set_seqpacket(struct vsock_conn *c);
void vsock_op_rw_seq(struct vsock *v, struct vsock_conn *c, const struct vsock_hdr *h,
	const struct iovec *payload, size_t n_payload);
