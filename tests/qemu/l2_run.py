#!/usr/bin/env python3
"""One L2 guest over one vhost backend, inside the test VM (L1); and the demo's summary.

    l2_run.py run --dev /dev/vhost-rs-net --name vhost-rs --kernel K --initrd I \
                  --payload FILE --logdir DIR --out RESULT.json
    l2_run.py summary RESULT.json...

`run` makes tap0 (10.99.0.1/24), opens the device and hands it to QEMU as vhostfd
(`-netdev tap,...,vhost=on,vhostfd=N`), boots the L2 guest under nested KVM and plays the
L1 end of its test (tests/qemu/init.sh): it answers the ping, sends the payload (L1->L2),
receives it back (L2->L1), and times both on its side. While the guest runs it checks that
QEMU really holds the device open and that the device's worker thread `vhost-<qemu pid>`
exists and does work. A boot that dies with QEMU's `KVM internal error` (nested KVM on
emulated SVM is not fully reliable, see shared/PLATFORM.md) is retried, up to BOOT_ATTEMPTS
(4) boots in all; all are counted. Writes the result as JSON and exits 0 when everything
passed.

`summary` prints the table of several results and the vhost-rs / vhost-net ratios.

Variants (tests/qemu/variants.sh; the defaults give the demo's guest unchanged):
--netdev-extra/--device-extra append options to -netdev/-device; --queues N opens the device
N times (`queues=N,vhostfds=A:B`, a multi_queue tap); --smp; --expect-on/--expect-off check
virtio feature bits the guest accepted; --expect-rxq the guest's rx queue count; --reboot
makes the guest reboot once after its transfers (QEMU without -no-reboot) and do them again;
--kill-mid kills QEMU with SIGKILL in the middle of a long L1->L2 stream, then boots a new
QEMU on a new fd of the same device and does the normal test; --migrate puts tap0 and tap1 on
a bridge br0 (L1's address), starts a destination QEMU (tap1, its own fd, -incoming tcp) beside
the source and live-migrates the guest over QMP while the L1->L2 stream (the payload repeated
--migrate-repeat times) runs, then quits the source; the guest finishes on the destination.
"""
import argparse
import fcntl
import hashlib
import json
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

L1_ADDR = "10.99.0.1"
L2_ADDR = "10.99.0.2"
TAP = "tap0"
TX_PORT = 5001  # L2 -> L1
RX_PORT = 5002  # L1 -> L2
CTL_PORT = 5003  # --reboot: the guest asks here whether to reboot
TAP2 = "tap1"  # --migrate: the destination QEMU's tap; both on bridge BR with L1's address
BR = "br0"
MIGRATE_PORT = 4444
KVM_ERROR = "KVM internal error"
# QEMU says this when vhost cannot start and it moves the queues to its own userspace
# virtio-net: the guest would still work, but not through the device under test.
VHOST_FALLBACK = re.compile(r"unable to start vhost net|falling back on userspace|"
                            r"vhost-net requested but could not be initialized|"
                            r"vhost.*(failed|error)", re.I)

T0 = time.monotonic()


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# Links and addresses by ioctl and netlink, not by running ip(8): in the test VM every
# program started costs about 2 s (its binary and libraries come over 9p, uncached), and a
# case did seven of them.
SIOCSIFFLAGS, SIOCGIFFLAGS, SIOCSIFADDR, SIOCSIFNETMASK = 0x8914, 0x8913, 0x8916, 0x891C
SIOCGIFINDEX, SIOCBRADDBR, SIOCBRADDIF = 0x8933, 0x89A0, 0x89A2
TUNSETIFF, TUNSETPERSIST = 0x400454CA, 0x400454CB
IFF_UP, IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE = 0x1, 0x0002, 0x1000, 0x4000, 0x0100


def ifreq(name, data=b""):
    return struct.pack("16s24s", name.encode(), data)


def sock_ioctl(req, arg):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return fcntl.ioctl(s, req, arg)


def ifindex(name):
    """The link's index (SIOCGIFINDEX), None if there is no such link."""
    try:
        return struct.unpack_from("i", sock_ioctl(SIOCGIFINDEX, ifreq(name)), 16)[0]
    except OSError:
        return None


def link_del(name):
    """RTM_DELLINK, as `ip link del NAME`; nothing if there is no such link."""
    idx = ifindex(name)
    if idx is None:
        return
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as s:  # NETLINK_ROUTE
        body = struct.pack("BBHiII", socket.AF_UNSPEC, 0, 0, idx, 0, 0)
        # nlmsghdr: length, RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq, pid
        s.send(struct.pack("IHHII", 16 + len(body), 17, 0x1 | 0x4, 1, 0) + body)
        err = struct.unpack_from("i", s.recv(4096), 16)[0]  # the nlmsgerr's error
    if err and ifindex(name) is not None:
        raise OSError(-err, f"deleting link {name}: {os.strerror(-err)}")


def link_up(name):
    flags = struct.unpack_from("H", sock_ioctl(SIOCGIFFLAGS, ifreq(name)), 16)[0]
    sock_ioctl(SIOCSIFFLAGS, ifreq(name, struct.pack("H", flags | IFF_UP)))


def addr_add(name, addr, prefix=24):
    """An IPv4 address and its netmask, as `ip addr add ADDR/24 dev NAME`."""
    sin = lambda a: struct.pack("HH4s", socket.AF_INET, 0, socket.inet_aton(a))
    mask = socket.inet_ntoa(struct.pack("!I", (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF))
    sock_ioctl(SIOCSIFADDR, ifreq(name, sin(addr)))
    sock_ioctl(SIOCSIFNETMASK, ifreq(name, sin(mask)))


def tap_add(name, multi_queue=False):
    """A persistent tap, as `ip tuntap add dev NAME mode tap [multi_queue]`."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        flags = IFF_TAP | IFF_NO_PI | (IFF_MULTI_QUEUE if multi_queue else 0)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    finally:
        os.close(fd)


def tap_setup(multi_queue=False):
    link_del(TAP)
    tap_add(TAP, multi_queue)
    addr_add(TAP, L1_ADDR)
    link_up(TAP)


def tap_queue_fds(n):
    """--queues N: QEMU 7.2 takes vhostfds= only with fds=, so we open the multi_queue tap's
    queues ourselves (TUNSETIFF with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE)."""
    fds = []
    for _ in range(n):
        t = os.open("/dev/net/tun", os.O_RDWR)
        flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE
        fcntl.ioctl(t, TUNSETIFF, struct.pack("16sH", TAP.encode(), flags))
        fds.append(t)
    return fds


def bridge_setup():
    """--migrate: tap0 (source QEMU) and tap1 (destination) on a bridge that has L1's
    address, so that the guest's MAC moves from one port to the other."""
    for dev in (TAP, TAP2, BR):
        link_del(dev)
    sock_ioctl(SIOCBRADDBR, BR.encode() + b"\0")
    for dev in (TAP, TAP2):
        tap_add(dev)
        sock_ioctl(SIOCBRADDIF, ifreq(BR, struct.pack("i", ifindex(dev))))
        link_up(dev)
    addr_add(BR, L1_ADDR)
    link_up(BR)


class Qmp:
    """A minimal QMP client on a unix socket."""

    def __init__(self, path, tmo=30):
        end = time.monotonic() + tmo
        while True:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)
        self.s.settimeout(tmo)
        self.f = self.s.makefile("rwb")
        self.f.readline()  # the greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise OSError(f"QMP closed during {name}")
            r = json.loads(line)
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError(f"QMP {name}: {r['error']}")
            # an event: skip it

    def close(self):
        self.s.close()


def tap_stats():
    d = f"/sys/class/net/{TAP}/statistics"
    out = {}
    for k in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_dropped", "tx_dropped"):
        try:
            with open(f"{d}/{k}") as f:
                out[k] = int(f.read())
        except OSError:
            pass
    return out


class Peer:
    """The L1 end of the two bulk transfers; each runs in its own thread and times itself."""

    def __init__(self, payload, tmo, accept_tmo, repeat=1):
        self.payload = payload
        self.tmo = tmo
        self.repeat = repeat  # --kill-mid: a stream long enough to be cut in the middle
        self.res = {"l1_to_l2": None, "l2_to_l1": None}
        self.socks = []
        self.conns = []
        for port in (RX_PORT, TX_PORT):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((L1_ADDR, port))
            s.listen(1)
            s.settimeout(accept_tmo)
            self.socks.append(s)
        self.threads = [threading.Thread(target=self._send, args=(self.socks[0],), daemon=True),
                        threading.Thread(target=self._recv, args=(self.socks[1],), daemon=True)]
        for t in self.threads:
            t.start()

    def _send(self, ls):
        r = {"ok": False}
        try:
            c, _ = ls.accept()
            self.conns.append(c)
            t0 = time.monotonic()
            c.settimeout(self.tmo)
            for _ in range(self.repeat):
                c.sendall(self.payload)
            c.shutdown(socket.SHUT_WR)
            # The guest's nc ends (and closes) once it has written the whole stream out.
            while c.recv(65536):
                pass
            r.update(ok=True, bytes=len(self.payload) * self.repeat,
                     secs=time.monotonic() - t0)
            c.close()
        except OSError as e:
            r["error"] = f"L1->L2 on port {RX_PORT}: {e!r}"
        self.res["l1_to_l2"] = r

    def _recv(self, ls):
        r = {"ok": False}
        n = 0
        h = hashlib.sha256()
        try:
            c, _ = ls.accept()
            self.conns.append(c)
            t0 = time.monotonic()
            c.settimeout(self.tmo)
            while True:
                b = c.recv(1 << 20)
                if not b:
                    break
                n += len(b)
                h.update(b)
            secs = time.monotonic() - t0
            c.close()
            r.update(ok=True, bytes=n, secs=secs, sha256=h.hexdigest())
        except OSError as e:
            r.update(error=f"L2->L1 on port {TX_PORT}: {e!r} after {n} bytes", bytes=n)
        self.res["l2_to_l1"] = r

    def close(self):
        for s in self.socks + self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes a thread still in accept()
            except OSError:
                pass
            s.close()


def reader(stream, logf, q, tag):
    """Copies QEMU's stdout (the L2 console) or stderr to a log and posts each line."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        logf.write(f"{time.monotonic() - T0:9.3f} {line}\n")
        logf.flush()
        q.put((tag, line))
    q.put((tag, None))


def qemu_evidence(pid, dev):
    """What L1 sees of the backend inside QEMU: the open device and the worker thread."""
    ev = {"fd": None, "fdinfo": None, "worker": None, "threads": [], "fds": [], "fdinfos": [],
          "tids": {}}
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == dev:
                    ev["fd"] = int(fd)
                    ev["fds"].append(int(fd))
                    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                        ev["fdinfo"] = f.read().strip()
                        ev["fdinfos"].append(ev["fdinfo"])
            except OSError:
                pass
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            ev["threads"].append(comm)
            ev["tids"][int(tid)] = comm
            if comm == f"vhost-{pid}":
                ev["worker"] = int(tid)
    except OSError as e:
        ev["error"] = repr(e)
    # A kthread worker (fork_from_owner=N) is no thread of QEMU: look for it in ps.
    if ev["worker"] is None:
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open(f"/proc/{p}/comm") as f:
                        if f.read().strip() == f"vhost-{pid}":
                            ev["worker"] = int(p)
                            ev["worker_kthread"] = True
                except OSError:
                    pass
    return ev


def split_workers(ev, pid):
    """With split workers, each open of our device runs RX and TX on threads of their own:
    (the (rx tid, tx tid) pairs, a list of what is wrong)."""
    pairs, bad = [], []
    for info in ev.get("fdinfos") or []:
        qw, tids = {}, {}
        for line in info.splitlines():
            m = re.match(r"vq(\d) (rx|tx):.* worker (\d+)$", line)
            if m:
                qw[m.group(2)] = int(m.group(3))
            m = re.match(r"worker (\d+): tid (\d+)$", line)
            if m:
                tids[int(m.group(1))] = int(m.group(2))
        rx, tx = qw.get("rx"), qw.get("tx")
        if rx is None or tx is None or rx == tx:
            bad.append(f"fdinfo shows RX on worker {rx} and TX on worker {tx}")
            continue
        pair = (tids.get(rx), tids.get(tx))
        for w, t in zip((rx, tx), pair):
            name = f"vhost-{pid}" if w == 0 else f"vhost-{pid}-{w}"[:15]
            if t is None or ev["tids"].get(t) != name:
                bad.append(f"worker {w}: tid {t} is not QEMU's thread {name} "
                           f"({ev['tids'].get(t)})")
        pairs.append(pair)
    if not pairs and not bad:
        bad.append("no fdinfo of the device")
    return pairs, bad


def progress(pid, dev):
    """For a guest that takes long: its QEMU's CPU time and, over our device, the queues'
    packets, kicks and calls, which say whether the guest, the device or neither moves."""
    cpu = cpu_ticks(pid, whole=True)
    out = f"; QEMU CPU {(cpu or 0) / os.sysconf('SC_CLK_TCK'):.0f} s"
    fdinfo = qemu_evidence(pid, dev).get("fdinfo") or ""
    for line in fdinfo.splitlines():
        if not line.startswith("vq"):
            continue
        q, kv = line.split(":", 1)
        f = kv.split()
        c = dict(zip(f[::2], f[1::2]))
        out += (f"; {q.split()[1]} packets {c.get('packets')} kicks {c.get('kicks')} "
                f"calls {c.get('calls')} drops {c.get('drops')}")
    return out


def cpu_ticks(tid, whole=False):
    """utime + stime of one thread (or with `whole` of its process), in clock ticks (None once
    it is gone). A thread's own is under task/: /proc/TID/stat counts the whole process
    (QEMU's, for a vhost_task worker)."""
    try:
        with open(f"/proc/{tid}/stat" if whole else f"/proc/{tid}/task/{tid}/stat") as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


class Ctl:
    """--reboot: answers the guest's question once per boot: `reboot` the first time."""

    def __init__(self, tmo):
        self.answers = 0
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind((L1_ADDR, CTL_PORT))
        self.s.listen(1)
        self.s.settimeout(tmo)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            try:
                c.sendall(b"reboot\n" if self.answers == 0 else b"stop\n")
                self.answers += 1
                c.shutdown(socket.SHUT_WR)
                c.settimeout(10)
                while c.recv(4096):
                    pass
            except OSError:
                pass
            c.close()

    def close(self):
        try:
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.s.close()


class Hold(Ctl):
    """--migrate: answers the guest's hold question (after L1->L2) once the migration has
    ended, so that L2->L1 and the end run on the destination however fast the stream was."""

    def __init__(self, tmo, res):
        self.res = res
        self.tmo = tmo
        super().__init__(tmo)

    def _serve(self):
        try:
            c, _ = self.s.accept()
        except OSError:
            return
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.tmo:
            st = (self.res.get("migration") or {}).get("status", "")
            if st in ("completed", "failed", "cancelled") or st.startswith("timeout"):
                break
            time.sleep(0.2)
        try:
            c.sendall(b"go\n")
            self.answers += 1
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        c.close()


# What one boot of the guest reports; --reboot keeps the first boot's apart.
BOOT_KEYS = ("init_s", "boot_s", "l2_features", "l2_rxq", "l2_uptime_ready", "ping", "l2_rx",
             "l2_tx", "l2_stats", "tap_stats", "worker_ticks", "evidence_end")


def migrate(a, res, src_sock, procs, cur):
    """--migrate: source -> destination while the L1->L2 stream runs; then quits the source."""
    m = res["migration"] = {"status": "not started"}
    time.sleep(a.migrate_delay)
    t0 = time.monotonic()
    try:
        qs = Qmp(src_sock)
        qs.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 30, "downtime-limit": 2000})
        qs.cmd("migrate", uri=f"tcp:127.0.0.1:{MIGRATE_PORT}")
        log(f"{a.name}: migration started (source pid {procs[0].pid} -> destination pid "
            f"{procs[1].pid})")
        while True:
            r = qs.cmd("query-migrate")
            m["status"] = r.get("status")
            if m["status"] in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() - t0 > a.timeout / 2:
                m["status"] = f"timeout ({m['status']})"
                break
            time.sleep(0.5)
        m.update(secs=time.monotonic() - t0, total_ms=r.get("total-time"),
                 downtime_ms=r.get("downtime"), ram=r.get("ram"),
                 error=r.get("error-desc"))
    except (OSError, RuntimeError, ValueError) as e:
        m["error"] = repr(e)
    if m["status"] == "completed":
        cur["p"] = procs[1]
        log(f"{a.name}: migration completed in {m['secs']:.1f} s (QEMU: total "
            f"{m['total_ms']} ms, downtime {m['downtime_ms']} ms); quitting the source")
        try:
            qs.cmd("quit")
        except (OSError, RuntimeError, ValueError):
            pass
    else:
        log(f"{a.name}: migration FAILED: {m}; killing the destination")
        procs[1].kill()


# Nested KVM on TCG's emulated SVM fails about one L2 boot in three or four with "KVM
# internal error. Suberror: 3" (event delivery), whatever the backend (shared/PLATFORM.md):
# such a boot, told apart by QEMU's stderr, is retried, and the count is reported.
BOOT_ATTEMPTS = 4
# A guest that starts /init again without being asked to reboot, with no panic on its
# console (a reset: a triple fault), is the same kind of nested-KVM failure: seen once, on
# the migration destination over vhost_net.ko (2026-12-02), where the source had passed.


def nested_failure(res):
    """How nested KVM failed this boot (it is retried, and counted), or None."""
    if res["kvm_error"]:
        return "kvm_errors", "a KVM internal error"
    if res["boot_hang"]:
        return "boot_hangs", "a boot hang before /init"
    if res.get("guest_reset"):
        return "guest_resets", "the guest reset itself, unasked and with no panic"
    return None


def mem_bytes(size):
    """QEMU's -m size (512M, 1G, or bytes) in bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(size[:-1]) * units[size[-1].upper()] if size[-1].upper() in units else int(size)


def guest_ram(a, guests):
    """QEMU options for the L2 RAM: on 2 MiB hugetlbfs pages (--hugepages DIR) when DIR has
    free pages for @guests guests, else QEMU's default anonymous memory (said in the log).
    Why: under TCG every 4 KiB page L1 faults in (KASAN, lockdep) costs about a millisecond,
    and an L2 boot touches ~100 MiB; on hugetlbfs, L1 faults and KVM maps 2 MiB at a time.
    The L2 kernel booted to /init in ~54 s instead of ~75 s (2026-12-07, with qboot)."""
    if not a.hugepages:
        return []
    need = guests * -(-mem_bytes(a.l2_mem) // (2 << 20))
    free = 0
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("HugePages_Free:"):
                    free = int(line.split()[1])
    except OSError:
        pass
    if free < need or not os.path.ismount(a.hugepages):
        log(f"{a.name}: {free} free hugepages (need {need}) or {a.hugepages} not mounted: "
            f"the L2 RAM is on 4 KiB pages")
        return []
    return ["-mem-path", a.hugepages]


def run_once(a, payload, attempt, kill=False):
    name = a.name
    res = {"attempt": attempt, "failures": [], "kvm_error": False, "boot_hang": False,
           "guest_reset": False}
    if kill:
        res["kill_phase"] = True
    # The kill phase streams the payload 64 times so that the kill lands in the middle.
    peer = Peer(payload, a.xfer_timeout, a.timeout, repeat=64 if kill else 1)
    ctl = Ctl(a.timeout) if a.reboot and not kill else None
    if a.migrate and not kill:
        ctl = Hold(a.timeout, res)
    fds = [os.open(a.dev, os.O_RDWR) for _ in range(a.queues)]
    fd = fds[0]
    append = (f"console=ttyS0 quiet panic=-1 vhdemo.run=demo vhdemo.addr={L2_ADDR}/24 "
              f"vhdemo.peer={L1_ADDR} vhdemo.rxport={RX_PORT} vhdemo.txport={TX_PORT} "
              f"vhdemo.ping={a.ping} vhdemo.timeout={a.xfer_timeout}")
    for extra in a.append_extra:
        append += " " + extra
    if a.ringreset and not kill:
        append += " vhdemo.ringreset=1"
    if ctl:
        hold = "hold" if isinstance(ctl, Hold) else "reboot"
        append += f" vhdemo.{hold}=1 vhdemo.ctlport={CTL_PORT}"
    if kill:
        append += " vhdemo.ping=2"
    tfds = []
    if a.queues > 1:
        tfds = tap_queue_fds(a.queues)
        netdev = (f"tap,id=n0,fds={':'.join(str(x) for x in tfds)},vhost=on,"
                  f"vhostfds={':'.join(str(x) for x in fds)}")
    else:
        netdev = f"tap,id=n0,ifname={TAP},script=no,downscript=no,vhost=on,vhostfd={fd}"
    pre = [x for d in a.pre_device for x in ("-device", d)]
    cmd = [a.qemu, "-machine", a.machine, "-cpu", "kvm64", "-smp", str(a.smp),
           "-m", a.l2_mem, *guest_ram(a, 2 if a.migrate and not kill else 1),
           *(["-bios", a.bios] if a.bios else []),
           "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
           "-serial", "stdio", *([] if ctl else ["-no-reboot"]),
           "-kernel", a.kernel, "-initrd", a.initrd, "-append", append, *pre,
           "-netdev", netdev + a.netdev_extra,
           "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:02" + a.device_extra]
    base = f"{a.logdir}/{name}.{attempt}"
    dcmd = None
    if a.migrate:
        # Unix sockets cannot live on the 9p share: under /tmp.
        src_sock = f"/tmp/l2_run.{os.getpid()}.{attempt}.src.qmp"
        dst_sock = f"/tmp/l2_run.{os.getpid()}.{attempt}.dst.qmp"
        dfd = os.open(a.dev, os.O_RDWR)
        dcmd = [x.replace(f"ifname={TAP},", f"ifname={TAP2},").replace(
            f"vhostfd={fd}", f"vhostfd={dfd}") for x in cmd]
        dcmd += ["-qmp", f"unix:{dst_sock},server=on,wait=off",
                 "-incoming", f"tcp:127.0.0.1:{MIGRATE_PORT}"]
        cmd += ["-qmp", f"unix:{src_sock},server=on,wait=off"]
        res["dst_cmd"] = " ".join(dcmd)
    res["cmd"] = " ".join(cmd)
    conf, errf = open(f"{base}.console.log", "w"), open(f"{base}.qemu-stderr.log", "w")
    res["logs"] = [conf.name, errf.name]
    t_start = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, pass_fds=tuple(fds + tfds))
    for x in fds + tfds:
        os.close(x)  # QEMU's copy is the only one now: its exit releases the device.
    procs = [p]
    cur = {"p": p}
    q = queue.Queue()
    if dcmd:
        dp = subprocess.Popen(dcmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, pass_fds=(dfd,))
        os.close(dfd)
        procs.append(dp)
        res["dst_pid"] = dp.pid
        dconf = open(f"{base}.dst.console.log", "w")
        derrf = open(f"{base}.dst.qemu-stderr.log", "w")
        res["logs"] += [dconf.name, derrf.name]
        for stream, f, tag in ((dp.stdout, dconf, "out"), (dp.stderr, derrf, "err")):
            threading.Thread(target=reader, args=(stream, f, q, tag), daemon=True).start()
        log(f"{name}: destination QEMU pid {dp.pid} waiting for the migration "
            f"(vhostfd={dfd} on {a.dev}, {TAP2})")

    def kill_all():
        for x in procs:
            x.kill()
    res["qemu_pid"] = p.pid
    log(f"{name}: attempt {attempt}: QEMU pid {p.pid} started, L2 booting "
        f"(vhostfd{'s' if len(fds) > 1 else ''}={':'.join(str(x) for x in fds)} on {a.dev})"
        + (" [kill phase: SIGKILL mid-stream]" if kill else ""))
    for stream, f, tag in ((p.stdout, conf, "out"), (p.stderr, errf, "err")):
        threading.Thread(target=reader, args=(stream, f, q, tag), daemon=True).start()

    deadline = t_start + a.timeout
    last_note = t_start
    open_streams = 2 * len(procs)
    stderr_tail = []
    console_lines = 0
    ev = None
    worker_t0 = None
    t_boot = t_start
    while open_streams:
        try:
            tag, line = q.get(timeout=5)
        except queue.Empty:
            now = time.monotonic()
            if "init_s" not in res and now - t_boot > a.boot_timeout and not res["boot_hang"]:
                # The L2 kernel never reached /init: the backend has had no part yet (QEMU
                # only opened it; virtio_net is loaded by init.sh), so this is nested KVM
                # again, hanging instead of failing. How busy L2's QEMU was says which way.
                res["boot_hang"] = True
                cpu = cpu_ticks(p.pid, whole=True)
                log(f"{name}: L2 did not reach /init in {a.boot_timeout} s (QEMU used "
                    f"{(cpu or 0) / os.sysconf('SC_CLK_TCK'):.0f} s of CPU; no console "
                    f"output); killing this boot")
                kill_all()
            elif now > deadline:
                res["failures"].append(f"timeout: the guest did not finish in {a.timeout} s")
                log(f"{name}: timeout after {a.timeout} s, killing QEMU")
                kill_all()
                deadline = float("inf")
            elif now - last_note >= 30:
                stage = "booting" if "boot_s" not in res else "running"
                log(f"{name}: ... still {stage} ({now - t_start:.0f} s){progress(p.pid, a.dev)}")
                last_note = now
            continue
        if line is None:
            open_streams -= 1
            continue
        now = time.monotonic()
        if tag == "err":
            stderr_tail = (stderr_tail + [line])[-30:]
            if KVM_ERROR in line and not res["kvm_error"]:
                res["kvm_error"] = True
                log(f"{name}: QEMU: {line.strip()} (nested KVM), killing this boot")
                kill_all()  # QEMU stops the VM but stays alive after an internal error
            elif VHOST_FALLBACK.search(line):
                res["failures"].append(f"QEMU stderr: {line.strip()}")
            continue
        console_lines += 1
        if "L2-dmesg:" in line:
            res.setdefault("l2_dmesg", []).append(line.split("L2-dmesg:", 1)[1].strip())
            continue
        m = re.search(r"L2: (\S+)(.*)", line)
        if not m:
            continue
        key, rest = m.group(1), m.group(2).strip()
        kv = dict(re.findall(r"(\w+)=(\S+)", rest))
        last_note = now
        if key == "FAIL":
            res["failures"].append(f"L2: {rest}")
            log(f"{name}: L2 FAILED: {rest}")
        elif key == "ringreset":
            res.setdefault("ringreset", []).append(rest)
            log(f"{name}: L2 resized its rings under traffic: {rest}")
        elif key == "init" and "init_s" in res:
            # /init again, and no reboot was asked for (a reboot moves init_s into boot1).
            res["guest_reset"] = True
            log(f"{name}: L2 started /init again, unasked, with no panic on its console "
                "(a reset, nested KVM): killing this boot")
            kill_all()
        elif key == "init":
            res["init_s"] = now - t_start
            log(f"{name}: L2 kernel {kv.get('kernel')} reached /init after {now - t_start:.1f} s")
        elif key == "ready":
            res["boot_s"] = now - t_start
            res["l2_features"] = kv.get("features")
            if "rxq" in kv:
                res["l2_rxq"] = int(kv["rxq"])
            res["l2_uptime_ready"] = float(kv.get("up", 0))
            log(f"{name}: L2 booted, eth0 up after {res['boot_s']:.1f} s")
            ev = qemu_evidence(p.pid, a.dev)
            res["evidence"] = ev
            if ev["worker"] is not None:
                worker_t0 = cpu_ticks(ev["worker"])
            if a.expect_split:
                pairs, bad = split_workers(ev, p.pid)
                res["split"] = {"pairs": pairs, "bad": bad,
                                "t0": {t: cpu_ticks(t) for pr in pairs for t in pr}}
                log(f"{name}: RX and TX workers (tids) per open of the device: {pairs}"
                    + (f"; wrong: {bad}" if bad else ""))
            log(f"{name}: L1 sees QEMU fd {ev['fd']} -> {a.dev}, worker thread "
                f"vhost-{p.pid} = tid {ev['worker']}")
        elif key == "ping":
            rtt = kv.get("rtt", "none")
            res["ping"] = {"tx": int(kv.get("tx", 0)), "rx": int(kv.get("rx", 0)), "rtt": rtt}
            log(f"{name}: ping {L1_ADDR}: {kv.get('rx')}/{kv.get('tx')} replies, "
                f"rtt min/avg/max {rtt} ms")
        elif key == "rx" and rest.startswith("start"):
            if kill:
                log(f"{name}: L1->L2: streaming {len(payload) * 64 >> 20} MiB; SIGKILL to "
                    f"QEMU in {a.kill_delay} s")
                time.sleep(a.kill_delay)
                try:
                    rxb = tap_stats().get("tx_bytes")
                    os.kill(p.pid, signal.SIGKILL)
                    res["killed"] = True
                    res["tap_tx_bytes_at_kill"] = rxb
                    log(f"{name}: SIGKILL sent to QEMU pid {p.pid} (tap0 had sent {rxb} bytes "
                        f"towards L2)")
                except OSError as e:
                    res["failures"].append(f"kill: {e!r}")
                continue
            log(f"{name}: L1->L2: sending {len(payload) >> 20} MiB ...")
            if a.migrate and "migration" not in res:
                threading.Thread(target=migrate, args=(a, res, src_sock, procs, cur),
                                 daemon=True).start()
        elif key == "rx":
            res["l2_rx"] = kv
            r = peer.res["l1_to_l2"]
            secs = f"{r['secs']:.1f} s" if r and r.get("ok") else "?"
            log(f"{name}: L1->L2 done in {secs}: L2 got {kv.get('bytes')} bytes, "
                f"sha256 {'matches' if kv.get('sha256') == a.sha256 else 'DIFFERS'}")
        elif key == "tx" and rest.startswith("start"):
            log(f"{name}: L2->L1: L2 sends it back ...")
        elif key == "tx":
            res["l2_tx"] = kv
            peer.threads[1].join(timeout=10)
            r = peer.res["l2_to_l1"] or {}
            secs = f"{r['secs']:.1f} s" if r.get("ok") else "?"
            log(f"{name}: L2->L1 done in {secs}: L1 got {r.get('bytes')} bytes, "
                f"sha256 {'matches' if r.get('sha256') == a.sha256 else 'DIFFERS'}")
        elif key == "stats":
            res["l2_stats"] = kv
            res["tap_stats"] = tap_stats()
            if ev and ev["worker"] is not None:
                t1 = cpu_ticks(ev["worker"])
                if t1 is not None and worker_t0 is not None:
                    res["worker_ticks"] = t1 - worker_t0
            if a.expect_split and res.get("split"):
                sp = res["split"]
                sp["ticks"] = {t: (cpu_ticks(t) or 0) - (t0 or 0) for t, t0 in sp["t0"].items()}
                log(f"{name}: CPU ticks of each worker over the transfers: {sp['ticks']}")
            # Once more while QEMU is alive: still open, still there.
            ev2 = qemu_evidence(cur["p"].pid, a.dev)
            res["evidence_end"] = {k: ev2[k] for k in ("fd", "worker")}
        elif key == "done":
            res["l2_rc"] = int(kv.get("rc", 1))
            log(f"{name}: L2 done (rc {res['l2_rc']}), powering off")
        elif key == "rebooting":
            # The first boot is over: keep its results apart, new L1 ends for the second.
            res["boot1"] = {k: res.pop(k) for k in BOOT_KEYS if k in res}
            peer.threads[0].join(timeout=10)
            peer.close()
            res["boot1"]["l1_to_l2"] = peer.res["l1_to_l2"]
            res["boot1"]["l2_to_l1"] = peer.res["l2_to_l1"]
            peer = Peer(payload, a.xfer_timeout, a.timeout)
            t_boot = now
            ev = None
            worker_t0 = None
            log(f"{name}: L2 reboots (reboot -f); QEMU stays, a second boot follows")
    for x in procs:
        try:
            rc = x.wait(timeout=60)
        except subprocess.TimeoutExpired:
            x.kill()
            rc = x.wait()
        if x is cur["p"]:
            res["qemu_rc"] = rc
        else:
            res.setdefault("other_qemu_rc", []).append(rc)
    if (not kill and "init_s" not in res and res.get("qemu_rc") == 0 and not console_lines
            and not res["kvm_error"] and not res["boot_hang"] and not res["failures"]):
        # QEMU left on its own, before the L2 kernel reached /init and with nothing on its
        # console: under -no-reboot that is a reset in early boot (a triple fault). The
        # backend has had no part yet (QEMU only opened it; virtio_net is loaded by init.sh),
        # so it is nested KVM failing, as a boot hang is (viommu over vhost_net.ko,
        # 2026-12-06, 77 s into the boot).
        res["guest_reset"] = True
        log(f"{name}: QEMU left before L2 reached /init, nothing on its console (a reset "
            "in early boot, nested KVM)")
    if a.migrate:
        res["evidence_end_pid"] = cur["p"].pid
    conf.close()
    errf.close()
    res["wall_s"] = time.monotonic() - t_start
    if ctl:
        res["ctl_answers"] = ctl.answers
        ctl.close()
    for t in peer.threads:
        t.join(timeout=1 if nested_failure(res) or res["failures"] or kill else 30)
    peer.close()
    res["l1_to_l2"] = peer.res["l1_to_l2"]
    res["l2_to_l1"] = peer.res["l2_to_l1"]
    res["qemu_stderr_tail"] = stderr_tail
    return res


def judge(res, a):
    """Adds to res['failures'] everything that did not pass."""
    f = res["failures"]
    if "boot_s" not in res:
        f.append("L2 never brought eth0 up")
    ev = res.get("evidence") or {}
    if res.get("boot_s") is not None:
        if ev.get("fd") is None:
            f.append(f"QEMU (pid {res['qemu_pid']}) did not hold {a.dev} open")
        if ev.get("worker") is None:
            f.append(f"no worker thread vhost-{res['qemu_pid']}")
    if getattr(a, "expect_split", False) and res.get("boot_s") is not None:
        sp = res.get("split") or {}
        f.extend(f"split workers: {b}" for b in sp.get("bad", ["not looked at"]))
        # The transfers went both ways, each flow on one queue pair (with multiqueue, any):
        # some RX worker and some TX worker ran.
        ticks = sp.get("ticks") or {}
        pairs = sp.get("pairs") or []
        for side, i in (("RX", 0), ("TX", 1)):
            if pairs and not any(ticks.get(pr[i], 0) > 0 for pr in pairs):
                f.append(f"split workers: no {side} worker ran: ticks {ticks}")
    p = res.get("ping")
    if not p:
        f.append("no ping result")
    # After --kill-mid the new guest's first ping was lost over both backends (vhost-net too):
    # one loss is tolerated there.
    elif p["rx"] == 0 or p["rx"] + (1 if getattr(a, "kill_mid", False) else 0) < p["tx"]:
        f.append(f"ping: {p['rx']} of {p['tx']} replies")
    rx = res.get("l2_rx") or {}
    if not rx:
        f.append("L1->L2: the guest reported no receive")
    else:
        if rx.get("rc") != "0":
            f.append(f"L1->L2: guest nc exit status {rx.get('rc')}")
        if rx.get("bytes") != str(a.size) or rx.get("sha256") != a.sha256:
            f.append(f"L1->L2: guest got {rx.get('bytes')} bytes sha256 {rx.get('sha256')}, "
                     f"sent {a.size} bytes sha256 {a.sha256}")
    r = res.get("l1_to_l2") or {}
    if not r.get("ok"):
        f.append(r.get("error", "L1->L2: no transfer"))
    r = res.get("l2_to_l1") or {}
    if not r.get("ok"):
        f.append(r.get("error", "L2->L1: no transfer"))
    elif r.get("bytes") != a.size or r.get("sha256") != a.sha256:
        f.append(f"L2->L1: L1 got {r.get('bytes')} bytes sha256 {r.get('sha256')}, "
                 f"expected {a.size} bytes sha256 {a.sha256}")
    tx = res.get("l2_tx") or {}
    if tx and tx.get("rc") != "0":
        f.append(f"L2->L1: guest nc exit status {tx.get('rc')}")
    if res.get("l2_rc") not in (None, 0) and not any(x.startswith("L2:") for x in f):
        f.append(f"L2 init ended with status {res['l2_rc']}")
    if res.get("qemu_rc") not in (0, None) and not nested_failure(res):
        f.append(f"QEMU exit status {res['qemu_rc']}")
    if res.get("worker_ticks") == 0:
        f.append("the worker thread used no CPU time during the transfers")
    for line in res.get("l2_dmesg", []):
        if re.search(r"BUG:|WARNING:|Call Trace|timed out|NETDEV WATCHDOG", line):
            f.append(f"L2 kernel: {line}")
    judge_variant(res, a)


def judge_features(res, a, f, what=""):
    feats = res.get("l2_features") or ""
    for bits, want in ((a.expect_on, "1"), (a.expect_off, "0")):
        for b in bits:
            got = feats[b] if b < len(feats) else "?"
            if got != want:
                f.append(f"{what}feature bit {b}: the guest accepted {got!r}, expected {want!r} "
                         f"(features {feats or 'unknown'})")
    if a.expect_rxq is not None and res.get("boot_s") is not None and \
            res.get("l2_rxq") != a.expect_rxq:
        f.append(f"{what}the guest has {res.get('l2_rxq')} rx queues, expected {a.expect_rxq}")


def judge_variant(res, a):
    """The checks of the variants (nothing for the demo's defaults)."""
    f = res["failures"]
    judge_features(res, a, f)
    ev = res.get("evidence") or {}
    if a.queues > 1 and res.get("boot_s") is not None and len(ev.get("fds", [])) != a.queues:
        f.append(f"QEMU holds {len(ev.get('fds', []))} fds on {a.dev}, expected {a.queues}")
    if a.migrate:
        m = res.get("migration") or {}
        if m.get("status") != "completed":
            f.insert(0, f"migration: status {m.get('status')}, error {m.get('error')}")
        else:
            end = res.get("evidence_end") or {}
            if res.get("evidence_end_pid") != res.get("dst_pid"):
                f.append("migration: the guest did not finish on the destination QEMU")
            if end.get("fd") is None or end.get("worker") is None:
                f.append(f"migration: after it, the destination QEMU (pid {res.get('dst_pid')}) "
                         f"held {a.dev} as fd {end.get('fd')} with worker {end.get('worker')}")
    if a.ringreset:
        # Each stream: 256 -> 128 -> 256 entries on both queues, each step a queue reset.
        rr = res.get("ringreset") or []
        ok = [x for x in rr if x.startswith(("rx rc=0,0 rings=128/128,256/256",
                                             "tx rc=0,0 rings=128/128,256/256"))]
        if len(ok) != 2:
            f.append(f"ringreset: the guest reported {rr!r}, expected rx and tx each "
                     "'rc=0,0 rings=128/128,256/256'")
    if a.reboot:
        b1 = res.get("boot1")
        if not b1:
            f.append("reboot: the guest never rebooted (no 'L2: rebooting' line)")
        else:
            sub = {"failures": [], "kvm_error": False, "boot_hang": False,
                   "qemu_pid": res["qemu_pid"], "evidence": ev, **b1}
            judge(sub, argparse.Namespace(**{**vars(a), "reboot": False}))
            f.extend(f"boot 1 (before the reboot): {x}" for x in sub["failures"])
        if res.get("ctl_answers") != 2:
            f.append(f"reboot: the guest asked {res.get('ctl_answers')} times whether to reboot, "
                     "expected 2 (once per boot)")


def kill_phase(a, payload, out):
    """--kill-mid: a QEMU killed with SIGKILL in the middle of a stream (retried if nested
    KVM fails the boot, up to BOOT_ATTEMPTS). Returns the failures."""
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        res = run_once(a, payload, f"kill{attempt}", kill=True)
        out["kill_attempts"] = attempt
        nf = nested_failure(res)
        if nf and attempt < BOOT_ATTEMPTS:
            out[nf[0]] += 1
            log(f"{a.name}: nested KVM failed the kill phase's boot ({nf[1]}): retrying it")
            continue
        break
    out["kill"] = res
    f = list(res["failures"])
    if not res.get("killed"):
        f.append("kill phase: QEMU was not killed mid-stream (the guest never started "
                 "receiving)")
    elif res.get("qemu_rc") != -signal.SIGKILL:
        f.append(f"kill phase: QEMU exit status {res.get('qemu_rc')}, expected -9")
    # The device must be released with QEMU: no fd of a dead process, no worker left.
    time.sleep(1)
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as fh:
                    comm = fh.read().strip()
                    if (comm == f"vhost-{res['qemu_pid']}"
                            or comm.startswith(f"vhost-{res['qemu_pid']}-")):
                        f.append(f"kill phase: worker {comm} still exists "
                                 f"(pid {pid}) after QEMU died")
            except OSError:
                pass
    return [f"kill phase: {x}" if not x.startswith("kill phase") else x for x in f]


def cmd_run(a):
    with open(a.payload, "rb") as fh:
        payload = fh.read()
    a.size = len(payload)
    a.sha256 = hashlib.sha256(payload).hexdigest()
    os.makedirs(a.logdir, exist_ok=True)
    if (a.ringreset or a.payload_repeat > 1) and not a.migrate:
        # Ring reset: each stream must outlast the guest's two resizes (about a second each).
        payload = payload * max(a.payload_repeat, 16 if a.ringreset else 1)
        a.size = len(payload)
        a.sha256 = hashlib.sha256(payload).hexdigest()
    if a.migrate:
        # The stream must outlast the start of the migration.
        payload = payload * a.migrate_repeat
        a.size = len(payload)
        a.sha256 = hashlib.sha256(payload).hexdigest()
        bridge_setup()
    else:
        tap_setup(multi_queue=a.queues > 1)
    out = {"name": a.name, "dev": a.dev, "size": a.size, "sha256": a.sha256,
           "attempts": 0, "kvm_errors": 0, "boot_hangs": 0, "guest_resets": 0}
    kill_failures = kill_phase(a, payload, out) if a.kill_mid else []
    if a.kill_mid:
        log(f"{a.name}: now a new QEMU on a new fd of {a.dev}, same tap")
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        res = run_once(a, payload, attempt)
        out["attempts"] = attempt
        nf = nested_failure(res)
        if nf:
            why = nf[1]
            out[nf[0]] += 1
            if attempt < BOOT_ATTEMPTS:
                log(f"{a.name}: nested KVM failed the boot ({why}): retrying it")
                continue
            res["failures"].insert(0, f"nested KVM failed the boot on all {attempt} attempts "
                                   f"(last: {why})")
        break
    judge(res, a)
    res["failures"][:0] = kill_failures
    out.update(res)
    out["ok"] = not res["failures"]
    link_del(TAP)
    if a.migrate:
        link_del(TAP2)
        link_del(BR)
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=1)
    if out["ok"]:
        log(f"{a.name}: all passed")
    else:
        log(f"{a.name}: FAILED:")
        for x in res["failures"]:
            log(f"  - {x}")
        if res.get("qemu_stderr_tail"):
            log(f"  QEMU stderr (last lines of {res['logs'][1]}):")
            for x in res["qemu_stderr_tail"][-15:]:
                log(f"    {x}")
        log(f"  L2 console: {res['logs'][0]}")
    return 0 if out["ok"] else 1


def mbps(r):
    if r and r.get("ok") and r.get("secs"):
        return r["bytes"] / r["secs"] / 1e6
    return None


def cmd_summary(a):
    rows = []
    for path in a.results:
        try:
            with open(path) as fh:
                rows.append(json.load(fh))
        except (OSError, ValueError) as e:
            print(f"summary: cannot read {path}: {e}")
    fmt = "{:<18} {:<6} {:>16} {:>22} {:>12} {:>12} {:>9} {:>9}"
    print()
    print("vhost-rs demo: a QEMU guest (L2, nested KVM) networking through each backend")
    print(fmt.format("device", "result", "L2 boot", "ping min/avg/max ms", "L2->L1 MB/s",
                     "L1->L2 MB/s", "checksum", "attempts"))
    vals = {}
    for r in rows:
        rx, tx = mbps(r.get("l1_to_l2")), mbps(r.get("l2_to_l1"))
        rtt = (r.get("ping") or {}).get("rtt", "none")
        sums = "ok" if (r.get("l2_rx") or {}).get("sha256") == r["sha256"] and \
            (r.get("l2_to_l1") or {}).get("sha256") == r["sha256"] else "BAD"
        boot = r.get("boot_s")
        errs = [f"{n} {what}" for n, what in ((r.get("kvm_errors", 0), "KVM err"),
                                               (r.get("boot_hangs", 0), "hang"),
                                               (r.get("guest_resets", 0), "reset")) if n]
        att = f"{r['attempts']}" + (f" ({', '.join(errs)})" if errs else "")
        print(fmt.format(r["dev"], "ok" if r["ok"] else "FAIL",
                         (f"{boot:.1f} s" + (f" ({r['l2_uptime_ready']:.0f} s)"
                                             if r.get("l2_uptime_ready") else ""))
                         if boot else "-", rtt,
                         f"{tx:.2f}" if tx else "-", f"{rx:.2f}" if rx else "-", sums, att))
        avg = None
        if rtt.count("/") == 2:
            avg = float(rtt.split("/")[1])
        vals[r["name"]] = {"boot": boot, "ping": avg, "tx": tx, "rx": rx}
    print("L2 boot: from QEMU's start to eth0 up, seen from L1 (in brackets: the L2 kernel's "
          "own uptime then; the rest is QEMU, firmware and loading the kernel under nested KVM)")
    print(f"payload: {rows[0]['size'] >> 20} MiB of /dev/urandom each way, sha256 "
          f"{rows[0]['sha256'][:16]}...; MB/s = 10^6 bytes/s, timed in L1" if rows else "")
    ours, ref = vals.get("vhost-rs"), vals.get("vhost-net")
    if ours and ref:
        parts = []
        for k, label in (("boot", "L2 boot"), ("ping", "ping avg"), ("tx", "L2->L1"),
                         ("rx", "L1->L2")):
            if ours[k] and ref[k]:
                parts.append(f"{label} {ours[k] / ref[k]:.2f}x")
            else:
                parts.append(f"{label} -")
        print("vhost-rs / vhost-net: " + ", ".join(parts))
        print("  (time and rtt: lower is better; MB/s: higher is better. One run each under "
              "nested KVM on TCG: expect noise of 2x or more.)")
    hz = os.sysconf("SC_CLK_TCK")
    for r in rows:
        ev = r.get("evidence") or {}
        tap = r.get("tap_stats") or {}
        ticks = r.get("worker_ticks")
        if ev.get("fd") is not None:
            print(f"{r['dev']}: held open by QEMU (pid {r['qemu_pid']}, fd {ev['fd']}); worker "
                  f"thread vhost-{r['qemu_pid']} "
                  + (f"ran {ticks / hz:.1f} s of CPU during the test; " if ticks is not None
                     else "; ")
                  + f"tap0 saw {tap.get('rx_bytes', 0) / 1e6:.1f} MB in, "
                  f"{tap.get('tx_bytes', 0) / 1e6:.1f} MB out")
    # Features the guest driver accepted (virtio-net's sysfs bit string, bit 0 first).
    feats = {r["name"]: r.get("l2_features") for r in rows}
    a, b = feats.get("vhost-rs"), feats.get("vhost-net")
    if a and b and a != b:
        names = {32: "VERSION_1", 33: "ACCESS_PLATFORM", 34: "RING_PACKED", 35: "IN_ORDER",
                 37: "SR_IOV", 38: "NOTIFICATION_DATA", 40: "RING_RESET"}
        only = lambda x, y: [f"{i} {names.get(i, '')}".strip()
                             for i in range(min(len(x), len(y))) if x[i] == "1" and y[i] != "1"]
        print("feature bits the guest accepted differ: only over vhost-net: "
              f"{', '.join(only(b, a)) or 'none'}; only over vhost-rs: "
              f"{', '.join(only(a, b)) or 'none'}")
    kvm = sum(r.get("kvm_errors", 0) for r in rows)
    hangs = sum(r.get("boot_hangs", 0) for r in rows)
    resets = sum(r.get("guest_resets", 0) for r in rows)
    boots = sum(r["attempts"] for r in rows)
    print(f"L2 boots: {boots}; nested KVM failed {kvm} with QEMU's '{KVM_ERROR}', hung "
          f"{hangs} before /init and reset {resets} guests unasked (each such boot is "
          "retried)")
    for r in rows:
        if not r["ok"]:
            print(f"{r['dev']} FAILED: " + "; ".join(r["failures"]))
    return 0


def cmd_hold_kvm(a):
    """Holds a KVM VM (with an in-kernel irqchip and one vCPU that never runs) until killed.

    Why: every L2 QEMU that exits destroys its VM, and the last VM going flips static keys
    (preempt_notifier_key, whose branches sit in __schedule(); the LAPIC keys), so the kernel
    patches its text with int3 breakpoints. Under TCG that cross-CPU patching sometimes leaves
    another vCPU executing a stale int3 (seen twice in L1: "Oops: int3" in __schedule() of the
    idle task, a jump-label site, after an L2 exit; not in any of our code). With one VM held
    for the whole run, the counts never drop to zero and nothing is patched."""
    fd = os.open("/dev/kvm", os.O_RDWR)
    vm = fcntl.ioctl(fd, 0xAE01, 0)  # KVM_CREATE_VM
    for req, arg in ((0xAE60, 0), (0xAE41, 0)):  # KVM_CREATE_IRQCHIP, KVM_CREATE_VCPU 0
        try:
            fcntl.ioctl(vm, req, arg)
        except OSError as e:
            log(f"hold-kvm: ioctl {req:#x}: {e}")
    log(f"hold-kvm: holding a KVM VM (pid {os.getpid()})")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dev", required=True)
    r.add_argument("--name", required=True)
    r.add_argument("--kernel", required=True)
    r.add_argument("--initrd", required=True)
    r.add_argument("--payload", required=True)
    r.add_argument("--logdir", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--qemu", default="qemu-system-x86_64")
    r.add_argument("--l2-mem", default="512M")
    r.add_argument("--ping", type=int, default=10)
    r.add_argument("--timeout", type=int, default=1200, help="seconds per L2 boot, all in")
    r.add_argument("--boot-timeout", type=int, default=300,
                   help="seconds for L2 to reach /init before the boot counts as hung")
    r.add_argument("--xfer-timeout", type=int, default=600, help="seconds per transfer")
    bits = lambda v: [int(x) for x in v.split(",") if x]
    r.add_argument("--netdev-extra", default="", help="appended to -netdev, e.g. ,poll-us=50")
    r.add_argument("--device-extra", default="", help="appended to -device, e.g. ,mq=on")
    r.add_argument("--machine", default="pc,accel=kvm", help="QEMU -machine")
    r.add_argument("--bios", default=None,
                   help="QEMU -bios, e.g. /usr/share/qemu/qboot.rom (fewer exits than SeaBIOS)")
    r.add_argument("--hugepages", default=None, metavar="DIR",
                   help="the L2 RAM on this hugetlbfs mount when it has the free pages")
    r.add_argument("--ringreset", action="store_true",
                   help="the guest resizes both rings (ethtool -G) during each stream")
    r.add_argument("--pre-device", action="append", default=[],
                   help="a -device before the NIC, e.g. intel-iommu,...; repeatable")
    r.add_argument("--append-extra", action="append", default=[],
                   help="appended to the L2 kernel command line; repeatable")
    r.add_argument("--queues", type=int, default=1, help="queue pairs: opens the device N times")
    r.add_argument("--smp", type=int, default=1, help="L2 vCPUs")
    r.add_argument("--expect-on", type=bits, default=[], help="feature bits that must be on")
    r.add_argument("--expect-off", type=bits, default=[], help="feature bits that must be off")
    r.add_argument("--expect-rxq", type=int, default=None, help="rx queues the guest must have")
    r.add_argument("--reboot", action="store_true", help="the guest reboots once")
    r.add_argument("--expect-split", action="store_true",
                   help="each open of the device runs RX and TX on worker threads of their own")
    r.add_argument("--kill-mid", action="store_true",
                   help="first a QEMU killed with SIGKILL mid-stream")
    r.add_argument("--migrate", action="store_true",
                   help="live-migrate to a second QEMU (own tap, own fd) during the stream")
    r.add_argument("--migrate-delay", type=float, default=0.5,
                   help="seconds into the L1->L2 stream before the migration starts")
    r.add_argument("--payload-repeat", type=int, default=1,
                   help="each stream is the payload this many times (not with --migrate: see below)")
    r.add_argument("--migrate-repeat", type=int, default=16,
                   help="the payload is repeated this many times for --migrate")
    r.add_argument("--kill-delay", type=float, default=1.0,
                   help="seconds into the stream before the SIGKILL")
    sub.add_parser("hold-kvm")
    sub.add_parser("serve")
    s = sub.add_parser("summary")
    s.add_argument("results", nargs="+")
    a = ap.parse_args()
    if a.cmd == "hold-kvm":
        return cmd_hold_kvm(a)
    if a.cmd == "serve":
        return cmd_serve(ap)
    return cmd_run(a) if a.cmd == "run" else cmd_summary(a)


def cmd_serve(ap):
    """`serve`: one `run` per line of stdin (its options, shell-quoted), each followed by the
    line `l2-run-done RC`. Why: tests/qemu/variants.sh runs some 16 guests, and in the test VM
    every start of this script cost it 20-30 s (python and its modules come over 9p under
    TCG; 2026-12-07), so it starts it once."""
    import shlex
    import traceback
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            rc = cmd_run(ap.parse_args(["run", *shlex.split(line)]))
        except SystemExit as e:  # argparse's errors
            rc = e.code if isinstance(e.code, int) else 2
        except Exception:
            traceback.print_exc(file=sys.stdout)
            rc = 2
        print(f"l2-run-done {rc}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
