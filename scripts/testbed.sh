#!/usr/bin/env bash
# A multi-host testbed of Linux network namespaces for SMT (needs root, iproute2,
# nftables). Everything lives in namespaces this script creates: one "switch"
# namespace holding a bridge, and one namespace per host joined to it by a veth pair.
# Nothing is added to the root namespace, and `down` removes it all.
#
#   scripts/testbed.sh up N [--mtu MTU]   hosts PREFIX-h1..hN: eth0 = 10.77.0.i/24, fd77::i/64
#   scripts/testbed.sh down               remove every namespace of PREFIX
#   scripts/testbed.sh loss HOST PCT      drop PCT% of packets arriving at HOST (nft numgen)
#   scripts/testbed.sh rate HOST RATE     limit HOST's egress (tc tbf), e.g. 1gbit
#   scripts/testbed.sh clear HOST         remove loss and rate limits from HOST
#   scripts/testbed.sh exec HOST CMD...   run CMD inside HOST's namespace
#   scripts/testbed.sh status             list namespaces, addresses, qdiscs, rules
#   scripts/testbed.sh run N [--mtu M] -- CMD...   up, run CMD, and always down
#
# HOST is a number (1..N). PREFIX comes from $TESTBED_PREFIX (default "smt"), so that
# concurrent users (parallel tests) get separate testbeds.
set -euo pipefail

PREFIX="${TESTBED_PREFIX:-smt}"
SW="${PREFIX}-sw"

die() { echo "testbed: $*" >&2; exit 1; }
host() { echo "${PREFIX}-h$1"; }
need_root() { [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, veth, nftables)"; }
need_tools() {
  command -v ip >/dev/null || die "iproute2 missing: run scripts/install-test-deps.sh"
  command -v nft >/dev/null || die "nftables missing: run scripts/install-test-deps.sh"
}

up() {
  local n="${1:?usage: up N [--mtu MTU]}"; shift
  local mtu=1500
  while [ $# -gt 0 ]; do
    case "$1" in
      --mtu) mtu="$2"; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  [ "$n" -ge 1 ] && [ "$n" -le 250 ] || die "N must be 1..250"
  need_root; need_tools
  down >/dev/null 2>&1 || true
  ip netns add "$SW"
  ip -n "$SW" link set lo up
  ip -n "$SW" link add br0 type bridge
  ip -n "$SW" link set br0 mtu "$mtu" up
  for i in $(seq 1 "$n"); do
    local h; h="$(host "$i")"
    ip netns add "$h"
    ip -n "$h" link set lo up
    # Create the pair inside the host namespace, then move one end to the switch.
    ip -n "$h" link add eth0 mtu "$mtu" type veth peer name "p$i" mtu "$mtu"
    ip -n "$h" link set "p$i" netns "$SW"
    ip -n "$SW" link set "p$i" master br0 up
    ip netns exec "$h" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    ip -n "$h" addr add "10.77.0.$i/24" dev eth0
    ip -n "$h" -6 addr add "fd77::$i/64" dev eth0 nodad
    ip -n "$h" link set eth0 up
  done
  echo "testbed: $n hosts up (prefix $PREFIX, MTU $mtu)"
}

down() {
  local found=0
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${PREFIX}-(sw|h[0-9]+)$" || true); do
    ip netns del "$ns" && found=1
  done
  [ "$found" -eq 1 ] && echo "testbed: removed (prefix $PREFIX)" || echo "testbed: nothing to remove"
}

loss() {
  local h; h="$(host "${1:?HOST}")"; local pct="${2:?PCT}"
  [ "$pct" -ge 0 ] && [ "$pct" -le 100 ] || die "PCT must be 0..100"
  ip netns exec "$h" nft delete table inet testbed_loss 2>/dev/null || true
  [ "$pct" -eq 0 ] && return 0
  ip netns exec "$h" nft -f - <<NFT
table inet testbed_loss {
  chain input {
    type filter hook input priority 0; policy accept;
    numgen random mod 100 < $pct drop
  }
}
NFT
}

rate() {
  local h; h="$(host "${1:?HOST}")"; local r="${2:?RATE}"
  ip -n "$h" link show eth0 >/dev/null || die "no such host"
  ip netns exec "$h" tc qdisc replace dev eth0 root tbf rate "$r" burst 256kb latency 20ms
}

clear_host() {
  local h; h="$(host "${1:?HOST}")"
  ip netns exec "$h" nft delete table inet testbed_loss 2>/dev/null || true
  ip netns exec "$h" tc qdisc del dev eth0 root 2>/dev/null || true
}

status() {
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^${PREFIX}-" || true); do
    echo "== $ns"
    ip -n "$ns" -br addr
    ip netns exec "$ns" tc qdisc show dev eth0 2>/dev/null || true
    ip netns exec "$ns" nft list ruleset 2>/dev/null || true
  done
}

cmd="${1:-}"; [ $# -gt 0 ] && shift
case "$cmd" in
  up) up "$@" ;;
  down) need_root; down ;;
  loss) loss "$@" ;;
  rate) rate "$@" ;;
  clear) clear_host "$@" ;;
  exec) h="$(host "${1:?HOST}")"; shift; exec ip netns exec "$h" "$@" ;;
  status) status ;;
  run)
    n="${1:?usage: run N [--mtu M] -- CMD...}"; shift
    args=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
    [ "${1:-}" = "--" ] && shift
    trap 'down >/dev/null 2>&1 || true' EXIT INT TERM
    up "$n" "${args[@]}"
    "$@"
    ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
