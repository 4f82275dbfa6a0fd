#!/bin/busybox sh
# /init of the L2 guest's initramfs (built by scripts/l2.sh): loads the virtio-net modules,
# brings eth0 up with a static address, then does what the kernel command line says, and
# powers off. Everything it reports goes to the console (ttyS0) as lines starting `L2: `,
# which tests/qemu/l2_run.py reads.
#
# Kernel command line (all optional):
#   vhdemo.addr=10.99.0.2/24    eth0's address
#   vhdemo.peer=10.99.0.1       the L1 side of the tap
#   vhdemo.run=demo             demo: ping, then L1->L2 and L2->L1 bulk TCP (busybox nc);
#                               ping: only the ping; shell: a shell on the console; none
#   vhdemo.ping=10              ping count
#   vhdemo.rxport=5002          L1 sends the payload on this port (L1->L2)
#   vhdemo.txport=5001          we send it back on this one (L2->L1)
#   vhdemo.timeout=300          seconds allowed per transfer
#   vhdemo.reboot=1             after the transfers, ask L1 (nc peer ctlport) whether to
#                               reboot: `reboot` -> say `rebooting` and reboot -f; else finish
#   vhdemo.ctlport=5003         the port for that question
#   vhdemo.hold=1               after L1->L2, wait for L1's word on ctlport (the migration
#                               is over) before L2->L1
/bin/busybox mkdir -p /proc /sys /dev /tmp /bin /sbin /usr/bin /usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s
exec </dev/console >/dev/console 2>&1
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

say() { echo "L2: $*"; }
finish() {
	say "done rc=$1 uptime=$(cut -d' ' -f1 /proc/uptime)"
	# Anything the guest kernel had to say about the device or the driver.
	dmesg | grep -E 'virtio|eth0|net_failover|NETDEV WATCHDOG|timed out|BUG:|WARNING:|Call Trace' |
		tail -20 | sed 's/^/L2-dmesg: /'
	sync
	poweroff -f
	echo o >/proc/sysrq-trigger
	sleep 5
}

addr=10.99.0.2/24 peer=10.99.0.1 run=demo count=10 rxport=5002 txport=5001 tmo=300
reboot=0 ctlport=5003 hold=0 ringreset=0
for arg in $(cat /proc/cmdline); do
	case $arg in
	vhdemo.addr=*) addr=${arg#*=} ;;
	vhdemo.peer=*) peer=${arg#*=} ;;
	vhdemo.run=*) run=${arg#*=} ;;
	vhdemo.ping=*) count=${arg#*=} ;;
	vhdemo.rxport=*) rxport=${arg#*=} ;;
	vhdemo.txport=*) txport=${arg#*=} ;;
	vhdemo.timeout=*) tmo=${arg#*=} ;;
	vhdemo.reboot=*) reboot=${arg#*=} ;;
	vhdemo.ctlport=*) ctlport=${arg#*=} ;;
	vhdemo.hold=*) hold=${arg#*=} ;;
	vhdemo.ringreset=*) ringreset=${arg#*=} ;;
	esac
done
say "init up=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r) run=$run"

for m in $(cat /lib/modules/order); do
	if ! out=$(insmod /lib/modules/$m.ko 2>&1); then
		say "FAIL insmod $m: $out"
		finish 1
	fi
done

# The device shows up asynchronously after virtio_pci probes it.
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ ! -e /sys/class/net/eth0 ]; then
	say "FAIL no eth0 after 10 s: $(ls /sys/class/net | tr '\n' ' ')"
	finish 1
fi
ip link set lo up
ip addr add "$addr" dev eth0 && ip link set eth0 up || {
	say "FAIL cannot configure eth0"
	finish 1
}
say "ready eth0 mac=$(cat /sys/class/net/eth0/address) features=$(cat /sys/class/net/eth0/device/features 2>/dev/null) up=$(cut -d' ' -f1 /proc/uptime) rxq=$(ls -d /sys/class/net/eth0/queues/rx-* 2>/dev/null | wc -l) txq=$(ls -d /sys/class/net/eth0/queues/tx-* 2>/dev/null | wc -l)"

case $run in
shell)
	setsid cttyhack sh
	finish 0
	;;
none)
	finish 0
	;;
esac

rc=0
# --- ping: busybox prints "N packets transmitted, N packets received" and
# "round-trip min/avg/max = a/b/c ms" ---
out=$(ping -c "$count" -w $((count * 3 + 10)) "$peer" 2>&1)
echo "$out" | sed 's/^/L2-ping: /'
tx=$(echo "$out" | sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p')
rx=$(echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
rtt=$(echo "$out" | sed -n 's/^round-trip min\/avg\/max = \([0-9.\/]*\) ms.*/\1/p')
say "ping tx=${tx:-0} rx=${rx:-0} rtt=${rtt:-none}"
[ "${rx:-0}" -gt 0 ] || rc=1
[ "$run" = ping ] && finish $rc

# --- L1 -> L2: L1 sends the payload and closes; nc ends at the end of the stream. Its stdin
# is a fifo that we hold open, so that nc never half-closes early (busybox nc shuts down its
# sending side at stdin's end). ---
# vhdemo.ringreset=1: while each stream runs, resize both rings and back with `ethtool -G`,
# which resets each queue (VIRTIO_F_RING_RESET): QEMU detaches that queue's vhost backend,
# sets the ring up again and re-attaches it while the other queue runs on.
resize() { # tag
	sleep 0.5
	o1=$(ethtool -G eth0 rx 128 tx 128 2>&1); r1=$?
	n1=$(ethtool -g eth0 2>/dev/null | awk '/Current/ {c=1} c && /^RX:/ {rx=$2} c && /^TX:/ {tx=$2} END {print rx "/" tx}')
	sleep 1
	o2=$(ethtool -G eth0 rx 256 tx 256 2>&1); r2=$?
	n2=$(ethtool -g eth0 2>/dev/null | awk '/Current/ {c=1} c && /^RX:/ {rx=$2} c && /^TX:/ {tx=$2} END {print rx "/" tx}')
	say "ringreset $1 rc=$r1,$r2 rings=$n1,$n2 ${o1}${o2}"
}

mkfifo /tmp/hold
exec 3<>/tmp/hold
[ "$ringreset" = 1 ] && resize rx &
say "rx start port=$rxport"
timeout "$tmo" nc "$peer" "$rxport" </tmp/hold >/tmp/data
nrc=$?
exec 3>&-
size=$(wc -c </tmp/data)
sum=$(sha256sum /tmp/data | cut -d' ' -f1)
say "rx done rc=$nrc bytes=$size sha256=$sum"
[ $nrc = 0 ] || rc=1

# --- vhdemo.hold=1 (live migration): wait until L1 says the migration is over, so that the
# rest runs on the destination QEMU, however fast the stream was. ---
if [ "$hold" = 1 ]; then
	what=$(timeout "$tmo" nc "$peer" "$ctlport" </dev/null)
	say "hold released=${what:-none} up=$(cut -d' ' -f1 /proc/uptime)"
fi

# --- L2 -> L1: we send it back; at the file's end nc shuts down its side, L1 closes. ---
wait # the RX stream's resizes
[ "$ringreset" = 1 ] && resize tx &
say "tx start port=$txport"
timeout "$tmo" nc "$peer" "$txport" </tmp/data >/dev/null
nrc=$?
say "tx done rc=$nrc"
[ $nrc = 0 ] || rc=1

# The driver's view of what crossed the device.
wait # the resizes, if any
set -- $(cat /sys/class/net/eth0/statistics/rx_packets /sys/class/net/eth0/statistics/rx_bytes \
	/sys/class/net/eth0/statistics/tx_packets /sys/class/net/eth0/statistics/tx_bytes \
	/sys/class/net/eth0/statistics/rx_errors /sys/class/net/eth0/statistics/tx_errors \
	/sys/class/net/eth0/statistics/rx_dropped /sys/class/net/eth0/statistics/tx_dropped)
say "stats rx_packets=$1 rx_bytes=$2 tx_packets=$3 tx_bytes=$4 rx_errors=$5 tx_errors=$6 rx_dropped=$7 tx_dropped=$8"
if [ "$reboot" = 1 ] && [ $rc = 0 ]; then
	what=$(timeout 60 nc "$peer" "$ctlport" </dev/null)
	if [ "$what" = reboot ]; then
		say "rebooting uptime=$(cut -d' ' -f1 /proc/uptime)"
		sync
		reboot -f
		sleep 10
	fi
fi
finish $rc
