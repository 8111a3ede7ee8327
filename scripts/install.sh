#!/usr/bin/env bash
# Install wirecheck into ./.venv on a fresh Debian 12 / Ubuntu 24.04 machine (run as root).
#   scripts/install.sh          what a preflight run needs (control-machine tools + Python packages)
#   scripts/install.sh --test   also what the self-tests need (sshd, firewalls, dnsmasq, nginx, coturn,
#                               nmap, chromium, Node.js for Allure, PostgreSQL, etcd, RabbitMQ;
#                               kube-apiserver, etcd and helm built from the Go module proxy:
#                               tests/lab/build_components.sh; Maven + JDK 17 and the Cassandra
#                               jars for the lab ring: tests/lab/build_cassandra.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

base_pkgs=(python3 python3-venv python3-pip openssh-client iproute2 procps curl git unzip netcat-openbsd sshpass)
test_pkgs=(openssh-server sudo iptables nftables ufw dnsmasq-base nginx-light coturn nmap psmisc lsof
           kmod util-linux chromium unattended-upgrades openssl   # openssl passwd: lab users with a password
           postgresql etcd-server etcd-client rabbitmq-server
           maven openjdk-17-jre-headless)   # Maven + JDK: a real Cassandra ring (tests/lab/cassandra.py)
pkgs=("${base_pkgs[@]}")
if [ "$want_tests" = 1 ]; then
  pkgs+=("${test_pkgs[@]}")
  # Node.js may come from elsewhere (e.g. NodeSource, which bundles npm): only add what is missing
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
  command -v java >/dev/null || pkgs+=(default-jre-headless)   # the Allure 2 command line runs on Java
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "wirecheck: installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  # the datastores the tests start themselves in lab hosts (PostgreSQL, etcd, RabbitMQ) must not run as
  # services of this machine: no service starts during the install (policy-rc.d, unless the machine has
  # one), and on a systemd machine they are disabled afterwards
  own_policy=0
  if [ "$want_tests" = 1 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# wirecheck install.sh: no service starts during this install\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$own_policy" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
  if [ "$want_tests" = 1 ] && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now postgresql etcd rabbitmq-server epmd.socket epmd.service >/dev/null 2>&1 || true
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ "$want_tests" = 1 ]; then
  .venv/bin/python -m pip install -q -e '.[test]'
  # the real Kubernetes control plane of the tests: kube-apiserver, etcd and helm built from the Go
  # module proxy into /var/cache/wirecheck-lab (needs Go >= 1.26; about 20 min the first time, then cached)
  [ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"
  bash tests/lab/build_components.sh
  if [ -f package.json ]; then
    npm install --no-audit --no-fund --silent >/dev/null
  fi
  # Cassandra's jars from Maven Central, once per version (cached under /var/cache/wirecheck-lab)
  echo "wirecheck: Cassandra for the lab in $(bash tests/lab/build_cassandra.sh)"
else
  .venv/bin/python -m pip install -q -e .
fi
# Bytecode, once: where PYTHONDONTWRITEBYTECODE is set (container images often set it) Python writes no
# .pyc, so every run would compile wirecheck and pytest would rewrite the suites again (about 0.6 s of
# each run's start on a 2-core machine). Both are read when present and redone when a source changes.
env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -m compileall -q wirecheck suites fixtures provisioners conftest.py >/dev/null
env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -m pytest suites --collect-only -q -p no:cacheprovider >/dev/null 2>&1 || true
echo "wirecheck: installed in $(pwd)/.venv"
