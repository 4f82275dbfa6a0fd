// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_zcopy: zero-copy TX (experimental_zcopytx=1): buffers in flight while the stack
 * holds them, clones, completion in place, the copy fallbacks, a queue ended with buffers
 * in flight.
 *
 * Every case runs against both devices, as the two variants of fixture `zcopy` of the
 * kernel's kselftest_harness.h (zcopy.vhost_net.<case>, zcopy.vhost_rs_net.<case>), each in
 * a process and network namespace of its own (vhost_case.h); a device that is not there
 * skips its tests. `-v vhost_rs_net` runs one device, `-t <case>` one case, `-l` lists them.
 *
 * Before its first test that runs (on a device that is there) it reloads vhost_net, and
 * vhost-rs.ko if loaded ($VHOST_RS_KO, by default ./vhost-rs.ko: run from the repository
 * root), with experimental_zcopytx=1, and at its exit with the default again.
 * Needs iproute2 (`ip`, `tc` with netem).
 */
#include "kselftest_harness.h"
#include "vhost_case.h"

/* ---- zero-copy TX ------------------------------------------------------------------------ */

/*
 * The zcopy_* cases run with both modules loaded with experimental_zcopytx=1 (main reloads
 * them around these cases). The guest's TX frames go from the tap into a bridge and out of
 * veth ports whose netem qdisc holds them for a while; a packet socket on each port's peer
 * captures them. No capture on the tap itself: a packet socket there would copy every
 * frame at once (skb_orphan_frags_rx), and nothing would stay in flight.
 */
#define ZC_PORTS 2
#define ZC_N 24	/* frames per burst: under a quarter of the ring, so all go zero-copy */

struct zc_net {
	struct tapc tc;
	int caps[ZC_PORTS], nports;
};

static void zc_net_close(struct zc_net *z)
{
	int i;

	for (i = 0; i < z->nports; i++)
		if (z->caps[i] >= 0)
			close(z->caps[i]);
	z->nports = 0;
	tapc_close(&z->tc);
}

/*
 * The tap in bridge zbr with @nports veth ports zvNa (in the bridge, port N delayed
 * (N + 1) * @delay_ms by netem) / zvNb (captured). With @tap_cap, the capture socket on the
 * tap stays open.
 */
static int zc_net_create(struct zc_net *z, int nports, int delay_ms, bool tap_cap)
{
	char a[16], b[16];
	int i, r;

	z->nports = 0;
	r = tapc_create(&z->tc, 0, 1500);
	if (r != R_PASS)
		return r;
	if (!tap_cap) {
		close(z->tc.cap);
		z->tc.cap = -1;
	}
	if (nports && system("command -v tc >/dev/null 2>&1"))
		CASE_SKIP("iproute2 `tc` not found");
	if (nports && run("ip link add zbr type bridge && ip link set zbr up && "
			  "ip link set %s master zbr", z->tc.t.name))
		FAIL("cannot make bridge zbr with %s", z->tc.t.name);
	for (i = 0; i < nports; i++) {
		snprintf(a, sizeof(a), "zv%da", i);
		snprintf(b, sizeof(b), "zv%db", i);
		z->caps[i] = -1;
		z->nports = i + 1;
		r = veth_create(a, b);
		if (r != R_PASS)
			return r;
		z->caps[i] = pkt_capture_open(if_nametoindex(b), false);
		if (z->caps[i] < 0)
			FAIL("capture socket on %s: %s", b, strerror(-z->caps[i]));
		if (run("ip link set %s master zbr", a))
			FAIL("cannot add %s to zbr", a);
		if (run("tc qdisc add dev %s root netem delay %dms limit 100000", a, delay_ms * (i + 1)))
			FAIL("cannot add netem to %s", a);
	}
	return R_PASS;
}

/*
 * vhost_net.ko (Linux 7.3), with zero-copy on, leaks a small object per queue closed or reset
 * with a tun/tap backend attached: the ubufs reference count, which vhost_net_vq_reset()
 * forgets without freeing. kmemleak reports them and the run would fail on the C module's
 * account; so the zcopy cases detach both backends before closing (harmless for ours), and
 * close or reset with buffers in flight on ours only (zcopy_inflight_end_reset_close skips
 * on vhost_net).
 */
static void zc_detach(struct dev *d)
{
	if (d->vfd >= 0) {
		set_backend(d->vfd, 0, -1);
		set_backend(d->vfd, 1, -1);
	}
}

/* Device @k of the case at @path, set up as QEMU does, both queues on the tap of @z. */
static int zc_dev(struct zc_net *z, struct dev *d, const char *path, int k)
{
	int r = dev_open(d, path, k);

	if (r == R_PASS)
		r = dev_setup(d, QEMU_FEATURES, -1);
	if (r == R_PASS)
		r = dev_backend(d, z->tc.t.fd);
	return r;
}

static uint8_t *tx_buf(struct dev *d, int head)
{
	return g_hva(&G, dev_slot(d->k) + (uint64_t)head * SLOT, NULL);
}

/*
 * Takes the pending TX used elements, in any order (zero-copy buffers return when the stack
 * lets go, copied ones at once): each must be a head posted and not yet returned, length 0.
 * Overwrites each returned buffer at once, as a guest reusing it would. Returns how many, or
 * -1 (with a diagnostic).
 */
static int zc_reclaim(struct dev *d, bool *out)
{
	uint32_t id, len;
	int n = 0, r;

	while ((r = vr_get_used(&d->tx, &id, &len)) != 0) {
		if (r < 0 || len != 0 || id >= VR_NUM || !out[id]) {
			ktap_diag("%s: TX used element {id %u, len %u}: %s", d->name, id, len,
				  r < 0 || id >= VR_NUM ? "not a head we posted" :
				  len ? "length not 0" : "returned twice");
			return -1;
		}
		out[id] = false;
		memset(tx_buf(d, id), 0xa5, SLOT);
		n++;
	}
	return n;
}

/* Posts frames[i] (@lens[i] bytes, seq i) for i < n, marking their heads in @out. */
static int zc_post(struct dev *d, uint8_t (*frames)[SLOT], const size_t *lens, int n, bool *out)
{
	int i, head;

	for (i = 0; i < n; i++) {
		head = dev_tx_add(d, frames[i], lens[i]);
		if (head < 0)
			FAIL("%s: TX ring full at frame %d", d->name, i);
		out[head] = true;
	}
	return R_PASS;
}

/* Every frame of @frames[0..n) with a length in @lens, exactly, in order, on capture @cap. */
static int zc_expect(int cap, const char *port, uint8_t (*frames)[SLOT], const size_t *lens, int n)
{
	static uint8_t buf[65536];
	int i = 0, diff;
	ssize_t got;

	while (i < n) {
		got = pkt_recv(cap, buf, sizeof(buf), TMO);
		if (got < 0)
			FAIL("%s: frame %d of %d not captured within %d ms", port, i, n, TMO);
		if (got < 18 || buf[12] != 0x88 || buf[13] != 0xb5)
			continue;	/* not ours */
		if (frame_seq(buf) != frame_seq(frames[i]) || (size_t)got != lens[i])
			FAIL("%s: captured seq %u (%zd bytes), expected seq %u (%zu bytes)", port,
			     frame_seq(buf), got, frame_seq(frames[i]), lens[i]);
		diff = first_diff(buf, frames[i], lens[i]);
		if (diff >= 0)
			FAIL("%s: frame %d differs at byte %d (%#x, sent %#x): the buffer was reused "
			     "while the stack still held it", port, i, diff, buf[diff], frames[i][diff]);
		i++;
	}
	return R_PASS;
}

static long long sysfs_counter(const char *ifname, const char *stat)
{
	char path[128], line[64];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", ifname, stat);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(line, sizeof(line), f))
		v = atoll(line);
	fclose(f);
	return v;
}

/*
 * Our counters after every buffer came back: each sent zero-copy completed exactly once
 * (with @in_place, every one without a copy in the stack).
 */
static int zc_counters(struct dev *d, long long min_zcopy, bool in_place)
{
	long long zc = counter(d, "tx", "zcopy");
	long long done = counter(d, "tx", "zcopy_done");
	long long copied = counter(d, "tx", "zcopy_copied");
	long long inflight = counter(d, "tx", "zcopy_inflight");

	if (!dev_ours(d)) {
		ktap_diag("%s: no zero-copy counters (vhost-net has none): not checked", d->name);
		return R_PASS;
	}
	ktap_diag("%s: zcopy %lld, completed in place %lld, copied by the stack %lld, in flight %lld",
		  d->name, zc, done, copied, inflight);
	if (zc < min_zcopy)
		FAIL("%s: %lld buffers went zero-copy, expected at least %lld", d->name, zc, min_zcopy);
	if (done + copied != zc || inflight != 0)
		FAIL("%s: %lld zero-copy sends, but %lld + %lld completions and %lld in flight",
		     d->name, zc, done, copied, inflight);
	if (in_place && done != zc)
		FAIL("%s: %lld of %lld zero-copy buffers completed in place", d->name, done, zc);
	return R_PASS;
}

static void zc_frames(uint8_t (*frames)[SLOT], size_t *lens, int n, uint32_t seq0, size_t len0,
		      size_t step)
{
	int i;

	for (i = 0; i < n; i++) {
		lens[i] = len0 + (size_t)i * step;
		frame_eth_seq(frames[i], lens[i], seq0 + i, NULL);
	}
}

/*
 * Posts @n frames (seq @seq0, @len0 + i * @step bytes), kicks, and takes the used buffers
 * back as they come (zc_reclaim()), for up to 20 s. *@first: ms from the kick to the first.
 */
static int zc_burst(struct dev *d, uint8_t (*frames)[SLOT], size_t *lens, int n, uint32_t seq0,
		    size_t len0, size_t step, long long *first)
{
	bool out[VR_NUM] = { 0 };
	long long t0;
	int r, got = 0, k;

	zc_frames(frames, lens, n, seq0, len0, step);
	r = zc_post(d, frames, lens, n, out);
	if (r != R_PASS)
		return r;
	*first = -1;
	t0 = now_ms();
	vr_kick(&d->tx);
	while (got < n && now_ms() - t0 < 4 * TMO) {
		k = zc_reclaim(d, out);
		if (k < 0)
			return R_FAIL;
		if (k && *first < 0)
			*first = now_ms() - t0;
		got += k;
		sleep_ms(1);
	}
	ktap_diag("%s: %d of %d buffers back, the first %lld ms after the kick", d->name, got, n, *first);
	if (got < n)
		FAIL("%s: only %d of %d TX buffers came back within %d ms", d->name, got, n, 4 * TMO);
	return R_PASS;
}

/*
 * A burst of large frames flooded by the bridge to two ports delayed 200 and 400 ms, with a
 * packet socket on the tap as well: three copies of each frame. Cloning an skb copies its
 * zero-copy pages (skb_clone() orphans them), so the stack lets go early here; whenever a
 * buffer comes back, the guest overwrites it at once, and not a byte of what the capture
 * and either port delivers may change. Every buffer comes back exactly once.
 */
static int case_zcopy_clones(const char *path)
{
	static uint8_t frames[ZC_N][SLOT];
	static size_t lens[ZC_N];
	struct zc_net z = { 0 };
	struct dev d = { .vfd = -1 };
	long long first;
	int r, i;

	r = zc_net_create(&z, ZC_PORTS, 200, true);
	if (r == R_PASS)
		r = zc_dev(&z, &d, path, 0);
	if (r == R_PASS)
		r = zc_burst(&d, frames, lens, ZC_N, 0x2c0000, 400, 45, &first);
	if (r == R_PASS)
		r = zc_expect(z.tc.cap, "the tap's capture", frames, lens, ZC_N);
	for (i = 0; i < z.nports && r == R_PASS; i++) {
		char port[16];

		snprintf(port, sizeof(port), "zv%db", i);
		r = zc_expect(z.caps[i], port, frames, lens, ZC_N);
	}
	/* The early completions (copies) count against zero-copy: after the first, the next
	 * 64 packets go by copy (vhost_net_tx_select_zcopy()). */
	if (r == R_PASS)
		r = zc_counters(&d, 1, false);
	zc_detach(&d);
	dev_close(&d);
	zc_net_close(&z);
	return r;
}

/*
 * A burst of large frames of an ethertype nobody handles, into the tap alone: the stack
 * frees them unread, without copying, so the guest's pages are used in place (as when a
 * NIC sends them by DMA). Each buffer comes back exactly once; ours counts every one as
 * completed in place.
 */
static int case_zcopy_in_place(const char *path)
{
	static uint8_t frames[ZC_N][SLOT];
	static size_t lens[ZC_N];
	struct zc_net z = { 0 };
	struct dev d = { .vfd = -1 };
	long long first;
	int r;

	r = zc_net_create(&z, 0, 0, false);
	if (r == R_PASS)
		r = zc_dev(&z, &d, path, 0);
	if (r == R_PASS)
		r = zc_burst(&d, frames, lens, ZC_N, 0x2c1000, 300, 70, &first);
	if (r == R_PASS)
		r = zc_counters(&d, ZC_N, true);
	zc_detach(&d);
	dev_close(&d);
	zc_net_close(&z);
	return r;
}

/*
 * Sends a burst into a 400 ms qdisc and, once the tap has taken every frame and none has
 * come back, ends the queue with @how: VHOST_NET_SET_BACKEND -1 on TX ("detach"),
 * VHOST_RESET_OWNER ("reset") or close ("close"). That must wait for the stack to let go
 * (return no sooner than 400 ms after the kick); then the guest overwrites the buffers and
 * the port must still send every frame intact. After a detach every buffer must be in the
 * used ring.
 */
static int zc_end_inflight(struct dev *d, struct zc_net *z, const char *how, uint32_t seq0)
{
	static uint8_t frames[ZC_N][SLOT];
	static size_t lens[ZC_N];
	bool out[VR_NUM] = { 0 };
	long long t0, t1, rx0, took;
	int r, i, n;

	rx0 = sysfs_counter(z->tc.t.name, "rx_packets");
	zc_frames(frames, lens, 8, seq0, 1000, 64);
	r = zc_post(d, frames, lens, 8, out);
	if (r != R_PASS)
		return r;
	t0 = now_ms();
	vr_kick(&d->tx);
	while (sysfs_counter(z->tc.t.name, "rx_packets") < rx0 + 8) {
		if (now_ms() - t0 > TMO)
			FAIL("%s: the tap took %lld of 8 frames in %d ms", d->name,
			     sysfs_counter(z->tc.t.name, "rx_packets") - rx0, TMO);
		sleep_ms(1);
	}
	if (vr_used_pending(&d->tx))
		FAIL("%s: %u buffers came back while the qdisc holds them (%lld ms after the kick)",
		     d->name, vr_used_pending(&d->tx), now_ms() - t0);
	t1 = now_ms();
	if (!strcmp(how, "detach"))
		r = set_backend(d->vfd, 1, -1);
	else if (!strcmp(how, "reset"))
		r = ioctl(d->vfd, VHOST_RESET_OWNER) < 0 ? -errno : 0;
	else
		r = close(d->vfd) < 0 ? -errno : 0;
	if (!strcmp(how, "close"))
		d->vfd = -1;
	took = now_ms() - t0;
	ktap_diag("%s: %s with 8 buffers in flight took %lld ms (%lld ms after the kick)", d->name,
		  how, now_ms() - t1, took);
	if (r)
		FAIL("%s: %s: %s", d->name, how, errno_name(-r));
	if (took < 380)
		FAIL("%s: %s returned %lld ms after the kick, before the 400 ms qdisc let go of "
		     "the buffers", d->name, how, took);
	if (!strcmp(how, "detach")) {
		n = zc_reclaim(d, out);
		if (n != 8)
			FAIL("%s: %d of 8 buffers in the used ring when the detach returned", d->name, n);
		r = zc_counters(d, 8, false);
		if (r != R_PASS)
			return r;
	} else {
		for (i = 0; i < VR_NUM; i++)
			if (out[i])
				memset(tx_buf(d, i), 0xa5, SLOT);
	}
	return zc_expect(z->caps[0], "zv0b", frames, lens, 8);
}

/*
 * A detach with buffers in flight; with @reset_close then, on the same device with its
 * backend back, a RESET_OWNER, and on a second device (the first one's rings are gone with
 * its owner) a close, both with buffers in flight.
 */
static int zc_inflight_end(const char *path, bool reset_close)
{
	struct zc_net z = { 0 };
	struct dev d = { .vfd = -1 }, d2 = { .vfd = -1 };
	int r;

	r = zc_net_create(&z, 1, 400, false);
	if (r == R_PASS)
		r = zc_dev(&z, &d, path, 0);
	if (r == R_PASS)
		r = zc_end_inflight(&d, &z, "detach", 0x2d0000);
	if (r == R_PASS && reset_close)
		r = dev_backend(&d, z.tc.t.fd);
	if (r == R_PASS && reset_close)
		r = zc_end_inflight(&d, &z, "reset", 0x2d0100);
	if (r == R_PASS && reset_close)
		r = zc_dev(&z, &d2, path, 1);
	if (r == R_PASS && reset_close)
		r = zc_end_inflight(&d2, &z, "close", 0x2d0200);
	zc_detach(&d);
	zc_detach(&d2);
	dev_close(&d);
	dev_close(&d2);
	zc_net_close(&z);
	return r;
}

static int case_zcopy_inflight_end_detach(const char *path)
{
	return zc_inflight_end(path, false);
}

/* The detach, then the reset and the close: on ours only (see zc_detach()). */
static int case_zcopy_inflight_end_reset_close(const char *path)
{
	if (!strcmp(path, "/dev/vhost-net"))
		CASE_SKIP("on ours only: vhost_net.ko leaks its ubufs on a reset or close with "
			  "zero-copy buffers in flight, and kmemleak would fail the run on its account");
	return zc_inflight_end(path, true);
}

/*
 * What goes by copy even with zero-copy on: small frames (under 256 bytes) come back at once
 * while large ones before them are still held by the qdisc, and past the limit of buffers
 * in flight (a quarter of the 256-entry ring) large frames are copied and come back at once
 * too. Every buffer comes back exactly once and every frame leaves intact.
 */
static int case_zcopy_fallbacks(const char *path)
{
	enum { NBIG = 4, NSMALL = 4, NMAX = 100 };
	static uint8_t frames[NMAX][SLOT];
	static size_t lens[NMAX];
	bool out[VR_NUM] = { 0 };
	struct zc_net z = { 0 };
	struct dev d = { .vfd = -1 };
	long long t0;
	int r, n, got;

	r = zc_net_create(&z, 1, 400, false);
	if (r == R_PASS)
		r = zc_dev(&z, &d, path, 0);
	if (r != R_PASS)
		goto out;
	/* Large, then small frames. */
	zc_frames(frames, lens, NBIG, 0x2e0000, 1200, 1);
	zc_frames(frames + NBIG, lens + NBIG, NSMALL, 0x2e0000 + NBIG, 100, 10);
	r = zc_post(&d, frames, lens, NBIG + NSMALL, out);

	if (r != R_PASS)
		goto out;
	t0 = now_ms();
	vr_kick(&d.tx);
	got = 0;
	while (got < NSMALL && now_ms() - t0 < TMO) {
		n = zc_reclaim(&d, out);
		if (n < 0) {
			r = R_FAIL;
			goto out;
		}
		got += n;
		sleep_ms(1);
	}
	/*
	 * The large ones cannot come back before the qdisc lets go of them (400 ms after they
	 * were sent); if the machine took that long for the small ones, the order says nothing.
	 */
	if (now_ms() - t0 >= 380) {
		ktap_diag("note: %s: the small frames took %lld ms to come back; the order against "
			  "the large ones is not checked", d.name, now_ms() - t0);
	} else {
		/* A fresh ring hands out heads 0, 1, ... in posting order: large ones are 0..NBIG-1. */
		for (n = 0; n < NBIG; n++)
			if (!out[n]) {
				ktap_diag("%s: large frame %d came back within %lld ms, while the qdisc "
					  "held it", d.name, n, now_ms() - t0);
				r = R_FAIL;
				goto out;
			}
		if (got != NSMALL) {
			ktap_diag("%s: %d buffers back %lld ms after the kick; expected the %d small "
				  "ones, copied", d.name, got, now_ms() - t0, NSMALL);
			r = R_FAIL;
			goto out;
		}
	}
	got = 0;
	for (n = 0; n < NBIG; n++)
		got += out[n];
	if (got && (!vr_wait_used(&d.tx, got, 2 * TMO) || zc_reclaim(&d, out) != got)) {
		ktap_diag("%s: the %d large buffers did not come back", d.name, got);
		r = R_FAIL;
		goto out;
	}
	r = zc_expect(z.caps[0], "zv0b", frames, lens, NBIG + NSMALL);
	if (r != R_PASS)
		goto out;
	/*
	 * A new TX backend (the same tap): the stack copied the frames above when the veth
	 * passed them on, which counts against zero-copy for the next 64 packets; a new
	 * backend starts afresh, in both modules.
	 */
	r = set_backend(d.vfd, 1, -1);
	if (!r)
		r = set_backend(d.vfd, 1, z.tc.t.fd);
	if (r) {
		ktap_diag("%s: TX backend again: %s", d.name, errno_name(-r));
		r = R_FAIL;
		goto out;
	}
	/* Past the limit: NMAX large frames at once; the ones past it come back early. */
	zc_frames(frames, lens, NMAX, 0x2f0000, 300, 8);
	r = zc_post(&d, frames, lens, NMAX, out);
	if (r != R_PASS)
		goto out;
	t0 = now_ms();
	vr_kick(&d.tx);
	got = 0;
	while (now_ms() - t0 < 380) {
		n = zc_reclaim(&d, out);
		if (n < 0) {
			r = R_FAIL;
			goto out;
		}
		got += n;
		sleep_ms(1);
	}
	/*
	 * Within 380 ms, before the qdisc lets go of any zero-copy buffer: the copies past the
	 * limit (a quarter of the ring: 64 in flight) may be back, the others may not.
	 */
	ktap_diag("%s: %d of %d large buffers back within 380 ms (held: %d)", d.name, got, NMAX,
		  NMAX - got);
	if (got > NMAX - 64) {
		ktap_diag("%s: more than %d buffers back while the qdisc holds the zero-copy ones",
			  d.name, NMAX - 64);
		r = R_FAIL;
		goto out;
	}
	if (!got)
		ktap_diag("note: %s: no copy back within 380 ms (a slow machine); the fallback is "
			  "checked by our counter only", d.name);
	while (got < NMAX && now_ms() - t0 < 4 * TMO) {
		n = zc_reclaim(&d, out);
		if (n < 0) {
			r = R_FAIL;
			goto out;
		}
		got += n;
		sleep_ms(1);
	}
	if (got < NMAX) {
		ktap_diag("%s: %d of %d buffers came back", d.name, got, NMAX);
		r = R_FAIL;
		goto out;
	}
	r = zc_expect(z.caps[0], "zv0b", frames, lens, NMAX);
	if (r == R_PASS && dev_ours(&d) && counter(&d, "tx", "zcopy_fallbacks") < 1) {
		ktap_diag("%s: no copy fallback counted", d.name);
		r = R_FAIL;
	}
	if (r == R_PASS)
		r = zc_counters(&d, NBIG + 1, false);
out:
	zc_detach(&d);
	dev_close(&d);
	zc_net_close(&z);
	return r;
}

/* Reads module parameter @param of @mod: its integer value, or -1. */
static int module_param_int(const char *mod, const char *param)
{
	char path[128], line[32];
	int v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/%s/parameters/%s", mod, param);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(line, sizeof(line), f))
		v = atoi(line);
	fclose(f);
	return v;
}

/*
 * Reloads vhost_net and vhost-rs.ko (the latter only if it was loaded; from $VHOST_RS_KO,
 * default ./vhost-rs.ko) with experimental_zcopytx=@on. 0, or -1 with a diagnostic.
 */
static int zcopy_reload(int on)
{
	bool rs = access("/sys/module/vhost_rs", F_OK) == 0;
	const char *ko = getenv("VHOST_RS_KO") ? getenv("VHOST_RS_KO") : "./vhost-rs.ko";

	ktap_diag("reloading vhost_net%s with experimental_zcopytx=%d", rs ? " and vhost-rs.ko" : "", on);
	if (run("modprobe -r vhost_net && modprobe vhost_net experimental_zcopytx=%d", on) ||
	    (rs && run("rmmod vhost_rs && insmod '%s' experimental_zcopytx=%d", ko, on)))
		return -1;
	if (module_param_int("vhost_net", "experimental_zcopytx") != on ||
	    (rs && module_param_int("vhost_rs", "experimental_zcopytx") != on)) {
		ktap_diag("experimental_zcopytx did not take: vhost_net %d, vhost_rs %d",
			  module_param_int("vhost_net", "experimental_zcopytx"),
			  module_param_int("vhost_rs", "experimental_zcopytx"));
		return -1;
	}
	return 0;
}

/*
 * The modules with zero-copy on for the tests, the defaults after them: zcopy_on() is every
 * test's prepare hook (vcase_setup(): after the device was found, before the test's own
 * namespaces) and reloads them the first time; zcopy_off() reloads them at the program's
 * exit if zcopy_on() tried. So `-l`, filtered-out tests and missing devices reload nothing.
 * zc_state, shared by the tests' processes: 0 not tried, 1 on, -1 failed (every test then
 * fails at its setup, without running; the first one's diagnostics say why).
 */
static int *zc_state;

static int zcopy_on(void)
{
	if (!*zc_state)
		*zc_state = zcopy_reload(1) ? -1 : 1;
	return *zc_state < 0 ? -1 : 0;
}

static void zcopy_off(void)
{
	if (*zc_state && zcopy_reload(0))
		ktap_diag("could not reload the modules with their defaults");
}

VCASE_FIXTURE(zcopy, zcopy_on)

TEST_F_TIMEOUT(zcopy, zcopy_clones, CASE_TMO_S)
{
	vcase_run(_metadata, case_zcopy_clones, variant->path);
}

TEST_F_TIMEOUT(zcopy, zcopy_in_place, CASE_TMO_S)
{
	vcase_run(_metadata, case_zcopy_in_place, variant->path);
}

TEST_F_TIMEOUT(zcopy, zcopy_inflight_end_detach, CASE_TMO_S)
{
	vcase_run(_metadata, case_zcopy_inflight_end_detach, variant->path);
}

TEST_F_TIMEOUT(zcopy, zcopy_inflight_end_reset_close, CASE_TMO_S)
{
	vcase_run(_metadata, case_zcopy_inflight_end_reset_close, variant->path);
}

TEST_F_TIMEOUT(zcopy, zcopy_fallbacks, CASE_TMO_S)
{
	vcase_run(_metadata, case_zcopy_fallbacks, variant->path);
}

/* TEST_HARNESS_MAIN, with zc_state shared before the first test and zcopy_off() at exit. */
int main(int argc, char **argv)
{
	zc_state = mmap(NULL, sizeof(*zc_state), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (zc_state == MAP_FAILED) {
		ktap_diag("mmap: %s", strerror(errno));
		return KSFT_FAIL;
	}
	atexit(zcopy_off);
	return test_harness_run(argc, argv);
}
