#!/bin/bash
# run-with-server.sh [znbd|nbdkit]
#
# CI entry point for the VM swap test: starts an NBD server on temporary Unix
# sockets, runs run-vm-swap-test.sh against it, checks the server afterwards
# and stops it.
#   znbd    (default) the project's server: $ZNBD, or .build/debug/znbd
#           (built with `swift build --product znbd` if missing).  After the
#           guest is done, zram0's mm_stat must show data stored and io_stat
#           no failed reads/writes, and the server must still be running.
#           The same binary also runs inside the guest (pass 3: `znbd swapon
#           --attach nbd`, swap served in the guest, `znbd swapoff`); set
#           VM_ZNBD= (empty) to leave that pass out.
#   nbdkit  the stand-in: `nbdkit memory 1G` (package nbdkit).
# Set ZNBD_VM_SKIP=1 to skip (exit 0 with a note), e.g. on a developer laptop.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SERVER=${1:-znbd}

if [ -n "${ZNBD_VM_SKIP:-}" ]; then
    echo "run-with-server: skipped (ZNBD_VM_SKIP is set)"
    exit 0
fi

TMP=$(mktemp -d /tmp/znbd-vm-server.XXXXXX)
SRV_PID=""
stop_server() {
    if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
        kill "$SRV_PID" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SRV_PID" 2>/dev/null
    fi
    SRV_PID=""
}
cleanup() { set +e; stop_server; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

SOCK=$TMP/nbd.sock
case "$SERVER" in
znbd)
    ZNBD=${ZNBD:-$ROOT/.build/debug/znbd}
    if [ ! -x "$ZNBD" ]; then
        (cd "$ROOT" && swift build --product znbd)
    fi
    CTL=$TMP/control.sock
    "$ZNBD" serve --unix "$SOCK" --control "$CTL" --size 1G --no-mlock --no-fuse > "$TMP/server.log" 2>&1 &
    SRV_PID=$!
    POST_CHECK=$(cat <<EOF
set -e
kill -0 $SRV_PID || { echo "znbd serve is no longer running"; exit 1; }
mm=\$('$ZNBD' get zram0 mm_stat --control '$CTL')
io=\$('$ZNBD' get zram0 io_stat --control '$CTL')
echo "mm_stat: \$mm"
echo "io_stat: \$io"
'$ZNBD' status --control '$CTL'
set -- \$mm; [ "\$1" -gt 0 ] || { echo "mm_stat: no data stored"; exit 1; }
[ "\$5" -gt 0 ] || { echo "mm_stat: mem_used_max is 0"; exit 1; }
set -- \$io; [ "\$1" = 0 ] && [ "\$2" = 0 ] || { echo "io_stat: failed reads/writes"; exit 1; }
EOF
)
    ;;
nbdkit)
    command -v nbdkit >/dev/null || { echo "nbdkit not installed (apt-get install nbdkit)" >&2; exit 1; }
    nbdkit --foreground --unix "$SOCK" memory 1G > "$TMP/server.log" 2>&1 &
    SRV_PID=$!
    POST_CHECK="kill -0 $SRV_PID"
    ;;
*)
    echo "usage: $0 [znbd|nbdkit]" >&2
    exit 2
    ;;
esac

for _ in $(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "run-with-server: $SERVER did not create $SOCK" >&2; cat "$TMP/server.log" >&2; exit 1; }

status=0
if [ "$SERVER" = znbd ]; then export VM_ZNBD=${VM_ZNBD-$ZNBD}; fi
VM_POST_CHECK=$POST_CHECK "$HERE/run-vm-swap-test.sh" "$SOCK" zram0 || status=$?
echo "---- $SERVER log (tail)"
tail -n 20 "$TMP/server.log"
exit $status
