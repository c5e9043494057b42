#!/bin/bash
# run-vm-swap-test.sh SOCKET EXPORT
#
# Boots Debian's own kernel (which has nbd.ko) under qemu with a small
# initramfs and uses the NBD server listening on the Unix socket SOCKET,
# export EXPORT, as the guest's swap device and then as an ext4 file system,
# through the real kernel nbd driver and the real nbd-client.  The server must
# already be listening: qemu connects to SOCKET when the VM starts.
#
# No IP networking: every NBD connection is a qemu "-chardev socket" client of
# SOCKET, bridged to a virtio-serial port; in the guest, relay.c turns the
# ports into one Unix socket for nbd-client.  Two ports (nbd0, nbd1) allow
# "nbd-client -C 2".
#
# Exits 0 only if the guest prints "VM-RESULT: PASS ...".
#
# Environment:
#   VM_TIMEOUT  seconds before the run is declared hung (default 600); the
#               guest dumps blocked tasks (sysrq w, l) before that, and the host
#               sends alt-sysrq-w/l through the qemu monitor at the deadline.
#   VM_CACHE    kernel cache directory (default /var/cache/znbd-vm)
#   VM_MEM      guest RAM in MiB (default 384)
#   VM_SMP      guest CPUs (default 2)
#   VM_ACCEL    kvm or tcg (default: kvm if usable, else tcg)
#   VM_HOG_MIB  size of the pass-1 memory hog (default 7/4 of guest MemTotal)
#   VM_HOG2_MIB size of the pass-2 memory hog (default 1/2 of guest MemTotal)
#   VM_ZNBD     a znbd binary to run inside the guest (pass 3: `znbd swapon
#               --attach nbd` / `znbd swapoff`); it and its Swift libraries go
#               on a read-only virtio disk.  Unset: no pass 3.
#   VM_HOG3_MIB size of the pass-3 memory hog (default: see init.sh)
#   VM_HOG3_RATIO  pass-3/4 hog as a fraction of their cgroup limit, N/D
#               (default 3/2; 5/2 ran the guest out of memory), used when
#               VM_HOG3_MIB is unset
#   VM_SEED     memhog seed (default 1130; printed)
#   VM_KERNEL_PKG  kernel package (default: what linux-image-amd64 depends on)
#   VM_KEEP     if set, keep the work directory (initramfs, console log)
#   VM_POST_CHECK  shell command run on the host after the guest finished
#               (e.g. print and check the server's mm_stat); failure fails
#               the test
set -euo pipefail
umask 022   # the initramfs needs executable, world-readable files whatever the caller's umask

usage() { echo "usage: $0 SOCKET EXPORT" >&2; exit 2; }
[ $# -eq 2 ] || usage
SOCKET=$1
EXPORT=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

VM_TIMEOUT=${VM_TIMEOUT:-600}
VM_CACHE=${VM_CACHE:-/var/cache/znbd-vm}
VM_MEM=${VM_MEM:-384}
VM_SMP=${VM_SMP:-2}
VM_HOG_MIB=${VM_HOG_MIB:-0}
VM_HOG3_RATIO=${VM_HOG3_RATIO:-3/2}
SEED=${VM_SEED:-1130}
NPORTS=2

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "vm-test: $*"; }
die() { echo "vm-test: ERROR: $*" >&2; exit 1; }
[[ "$VM_HOG3_RATIO" =~ ^[1-9][0-9]*/[1-9][0-9]*$ ]] || die "VM_HOG3_RATIO must be N/D (e.g. 5/2), not '$VM_HOG3_RATIO'"

T_START=$(now)

# ------------------------------------------------------------------ checks
[ -S "$SOCKET" ] || die "$SOCKET is not a listening Unix socket (start the server first)"
for tool in qemu-system-x86_64 gcc cpio gzip dpkg-deb apt-get apt-cache modinfo ldd; do
    command -v "$tool" >/dev/null || die "$tool not found (run Tests/vm/install-deps.sh)"
done
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] && ! ldd "$BUSYBOX" >/dev/null 2>&1 || die "a static busybox is needed (package busybox-static)"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "VM_SEED must be a number"
VM_ZNBD=${VM_ZNBD:-}
[ -z "$VM_ZNBD" ] || [ -x "$VM_ZNBD" ] || die "VM_ZNBD=$VM_ZNBD is not an executable"
for tool in nbd-client mkswap swapon swapoff fstrim mke2fs e2fsck losetup bash; do
    PATH=$PATH:/sbin:/usr/sbin command -v "$tool" >/dev/null || die "$tool not found (run Tests/vm/install-deps.sh)"
done
case "$SOCKET" in *,*) die "SOCKET path must not contain a comma (qemu option syntax)";; esac

WORK=$(mktemp -d /tmp/znbd-vm.XXXXXX)
QEMU_PID=""
TAIL_PID=""
MONCAT_PID=""
cleanup() {
    local rc=$?
    set +e
    if [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null; then
        sleep 0.5
        kill -9 "$QEMU_PID" 2>/dev/null
    fi
    [ -n "$TAIL_PID" ] && kill "$TAIL_PID" 2>/dev/null
    [ -n "$MONCAT_PID" ] && kill "$MONCAT_PID" 2>/dev/null
    wait 2>/dev/null
    if [ -n "${VM_KEEP:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ kernel
KPKG=${VM_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')}
mkdir -p "$VM_CACHE"
newest_cached() { { ls -d "$VM_CACHE"/*/.complete 2>/dev/null || true; } | sed "s|/.complete$||" | sort -V | tail -n 1; }
fetch_kernel() {   # KPKG KDIR: download and unpack once; prune older kernels
    local kpkg=$1 kdir=$2 dl=$VM_CACHE/dl.tmp T
    [ -f "$kdir/.complete" ] && return 0
    T=$(now)
    log "downloading $kpkg into $VM_CACHE (once)"
    rm -rf "$kdir" "$kdir.tmp" "$dl"
    mkdir -p "$dl"
    local sandbox=()
    [ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
    (cd "$dl" && apt-get "${sandbox[@]}" -q download "$kpkg") || { rm -rf "$dl"; return 1; }
    dpkg-deb -x "$dl"/*.deb "$kdir.tmp" || { rm -rf "$dl" "$kdir.tmp"; return 1; }
    rm -rf "$dl"
    mv "$kdir.tmp" "$kdir"
    touch "$kdir/.complete"
    log "kernel ${kdir##*/} unpacked in $(elapsed "$T") s"
    local old
    for old in "$VM_CACHE"/*/.complete; do
        old=${old%/.complete}
        [ "$old" = "$kdir" ] || { log "removing older cached kernel ${old##*/}"; rm -rf "$old"; }
    done
}
exec 9>"$VM_CACHE/.lock"
flock 9
KDIR=""
if [ -n "$KPKG" ] && fetch_kernel "$KPKG" "$VM_CACHE/${KPKG#linux-image-}"; then
    KDIR=$VM_CACHE/${KPKG#linux-image-}
else
    # offline, or the mirror dropped that version: use what is cached
    KDIR=$(newest_cached)
    [ -n "$KDIR" ] || die "cannot get a kernel: ${KPKG:-linux-image-amd64 unresolved (apt-get update?)}"
    log "warning: could not fetch ${KPKG:-the current kernel}; using cached ${KDIR##*/}"
fi
exec 9>&-
KVER=${KDIR##*/}
VMLINUZ=$KDIR/boot/vmlinuz-$KVER
MODDIR=$KDIR/lib/modules/$KVER
[ -f "$VMLINUZ" ] && [ -d "$MODDIR" ] || die "incomplete kernel cache in $KDIR (remove it and retry)"

# ------------------------------------------------------------------ initramfs
T_BUILD=$(now)
R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,proc,sys,dev,run,tmp,mnt,etc,root,modules}

gcc -static -O2 -Wall -o "$R/bin/relay" "$HERE/relay.c" || die "building relay.c"
gcc -static -O2 -Wall -o "$R/bin/memhog" "$HERE/memhog.c" || die "building memhog.c"

copy_libs() {   # copy the shared libraries of $1 to the same paths in $R
    local lib
    for lib in $(ldd "$1" 2>/dev/null | awk '$3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
        [ -e "$R$lib" ] && continue
        mkdir -p "$R$(dirname "$lib")"
        cp -L "$lib" "$R$lib"
    done
}
copy_bin() {    # copy_bin TOOL DESTDIR
    local src
    src=$(PATH=$PATH:/sbin:/usr/sbin command -v "$1")
    cp -L "$src" "$R/$2/$1"
    copy_libs "$src"
}
REAL_TOOLS=(nbd-client mkswap swapon swapoff fstrim mke2fs e2fsck losetup)
for t in "${REAL_TOOLS[@]}"; do copy_bin "$t" sbin; done
ln -s mke2fs "$R/sbin/mkfs.ext4"
copy_bin bash bin
ln -s bash "$R/bin/sh"
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$R/etc/"
cp "$BUSYBOX" "$R/bin/busybox"
# busybox applets, except where a real tool is provided
for applet in $("$BUSYBOX" --list-full); do
    name=${applet##*/}
    case " ${REAL_TOOLS[*]} mkfs.ext4 sh bash linuxrc init " in *" $name "*) continue;; esac
    [ -e "$R/sbin/$name" ] || [ -e "$R/bin/$name" ] || [ -e "$R/$applet" ] && continue
    ln -s /bin/busybox "$R/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" > "$R/etc/passwd"
echo "root:x:0:" > "$R/etc/group"

# modules and their dependencies, in load order
declare -A MODPATH=() MODDONE=()
while IFS= read -r f; do
    b=${f##*/}; b=${b%%.ko*}; MODPATH[${b//-/_}]=$f
done < <(find "$MODDIR/kernel" -name '*.ko*')
MODORDER=()
add_mod() {
    local m=${1//-/_} dep
    [ "$m" = crypto_crc32c ] && m=crc32c_generic
    [ -n "${MODDONE[$m]:-}" ] && return 0
    MODDONE[$m]=1
    if [ -z "${MODPATH[$m]:-}" ]; then
        # built in?
        grep -q "/${m}.ko" "$MODDIR/modules.builtin" 2>/dev/null && return 0
        grep -q "/${m//_/-}.ko" "$MODDIR/modules.builtin" 2>/dev/null && return 0
        die "kernel module $m not found in $MODDIR"
    fi
    for dep in $(modinfo -F depends "${MODPATH[$m]}" | tr ',' ' '); do add_mod "$dep"; done
    for dep in $(modinfo -F softdep "${MODPATH[$m]}" | sed -n 's/.*pre: *//p'); do add_mod "$dep"; done
    MODORDER+=("$m")
}
MODULES=(virtio_pci virtio_console nbd crc32c_generic ext4)
if [ -n "$VM_ZNBD" ]; then MODULES+=(virtio_blk fuse loop); fi
for m in "${MODULES[@]}"; do add_mod "$m"; done
: > "$R/modules/order"
for m in "${MODORDER[@]}"; do
    f=${MODPATH[$m]}
    case "$f" in
        *.ko) cp "$f" "$R/modules/$m.ko" ;;
        *.ko.xz) xz -dc "$f" > "$R/modules/$m.ko" ;;
        *.ko.zst) zstd -qdc "$f" > "$R/modules/$m.ko" ;;
        *.ko.gz) gzip -dc "$f" > "$R/modules/$m.ko" ;;
        *) die "unknown module format $f" ;;
    esac
    echo "$m.ko" >> "$R/modules/order"
done

# The real znbd for pass 3.  Its Swift libraries (about 80 MiB, mostly ICU
# data) would take that much of the guest's RAM in the initramfs, so they go
# with the binary on a read-only ext4 disk: page cache the guest can drop, and
# found through the binary's RUNPATH $ORIGIN.  Its other libraries join the
# initramfs like nbd-client's.
ZNBD_DISK=""
if [ -n "$VM_ZNBD" ]; then
    T=$(now)
    D=$WORK/znbd-disk
    mkdir -p "$D"
    cp -L "$VM_ZNBD" "$D/znbd"
    for lib in $(ldd "$VM_ZNBD" | awk '$3 ~ /^\// { print $3 }'); do
        case "$lib" in
            /lib/*|/lib64/*|/usr/lib/*)
                [ -e "$R$lib" ] && continue
                mkdir -p "$R$(dirname "$lib")"
                cp -L "$lib" "$R$lib" ;;
            *) cp -L "$lib" "$D/" ;;
        esac
    done
    ZNBD_DISK=$WORK/znbd.img
    mke2fs -q -t ext4 -O ^has_journal -L znbd -d "$D" "$ZNBD_DISK" "$(( $(du -sm "$D" | cut -f1) * 5 / 4 + 16 ))M" > /dev/null \
        || die "mke2fs -d for the znbd disk"
    rm -rf "$D"
    log "znbd disk $(( $(stat -c %s "$ZNBD_DISK") / 1048576 )) MiB ($(basename "$VM_ZNBD") and its Swift libraries) built in $(elapsed "$T") s"
fi

install -m 755 "$HERE/init.sh" "$R/init"
{
    printf 'EXPORT=%q\n' "$EXPORT"
    printf 'VM_TIMEOUT=%d\n' "$VM_TIMEOUT"
    printf 'SEED=%d\n' "$SEED"
    printf 'HOG_MIB=%d\n' "$VM_HOG_MIB"
    printf 'HOG2_MIB=%d\n' "${VM_HOG2_MIB:-0}"
    printf 'NPORTS=%d\n' "$NPORTS"
    printf 'ZNBD_PASS=%d\n' "$([ -n "$ZNBD_DISK" ] && echo 1 || echo 0)"
    printf 'HOG3_MIB=%d\n' "${VM_HOG3_MIB:-0}"
    printf 'HOG3_RATIO=%q\n' "$VM_HOG3_RATIO"
} > "$R/etc/vmtest.conf"

(cd "$R" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 > "$WORK/initrd.gz"
log "kernel $KVER, modules: ${MODORDER[*]}"
log "memhog seed $SEED (VM_SEED overrides)"
log "initramfs $(( $(stat -c %s "$WORK/initrd.gz") / 1024 )) KiB built in $(elapsed "$T_BUILD") s"

# ------------------------------------------------------------------ qemu
# KVM: /dev/kvm may exist yet not run a guest (a nested setup here stalls in
# the kernel decompressor), so boot the kernel once with earlyprintk and look
# for its banner.  The answer is cached per host boot.
kvm_works() {
    [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
    local stamp
    stamp="$VM_CACHE/kvm-probe.$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)"
    if [ ! -f "$stamp" ]; then
        rm -f "$VM_CACHE"/kvm-probe.*
        local plog=$WORK/kvm-probe.log
        timeout 10 qemu-system-x86_64 -M pc -accel kvm -cpu host -m 128 -kernel "$VMLINUZ" \
            -append "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1" -display none -vga none \
            -no-reboot -nic none -serial "file:$plog" >/dev/null 2>&1
        if grep -q 'Linux version' "$plog" 2>/dev/null; then echo kvm > "$stamp"; else echo tcg > "$stamp"; fi
    fi
    [ "$(cat "$stamp")" = kvm ]
}
ACCEL=${VM_ACCEL:-}
if [ -z "$ACCEL" ]; then
    T=$(now)
    if kvm_works; then ACCEL=kvm; else ACCEL=tcg; fi
    log "accelerator: $ACCEL (probe $(elapsed "$T") s)"
fi
CPU=max
[ "$ACCEL" = kvm ] && CPU=host

# From here on, failures are handled explicitly.
set +e
CONSOLE=$WORK/console.log
: > "$CONSOLE"
mkfifo "$WORK/mon.in" "$WORK/mon.out"
# shellcheck disable=SC2054  # the commas are qemu's option syntax
QEMU=(qemu-system-x86_64 -M pc -accel "$ACCEL" -cpu "$CPU" -smp "$VM_SMP" -m "$VM_MEM"
      -kernel "$VMLINUZ" -initrd "$WORK/initrd.gz"
      -append "console=ttyS0 quiet panic=-1 sysrq_always_enabled=1 mitigations=off"
      -display none -vga none -no-reboot -no-user-config -nic none
      -chardev "file,id=con0,path=$CONSOLE" -serial chardev:con0
      -chardev "pipe,id=mon0,path=$WORK/mon" -mon chardev=mon0,mode=readline
      -device virtio-serial-pci,id=vser0)
[ -z "$ZNBD_DISK" ] || QEMU+=(-drive "file=$ZNBD_DISK,format=raw,if=virtio,readonly=on")
for i in $(seq 0 $((NPORTS - 1))); do
    QEMU+=(-chardev "socket,id=nbd$i,path=$SOCKET,reconnect=1"
           -device "virtserialport,bus=vser0.0,chardev=nbd$i,name=nbd$i")
done

cat "$WORK/mon.out" > "$WORK/monitor.log" &
MONCAT_PID=$!
exec 8<>"$WORK/mon.in"   # read-write: does not block on a FIFO; keeps it open
log "starting qemu ($ACCEL, ${VM_MEM} MiB, ${VM_SMP} CPUs), timeout ${VM_TIMEOUT} s, export '$EXPORT' on $SOCKET"
T_QEMU=$(now)
"${QEMU[@]}" > "$WORK/qemu.out" 2>&1 &
QEMU_PID=$!
tail -n +1 -f "$CONSOLE" &
TAIL_PID=$!

T_BOOTED=""
RESULT=""
TIMED_OUT=""
while kill -0 "$QEMU_PID" 2>/dev/null; do
    if [ -z "$T_BOOTED" ] && grep -q '^VM-STAGE: init started' "$CONSOLE"; then
        T_BOOTED=$(now)
    fi
    if grep -q '^VM-RESULT:' "$CONSOLE"; then
        # give the guest a moment to power off by itself
        for _ in $(seq 1 100); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.2; done
        break
    fi
    if [ "$(awk -v a="$T_QEMU" -v b="$(now)" 'BEGIN { print (b - a >= '"$VM_TIMEOUT"') }')" = 1 ]; then
        TIMED_OUT=1
        echo
        log "TIMEOUT after ${VM_TIMEOUT} s: asking the guest for blocked tasks (alt-sysrq-w) and CPU backtraces (alt-sysrq-l)"
        echo "sendkey alt-sysrq-w" >&8
        sleep 5
        echo "sendkey alt-sysrq-l" >&8
        sleep 10
        break
    fi
    sleep 0.5
done
T_END=$(now)
sleep 0.3
kill "$TAIL_PID" 2>/dev/null; wait "$TAIL_PID" 2>/dev/null; TAIL_PID=""
if kill -0 "$QEMU_PID" 2>/dev/null; then
    echo "quit" >&8
    sleep 1
    kill "$QEMU_PID" 2>/dev/null
fi
wait "$QEMU_PID" 2>/dev/null; QEMU_PID=""
exec 8>&-
kill "$MONCAT_PID" 2>/dev/null; MONCAT_PID=""
echo
if [ -s "$WORK/qemu.out" ]; then log "qemu said:"; sed 's/^/  /' "$WORK/qemu.out"; fi
[ -n "$TIMED_OUT" ] && [ -s "$WORK/monitor.log" ] && { log "monitor:"; tail -n 40 "$WORK/monitor.log" | tr -d '\r' | sed 's/^/  /'; }

RESULT=$(grep -a '^VM-RESULT:' "$CONSOLE" | tail -n 1 | tr -d '\r' || true)
if [ -n "$T_BOOTED" ]; then
    BOOT=$(awk -v a="$T_QEMU" -v b="$T_BOOTED" 'BEGIN { printf "%.1f", b - a }')
    RUN=$(awk -v a="$T_BOOTED" -v b="$T_END" 'BEGIN { printf "%.1f", b - a }')
else
    BOOT="n/a"; RUN="n/a"
fi
log "accel=$ACCEL boot_time=${BOOT}s run_time=${RUN}s vm_time=$(awk -v a="$T_QEMU" -v b="$T_END" 'BEGIN { printf "%.1f", b - a }')s total_time=$(elapsed "$T_START")s"

# The server must have survived the session: it still answers a handshake.
if [ -S "$SOCKET" ] && timeout 20 nbd-client -l -unix "$SOCKET" >/dev/null 2>&1; then
    log "server on $SOCKET still answers after the run"
else
    log "server on $SOCKET does NOT answer after the run"
    [ -n "$RESULT" ] && RESULT="VM-RESULT: FAIL server not healthy after the run ($RESULT)"
fi

# Optional host-side check of the server after the session, e.g. its mm_stat
# through the control socket.  Non-zero status fails the test.
if [ -n "${VM_POST_CHECK:-}" ]; then
    log "post-check (VM_POST_CHECK):"
    bash -c "$VM_POST_CHECK" 2>&1 | sed 's/^/  /'
    pc=${PIPESTATUS[0]}
    if [ "$pc" != 0 ]; then
        log "post-check failed with status $pc"
        case "$RESULT" in "VM-RESULT: PASS"*) RESULT="VM-RESULT: FAIL post-check failed ($RESULT)";; esac
    fi
fi

case "$RESULT" in
    "VM-RESULT: PASS"*) log "$RESULT"; exit 0 ;;
    "") log "VM-RESULT: FAIL no result from the guest${TIMED_OUT:+ (timeout after ${VM_TIMEOUT} s)}"; exit 1 ;;
    *) log "$RESULT"; exit 1 ;;
esac
