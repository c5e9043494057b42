#!/bin/bash
# /init of the znbd VM swap test (runs as PID 1 in the guest; see
# run-vm-swap-test.sh).  Prints "VM-STAGE: ..." progress lines and ends with
# exactly one "VM-RESULT: PASS ..." or "VM-RESULT: FAIL ..." line, then powers
# the guest off.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
export HOME=/root TERM=dumb
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/virtio-ports /run /tmp /mnt /root
mount -t tmpfs -o size=16m tmpfs /run

# shellcheck disable=SC1091
. /etc/vmtest.conf   # EXPORT, VM_TIMEOUT, SEED, HOG_MIB, HOG2_MIB, NPORTS, ZNBD_PASS, HOG3_MIB, HOG3_RATIO

uptime_s() { cut -d' ' -f1 /proc/uptime; }
stage() { echo "VM-STAGE: $* (t=$(uptime_s)s)"; }
T_INIT=$(uptime_s)
stage "init started"
echo "memhog seed: $SEED"

# Info messages (nbd, swap) and sysrq dumps reach the console.
echo 7 > /proc/sys/kernel/printk
echo 1 > /proc/sys/kernel/sysrq
echo 30 > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
echo 0 > /proc/sys/kernel/hung_task_panic 2>/dev/null

poweroff_now() {
    sync
    echo "VM-STAGE: powering off"
    poweroff -f
    echo o > /proc/sysrq-trigger
    sleep 10
}

diag() {
    echo "---- diagnostics ----"
    cat /proc/swaps
    grep -E 'MemTotal|MemFree|MemAvailable|SwapTotal|SwapFree' /proc/meminfo
    grep -E '^(pswpin|pswpout|oom_kill) ' /proc/vmstat
    [ -f /run/relay.log ] && { echo "-- relay log (tail)"; tail -n 20 /run/relay.log; }
    [ -f /run/znbd/znbd.log ] && { echo "-- znbd.log (tail)"; tail -n 20 /run/znbd/znbd.log; }
    [ -d /sys/fs/cgroup/hog ] && { echo "-- hog memory.events"; cat /sys/fs/cgroup/hog/memory.events; }
    echo "-- dmesg (tail)"
    dmesg | tail -n 40
    echo "---------------------"
}

fail() {
    echo "VM-STAGE: failure: $*"
    diag
    echo "VM-RESULT: FAIL $*"
    poweroff_now
}

run() {   # run a command, echoing it, failing the test on non-zero status
    echo "+ $*"
    "$@" || fail "command failed (status $?): $*"
}

# ---- guest watchdog: dump blocked tasks and locks before the host gives up
(
    deadline=$(( VM_TIMEOUT - 45 ))
    [ "$deadline" -lt 30 ] && deadline=30
    sleep "$deadline"
    echo "VM-WATCHDOG: ${deadline}s after init, test not finished: dumping blocked tasks (sysrq w) and CPUs (sysrq l)"
    echo 8 > /proc/sys/kernel/printk
    echo w > /proc/sysrq-trigger
    echo l > /proc/sysrq-trigger
    cat /proc/swaps; grep -E '^(pswpin|pswpout) ' /proc/vmstat
    tail -n 20 /run/relay.log
    sleep 20
    echo "VM-WATCHDOG: second dump"
    echo w > /proc/sysrq-trigger
) &

# ---- modules
stage "loading modules"
while read -r mod; do
    [ -n "$mod" ] || continue
    insmod "/modules/$mod" || fail "insmod $mod"
done < /modules/order

# virtio-serial ports by name (udev would create these symlinks)
for i in $(seq 1 50); do
    n=0
    for p in /sys/class/virtio-ports/*; do
        [ -f "$p/name" ] || continue
        name=$(cat "$p/name")
        [ -n "$name" ] && ln -sf "/dev/$(basename "$p")" "/dev/virtio-ports/$name" && n=$((n + 1))
    done
    [ "$n" -ge "$NPORTS" ] && break
    sleep 0.2
done
ls -l /dev/virtio-ports/
PORTS=()
for i in $(seq 0 $((NPORTS - 1))); do
    [ -e "/dev/virtio-ports/nbd$i" ] || fail "virtio port nbd$i missing"
    PORTS+=("/dev/virtio-ports/nbd$i")
done
[ -b /dev/nbd0 ] || fail "/dev/nbd0 missing after loading nbd.ko"

# ---- relay: /run/nbd.sock -> one virtio port per connection
/bin/relay /run/nbd.sock "${PORTS[@]}" 2>/run/relay.log &
RELAY_PID=$!
for i in $(seq 1 50); do [ -S /run/nbd.sock ] && break; sleep 0.1; done
[ -S /run/nbd.sock ] || fail "relay did not start"

# attach DEV EXTRA-ARGS...: nbd-client with retries (the host connection of an
# idle port may be in the middle of being re-established)
attach() {
    local dev=$1; shift
    local try
    for try in 1 2 3 4 5; do
        echo "+ nbd-client -unix /run/nbd.sock -N $EXPORT -b 4096 $* $dev (try $try)"
        if nbd-client -unix /run/nbd.sock -N "$EXPORT" -b 4096 "$@" "$dev"; then
            local sz=0
            for _ in $(seq 1 50); do
                sz=$(cat "/sys/block/$(basename "$dev")/size")
                [ "$sz" -gt 0 ] && break
                sleep 0.1
            done
            [ "$sz" -gt 0 ] || fail "$dev has size 0 after nbd-client"
            echo "$dev attached: $((sz / 2048)) MiB"
            return 0
        fi
        nbd-client -d "$dev" >/dev/null 2>&1
        sleep 2
    done
    fail "nbd-client could not attach $dev"
}

detach() {
    local dev=$1
    run nbd-client -d "$dev"
    for _ in $(seq 1 100); do
        [ "$(cat "/sys/block/$(basename "$dev")/size")" = 0 ] && return 0
        sleep 0.1
    done
    fail "$dev still has a size after nbd-client -d"
}

vmstat() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
meminfo_kb() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }

# hog MIB LIMIT_MIB SEED: run memhog inside the memory cgroup "hog"
CG=/sys/fs/cgroup
setup_cgroup() {
    mkdir -p $CG
    mount -t cgroup2 cgroup2 $CG || fail "mount cgroup2"
    echo +memory > $CG/cgroup.subtree_control || fail "enable memory controller"
    mkdir -p $CG/hog
}
hog() {
    local mib=$1 limit=$2 seed=$3
    echo "$((limit * 1024 * 1024))" > $CG/hog/memory.max || fail "set memory.max"
    echo max > $CG/hog/memory.swap.max 2>/dev/null
    echo "+ memhog $mib (memory.max ${limit} MiB)"
    ( echo "$BASHPID" > $CG/hog/cgroup.procs && exec /bin/memhog "$mib" "$seed" ) | tee /run/memhog.out
    local st=${PIPESTATUS[0]}
    echo "hog memory.events: $(tr '\n' ' ' < $CG/hog/memory.events)"
    [ "$st" = 0 ] || fail "memhog failed (status $st)"
    HOG_VERIFIED=$(sed -n 's/^memhog: OK .*verified=\([0-9]*\).*/\1/p' /run/memhog.out)
    [ -n "$HOG_VERIFIED" ] || fail "memhog printed no OK line"
}

check_swaps() {   # DEV PRIO
    local line
    line=$(awk -v d="$1" '$1 == d' /proc/swaps)
    echo "/proc/swaps: $line"
    [ -n "$line" ] || fail "$1 not in /proc/swaps"
    [ "$(echo "$line" | awk '{print $5}')" = "$2" ] || fail "$1 has priority $(echo "$line" | awk '{print $5}'), want $2"
}

setup_cgroup
MEMTOTAL_MIB=$(( $(meminfo_kb MemTotal) / 1024 ))
stage "guest MemTotal ${MEMTOTAL_MIB} MiB"

# ===================== pass 1: netlink, one connection ======================
stage "pass 1: attach (netlink, 1 connection)"
attach /dev/nbd0
run mkswap /dev/nbd0
run swapon -p 100 /dev/nbd0
check_swaps /dev/nbd0 100

AVAIL_MIB=$(( $(meminfo_kb MemAvailable) / 1024 ))
RESERVE_MIB=$(( MEMTOTAL_MIB / 8 )); [ "$RESERVE_MIB" -lt 48 ] && RESERVE_MIB=48
LIMIT_MIB=$(( AVAIL_MIB - RESERVE_MIB ))
[ "$LIMIT_MIB" -ge 64 ] || fail "too little guest memory for the hog (available ${AVAIL_MIB} MiB)"
[ "${HOG_MIB:-0}" -gt 0 ] || HOG_MIB=$(( MEMTOTAL_MIB * 7 / 4 ))
SWAP_MIB=$(( $(meminfo_kb SwapTotal) / 1024 ))
[ $((HOG_MIB - LIMIT_MIB + 32)) -lt "$SWAP_MIB" ] || fail "swap (${SWAP_MIB} MiB) too small for a ${HOG_MIB} MiB hog"

stage "pass 1: memory pressure: hog ${HOG_MIB} MiB, cgroup limit ${LIMIT_MIB} MiB (available ${AVAIL_MIB}, reserve ${RESERVE_MIB})"
IN0=$(vmstat pswpin); OUT0=$(vmstat pswpout)
hog "$HOG_MIB" "$LIMIT_MIB" "$SEED"
IN1=$(vmstat pswpin); OUT1=$(vmstat pswpout)
PSWPIN=$((IN1 - IN0)); PSWPOUT=$((OUT1 - OUT0))
SWAPPED_MIB=$((PSWPOUT * 4 / 1024))
PAGES_VERIFIED=$HOG_VERIFIED
stage "pass 1: hog done: pages_verified=$PAGES_VERIFIED pswpin=$PSWPIN pswpout=$PSWPOUT swapped_mib=$SWAPPED_MIB"
[ "$PSWPOUT" -gt $(( (HOG_MIB - LIMIT_MIB) * 256 / 2 )) ] || fail "too little swap-out ($PSWPOUT pages) for a ${HOG_MIB} MiB hog under a ${LIMIT_MIB} MiB limit"
[ "$PSWPIN" -gt 0 ] || fail "no swap-in happened"

run swapoff /dev/nbd0
[ -z "$(awk '$1 == "/dev/nbd0"' /proc/swaps)" ] || fail "/dev/nbd0 still in /proc/swaps after swapoff"

stage "pass 1: ext4"
run mkfs.ext4 -q -F -b 4096 /dev/nbd0
run mount -t ext4 /dev/nbd0 /mnt
mkdir -p /mnt/data
for i in $(seq 1 16); do
    dd if=/dev/urandom of=/mnt/data/f$i bs=256k count=$(( (i % 4 + 1) * 4 )) 2>/dev/null || fail "write f$i"
done
# a compressible one and a sparse one too
yes "znbd vm test line" | head -c 8388608 > /mnt/data/text || fail "write text"
dd if=/dev/urandom of=/mnt/data/sparse bs=4k count=1 seek=4096 2>/dev/null || fail "write sparse"
(cd /mnt/data && md5sum -- * > /run/sums) || fail "md5sum"
du -sh /mnt/data
run sync
echo 3 > /proc/sys/vm/drop_caches
(cd /mnt/data && md5sum -c -s /run/sums) || fail "checksums differ after drop_caches"
echo "ext4: $(wc -l < /run/sums) files verified after drop_caches"
rm -f /mnt/data/f1 /mnt/data/f3 /mnt/data/f5 /mnt/data/f7 /mnt/data/f9 /mnt/data/f11 /mnt/data/f13 /mnt/data/f15
grep -v -E ' f(1|3|5|7|9|11|13|15)$' /run/sums > /run/sums2
run sync
run fstrim -v /mnt
run umount /mnt
run mount -t ext4 /dev/nbd0 /mnt
(cd /mnt/data && md5sum -c -s /run/sums2) || fail "checksums differ after remount"
echo "ext4: $(wc -l < /run/sums2) files verified after delete, fstrim and remount"
run umount /mnt
run e2fsck -fn /dev/nbd0
detach /dev/nbd0
stage "pass 1 done"

# ============ pass 2: ioctl (-nonetlink), two connections (-C 2) ============
if [ "$NPORTS" -ge 2 ]; then
    # qemu re-establishes the host connection closed by pass 1 (reconnect=1)
    sleep 2
    stage "pass 2: attach (-nonetlink, -C 2)"
    attach /dev/nbd1 -C 2 -nonetlink
    sleep 0.5
    active=$(sed -n 's/^relay: active connections: \([0-9]*\)$/\1/p' /run/relay.log | tail -n 1)
    echo "relay: $active active connections"
    [ "$active" = 2 ] || fail "-C 2 gave $active relayed connections, want 2"
    run mkswap /dev/nbd1
    run swapon -p 100 /dev/nbd1
    check_swaps /dev/nbd1 100
    [ "${HOG2_MIB:-0}" -gt 0 ] || HOG2_MIB=$(( MEMTOTAL_MIB / 2 ))
    LIMIT2=$(( HOG2_MIB / 2 ))
    IN0=$(vmstat pswpin); OUT0=$(vmstat pswpout)
    hog "$HOG2_MIB" "$LIMIT2" $((SEED + 1))
    IN1=$(vmstat pswpin); OUT1=$(vmstat pswpout)
    P2IN=$((IN1 - IN0)); P2OUT=$((OUT1 - OUT0))
    stage "pass 2: hog done: pages_verified=$HOG_VERIFIED pswpin=$P2IN pswpout=$P2OUT"
    [ "$P2OUT" -gt 0 ] && [ "$P2IN" -gt 0 ] || fail "pass 2 did not swap"
    PAGES_VERIFIED=$((PAGES_VERIFIED + HOG_VERIFIED))
    PSWPIN=$((PSWPIN + P2IN)); PSWPOUT=$((PSWPOUT + P2OUT))
    SWAPPED_MIB=$((PSWPOUT * 4 / 1024))
    run swapoff /dev/nbd1
    detach /dev/nbd1
    # the ioctl-mode nbd-client daemon must have gone away
    sleep 1
    if pidof nbd-client >/dev/null; then fail "nbd-client still running after -d: $(pidof nbd-client)"; fi
    stage "pass 2 done"
fi

# ===== pass 3: the real znbd in the guest: znbd swapon --attach nbd / swapoff =====
# The server runs in the guest and stores the guest's own swap, so it must be
# swap-safe: mlocked, OOM-exempt, I/O flusher (what `znbd serve` does as root).
alive() {   # PID: running and not a zombie
    [ -r "/proc/$1/stat" ] || return 1
    case "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" in Z|X|"") return 1 ;; esac
}
if [ "${ZNBD_PASS:-0}" = 1 ]; then
    stage "pass 3: znbd swapon --attach nbd inside the guest"
    mkdir -p /znbd
    run mount -t ext4 -o ro /dev/vda /znbd
    ZNBD=/znbd/znbd
    RT=/run/znbd
    AVAIL_MIB=$(( $(meminfo_kb MemAvailable) / 1024 ))
    # The hog's overflow ends up compressed in the server's memory, outside
    # the hog's cgroup: half of what is available goes to the hog, and the
    # overflow (half as much again) fits in the other half.  The overflow is
    # kept small because this server is a debug build under emulation.
    LIMIT3=$(( (AVAIL_MIB - RESERVE_MIB) / 2 ))
    [ "$LIMIT3" -ge 48 ] || fail "too little guest memory for pass 3 (available ${AVAIL_MIB} MiB)"
    # HOG3_RATIO (N/D, default 3/2): the hog over its limit.  At 5/2 the
    # overflow is larger than what is left of the guest's memory.
    RATIO3=${HOG3_RATIO:-3/2}
    [ "${HOG3_MIB:-0}" -gt 0 ] || HOG3_MIB=$(( LIMIT3 * ${RATIO3%/*} / ${RATIO3#*/} ))
    SWAP3_MIB=$(( HOG3_MIB + 64 ))
    echo "+ znbd swapon --attach nbd --devices 1 --size ${SWAP3_MIB}M --priority 100"
    "$ZNBD" swapon --attach nbd --devices 1 --size "${SWAP3_MIB}M" --priority 100 > /run/swapon.out 2>&1
    st=$?
    cat /run/swapon.out
    [ -f $RT/znbd.log ] && { echo "-- znbd.log"; cat $RT/znbd.log; }
    [ "$st" = 0 ] || fail "znbd swapon --attach nbd failed (status $st)"
    ZLINE=$(sed -n 's|^\(zram[0-9]*\): .* swap on \(/dev/[^ ]*\) priority .*|\1 \2|p' /run/swapon.out)
    read -r ZDEV ZBLOCK <<< "$ZLINE"
    case "$ZBLOCK" in /dev/nbd*) ;; *) fail "znbd swapon --attach nbd gave '${ZBLOCK}', not /dev/nbdN" ;; esac
    check_swaps "$ZBLOCK" 100
    ZPID=$(cat $RT/znbd.pid 2>/dev/null)
    alive "$ZPID" || fail "no znbd server running after znbd swapon (pidfile: '$ZPID')"
    echo "znbd serve pid $ZPID: $(grep -E '^VmLck' /proc/"$ZPID"/status | tr -s ' \t' ' '), oom_score_adj $(cat /proc/"$ZPID"/oom_score_adj)"
    [ "$(awk '$1 == "VmLck:" { print $2 }' /proc/"$ZPID"/status)" -gt 0 ] || fail "the guest's znbd server is not mlocked"
    [ "$(cat /proc/"$ZPID"/oom_score_adj)" = -1000 ] || fail "the guest's znbd server is not OOM-exempt"

    stage "pass 3: memory pressure: hog ${HOG3_MIB} MiB (ratio ${RATIO3}), cgroup limit ${LIMIT3} MiB (available ${AVAIL_MIB}), swap ${SWAP3_MIB} MiB served in the guest"
    IN0=$(vmstat pswpin); OUT0=$(vmstat pswpout)
    hog "$HOG3_MIB" "$LIMIT3" $((SEED + 2))
    IN1=$(vmstat pswpin); OUT1=$(vmstat pswpout)
    P3IN=$((IN1 - IN0)); P3OUT=$((OUT1 - OUT0))
    stage "pass 3: hog done: pages_verified=$HOG_VERIFIED pswpin=$P3IN pswpout=$P3OUT"
    [ "$P3OUT" -gt $(( (HOG3_MIB - LIMIT3) * 256 / 2 )) ] || fail "pass 3: too little swap-out ($P3OUT pages) for a ${HOG3_MIB} MiB hog under a ${LIMIT3} MiB limit"
    [ "$P3IN" -gt 0 ] || fail "pass 3: no swap-in happened"
    alive "$ZPID" || fail "the guest's znbd server died under memory pressure"
    MM=$("$ZNBD" get "$ZDEV" mm_stat) || fail "znbd get $ZDEV mm_stat"
    IO=$("$ZNBD" get "$ZDEV" io_stat) || fail "znbd get $ZDEV io_stat"
    echo "$ZDEV mm_stat: $MM"
    echo "$ZDEV io_stat: $IO"
    read -r _ _ _ _ MEM_MAX _ <<< "$MM"
    [ "${MEM_MAX:-0}" -gt 0 ] || fail "$ZDEV mm_stat: mem_used_max is 0, nothing was stored"
    read -r FAILED_READS FAILED_WRITES _ <<< "$IO"
    [ "$FAILED_READS" = 0 ] && [ "$FAILED_WRITES" = 0 ] || fail "$ZDEV io_stat: failed reads/writes"
    PAGES_VERIFIED=$((PAGES_VERIFIED + HOG_VERIFIED))
    PSWPIN=$((PSWPIN + P3IN)); PSWPOUT=$((PSWPOUT + P3OUT))
    SWAPPED_MIB=$((PSWPOUT * 4 / 1024))

    run "$ZNBD" swapoff
    # nothing left: no swap, no nbd device attached, the server swapon started is gone
    [ "$(wc -l < /proc/swaps)" = 1 ] || { cat /proc/swaps; fail "swap left on after znbd swapoff"; }
    for b in /sys/block/nbd*; do
        [ -e "$b/pid" ] && fail "${b##*/} still has an nbd-client (pid $(cat "$b/pid")) after znbd swapoff"
        [ "$(cat "$b/size")" = 0 ] || fail "${b##*/} still has a size after znbd swapoff"
    done
    alive "$ZPID" && fail "znbd serve (pid $ZPID) still running after znbd swapoff"
    for p in $(pidof nbd-client znbd); do alive "$p" && fail "process $p ($(cat /proc/"$p"/comm)) left after znbd swapoff"; done
    [ -e $RT/control.sock ] && fail "$RT/control.sock left after znbd swapoff"
    grep -q " $RT/" /proc/mounts && fail "a mount under $RT left after znbd swapoff: $(grep " $RT/" /proc/mounts)"
    stage "pass 3 done"

    # ===== pass 4: znbd's own FUSE export: znbd attach --attach fuse (loop, direct I/O) =====
    stage "pass 4: znbd serve + znbd attach --attach fuse inside the guest"
    [ -c /dev/fuse ] || fail "/dev/fuse missing after loading fuse.ko"
    SWAP4_MIB=$SWAP3_MIB
    echo "+ znbd serve --unix $RT/nbd.sock --control $RT/control.sock --pidfile $RT/znbd.pid --size ${SWAP4_MIB}M &"
    mkdir -p $RT
    "$ZNBD" serve --unix $RT/nbd.sock --control $RT/control.sock --pidfile $RT/znbd.pid --size "${SWAP4_MIB}M" > $RT/serve4.log 2>&1 &
    ZPID=$!
    for _ in $(seq 1 300); do [ -e $RT/fuse/zram0 ] && break; alive "$ZPID" || break; sleep 0.2; done
    cat $RT/serve4.log
    [ -e $RT/fuse/zram0 ] || fail "znbd serve exposed no $RT/fuse/zram0"
    echo "znbd serve pid $ZPID: $(grep -E '^VmLck' /proc/"$ZPID"/status | tr -s ' \t' ' '), oom_score_adj $(cat /proc/"$ZPID"/oom_score_adj)"
    [ "$(awk '$1 == "VmLck:" { print $2 }' /proc/"$ZPID"/status)" -gt 0 ] || fail "the guest's znbd server is not mlocked"
    [ "$(cat /proc/"$ZPID"/oom_score_adj)" = -1000 ] || fail "the guest's znbd server is not OOM-exempt"
    echo "+ znbd attach zram0 --attach fuse"
    LOOP=$("$ZNBD" attach zram0 --attach fuse) || fail "znbd attach zram0 --attach fuse failed"
    echo "$LOOP"
    case "$LOOP" in /dev/loop*) ;; *) fail "znbd attach --attach fuse gave '$LOOP', not /dev/loopN" ;; esac
    [ "$(cat /sys/block/"${LOOP#/dev/}"/loop/dio)" = 1 ] || fail "$LOOP is not in direct I/O mode"
    run mkswap "$LOOP"
    run swapon -p 100 "$LOOP"
    check_swaps "$LOOP" 100
    stage "pass 4: memory pressure: hog ${HOG3_MIB} MiB, cgroup limit ${LIMIT3} MiB, swap through $LOOP on the guest's FUSE export"
    IN0=$(vmstat pswpin); OUT0=$(vmstat pswpout)
    hog "$HOG3_MIB" "$LIMIT3" $((SEED + 3))
    IN1=$(vmstat pswpin); OUT1=$(vmstat pswpout)
    P4IN=$((IN1 - IN0)); P4OUT=$((OUT1 - OUT0))
    stage "pass 4: hog done: pages_verified=$HOG_VERIFIED pswpin=$P4IN pswpout=$P4OUT"
    [ "$P4OUT" -gt $(( (HOG3_MIB - LIMIT3) * 256 / 2 )) ] || fail "pass 4: too little swap-out ($P4OUT pages) for a ${HOG3_MIB} MiB hog under a ${LIMIT3} MiB limit"
    [ "$P4IN" -gt 0 ] || fail "pass 4: no swap-in happened"
    alive "$ZPID" || fail "the guest's znbd server died under memory pressure (FUSE)"
    MM=$("$ZNBD" get zram0 mm_stat) || fail "znbd get zram0 mm_stat"
    IO=$("$ZNBD" get zram0 io_stat) || fail "znbd get zram0 io_stat"
    echo "zram0 mm_stat: $MM"
    echo "zram0 io_stat: $IO"
    read -r _ _ _ _ MEM_MAX _ <<< "$MM"
    [ "${MEM_MAX:-0}" -gt 0 ] || fail "zram0 mm_stat: mem_used_max is 0, nothing was stored"
    read -r FAILED_READS FAILED_WRITES _ <<< "$IO"
    [ "$FAILED_READS" = 0 ] && [ "$FAILED_WRITES" = 0 ] || fail "zram0 io_stat: failed reads/writes"
    PAGES_VERIFIED=$((PAGES_VERIFIED + HOG_VERIFIED))
    PSWPIN=$((PSWPIN + P4IN)); PSWPOUT=$((PSWPOUT + P4OUT))
    SWAPPED_MIB=$((PSWPOUT * 4 / 1024))
    run swapoff "$LOOP"
    run "$ZNBD" detach zram0
    [ -e "/sys/block/${LOOP#/dev/}/loop/backing_file" ] && fail "$LOOP still attached after znbd detach"
    kill "$ZPID"
    for _ in $(seq 1 150); do alive "$ZPID" || break; sleep 0.2; done
    alive "$ZPID" && fail "znbd serve (pid $ZPID) did not stop on SIGTERM"
    wait "$ZPID" 2>/dev/null
    grep -q " $RT/" /proc/mounts && fail "the FUSE export is still mounted after znbd serve stopped: $(grep " $RT/" /proc/mounts)"
    run umount /znbd
    stage "pass 4 done"
fi

kill -0 "$RELAY_PID" 2>/dev/null || fail "the relay died"
echo "-- relay log"
cat /run/relay.log
stage "all passes done; runtime $(awk -v a="$T_INIT" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }')s"
echo "VM-RESULT: PASS pages_verified=$PAGES_VERIFIED pswpin=$PSWPIN pswpout=$PSWPOUT swapped_mib=$SWAPPED_MIB"
poweroff_now
