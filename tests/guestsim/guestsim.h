/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestsim: a vhost-user front-end (standing in for QEMU) and a guest virtio-vsock
 * driver (standing in for the guest kernel), single-threaded around poll().
 *
 * It is strict: everything the back-end writes into the used rings and the rx
 * buffers is checked, and each breach of the specs is counted as a violation
 * (gs_violations()) with a message, so tests fail loudly on a back-end bug. */
#pragma once

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* vhost-user requests (docs/interop/vhost-user.rst) */
enum {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_LOG_BASE = 6,
	VU_SET_LOG_FD = 7,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
	VU_RESET_DEVICE = 34,
	VU_GET_MAX_MEM_SLOTS = 36,
	VU_ADD_MEM_REG = 37,
	VU_REM_MEM_REG = 38,
};

#define VU_FLAG_VERSION 0x1u
#define VU_FLAG_REPLY 0x4u
#define VU_FLAG_NEED_REPLY 0x8u
#define VU_VRING_NOFD (1u << 8)
#define VU_MAX_REGIONS 8

#define VU_PF_MQ 0
#define VU_PF_REPLY_ACK 3
#define VU_PF_CONFIG 9
#define VU_PF_RESET_DEVICE 13
#define VU_PF_CONFIGURE_MEM_SLOTS 15

#define VIRTIO_F_NOTIFY_ON_EMPTY 24
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VU_F_PROTOCOL_FEATURES 30
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_VSOCK_F_SEQPACKET 1

struct vu_hdr {
	uint32_t request, flags, size;
} __attribute__((packed));

/* virtio-vsock (virtio spec, socket device); little-endian, 44 bytes */
struct gs_vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

enum {
	GS_OP_INVALID,
	GS_OP_REQUEST,
	GS_OP_RESPONSE,
	GS_OP_RST,
	GS_OP_SHUTDOWN,
	GS_OP_RW,
	GS_OP_CREDIT_UPDATE,
	GS_OP_CREDIT_REQUEST,
};
#define GS_TYPE_STREAM 1
#define GS_TYPE_SEQPACKET 2
#define GS_SEQ_EOM 1u  /* RW flags on SEQPACKET: last packet of a message */
#define GS_SEQ_EOR 2u  /* ... sent with MSG_EOR */
#define GS_MSG_TRUNC 1 /* gs_conn_recv_msg: the message was longer than the buffer */
#define GS_MSG_EOR 2   /* gs_conn_recv_msg: the message carried EOR */
#define GS_SHUTDOWN_RCV 1
#define GS_SHUTDOWN_SEND 2
#define GS_HOST_CID 2
#define GS_RX_BUF_SIZE 4096u
#define GS_MAX_PKT 65536u

struct gs_options {
	const char *socket_path;
	uint32_t guest_cid;  /* expected CID; 0 = take what GET_CONFIG says */
	unsigned queue_size; /* power of two; default 128 */
	unsigned regions;    /* 1 or 2 (the second at a non-zero mmap offset) */
	uint64_t gpa_base;   /* guest-physical address of the first byte of memory */
	uint32_t buf_alloc;  /* per-connection receive buffer; default 256 KiB */
	bool rx_split_hdr;   /* rx buffers as header + 4 KiB descriptors (Linux < 6.2) */
	bool tx_indirect;    /* tx packets through indirect descriptor tables */
	bool ack_all;        /* NEED_REPLY on every request that has no reply of its own */
	bool quiet;          /* do not print violations to stderr */
	bool seqpacket;      /* negotiate VIRTIO_VSOCK_F_SEQPACKET (a violation if not offered) */
	int timeout_ms;      /* per vhost-user reply; default 5000 */
};

struct gs;
struct gs_conn;

void gs_options_init(struct gs_options *o);
/* Connect, negotiate like QEMU 7.2, share memory, start both rings, post rx buffers. */
int gs_new(const struct gs_options *o, struct gs **ret);
struct gs *gs_free(struct gs *gs);
/* Front-end disconnect, then a fresh negotiation with new memory (gpa_base may change).
 * Every connection is dropped (reads return -ECONNRESET). */
int gs_reconnect(struct gs *gs, uint64_t new_gpa_base);
/* Disconnect from the back-end without reconnecting (all connections reset). */
void gs_disconnect(struct gs *gs);
/* Send SET_MEM_TABLE again with the same regions, as QEMU does whenever its memory
 * map is committed again (hotplug, a BAR moving): the back-end unmaps and maps the
 * memory anew, connections live on. */
int gs_send_mem_table(struct gs *gs);

/* One round of the loop: poll the call eventfds, the vhost-user socket and `extra`
 * (revents filled in), then process the rings. -ECONNRESET when the back-end hung up. */
int gs_step(struct gs *gs, struct pollfd *extra, unsigned nextra, int timeout_ms);
/* Run gs_step until pred(userdata) is true; -ETIMEDOUT after timeout_ms. */
int gs_run_until(struct gs *gs, bool (*pred)(struct gs *gs, void *userdata), void *userdata,
	int timeout_ms);

unsigned gs_violations(const struct gs *gs);
const char *gs_last_violation(const struct gs *gs);
uint32_t gs_guest_cid(const struct gs *gs);
uint64_t gs_features(const struct gs *gs);          /* negotiated virtio features */
uint64_t gs_protocol_features(const struct gs *gs); /* negotiated protocol features */
int gs_vu_fd(const struct gs *gs);
/* Requests sent in the last negotiation, in order (for conformance tests). */
unsigned gs_sent_requests(const struct gs *gs, const uint32_t **ret);
/* Rx packets seen, per op; rx/tx bytes. */
uint64_t gs_rx_op_count(const struct gs *gs, unsigned op);
unsigned gs_tx_slots_free(const struct gs *gs);
/* The driver's avail idx of queue q (0 rx, 1 tx): what GET_VRING_BASE must report once
 * the device consumed everything. */
uint16_t gs_avail_idx(const struct gs *gs, unsigned q);
/* Does the back-end still answer on the vhost-user socket? (a GET_FEATURES round trip) */
int gs_vu_probe(struct gs *gs);
uint64_t gs_now_ms(void); /* CLOCK_MONOTONIC */

/* Guest vsock sockets. Ports are the guest's; the peer is always the host (CID 2). */
enum gs_conn_state { GS_CONNECTING, GS_CONNECTED, GS_CLOSED };
int gs_connect(struct gs *gs, uint32_t port, struct gs_conn **ret);
int gs_listen(struct gs *gs, uint32_t port);
/* The same for a socket type (GS_TYPE_STREAM or GS_TYPE_SEQPACKET). gs_connect_type sends
 * a SEQPACKET REQUEST even when the feature was not negotiated (to test the refusal). */
int gs_connect_type(struct gs *gs, uint32_t port, uint16_t type, struct gs_conn **ret);
int gs_listen_type(struct gs *gs, uint32_t port, uint16_t type);
uint16_t gs_conn_type(const struct gs_conn *c);
/* SEQPACKET: one whole message, split into packets of at most pkt bytes (0: 64 KiB), EOM
 * (and EOR when eor) on the last. len, -EAGAIN (not enough credit or tx slots for all
 * of it), -EMSGSIZE (larger than the peer's buf_alloc, as Linux), -EPIPE, -ECONNRESET. */
ssize_t gs_conn_send_msg(struct gs_conn *c, const void *data, size_t len, bool eor, size_t pkt);
/* SEQPACKET: the next whole message: its full length (at most len bytes copied, the rest
 * dropped like MSG_TRUNC), *ret_flags GS_MSG_*; 0 at EOF, -EAGAIN, -ECONNRESET. */
ssize_t gs_conn_recv_msg(struct gs_conn *c, void *buf, size_t len, int *ret_flags);
unsigned gs_conn_msgs_pending(const struct gs_conn *c);
int gs_send_msg_all(struct gs *gs, struct gs_conn *c, const void *data, size_t len, bool eor,
	size_t pkt, int timeout_ms);
ssize_t gs_recv_msg_all(struct gs *gs, struct gs_conn *c, void *buf, size_t len, int *ret_flags,
	int timeout_ms);
struct gs_conn *gs_accept(struct gs *gs, uint32_t port);
enum gs_conn_state gs_conn_state(const struct gs_conn *c);
int gs_conn_error(const struct gs_conn *c); /* 0, -ECONNREFUSED, -ECONNRESET */
uint32_t gs_conn_local_port(const struct gs_conn *c);
uint32_t gs_conn_peer_port(const struct gs_conn *c);
/* Bytes accepted (copied into tx buffers now), -EAGAIN (no credit or ring space),
 * -EPIPE after shutdown(SHUT_WR) or peer SHUTDOWN(RCV), -ECONNRESET, -ENOTCONN. */
ssize_t gs_conn_send(struct gs_conn *c, const void *data, size_t len);
/* Bytes read, 0 at EOF (peer SHUTDOWN(SEND) and nothing left), -EAGAIN, -ECONNRESET. */
ssize_t gs_conn_recv(struct gs_conn *c, void *buf, size_t len);
size_t gs_conn_rx_pending(const struct gs_conn *c);
uint32_t gs_conn_peer_free(const struct gs_conn *c);
uint32_t gs_conn_peer_buf_alloc(const struct gs_conn *c); /* last advertised */
bool gs_conn_peer_shut_send(const struct gs_conn *c);
int gs_conn_shutdown(struct gs_conn *c, int how); /* SHUT_RD / SHUT_WR / SHUT_RDWR */
/* Graceful close like Linux: SHUTDOWN(both), RST once the peer answered with RST or
 * after the close timeout. The guestsim owns the connection afterwards. */
void gs_conn_close(struct gs_conn *c);
/* Immediate RST; the connection is freed. */
void gs_conn_reset(struct gs_conn *c);
void gs_conn_set_userdata(struct gs_conn *c, void *p);
void *gs_conn_get_userdata(const struct gs_conn *c);
unsigned gs_conn_count(const struct gs *gs);

/* Helpers driving the loop until something happens. */
int gs_wait_connected(struct gs *gs, struct gs_conn *c, int timeout_ms);
int gs_send_all(struct gs *gs, struct gs_conn *c, const void *data, size_t len, int timeout_ms);
/* Read exactly len bytes (or to EOF when eof_ok): returns bytes read. */
ssize_t gs_recv_all(struct gs *gs, struct gs_conn *c, void *buf, size_t len, int timeout_ms);

/* Hostile guest: malformed chains and packets on demand. Ring-level kinds break the
 * ring from the back-end's point of view; reconnect afterwards. */
enum gs_hostile {
	GS_BAD_DESC_LOOP,          /* tx chain whose next pointers loop */
	GS_BAD_ADDR_OUTSIDE,       /* descriptor address beyond guest memory */
	GS_BAD_ADDR_OVERFLOW,      /* addr + len wraps around 2^64 */
	GS_BAD_WRITABLE_ON_TX,     /* device-writable descriptor in a tx chain */
	GS_BAD_READABLE_ON_RX,     /* device-readable descriptor posted on rx */
	GS_BAD_NESTED_INDIRECT,    /* indirect table pointing at another indirect table */
	GS_BAD_OVERSIZED_INDIRECT, /* indirect table with more entries than the ring */
	GS_BAD_INDIRECT_LEN,       /* indirect table length not a multiple of 16 */
	GS_BAD_AVAIL_JUMP,         /* avail idx advanced by more than the ring size */
	GS_BAD_NEXT_OUT_OF_RANGE,  /* next index >= ring size */
	GS_BAD_HDR_SHORT,          /* tx chain shorter than a packet header */
	GS_BAD_HDR_LEN,            /* header len larger than the buffer */
	GS_BAD_SRC_CID,            /* wrong src_cid */
	GS_BAD_UNKNOWN_OP,         /* op 99 */
	GS_BAD_UNKNOWN_TYPE,       /* type 77 */
	GS_BAD_RW_BEFORE_RESPONSE, /* RW on a connection the host never accepted */
	GS_BAD_DUPLICATE_REQUEST,  /* REQUEST again on an established connection */
	GS_BAD_CREDIT_VIOLATION,   /* RW beyond the host's advertised buf_alloc */
	GS_BAD_MAX,
};
const char *gs_hostile_name(enum gs_hostile k);
bool gs_hostile_breaks_ring(enum gs_hostile k);
/* c: the connection used by packet-level kinds (may be NULL for ring-level ones). */
int gs_hostile(struct gs *gs, enum gs_hostile k, struct gs_conn *c);
/* A raw packet on the tx ring: header written as given (little-endian converted). */
int gs_send_raw_packet(struct gs *gs, const struct gs_vsock_hdr *h, const void *payload, size_t len);

/* Raw vhost-user front-end messages (for front-end bad input). */
int gs_vu_open(const char *socket_path, int *ret_fd);
/* A blocking Unix stream connection to path (CLOEXEC). */
int gs_unix_connect(const char *socket_path, int *ret_fd);
int gs_vu_send(int fd, uint32_t request, uint32_t flags, const void *payload, size_t size,
	const int *fds, unsigned nfds);
/* Send exactly the given bytes (may be a truncated message). */
int gs_vu_send_bytes(int fd, const void *data, size_t size);
/* Receive one reply: payload copied (up to max), returns payload size; -ECONNRESET on EOF. */
int gs_vu_recv(int fd, struct vu_hdr *ret_hdr, void *payload, size_t max, int timeout_ms);
/* Send a request and wait for its reply (request with its own reply or NEED_REPLY). */
int gs_vu_call(int fd, uint32_t request, uint32_t flags, const void *payload, size_t size,
	const int *fds, unsigned nfds, void *reply, size_t reply_max, int timeout_ms);
