#!/usr/bin/env bash
# Installs what building and testing skiff needs on Debian 12 (idempotent; needs root or sudo).
set -euo pipefail
# containerd, runc, the CNI plugins, a registry, skopeo and busybox-static: the agent tests run
# real pods from images they build and serve on 127.0.0.1.
PKGS=(clang libclang-dev protobuf-compiler libprotobuf-dev curl openssl etcd-server etcd-client iptables iproute2 fio
  containerd runc containernetworking-plugins docker-registry skopeo busybox-static)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian's etcd package starts a system etcd on 2379; the benchmarks start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd || true
fi
