#!/bin/sh
# Smoke test of docker/Dockerfile's runtime image, for machines that cannot pull
# registry images: the runtime stage's own lines are built FROM a local Debian base
# (made with debootstrap + docker import) with a redial binary built on the host in
# place of the build stage. Then the container runs as shipped (docker/redial.toml,
# its paths, the non-root user, the data volume, the HEALTHCHECK) with host
# networking, on loopback ports chosen by the kernel. Not part of ./scripts/test.sh.
#
#   sudo debootstrap --variant=minbase --include=libopus0,ca-certificates,curl \
#        bookworm /tmp/rootfs http://deb.debian.org/debian
#   tar -C /tmp/rootfs -c . | docker import - redial-base:bookworm
#   cargo build --release --bin redial
#   scripts/docker-smoke.sh [BASE_IMAGE] [BINARY]
set -eu
base=${1:-redial-base:bookworm}
bin=${2:-target/release/redial}
root=$(cd "$(dirname "$0")/.." && pwd)
ctx=$(mktemp -d)
name=redial-smoke-$$
vol=redial-smoke-data-$$
cleanup() {
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker volume rm "$vol" >/dev/null 2>&1 || true
    rm -rf "$ctx"
}
trap cleanup EXIT

# Two loopback ports the kernel says are free (SIP: UDP+TCP, HTTP: TCP).
ports=$(python3 -c 'import socket
def pair():
    while True:
        u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(("127.0.0.1",0)); p=u.getsockname()[1]
        t=socket.socket(); 
        try: t.bind(("127.0.0.1",p)); return p
        except OSError: pass
h=socket.socket(); h.bind(("127.0.0.1",0)); print(pair(), h.getsockname()[1])')
sip=${ports% *}; http=${ports#* }

mkdir -p "$ctx/docker" "$ctx/target/release"
cp -r "$root/prompts" "$ctx/prompts"
cp "$root/docker/redial.toml" "$ctx/docker/redial.toml"
cp "$bin" "$ctx/target/release/redial"
# The runtime stage as shipped, with the local base and the host binary.
{
    echo "FROM $base"
    sed -n '/^FROM debian:bookworm-slim/,$p' "$root/docker/Dockerfile" | tail -n +2 \
        | sed 's#^COPY --from=build /src/target/release/redial#COPY target/release/redial#'
} > "$ctx/Dockerfile"
docker build --network host -q -t redial-smoke "$ctx" >/dev/null

# The shipped config on this run's loopback ports (docker/redial.toml listens on 0.0.0.0:5060/8080).
sed -e "s#^listen = \"0.0.0.0:5060\"#listen = \"127.0.0.1:$sip\"#" \
    -e "s#^listen = \"0.0.0.0:8080\"#listen = \"127.0.0.1:$http\"#" \
    -e "s#^addr = \"0.0.0.0\"#addr = \"127.0.0.1\"#" "$root/docker/redial.toml" > "$ctx/redial.toml"
mkdir -p "$ctx/sip-profiles"
docker volume create "$vol" >/dev/null
docker run -d --name "$name" --network host --health-interval 2s -e REDIAL_HEALTH_ADDR="127.0.0.1:$http" \
    -v "$ctx/redial.toml:/etc/redial/redial.toml:ro" -v "$ctx/sip-profiles:/etc/redial/sip-profiles:ro" \
    -v "$vol:/var/lib/redial/data" redial-smoke >/dev/null

fail() { echo "FAIL: $*"; docker logs "$name" 2>&1 | tail -30; exit 1; }
i=0
until curl -fsS "http://127.0.0.1:$http/healthz" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "healthz not answered"; sleep 0.2
done
[ "$(docker exec "$name" id -u)" != 0 ] || fail "runs as root"
docker exec "$name" test -f /var/lib/redial/data/redial.redb || fail "the book is not in the volume"
docker logs "$name" 2>&1 | grep -q "admin token" || fail "no admin token printed on first start"
docker logs "$name" 2>&1 | grep -qi "register" && fail "a trunk registers on a fresh start"
# OPTIONS over UDP answered 200.
resp=$(python3 -c "import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('127.0.0.1',0)); s.settimeout(5); l='%s:%d'%s.getsockname()
m=('OPTIONS sip:redial@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP '+l+';branch=z9hG4bKsmoke;rport\r\nMax-Forwards: 70\r\nFrom: <sip:smoke@127.0.0.1>;tag=1\r\nTo: <sip:redial@127.0.0.1>\r\nCall-ID: smoke\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n').encode()
s.sendto(m,('127.0.0.1',$sip)); print(s.recv(65535).decode().split('\r\n')[0])")
[ "$resp" = "SIP/2.0 200 OK" ] || fail "OPTIONS: $resp"
# The HEALTHCHECK itself.
i=0
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$name")" = healthy ]; do
    i=$((i + 1)); [ $i -lt 60 ] || fail "HEALTHCHECK never healthy"
    docker inspect -f '{{json .State.Health}}' "$name" | grep -q '"ExitCode":0' && break
    sleep 1
done
# The book survives a new container on the same volume.
docker rm -f "$name" >/dev/null
docker run --rm --network host -v "$vol:/var/lib/redial/data" --entrypoint ls redial-smoke /var/lib/redial/data | grep -q redial.redb \
    || fail "the volume lost the book"
echo "docker smoke: ok (uid $(docker run --rm --entrypoint id redial-smoke -u), sip 127.0.0.1:$sip, http 127.0.0.1:$http)"
