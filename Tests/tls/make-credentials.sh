#!/usr/bin/env bash
# Makes throw-away TLS credentials for the tests in DIR (gnutls-bin: psktool, certtool):
#   DIR/psk/keys.psk            alice's key (psktool's username:hexkey; qemu reads keys.psk in a dir)
#   DIR/psk-wrong/keys.psk      alice with another key
#   DIR/server/                 ca-cert.pem server-cert.pem server-key.pem (127.0.0.1, localhost)
#   DIR/client/                 ca-cert.pem client-cert.pem client-key.pem (signed by the CA)
#   DIR/rogue-client/           ca-cert.pem client-cert.pem client-key.pem (signed by another CA)
# Certificates expire after 2 days: only tests use them.
set -euo pipefail
dir=${1:?usage: make-credentials.sh DIR}
mkdir -p "$dir"/{psk,psk-wrong,server,client,rogue-client,work}
cd "$dir/work"

psktool -u alice -p ../psk/keys.psk >/dev/null
psktool -u alice -p ../psk-wrong/keys.psk >/dev/null

key() { certtool --generate-privkey --key-type ecdsa --outfile "$1" 2>/dev/null; }

ca() {  # ca NAME: NAME-key.pem, NAME-cert.pem
    key "$1-key.pem"
    printf 'cn = %s\nca\ncert_signing_key\nexpiration_days = 2\n' "$1" >"$1.info"
    certtool --generate-self-signed --load-privkey "$1-key.pem" --template "$1.info" \
        --outfile "$1-cert.pem" 2>/dev/null
}

signed() {  # signed CA OUT-PREFIX TEMPLATE-LINES
    key "$2-key.pem"
    printf '%b' "$3" >"$2.info"
    certtool --generate-certificate --load-ca-certificate "$1-cert.pem" --load-ca-privkey "$1-key.pem" \
        --load-privkey "$2-key.pem" --template "$2.info" --outfile "$2-cert.pem" 2>/dev/null
}

ca znbd-test-ca
ca rogue-ca
signed znbd-test-ca server 'organization = znbd test\ncn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 2\n'
signed znbd-test-ca client 'organization = znbd test\ncn = alice\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 2\n'
signed rogue-ca rogue 'organization = rogue\ncn = mallory\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 2\n'

cp znbd-test-ca-cert.pem ../server/ca-cert.pem
cp server-cert.pem server-key.pem ../server/
cp znbd-test-ca-cert.pem ../client/ca-cert.pem
cp client-cert.pem client-key.pem ../client/
cp znbd-test-ca-cert.pem ../rogue-client/ca-cert.pem
cp rogue-cert.pem ../rogue-client/client-cert.pem
cp rogue-key.pem ../rogue-client/client-key.pem
chmod 600 ../*/*key*.pem ../psk*/keys.psk
cd .. && rm -rf work
