// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_dpdk: an independent client. DPDK's virtio-user PMD, with its vhost-kernel backend,
 * drives the device by path as QEMU would, but from DPDK's own virtio driver (its rings, its
 * feature negotiation, its IN_ORDER code): dpdk-testpmd (Debian's dpdk-dev, unpacked under
 * the cache by make setup; $VHOST_RS_TESTPMD, scripts/common.sh) with
 *   --no-huge --no-pci --vdev net_virtio_user0,path=DEV,iface=TAP,in_order=1,...
 * Linux 6.1 guests never negotiate IN_ORDER; DPDK does, so this is where IN_ORDER meets a
 * driver we did not write.
 *
 * Both devices (fixture `dpdk`, variants vhost_net and vhost_rs_net, vcase.h), the same
 * expectations (run_io()): the PMD negotiated what it was asked to (its debug log); frames it
 * sends leave the tap, frames sent into the tap reach it and come back out (testpmd's io
 * mode) byte for byte; its counters agree.
 *   in_order: split rings, IN_ORDER, mergeable RX buffers on (port 0) and off (port 1);
 *   packed:   packed_vq=1, with IN_ORDER and mergeable buffers (port 0), and without either
 *             (port 1). Ours negotiates the packed ring; vhost_net.ko does not offer it (7.3
 *             has no packed engine), so there the PMD falls back to split and the test says
 *             so: the traffic expectations are the same.
 * Each case is one testpmd with two virtio-user ports on two opens of the device, each with a
 * tap of its own, forwarding each port to itself (--port-topology=loop): a testpmd start and
 * stop cost about a minute under TCG, and one session instead of two halves the case.
 */
#include <signal.h>
#include <sys/wait.h>
#include <net/if.h>

#include "vcase.h"
#include "frames.h"

#define TX_BURSTS_S "4"	/* bursts of 32 frames testpmd sends (start tx_first N) */
#define TX_N	128	/* all of them: half the ring, so that none waits for room */
#define RX_N	300	/* frames sent into the tap, 60 to 359 bytes */
#define NPORTS	2	/* virtio-user ports per testpmd, taps dpdktap0 and dpdktap1 */

static uint8_t frame[2048], got[2048];

/* The wrapper make setup writes (scripts/setup.sh, step 6). */
static const char *testpmd(void)
{
	const char *p = getenv("VHOST_RS_TESTPMD");

	return p && *p ? p : "dpdk-testpmd";
}

struct pmd {
	pid_t pid;
	int in, out;		/* testpmd's stdin (to stop it), stdout+stderr */
	char log[1 << 20];
	size_t len;
};

/* What a session asks of the PMD. */
struct pmd_opts {
	bool mrg, in_order, packed;
};

/* Starts testpmd on @dev in forwarding mode @mode, port i with the ring options @o[i]. */
static int pmd_start(struct pmd *p, const char *dev, const char *mode, const struct pmd_opts *o)
{
	char vdev[NPORTS][256], prefix[64];
	int in[2], out[2], i;

	for (i = 0; i < NPORTS; i++)
		snprintf(vdev[i], sizeof(vdev[i]),
			 "net_virtio_user%d,path=%s,iface=dpdktap%d,queue_size=256,in_order=%d,"
			 "mrg_rxbuf=%d,packed_vq=%d", i, dev, i, o[i].in_order, o[i].mrg,
			 o[i].packed);
	snprintf(prefix, sizeof(prefix), "--file-prefix=vhost-dpdk-%d", getpid());
	if (pipe(in) || pipe(out))
		return -errno;
	p->len = 0;
	p->pid = fork();
	if (p->pid < 0)
		return -errno;
	if (p->pid == 0) {
		/* Two lcores: the main one and one forwarding. */
		char *argv[] = { (char *)testpmd(), "-l", "0-1", "--no-huge", "-m", "128", "--no-pci",
				 "--iova-mode=va", prefix, "--vdev", vdev[0], "--vdev", vdev[1],
				 "--log-level=pmd.net.virtio.*:debug", "--", "-i", "--nb-cores=1",
				 "--forward-mode", (char *)mode, "--port-topology=loop",
				 "--txpkts=64", "--rxq=1", "--txq=1",
				 /* its default pool (155456 mbufs) would not fit in -m 128 */
				 "--total-num-mbufs=4096",
				 NULL };

		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		close(in[1]);
		close(out[0]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->in = in[1];
	p->out = out[0];
	fcntl(p->out, F_SETFL, O_NONBLOCK);
	return 0;
}

/* Collects what testpmd printed so far (waiting up to @ms for more). */
static void pmd_read(struct pmd *p, int ms)
{
	struct pollfd pf = { .fd = p->out, .events = POLLIN };
	ssize_t n;

	while (poll(&pf, 1, ms) == 1) {
		n = read(p->out, p->log + p->len, sizeof(p->log) - 1 - p->len);
		if (n <= 0)
			break;
		p->len += n;
		ms = 0;
	}
	p->log[p->len] = 0;
}

/* Waits until testpmd prints @what after byte @from of its output (true), or @ms pass or
 * it exits (false). */
static bool pmd_wait_for(struct pmd *p, size_t from, const char *what, int ms)
{
	long long end = now_ms() + ms;

	while (now_ms() < end) {
		pmd_read(p, 200);
		if (strstr(p->log + from, what))
			return true;
		if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
			p->pid = -1;
			pmd_read(p, 0);
			return strstr(p->log + from, what) != NULL;
		}
	}
	return false;
}

/* One command at testpmd's prompt (-i); true when it printed @what after it. */
static bool pmd_cmd(struct pmd *p, const char *cmd, const char *what, int ms)
{
	size_t from = p->len;

	if (p->pid <= 0 || write(p->in, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
		return false;
	return pmd_wait_for(p, from, what, ms);
}

/* Ends testpmd (quit), collects the rest of its output; its exit status. */
static int pmd_stop(struct pmd *p)
{
	int st = -1;
	long long end = now_ms() + 60000;

	/* Never kill(-1, ...): p->pid is -1 once testpmd has exited. */
	if (write(p->in, "quit\n", 5) != 5 && p->pid > 0)
		kill(p->pid, SIGINT);
	while (p->pid > 0 && now_ms() < end) {
		pmd_read(p, 200);
		if (waitpid(p->pid, &st, WNOHANG) == p->pid)
			p->pid = -1;
	}
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &st, 0);
		p->pid = -1;
	}
	pmd_read(p, 0);
	close(p->in);
	close(p->out);
	return st;
}

/* The number after @key in the last statistics block of port @port ("Forward statistics"
 * after stop, "NIC statistics" of show port stats); -1 if none. */
static long long pmd_stat(const struct pmd *p, int port, const char *key)
{
	const char *blk = NULL, *s = p->log, *k, *end;
	char what[32];

	snprintf(what, sizeof(what), "statistics for port %d", port);
	while ((s = strstr(s, what))) {
		blk = s;
		s++;
	}
	if (!blk || !(k = strstr(blk, key)))
		return -1;
	/* Not past the block: the next one starts with a row of '-' or '+'. */
	end = strstr(blk, "\n  ---");
	if (!end)
		end = strstr(blk, "\n  +++");
	if (end && k > end)
		return -1;
	return strtoll(k + strlen(key), NULL, 10);
}

/* Prints the lines of testpmd's output that say what went wrong, and its last lines. */
static void pmd_dump(const struct pmd *p)
{
	const char *s = p->log, *tail = p->log + p->len;
	int n = 0;

	while (tail > p->log && n < 12)
		n += *--tail == '\n';
	n = 0;

	while (*s && n < 60) {
		const char *e = strchr(s, '\n');
		int len = e ? (int)(e - s) : (int)strlen(s);

		if (strcasestr(s, "error") || strcasestr(s, "fail") || strcasestr(s, "feature") ||
		    strcasestr(s, "packets") || strcasestr(s, "cannot")) {
			ktap_diag("  testpmd: %.*s", len, s);
			n++;
		}
		s = e ? e + 1 : s + len;
		if (s >= tail)
			break;
	}
	for (s = tail; *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : s + strlen(s)) {
		int len = strchr(s, '\n') ? (int)(strchr(s, '\n') - s) : (int)strlen(s);

		if (len)
			ktap_diag("  testpmd: %.*s", len, s);
	}
}

/* The features the PMD's debug log shows port @port negotiated ("features after
 * negotiate = <hex>", virtio_ethdev_negotiate_features(); ports initialise in order); 0 if
 * none. */
static unsigned long long pmd_features(const struct pmd *p, int port)
{
	const char *key = "features after negotiate = ", *s = strstr(p->log, key);

	while (s && port--)
		s = strstr(s + 1, key);
	return s ? strtoull(s + strlen(key), NULL, 16) : 0;
}

/*
 * Waits for the tap the PMD creates, then brings it up (as QEMU's scripts do; the PMD
 * leaves it down, and a down tap takes no frame either way) with IPv6 off, so that the
 * stack sends nothing of its own into it. Its ifindex, or 0.
 */
static int tap_up(const char *name, int ms)
{
	long long end = now_ms() + ms;
	struct ifreq ifr = { 0 };
	char path[128];
	int i, s;

	while (!(i = if_nametoindex(name)) && now_ms() < end)
		sleep_ms(50);
	if (!i)
		return 0;
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
	sysctl_write(path, "1");
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		i = 0;
	ifr.ifr_flags |= IFF_UP | IFF_NOARP;
	if (i && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		i = 0;
	if (s >= 0)
		close(s);
	return i;
}

/* Starts testpmd on @dev and waits for its prompt, then brings its taps up: 0 and their
 * ifindexes in @ifi, or R_FAIL. */
static int pmd_up(struct pmd *p, const char *dev, const char *mode, const struct pmd_opts *o,
		  int *ifi)
{
	char tap[16];
	int i;

	if (access(testpmd(), X_OK))
		FAIL("%s: %s (make setup unpacks it)", testpmd(), strerror(errno));
	if (pmd_start(p, dev, mode, o))
		FAIL("starting testpmd: %s", strerror(errno));
	/* Two ports under TCG: about a minute; more on a loaded machine. */
	if (!pmd_wait_for(p, 0, "testpmd> ", 200000)) {
		pmd_stop(p);
		pmd_dump(p);
		FAIL("testpmd on %s did not come up", dev);
	}
	for (i = 0; i < NPORTS; i++) {
		snprintf(tap, sizeof(tap), "dpdktap%d", i);
		ifi[i] = tap_up(tap, 5000);
		if (!ifi[i]) {
			pmd_stop(p);
			FAIL("testpmd on %s: no tap %s, or it cannot be brought up", dev, tap);
		}
	}
	return 0;
}

/* What came out of one port's tap. */
struct port_io {
	int cap, n_tx, n_rx, sent, bad;
};

/* Reads frames from the ports' taps into @io until each has @want (per @rx: our frames back,
 * else testpmd's own) or nothing more came for 5 s. */
static void collect(struct port_io *io, bool rx, int want)
{
	long long end = now_ms() + 5000;
	int i, done;
	ssize_t len;

	do {
		done = 0;
		for (i = 0; i < NPORTS; i++) {
			int *n = rx ? &io[i].n_rx : &io[i].n_tx;

			if (*n >= want) {
				done++;
				continue;
			}
			len = pkt_recv(io[i].cap, got, sizeof(got), 100);
			if (len <= 0)
				continue;
			if (rx) {
				/* Ours back: the length tells which (60 + i). */
				frame_eth(frame, len, len - 60);
				if (len < 60 || len >= 60 + RX_N || first_diff(got, frame, len) >= 0)
					io[i].bad++;
			} else if (len != 64 || got[12] != 0x08 || got[13] != 0) {
				io[i].bad++;
			}
			(*n)++;
			end = now_ms() + 5000;
		}
	} while (done < NPORTS && now_ms() < end);
}

/*
 * One testpmd session on @dev, interactive, in io mode (what a port receives it sends back
 * out of it, unchanged), port i with the ring options @o[i], on its own tap:
 *   TX: `start tx_first 4`: TX_N 64-byte IPv4 frames from its txonly engine on each port;
 *       exactly those leave each tap;
 *   RX: RX_N frames of 60 to 359 bytes sent into each tap (a pause every 32, so that the
 *       ring's 256 buffers always have room) come back out of it byte for byte;
 * and its counters per port, after `stop`: RX_N received, none dropped, TX_N + RX_N sent;
 * and the features each port negotiated.
 */
static int run_io(const char *dev, const struct pmd_opts *o)
{
	static struct pmd p;
	struct port_io io[NPORTS];
	int ifi[NPORTS], snd = -1, i, k, r = R_FAIL, ok = 0;
	/* vhost_net.ko offers no packed ring: there the PMD must fall back to split. */
	bool ours = strstr(dev, "vhost-rs") != NULL;

	memset(io, 0, sizeof(io));
	for (i = 0; i < NPORTS; i++)
		io[i].cap = -1;
	signal(SIGPIPE, SIG_IGN);	/* testpmd may be gone when we write to it */
	if (pmd_up(&p, dev, "io", o, ifi) != 0)
		return R_FAIL;
	for (i = 0; i < NPORTS; i++)
		io[i].cap = pkt_capture_open(ifi[i], false);
	snd = pkt_sender_open();
	if (io[0].cap < 0 || io[1].cap < 0 || snd < 0 ||
	    !pmd_cmd(&p, "start tx_first " TX_BURSTS_S "\n", "testpmd> ", 60000)) {
		ktap_diag("testpmd on %s: capture sockets %d %d, packet socket %d, or `start "
			  "tx_first` failed", dev, io[0].cap, io[1].cap, snd);
		goto out;
	}
	/* Their TX_N frames each, until all came or nothing more for 5 s. */
	collect(io, false, TX_N);
	for (k = 0; k < RX_N; k++) {
		frame_eth(frame, 60 + k, k);
		for (i = 0; i < NPORTS; i++)
			if (!pkt_send(snd, ifi[i], frame, 60 + k))
				io[i].sent++;
		if (k % 32 == 31)
			sleep_ms(5);
	}
	collect(io, true, RX_N);
	if (!pmd_cmd(&p, "stop\n", "Done.", 60000))
		ktap_diag("%s: testpmd did not stop forwarding", dev);
out:
	pmd_stop(&p);
	for (i = 0; i < NPORTS; i++)
		if (io[i].cap >= 0)
			close(io[i].cap);
	if (snd >= 0)
		close(snd);
	for (i = 0; i < NPORTS; i++) {
		long long rx = pmd_stat(&p, i, "RX-packets: "), drop = pmd_stat(&p, i, "RX-dropped: ");
		long long tx = pmd_stat(&p, i, "TX-packets: ");
		unsigned long long feat = pmd_features(&p, i);
		bool want_packed = o[i].packed && ours;
		char what[96];

		snprintf(what, sizeof(what), "port %d in_order=%d,mrg_rxbuf=%d,packed_vq=%d", i,
			 o[i].in_order, o[i].mrg, o[i].packed);
		if (!feat || !(feat & (1ULL << 35)) != !o[i].in_order ||
		    !(feat & (1ULL << 34)) != !want_packed || !(feat & (1ULL << 15)) != !o[i].mrg) {
			ktap_diag("%s: %s: the PMD negotiated %#llx: IN_ORDER %s, packed ring %s, "
				  "MRG_RXBUF %s; expected %s, %s, %s", dev, what, feat,
				  feat & (1ULL << 35) ? "on" : "off", feat & (1ULL << 34) ? "on" : "off",
				  feat & (1ULL << 15) ? "on" : "off", o[i].in_order ? "on" : "off",
				  want_packed ? "on" : "off", o[i].mrg ? "on" : "off");
		} else if (io[i].n_tx != TX_N || io[i].sent != RX_N || io[i].n_rx != RX_N ||
			   io[i].bad || rx != RX_N || drop || tx != TX_N + RX_N) {
			ktap_diag("%s: %s: on its tap %d of testpmd's %d frames, %d of our %d back (%d "
				  "sent), %d wrong; testpmd counted RX %lld (dropped %lld), TX %lld; "
				  "expected RX %d, TX %d, none dropped", dev, what, io[i].n_tx, TX_N,
				  io[i].n_rx, RX_N, io[i].sent, io[i].bad, rx, drop, tx, RX_N,
				  TX_N + RX_N);
		} else {
			ktap_diag("%s: %s: %d frames out of testpmd, %d in and back, byte for byte%s",
				  dev, what, TX_N, RX_N, o[i].packed && !ours ?
				  " (split ring: vhost_net.ko offers no packed ring, a difference on "
				  "purpose)" : "");
			ok++;
		}
	}
	if (ok == NPORTS)
		r = R_PASS;
	else
		pmd_dump(&p);
	return r;
}

static int case_in_order(const char *dev)
{
	static const struct pmd_opts o[NPORTS] = {
		{ .mrg = true, .in_order = true },
		{ .mrg = false, .in_order = true },
	};

	return run_io(dev, o);
}

static int case_packed(const char *dev)
{
	static const struct pmd_opts o[NPORTS] = {
		{ .mrg = true, .in_order = true, .packed = true },
		{ .packed = true },
	};

	return run_io(dev, o);
}

VCASE_FIXTURE(dpdk, NULL);

TEST_F_TIMEOUT(dpdk, in_order, CASE_TMO_S)
{
	vcase_run(_metadata, case_in_order, self->path);
}

TEST_F_TIMEOUT(dpdk, packed, CASE_TMO_S)
{
	vcase_run(_metadata, case_packed, self->path);
}

TEST_HARNESS_MAIN
