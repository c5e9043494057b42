#!/bin/bash
# Install the host packages that Tests/vm/run-vm-swap-test.sh needs (idempotent).
# The guest kernel is NOT installed here: run-vm-swap-test.sh downloads and
# unpacks it into its cache directory.
# Usage: install-deps.sh [--with-nbdkit]   (nbdkit: the stand-in server)
set -euo pipefail
PKGS=(qemu-system-x86 busybox-static nbd-client e2fsprogs util-linux mount
      gcc libc6-dev cpio gzip kmod dpkg apt)
missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
[ "${1:-}" = --with-nbdkit ] && ! dpkg-query -W -f='${Status}' nbdkit 2>/dev/null | grep -q 'ok installed' && missing+=(nbdkit)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# The test resolves and downloads the kernel through apt's package lists.
if [ ${#missing[@]} -gt 0 ] || ! apt-cache depends linux-image-amd64 2>/dev/null | grep -q 'Depends: linux-image-'; then
    $SUDO apt-get update
fi
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all present"
    exit 0
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
