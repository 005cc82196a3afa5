#!/usr/bin/env bash
# Measures SMT over UDP against SMT over native IP (protocol 253) in the same run:
# across two network namespaces joined by veth at MTU 1500, and on loopback. Needs
# root. Prints one line per (link, transport, experiment) with the median of ROUNDS.
#
#   sudo bash scripts/measure-native-ip.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
cargo build --release -q -p smt-cli
smt="$PWD/target/release/smt"
export TESTBED_PREFIX="nip$$"
dir="$(mktemp -d)"
trap 'bash scripts/testbed.sh down >/dev/null 2>&1 || true; pkill -f "smt serve --listen 10.77.0.2" || true; rm -rf "$dir"' EXIT
"$smt" keygen --out "$dir" --name 10.77.0.2 >/dev/null
bash scripts/testbed.sh up 2 --mtu 1500 >/dev/null

# run TRANSPORT SIZE COUNT CONCURRENCY -> "p50_us gbps cpu_s" of the client process
run() {
  local t="$1" size="$2" count="$3" conc="$4"
  ip netns exec "$TESTBED_PREFIX-h2" "$smt" serve --listen 10.77.0.2:4433 --transport "$t" \
    --cert "$dir/cert.pem" --key "$dir/key.pem" >/dev/null 2>&1 &
  local server=$!
  sleep 0.3
  local out
  out=$( { /usr/bin/time -f "cpu %U %S" ip netns exec "$TESTBED_PREFIX-h1" "$smt" call \
    --connect 10.77.0.2:4433 --server-name 10.77.0.2 --ca "$dir/cert.pem" --transport "$t" \
    --size "$size" --count "$count" --concurrency "$conc" --json; } 2>&1 )
  kill -TERM "$server"; wait "$server" 2>/dev/null || true
  python3 - "$out" <<'PY'
import json, sys
text = sys.argv[1]
obj = json.loads(next(l for l in text.splitlines() if l.startswith("{")))
cpu = next(l for l in text.splitlines() if l.startswith("cpu "))
u, s = map(float, cpu.split()[1:3])
print(f'{obj["p50_us"]} {obj["payload_gbit_per_sec"]:.3f} {u + s:.2f}')
PY
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-9s %-4s %-22s %10s %10s %10s\n' link transport experiment "p50 us" "Gbit/s" "client cpu s"
for exp in "64 B RTT:64:3000:1" "1 MiB x4 in flight:1048576:200:4"; do
  IFS=: read -r name size count conc <<<"$exp"
  for t in udp ip; do
    p50s=(); gbps=(); cpu=()
    for _ in $(seq 1 "$rounds"); do
      read -r a b c < <(run "$t" "$size" "$count" "$conc")
      p50s+=("$a"); gbps+=("$b"); cpu+=("$c")
    done
    printf '%-9s %-9s %-22s %10s %10s %10s\n' veth1500 "$t" "$name" \
      "$(printf '%s\n' "${p50s[@]}" | median)" "$(printf '%s\n' "${gbps[@]}" | median)" \
      "$(printf '%s\n' "${cpu[@]}" | median)"
  done
done
