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
 * expectations (run_io()): the PMD negotiated IN_ORDER (its debug log); frames it sends
 * leave the tap, frames sent into the tap reach it and come back out (testpmd's io mode)
 * byte for byte; its counters agree. With mergeable RX buffers on (in_order=1,mrg_rxbuf=1)
 * and, as a second session, off.
 */
#include <signal.h>
#include <sys/wait.h>
#include <net/if.h>

#include "vcase.h"
#include "frames.h"

#define TX_BURSTS_S "4"	/* bursts of 32 frames testpmd sends (start tx_first N) */
#define TX_N	128	/* all of them: half the ring, so that none waits for room */
#define RX_N	300	/* frames sent into the tap, 60 to 359 bytes */
#define TAPNAME	"dpdktap0"

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

/* Starts testpmd on @dev in forwarding mode @mode, mergeable RX buffers per @mrg. */
static int pmd_start(struct pmd *p, const char *dev, const char *mode, bool mrg)
{
	char vdev[256], prefix[64];
	int in[2], out[2];

	snprintf(vdev, sizeof(vdev),
		 "net_virtio_user0,path=%s,iface=" TAPNAME ",queue_size=256,in_order=1,mrg_rxbuf=%d",
		 dev, mrg);
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
				 "--iova-mode=va", prefix, "--vdev", vdev,
				 "--log-level=pmd.net.virtio.*:debug", "--", "-i", "--nb-cores=1",
				 "--forward-mode", (char *)mode, "--txpkts=64", "--rxq=1", "--txq=1",
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

/* The number after @key in the last statistics block of port 0 ("Forward statistics"
 * after stop, "NIC statistics" of show port stats); -1 if none. */
static long long pmd_stat(const struct pmd *p, const char *key)
{
	const char *blk = NULL, *s = p->log, *k;

	while ((s = strstr(s, "statistics for port 0"))) {
		blk = s;
		s++;
	}
	if (!blk || !(k = strstr(blk, key)))
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

/* Whether the PMD's debug log shows IN_ORDER (bit 35) in the features it negotiated
 * ("features after negotiate = <hex>", virtio_ethdev_negotiate_features()). */
static bool pmd_in_order(const struct pmd *p)
{
	const char *key = "features after negotiate = ", *s = strstr(p->log, key);

	return s && (strtoull(s + strlen(key), NULL, 16) & (1ULL << 35));
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

/* Starts testpmd on @dev and waits for its prompt, then brings its tap up; the ifindex. */
static int pmd_up(struct pmd *p, const char *dev, const char *mode, bool mrg)
{
	int ifi;

	if (access(testpmd(), X_OK))
		FAIL("%s: %s (make setup unpacks it)", testpmd(), strerror(errno));
	if (pmd_start(p, dev, mode, mrg))
		FAIL("starting testpmd: %s", strerror(errno));
	if (!pmd_wait_for(p, 0, "testpmd> ", 120000)) {
		pmd_stop(p);
		pmd_dump(p);
		FAIL("testpmd on %s did not come up", dev);
	}
	ifi = tap_up(TAPNAME, 5000);
	if (!ifi) {
		pmd_stop(p);
		FAIL("testpmd on %s: no tap %s, or it cannot be brought up", dev, TAPNAME);
	}
	return -ifi;
}

/*
 * One testpmd session on @dev, interactive, in io mode (what it receives on the port it
 * sends back out of it, unchanged):
 *   TX: `start tx_first 4`: TX_N 64-byte IPv4 frames from its txonly engine; exactly those
 *       leave the tap;
 *   RX: RX_N frames of 60 to 359 bytes sent into the tap (a pause every 32, so that the
 *       ring's 256 buffers always have room) come back out of it byte for byte;
 * and its counters, after `stop`: RX_N received, none dropped, TX_N + RX_N sent.
 */
static int run_io(const char *dev, bool mrg)
{
	static struct pmd p;
	long long rx, tx, drop, end;
	int ifi, cap = -1, snd = -1, i = 0, n_tx = 0, n_rx = 0, bad = 0, r = R_FAIL;
	ssize_t len;

	signal(SIGPIPE, SIG_IGN);	/* testpmd may be gone when we write to it */
	ifi = pmd_up(&p, dev, "io", mrg);
	if (ifi >= 0)
		return ifi;
	ifi = -ifi;
	cap = pkt_capture_open(ifi, false);
	snd = pkt_sender_open();
	if (cap < 0 || snd < 0 ||
	    !pmd_cmd(&p, "start tx_first " TX_BURSTS_S "\n", "testpmd> ", 60000)) {
		ktap_diag("testpmd on %s: capture socket %d, packet socket %d, or `start "
			  "tx_first` failed", dev, cap, snd);
		goto out;
	}
	/* Its TX_N frames, until all came or nothing more for 5 s. */
	for (end = now_ms() + 5000; now_ms() < end && n_tx < TX_N;) {
		len = pkt_recv(cap, got, sizeof(got), 200);
		if (len <= 0)
			continue;
		if (len != 64 || got[12] != 0x08 || got[13] != 0)
			bad++;
		n_tx++;
		end = now_ms() + 5000;
	}
	for (i = 0; i < RX_N; i++) {
		frame_eth(frame, 60 + i, i);
		if (pkt_send(snd, ifi, frame, 60 + i))
			break;
		if (i % 32 == 31)
			sleep_ms(5);
	}
	/* Ours back: the length tells which (60 + i). */
	for (end = now_ms() + 5000; now_ms() < end && n_rx < RX_N;) {
		len = pkt_recv(cap, got, sizeof(got), 200);
		if (len <= 0)
			continue;
		frame_eth(frame, len, len - 60);
		if (len < 60 || len >= 60 + RX_N || first_diff(got, frame, len) >= 0)
			bad++;
		n_rx++;
		end = now_ms() + 5000;
	}
	if (!pmd_cmd(&p, "stop\n", "Done.", 60000))
		ktap_diag("%s: testpmd did not stop forwarding", dev);
out:
	pmd_stop(&p);
	if (cap >= 0)
		close(cap);
	if (snd >= 0)
		close(snd);
	rx = pmd_stat(&p, "RX-packets: ");
	drop = pmd_stat(&p, "RX-dropped: ");
	tx = pmd_stat(&p, "TX-packets: ");
	if (!pmd_in_order(&p)) {
		pmd_dump(&p);
		ktap_diag("%s: the PMD did not negotiate IN_ORDER", dev);
	} else if (n_tx != TX_N || i != RX_N || n_rx != RX_N || bad || rx != RX_N || drop ||
		   tx != TX_N + RX_N) {
		pmd_dump(&p);
		ktap_diag("%s: mrg_rxbuf=%d: on the tap %d of testpmd's %d frames, %d of our %d "
			  "back (%d sent), %d wrong; testpmd counted RX %lld (dropped %lld), TX "
			  "%lld; expected RX %d, TX %d, none dropped", dev, mrg, n_tx, TX_N, n_rx,
			  RX_N, i, bad, rx, drop, tx, RX_N, TX_N + RX_N);
	} else {
		ktap_diag("%s: mrg_rxbuf=%d: %d frames out of testpmd, %d in and back, byte for "
			  "byte", dev, mrg, TX_N, RX_N);
		r = R_PASS;
	}
	return r;
}

static int case_in_order(const char *dev)
{
	if (run_io(dev, true) != R_PASS)
		return R_FAIL;
	return run_io(dev, false);
}

VCASE_FIXTURE(dpdk, NULL);

TEST_F_TIMEOUT(dpdk, in_order, CASE_TMO_S)
{
	vcase_run(_metadata, case_in_order, self->path);
}

TEST_HARNESS_MAIN
