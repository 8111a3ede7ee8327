#!/usr/bin/env bash
# Install wirecheck into ./.venv on a fresh Debian 12 / Ubuntu 24.04 machine (run as root).
#   scripts/install.sh          what a preflight run needs (control-machine tools + Python packages)
#   scripts/install.sh --test   also what the self-tests need (sshd, firewalls, dnsmasq, nginx, coturn,
#                               nmap, chromium, Node.js for Allure, Maven + JDK 17
#                               and the Cassandra jars for the lab ring)
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

base_pkgs=(python3 python3-venv python3-pip openssh-client iproute2 procps curl git unzip netcat-openbsd sshpass)
test_pkgs=(openssh-server sudo iptables nftables ufw dnsmasq-base nginx-light coturn nmap psmisc lsof
           kmod util-linux chromium unattended-upgrades
           maven openjdk-17-jre-headless)   # a real Cassandra ring for the datastore checks (tests/lab/cassandra.py)
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
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ "$want_tests" = 1 ]; then
  .venv/bin/python -m pip install -q -e '.[test]'
  if [ -f package.json ]; then
    npm install --no-audit --no-fund --silent >/dev/null
  fi
  # Cassandra's jars from Maven Central, once per version (cached under /var/cache/wirecheck-lab)
  echo "wirecheck: Cassandra for the lab in $(bash tests/lab/build_cassandra.sh)"
else
  .venv/bin/python -m pip install -q -e .
fi
echo "wirecheck: installed in $(pwd)/.venv"
