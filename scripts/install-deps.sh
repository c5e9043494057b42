#!/usr/bin/env bash
# Installs the Debian packages SwiftZram builds and tests with. Idempotent; needs root.
#   C libraries:   liblz4-dev liblzo2-dev libzstd-dev libgnutls28-dev libfuse3-dev libnbd-dev (found through pkg-config)
#   TLS tests:     gnutls-bin (psktool, certtool)
#   real clients:  libnbd-bin (nbdinfo, nbdcopy, nbdfuse), qemu-utils (qemu-io), fio, nbd-client
#   kernel tests:  fuse3, e2fsprogs, util-linux (losetup, mkswap, swapon)
#   peers:         nbdkit, nbd-server (benchmarks only)
#   contrib units: systemd (systemd-analyze verify; nothing is started)
set -euo pipefail
packages=(
    pkg-config liblz4-dev liblzo2-dev libzstd-dev libgnutls28-dev gnutls-bin libfuse3-dev libnbd-dev
    libnbd-bin python3-libnbd qemu-utils fio nbd-client nbdkit nbd-server
    fuse3 e2fsprogs util-linux procps systemd
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The VM swap test's own host packages (qemu, busybox-static, a C compiler, ...).
"$(dirname "${BASH_SOURCE[0]}")/../Tests/vm/install-deps.sh"
