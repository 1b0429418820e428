#!/usr/bin/env bash
# Runs before `npm test` (npm's pretest): the integration tests need a real etcd server
# (Debian package etcd-server, 3.4), iproute2 (`ip netns`, for the multi-host test) and
# openssl (throw-away certificates for the TLS tests), Debian's Python gRPC with protoc (the
# grpc example is called from Python with nothing but its .proto), and chromium (the dashboard
# is tested in a real headless browser through playwright-core).
# Installs what is missing when it can (root with apt-get); otherwise says exactly what to do.
set -euo pipefail

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
/usr/bin/python3 -c 'import grpc, google.protobuf' >/dev/null 2>&1 || missing+=(python3-grpcio python3-protobuf)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "pretest: installing ${missing[*]} with apt-get (needed by the integration tests)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # etcd-server's post-install step tries to start a systemd unit; without systemd that fails
  # harmlessly, and the tests start their own etcd anyway.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  command -v etcd >/dev/null 2>&1 || { echo "pretest: etcd is still missing after installing etcd-server" >&2; exit 1; }
  exit 0
fi

echo "pretest: the integration tests need: ${missing[*]}" >&2
echo "  install them with:  sudo apt-get install -y ${missing[*]}   (Debian/Ubuntu; etcd 3.4)" >&2
exit 1
