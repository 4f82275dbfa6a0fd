/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Frames on the wire, for the data-path tests: the Ethernet/IPv4 frames the
 * programs build, the Internet checksum they fill in, a byte comparison, and the
 * AF_PACKET sockets that inject frames into a tap and capture what leaves it.
 *
 * Every builder here is a former per-program copy, moved without changing a byte
 * of what it writes: where two programs' copies wrote different bytes, both are
 * kept, under distinct names, and each says where it came from and how it differs.
 * The payloads are position-dependent patterns, so a frame cut, shifted or spliced
 * by the device shows up in first_diff() at the first wrong byte.
 */
#ifndef FRAMES_H
#define FRAMES_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>

/* ---- building frames ------------------------------------------------------------------ */

/* A locally administered unicast address that no interface has: frames to it go nowhere. */
static const uint8_t frame_mac_nobody[6] = { 0x02, 0, 0x5e, 0, 0, 0x02 };
static const uint8_t frame_mac_src[6] = { 0x02, 0, 0, 0, 0, 0x01 };

/*
 * An Ethernet frame of @len bytes to nobody, of the local experimental type 0x88b5 (no
 * protocol handler: the stack drops it), payload a pattern of @seed and the offset from
 * byte 14. A @len below 14 gets only the first @len bytes of the header.
 * (vhost_data's and vhost_hostile's make_frame: vhost_data's also added i >> 16 to the
 * pattern, vhost_hostile's did not; they agree below 64 KiB, and neither builds frames that
 * long. vhost_hostile's handled @len < 14, vhost_data never asked for one.)
 */
static inline void frame_eth(uint8_t *f, size_t len, unsigned int seed)
{
	size_t i;

	memcpy(f, frame_mac_nobody, len < 6 ? len : 6);
	if (len > 6)
		memcpy(f + 6, frame_mac_src, len < 12 ? len - 6 : 6);
	if (len >= 14) {
		f[12] = 0x88;
		f[13] = 0xb5;
	}
	for (i = 14; i < len; i++)
		f[i] = (uint8_t)(i * 7 + seed * 13 + (i >> 8) + (i >> 16));
}

/*
 * An Ethernet frame of @len (>= 18) bytes to @dst (NULL: nobody), type 0x88b5, with @seq
 * big-endian at byte 14 (frame_seq() reads it back, to tell frames of a burst apart)
 * and a pattern of @seq and the offset after it. (vhost_backends' mk_frame.)
 */
static inline void frame_eth_seq(uint8_t *f, size_t len, uint32_t seq, const uint8_t *dst)
{
	size_t i;

	memcpy(f, dst ? dst : frame_mac_nobody, 6);
	memcpy(f + 6, frame_mac_src, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	f[14] = seq >> 24;
	f[15] = seq >> 16;
	f[16] = seq >> 8;
	f[17] = seq;
	for (i = 18; i < len; i++)
		f[i] = (uint8_t)(i * 7 + seq * 13 + (i >> 8));
}

static inline uint32_t frame_seq(const uint8_t *f)
{
	return (uint32_t)f[14] << 24 | f[15] << 16 | f[16] << 8 | f[17];
}

/*
 * The Internet checksum (RFC 1071) of @len bytes, added to @sum: the folded 16-bit
 * one's-complement sum, not inverted (a header's checksum field is ~ip_csum(...), a
 * pseudo-header sum for the device to finish is ip_csum(...) as it is). An odd last byte
 * counts as its high half.
 */
static inline uint16_t ip_csum(const uint8_t *p, size_t len, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (p[i] << 8) | p[i + 1];
	if (len & 1)
		sum += p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* IPv4 10.0.0.1 -> 10.0.0.2, DF, TTL 64, protocol @proto; no checksum. */
static inline void frame_ip4_hdr(uint8_t *ip, size_t ip_len, uint8_t proto)
{
	ip[0] = 0x45;
	ip[2] = ip_len >> 8;
	ip[3] = ip_len & 0xff;
	ip[6] = 0x40;		/* DF */
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
}

/*
 * A real TCP/IPv4 frame of @len (>= 54) bytes, 40000 -> 5001, PSH|ACK, with a valid IP
 * checksum, the TCP checksum left to the device (the field holds the pseudo-header sum, as
 * a virtio driver leaves it for NEEDS_CSUM), payload a pattern of @seed and the offset.
 * (vhost_data's make_tcp_frame.)
 */
static inline void frame_tcp4(uint8_t *f, size_t len, unsigned int seed)
{
	uint8_t *ip = f + 14, *tcp = f + 34;
	size_t tcplen = len - 34, i;
	uint8_t ph[12];
	uint16_t c;

	frame_eth(f, len, seed);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, 40);
	frame_ip4_hdr(ip, len - 14, 6);
	ip[4] = 0x12;
	ip[5] = 0x34;
	c = ~ip_csum(ip, 20, 0);
	ip[10] = c >> 8;
	ip[11] = c & 0xff;
	tcp[0] = 0x9c; tcp[1] = 0x40;	/* 40000 */
	tcp[2] = 0x13; tcp[3] = 0x89;	/* 5001 */
	tcp[4] = 1;			/* seq */
	tcp[12] = 5 << 4;
	tcp[13] = 0x18;			/* PSH|ACK */
	tcp[14] = 0xff; tcp[15] = 0xff;
	memcpy(ph, ip + 12, 8);
	ph[8] = 0;
	ph[9] = 6;
	ph[10] = tcplen >> 8;
	ph[11] = tcplen & 0xff;
	c = ip_csum(ph, 12, 0);
	tcp[16] = c >> 8;
	tcp[17] = c & 0xff;
	for (i = 54; i < len; i++)
		f[i] = (uint8_t)(i * 3 + seed);
}

/*
 * A TCP/IPv4 frame of @len (>= 54) bytes whose headers parse (for GSO) but carry no
 * checksums: IP checksum, IP id, TCP sequence number and checksum are zero, ports
 * 39936 -> 5001, PSH|ACK, window 0xff00; payload frame_eth()'s.
 * (vhost_hostile's make_tcp_frame: it set only the high bytes of the source port and
 * window, and left the checksums out, where frame_tcp4() has them.)
 */
static inline void frame_tcp4_nocsum(uint8_t *f, size_t len, unsigned int seed)
{
	uint8_t *ip = f + 14, *tcp = f + 34;

	frame_eth(f, len, seed);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, 40);
	frame_ip4_hdr(ip, len - 14, 6);
	tcp[0] = 0x9c;
	tcp[2] = 0x13;
	tcp[3] = 0x89;
	tcp[12] = 5 << 4;
	tcp[13] = 0x18;
	tcp[14] = 0xff;
}

/*
 * The Ethernet header of a frame of @len bytes to nobody, type IPv4, and its IPv4 header
 * for @proto with a valid checksum, DF if @df; the @zero bytes from the IP header on are
 * cleared first.
 */
static inline void frame_eth_ip4(uint8_t *f, size_t len, uint8_t proto, size_t zero, bool df)
{
	uint8_t *ip = f + 14;
	uint16_t c;

	memcpy(f, frame_mac_nobody, 6);
	memcpy(f + 6, frame_mac_src, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, zero);
	frame_ip4_hdr(ip, len - 14, proto);
	if (!df)
		ip[6] = 0;
	c = ~ip_csum(ip, 20, 0);
	ip[10] = c >> 8;
	ip[11] = c & 0xff;
}

/* Offsets in frame_vxlan4()'s frames. */
#define VXLAN_OUTER_TH	34	/* outer UDP header */
#define VXLAN_INNER_NH	64	/* inner IPv4 header: 34 + UDP 8 + VXLAN 8 + Ethernet 14 */
#define VXLAN_INNER_TH	84	/* inner TCP header */

/*
 * A VXLAN frame of @len (>= 104) bytes carrying TCP/IPv4, as a guest hands one over for UDP
 * tunnel GSO: outer Ethernet and IPv4 (valid checksum), UDP 49152 -> 4789 (VXLAN) without
 * checksum, VXLAN with VNI 42, then frame_tcp4()'s frame of @len - 50 bytes (its TCP
 * checksum field the pseudo-header sum, for the device to finish).
 */
static inline void frame_vxlan4(uint8_t *f, size_t len, unsigned int seed)
{
	uint8_t *udp = f + VXLAN_OUTER_TH, *vx = udp + 8;

	frame_tcp4(f + 50, len - 50, seed);
	frame_eth_ip4(f, len, 17, 36, true);
	udp[0] = 0xc0;			/* 49152 */
	udp[2] = 4789 >> 8;
	udp[3] = 4789 & 0xff;
	udp[4] = (len - 34) >> 8;
	udp[5] = (len - 34) & 0xff;
	vx[0] = 0x08;			/* VNI valid */
	vx[6] = 42;			/* VNI 42 */
}

/*
 * A UDP/IPv4 frame of @len (>= 46) bytes, source port 1000 + @seq (one flow per frame),
 * destination 2000, to nobody, valid IP checksum, no UDP checksum, no DF; @seq big-endian
 * at byte 42 and a pattern of @seq and the offset after it. (vhost_backends' mk_udp.)
 */
static inline void frame_udp4_seq(uint8_t *f, size_t len, uint32_t seq)
{
	uint8_t *udp = f + 34;
	size_t i;

	frame_eth_ip4(f, len, 17, 28, false);
	udp[0] = (1000 + seq) >> 8;
	udp[1] = (1000 + seq) & 0xff;
	udp[2] = 2000 >> 8;
	udp[3] = 2000 & 0xff;
	udp[4] = (len - 34) >> 8;
	udp[5] = (len - 34) & 0xff;
	f[42] = seq >> 24;
	f[43] = seq >> 16;
	f[44] = seq >> 8;
	f[45] = seq;
	for (i = 46; i < len; i++)
		f[i] = (uint8_t)(i * 5 + seq * 3);
}

/* ---- comparing them -------------------------------------------------------------------- */

/* The offset of the first byte where @a and @b differ, or -1 if their @n bytes agree. */
static inline int first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i] != b[i])
			return (int)i;
	return -1;
}

/* ---- packet sockets on an interface -------------------------------------------------------- */

/*
 * A packet socket that sees frames arriving on interface @ifindex (the guest's TX,
 * injected by the tap) but not outgoing ones. With @vnet_hdr, each frame comes with
 * a struct virtio_net_hdr in front (PACKET_VNET_HDR), so GSO metadata is visible.
 */
static inline int pkt_capture_open(int ifindex, bool vnet_hdr)
{
	struct sockaddr_ll sll = {
		.sll_family = AF_PACKET,
		.sll_protocol = htons(ETH_P_ALL),
		.sll_ifindex = ifindex,
	};
	int one = 1, big = 8 << 20;
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -errno;
	if (setsockopt(s, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0 ||
	    (vnet_hdr && setsockopt(s, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0) ||
	    setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) < 0 ||
	    bind(s, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		int e = errno;

		close(s);
		return -e;
	}
	return s;
}

/* A packet socket for sending frames out of @ifindex (into the tap, i.e. the guest's RX). */
static inline int pkt_sender_open(void)
{
	int big = 8 << 20;
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -errno;
	setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	return s;
}

static inline int pkt_send(int s, int ifindex, const void *frame, size_t len)
{
	struct sockaddr_ll sll = {
		.sll_family = AF_PACKET,
		.sll_ifindex = ifindex,
		.sll_halen = ETH_ALEN,
	};
	ssize_t n = sendto(s, frame, len, 0, (struct sockaddr *)&sll, sizeof(sll));

	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EMSGSIZE;
}

/* Receives one frame (true length returned, even if truncated), -ETIMEDOUT on timeout. */
static inline ssize_t pkt_recv(int s, void *buf, size_t cap, int timeout_ms)
{
	struct pollfd p = { .fd = s, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	n = recv(s, buf, cap, MSG_TRUNC | MSG_DONTWAIT);
	return n < 0 ? -errno : n;
}

/* Discards anything queued on @s. */
static inline void pkt_drain(int s)
{
	char b[64];

	while (recv(s, b, sizeof(b), MSG_DONTWAIT | MSG_TRUNC) >= 0)
		;
}

#endif /* FRAMES_H */
