#!/usr/bin/env bash
# The real-network lab: a client, a middlebox and a server in three network
# namespaces joined by veth pairs, with FTMB's NAT (examples/lab-nat.click on
# FromDevice/ToDevice) run as the four fault-tolerance roles in the middlebox.
# Many long-lived TCP connections and UDP flows echo small messages through
# the NAT; part-way the master is killed with SIGKILL and the replica takes
# over. Reports connections, resets, reconnects, the longest and p99 stall,
# and whether every flow kept its translated address:port.
#
#   scripts/lab.sh                 # 200 TCP + 20 UDP flows, 20 s, one kill
#   scripts/lab.sh --short         # CI size: 100 TCP + 10 UDP, 8 s, one kill
#   scripts/lab.sh --kernel-nat    # the same flows through Linux's NAT (nft)
#   scripts/lab.sh --no-ft         # the same flows through `ftmb run` (no roles, no kill)
#   scripts/lab.sh --throughput    # iperf3: our NAT (run, --ft, roles) vs kernel
#   scripts/lab.sh --parity        # same packets out as the kernel's NAT? (below)
#   scripts/lab.sh --parity --short  # CI size: 3000 packets, 300 flows
#
# --parity: a trace from `ftmb gen-trace` (TCP and UDP flows from the
# client 10.0.1.2 to servers 10.0.2.9-14, the client's packets only,
# MACs set with tcprewrite) is replayed with tcpreplay at --pps from the
# client through (1) `ftmb run` (one worker), (2) the four roles, (3) the
# kernel's NAT. A reflector on the server side (examples/lab-mirror.click:
# EtherMirror + IPMirror) sends every packet back, so both directions go
# through the NAT; tcpdump captures what reaches the server and what comes
# back to the client, and `ftmb-lab nat-parity` compares each of ours with the
# kernel's: counts per direction and every header field but the chosen
# source port (and the checksum over it). The client's and server's own
# stacks drop everything (nft), so neither answers the replayed packets.
# The trace's TCP flows start after the SYN (the kernel picks them up
# mid-stream, as its conntrack does by default): the reflector answers a
# SYN with a SYN, never a SYN-ACK, and the kernel's conntrack then finds
# every later packet of the flow INVALID and forwards it untranslated.
# --with-syn keeps the SYNs to show exactly that (the lab then fails).
# Options: --packets N --flows N --pps N (default 2000) --seed N
# --with-syn. Exits non-zero if any comparison finds a difference.
#
# Flow-mode options: --tcp N --udp N --duration S --kill-at S --interval-ms N
# --threads N --deadline-ms N (the output logger's failure detector for a
# silent master, default 200: a SIGKILL ends the master's stream and is seen
# at once whatever the deadline; on a loaded 2-core host the demo's 20 ms
# took a descheduled master for a dead one), --mb-nice N (the middlebox
# processes' nice value, default -15: on a 2-core host the hundreds of
# client and server threads otherwise starve the NAT for 100s of ms, which
# TCP sees as RTO retransmissions; a real middlebox has its own cores),
# --json --no-build, --keep (keep the logs and per-flow detail,
# and say where), --no-replica (negative control: no standby, so the kill
# must stop every flow and the lab must fail). Needs root (namespaces, raw sockets);
# installs ethtool, nftables, iperf3, tcpreplay and tcpdump with apt-get
# when missing.
# Exits non-zero if any connection resets, any message goes unanswered, a
# flow gets no echo after the kill, or a translated address:port changes.
#
# Addressing (static, no ARP anywhere): client 10.0.1.2 (c0) -- m0 | NAT |
# m1 -- server 10.0.2.2 (s0); the NAT's public address is 10.0.2.1. The
# client's gateway 10.0.1.1 and the server's neighbour 10.0.2.1 are static
# neighbour entries pointing at m0's and m1's MAC; the NAT's EtherRewrite
# puts the next hop's MAC on every frame. In our mode the middlebox kernel
# has no address and does not forward (so it never answers for the NAT);
# in --kernel-nat mode it has both addresses, forwards and masquerades.
# Checksum offload and segmentation offload are off on every veth: the NAT
# rewrites checksums incrementally, which needs full checksums on the wire.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=ft TCP=200 UDP=20 DURATION=20 KILL_AT=8 INTERVAL=20 THREADS=1 JSON=0 BUILD=1 KEEP=0 REPLICA=1 DEADLINE_MS=200 MB_NICE=-15
SHORT=0 PACKETS='' FLOWS='' PPS=2000 SEED=1 WITH_SYN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --short) TCP=100 UDP=10 DURATION=8 KILL_AT=3 SHORT=1 ;;
    --parity) MODE=parity ;;
    --packets) PACKETS=$2; shift ;;
    --flows) FLOWS=$2; shift ;;
    --pps) PPS=$2; shift ;;
    --seed) SEED=$2; shift ;;
    --with-syn) WITH_SYN=1 ;;
    --kernel-nat) MODE=kernel ;;
    --no-ft) MODE=run ;;
    --throughput) MODE=throughput ;;
    --tcp) TCP=$2; shift ;;
    --udp) UDP=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --kill-at) KILL_AT=$2; shift ;;
    --interval-ms) INTERVAL=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --deadline-ms) DEADLINE_MS=$2; shift ;;
    --mb-nice) MB_NICE=$2; shift ;;
    --json) JSON=1 ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    --no-replica) REPLICA=0 ;;
    -h|--help) sed -n '2,52p' "$0"; exit 0 ;;
    *) echo "lab.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$SHORT" = 1 ]; then : "${PACKETS:=3000}" "${FLOWS:=300}"; else : "${PACKETS:=20000}" "${FLOWS:=2000}"; fi

say() { [ "$JSON" = 1 ] || echo "lab: $*" >&2; }
die() { echo "lab: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, raw sockets)"
need() {
  local missing=()
  for c in "$@"; do command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:}"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${missing[@]}" >/dev/null; } \
      || die "cannot install ${missing[*]}"
  fi
}
need ip:iproute2 ethtool:ethtool
[ "$MODE" = ft ] || need nft:nftables
[ "$MODE" = throughput ] && need iperf3:iperf3
[ "$MODE" = parity ] && need tcpreplay:tcpreplay tcprewrite:tcpreplay tcpdump:tcpdump

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
FTMB="$CARGO_TARGET_DIR/release/ftmb"
LAB="$CARGO_TARGET_DIR/release/ftmb-lab" # the instruments: server, client, nat-parity
MB=(nice -n "$MB_NICE" "$FTMB") # how the middlebox's processes run
if [ "$BUILD" = 1 ]; then
  say "building (cargo build --release)"
  cargo build --release -p ftmb -p ftmb-lab -q
fi
for b in "$FTMB" "$LAB"; do
  [ -x "$b" ] || die "no $b (build it, or drop --no-build)"
done

# ------------------------------------------------------------------ topology
ID="$$"
NC="ftlab-$ID-c" NM="ftlab-$ID-m" NS="ftlab-$ID-s"
TMP=$(mktemp -d /tmp/ftmb-lab.XXXXXX)
PIDS=()
C_MAC=02:00:00:00:01:02 M0_MAC=02:00:00:00:01:01
M1_MAC=02:00:00:00:02:01 S_MAC=02:00:00:00:02:02

cleanup() {
  local rc=$?
  trap - EXIT ERR INT TERM
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in "$NC" "$NM" "$NS"; do ip netns del "$n" 2>/dev/null || true; done
  if [ "$rc" != 0 ] && [ -d "$TMP" ]; then
    echo "lab: failed (rc $rc); logs:" >&2
    for f in "$TMP"/*.log; do [ -s "$f" ] && { echo "== $f" >&2; tail -n 20 "$f" >&2; }; done
  fi
  if [ "$KEEP" = 1 ]; then echo "lab: logs kept in $TMP" >&2; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'exit $?' ERR

in_ns() { local n=$1; shift; ip netns exec "$n" "$@"; }
bg_ns() { # bg_ns NS LOG CMD...: start in the background, remember the pid
  local n=$1 log=$2; shift 2
  ip netns exec "$n" "$@" >"$log.out" 2>"$log.log" &
  PIDS+=($!)
  LAST=$!
}

for n in "$NC" "$NM" "$NS"; do
  ip netns add "$n"
  in_ns "$n" ip link set lo up
  in_ns "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n "$NM" link add m0 address $M0_MAC type veth peer name c0 address $C_MAC netns "$NC"
ip -n "$NM" link add m1 address $M1_MAC type veth peer name s0 address $S_MAC netns "$NS"
for pair in "$NC:c0" "$NM:m0" "$NM:m1" "$NS:s0"; do
  n=${pair%%:*} d=${pair#*:}
  in_ns "$n" ethtool -K "$d" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
  in_ns "$n" ip link set "$d" up
done
in_ns "$NC" ip addr add 10.0.1.2/24 dev c0
in_ns "$NC" ip route add default via 10.0.1.1
in_ns "$NC" ip neigh replace 10.0.1.1 lladdr $M0_MAC dev c0 nud permanent
in_ns "$NS" ip addr add 10.0.2.2/24 dev s0
in_ns "$NS" ip neigh replace 10.0.2.1 lladdr $M1_MAC dev s0 nud permanent

VARS=(IN_IF=m0 OUT_IF=m1 INSIDE=10.0.1.0/24 PUB=10.0.2.1
      IN_MAC=$M0_MAC CLIENT_MAC=$C_MAC OUT_MAC=$M1_MAC SERVER_MAC=$S_MAC)
CFG=examples/lab-nat.click

kernel_nat_on() {
  in_ns "$NM" ip addr add 10.0.1.1/24 dev m0
  in_ns "$NM" ip addr add 10.0.2.1/24 dev m1
  in_ns "$NM" ip neigh replace 10.0.1.2 lladdr $C_MAC dev m0 nud permanent
  in_ns "$NM" ip neigh replace 10.0.2.2 lladdr $S_MAC dev m1 nud permanent
  in_ns "$NM" sysctl -qw net.ipv4.ip_forward=1
  in_ns "$NM" nft -f - <<'EOF'
table ip labnat {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "m1" ip saddr 10.0.1.0/24 masquerade
  }
}
EOF
}
kernel_nat_off() {
  in_ns "$NM" nft delete table ip labnat 2>/dev/null || true
  in_ns "$NM" sysctl -qw net.ipv4.ip_forward=0
  in_ns "$NM" ip addr flush dev m0
  in_ns "$NM" ip addr flush dev m1
}

wait_file() { # wait_file PATH SECONDS
  local i=0
  while [ ! -e "$1" ]; do
    i=$((i + 1)); [ $i -gt $(($2 * 50)) ] && die "timed out waiting for $1"
    sleep 0.02
  done
}
wait_tcp() { # wait until a TCP connect to the server through the path works
  local i=0
  until in_ns "$NC" timeout 1 bash -c 'exec 3<>/dev/tcp/10.0.2.2/'"$1" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 20 ] && die "no TCP path to the server through the middlebox"
    sleep 0.02
  done
}

# The four roles in the middlebox namespace (like `ftmb demo`).
ROLE_PIDS=()
start_roles() {
  local r=(--il "$TMP/il.sock" --ol "$TMP/ol.sock" -t "$THREADS" --seed 7)
  bg_ns "$NM" "$TMP/input-logger" "${MB[@]}" input-logger "$CFG" "${VARS[@]}" "${r[@]}"
  ROLE_PIDS+=("$LAST")
  wait_file "$TMP/il.sock" 10
  bg_ns "$NM" "$TMP/output-logger" "${MB[@]}" output-logger "$CFG" "${VARS[@]}" "${r[@]}" --deadline-ms "$DEADLINE_MS"
  ROLE_PIDS+=("$LAST")
  wait_file "$TMP/ol.sock" 10
  if [ "$REPLICA" = 1 ]; then
    bg_ns "$NM" "$TMP/replica" "${MB[@]}" replica "$CFG" "${VARS[@]}" "${r[@]}"
    ROLE_PIDS+=("$LAST")
  fi
  bg_ns "$NM" "$TMP/master" "${MB[@]}" master "$CFG" "${VARS[@]}" "${r[@]}"
  MASTER=$LAST
  disown "$MASTER" # its SIGKILL is the experiment, not news for the shell
  ROLE_PIDS+=("$LAST")
}
stop_pids() { for p in "$@"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }

# ------------------------------------------------------------------ parity
if [ "$MODE" = parity ]; then
  T="$TMP/trace.pcap"
  say "parity: trace: $PACKETS packets over $FLOWS flows, client 10.0.1.2 to servers 10.0.2.9-14 (seed $SEED)"
  "$FTMB" gen-trace "$TMP/gen.pcap" --packets "$PACKETS" --flows "$FLOWS" --seed "$SEED" \
    --inside 10.0.1.2/32 --outside 10.0.2.8/29 --reply-fraction 0 2>"$TMP/trace.log"
  # The client's packets only (a TCP flow's SYN-ACK and FIN come from the
  # server in the trace; the reflector stands for the server here), by
  # default without the SYNs (see the header), with the lab's MACs.
  F='src host 10.0.1.2'
  [ "$WITH_SYN" = 1 ] || F="$F and not (tcp[tcpflags] & tcp-syn != 0)"
  tcpdump -n -r "$TMP/gen.pcap" -w "$TMP/client.pcap" "$F" 2>>"$TMP/trace.log"
  tcprewrite --enet-smac=$C_MAC --enet-dmac=$M0_MAC -i "$TMP/client.pcap" -o "$T" 2>>"$TMP/trace.log"
  SENT=$(tcpdump -n -r "$T" 2>/dev/null | wc -l)
  # Neither end host's stack may answer (RST, ICMP unreachable): drop all
  # they receive, after the captures and the reflector (AF_PACKET) saw it.
  for n in "$NC" "$NS"; do
    in_ns "$n" nft -f - <<'EOF'
table ip labdrop {
  chain pre {
    type filter hook prerouting priority -400; policy drop;
  }
}
EOF
  done
  bg_ns "$NS" "$TMP/mirror" "${MB[@]}" run examples/lab-mirror.click DEV=s0 -q -t 1
  MIRROR=$LAST
  wait_listening() { # wait_listening LOG: tcpdump has opened its socket
    local i=0
    until grep -q "listening on" "$1" 2>/dev/null; do
      i=$((i + 1)); [ $i -gt 500 ] && die "tcpdump did not start (see $1)"
      sleep 0.02
    done
  }
  probe() { # until a UDP datagram from the client comes back mirrored: NAT and reflector are up
    bg_ns "$NC" "$TMP/probe-$1" timeout 20 tcpdump -n -i c0 -Q in -c 1 'udp and src port 9'
    local tp=$LAST i=0
    wait_listening "$TMP/probe-$1.log"
    while kill -0 "$tp" 2>/dev/null; do
      in_ns "$NC" bash -c 'echo probe >/dev/udp/10.0.2.2/9' 2>/dev/null || true
      i=$((i + 1)); [ $i -gt 200 ] && die "no path through the $1 NAT and the reflector"
      sleep 0.05
    done
    wait "$tp" || die "no path through the $1 NAT and the reflector"
  }
  captured() { tcpdump -n -r "$1" 2>/dev/null | wc -l; } # packets in a capture so far
  replay() { # replay LABEL: capture both ends while tcpreplay sends the trace
    local l=$1 c
    bg_ns "$NS" "$TMP/cap-$l-out" tcpdump -n -i s0 -Q in -U --immediate-mode -w "$TMP/$l-out.pcap" 'not (udp and port 9)'
    local co=$LAST
    bg_ns "$NC" "$TMP/cap-$l-in" tcpdump -n -i c0 -Q in -U --immediate-mode -w "$TMP/$l-in.pcap" 'not (udp and port 9)'
    local ci=$LAST
    wait_listening "$TMP/cap-$l-out.log"
    wait_listening "$TMP/cap-$l-in.log"
    in_ns "$NC" tcpreplay -i c0 --pps "$PPS" "$T" >"$TMP/tcpreplay-$l.log" 2>&1 \
      || die "tcpreplay ($l) failed"
    # The last packets' way back: wait until both ends captured every
    # packet sent (at most 10 s; past that the comparison reports what
    # is missing).
    local i=0
    until [ "$(captured "$TMP/$l-out.pcap")" -ge "$SENT" ] && [ "$(captured "$TMP/$l-in.pcap")" -ge "$SENT" ]; do
      i=$((i + 1)); [ $i -gt 200 ] && break
      sleep 0.05
    done
    kill -INT "$co" "$ci"
    wait "$co" || true
    wait "$ci" || true
    for c in out in; do
      grep -q "^0 packets dropped by kernel" "$TMP/cap-$l-$c.log" \
        || die "tcpdump ($l, $c) dropped packets: $(grep dropped "$TMP/cap-$l-$c.log" | tr '\n' ' ')"
    done
  }
  for m in run roles kernel; do
    NAT=()
    case $m in
      run)
        say "parity: replaying through ftmb run (one worker) at $PPS pps"
        bg_ns "$NM" "$TMP/run" "${MB[@]}" run "$CFG" "${VARS[@]}" -q -t 1
        NAT=("$LAST") ;;
      roles)
        say "parity: replaying through the four roles (one worker) at $PPS pps"
        THREADS=1 start_roles
        NAT=("${ROLE_PIDS[@]}") ;;
      kernel)
        say "parity: replaying through the kernel's NAT (nft masquerade) at $PPS pps"
        kernel_nat_on
        for h in 9 10 11 12 13 14; do
          in_ns "$NM" ip neigh replace 10.0.2.$h lladdr $S_MAC dev m1 nud permanent
        done ;;
    esac
    probe "$m"
    replay "$m"
    for p in "${NAT[@]}" "$MIRROR"; do kill -0 "$p" 2>/dev/null || die "an ftmb process died ($m): see logs"; done
    if [ "$m" = kernel ]; then kernel_nat_off; else stop_pids "${NAT[@]}"; ROLE_PIDS=(); fi
  done
  RC=0
  for a in run roles; do
    "$LAB" nat-parity --trace "$T" --json \
      --a-name "ftmb-$a" --a-out "$TMP/$a-out.pcap" --a-in "$TMP/$a-in.pcap" \
      --b-name kernel --b-out "$TMP/kernel-out.pcap" --b-in "$TMP/kernel-in.pcap" \
      >"$TMP/parity-$a.json" 2>"$TMP/parity-$a.txt" || RC=1
    [ -s "$TMP/parity-$a.json" ] || die "nat-parity ($a) failed: $(cat "$TMP/parity-$a.txt")"
    [ "$JSON" = 1 ] || sed 's/^/lab: /' "$TMP/parity-$a.txt" >&2
  done
  printf '{"mode":"parity","replayed":%s,"pps":%s,"ftmb_run_vs_kernel":%s,"ftmb_roles_vs_kernel":%s}\n' \
    "$SENT" "$PPS" "$(cat "$TMP/parity-run.json")" "$(cat "$TMP/parity-roles.json")"
  [ "$RC" = 0 ] || die "parity: our NAT's packets differ from the kernel's (above)"
  say "parity: ok ($SENT packets replayed each way through each NAT)"
  exit 0
fi

bg_ns "$NS" "$TMP/server" "$LAB" server --listen 10.0.2.2:7000
if [ "$MODE" = throughput ]; then
  bg_ns "$NS" "$TMP/iperf3-server" iperf3 -s -p 5201
fi

# ------------------------------------------------------------------ throughput
if [ "$MODE" = throughput ]; then
  iperf() { # iperf LABEL: 10 s of TCP, client to server
    wait_tcp 5201
    in_ns "$NC" iperf3 -c 10.0.2.2 -p 5201 -t "${IPERF_S:-10}" -J >"$TMP/iperf-$1.json" 2>"$TMP/iperf-$1.log" \
      || die "iperf3 ($1) failed"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.1f" % (d["end"]["sum_received"]["bits_per_second"]/1e6))' \
      "$TMP/iperf-$1.json"
  }
  say "throughput: ftmb run (no fault tolerance)"
  bg_ns "$NM" "$TMP/run" "${MB[@]}" run "$CFG" "${VARS[@]}" -q -t "$THREADS"
  P=$LAST; R_RUN=$(iperf run); stop_pids "$P"
  say "throughput: ftmb run --ft (fault tolerance in one process)"
  bg_ns "$NM" "$TMP/run-ft" "$FTMB" run "$CFG" "${VARS[@]}" -q -t "$THREADS" --ft
  P=$LAST; R_FT=$(iperf run-ft); stop_pids "$P"
  say "throughput: the four roles (input logger, master, output logger, replica)"
  start_roles
  R_ROLES=$(iperf roles); stop_pids "${ROLE_PIDS[@]}"; ROLE_PIDS=()
  say "throughput: Linux kernel NAT (nft masquerade)"
  kernel_nat_on
  R_KERNEL=$(iperf kernel); kernel_nat_off
  J=$(printf '{"mode":"throughput","mbit_s":{"ftmb_run":%s,"ftmb_run_ft":%s,"ftmb_roles":%s,"kernel_nat":%s}}' \
      "$R_RUN" "$R_FT" "$R_ROLES" "$R_KERNEL")
  echo "$J"
  say "iperf3 TCP Mbit/s: ftmb run $R_RUN | ftmb run --ft $R_FT | four roles $R_ROLES | kernel NAT $R_KERNEL"
  exit 0
fi

# ------------------------------------------------------------------ flows
if [ "$MODE" = kernel ]; then
  kernel_nat_on
elif [ "$MODE" = run ]; then
  bg_ns "$NM" "$TMP/run" "${MB[@]}" run "$CFG" "${VARS[@]}" -q -t "$THREADS"
else
  start_roles
fi
wait_tcp 7000
say "$(case $MODE in kernel) echo "kernel NAT" ;; run) echo "ftmb NAT, ftmb run (no fault tolerance)" ;; *) echo "ftmb NAT, four roles" ;; esac): $TCP TCP + $UDP UDP flows, ${DURATION}s, a message every ${INTERVAL} ms per flow"
# The client kills the master itself, so that it knows the instant: every
# flow reports the gap between its last echo before and first after it. In
# kernel mode the same instant is only marked (a baseline for the gap).
KILL=(--kill-after "$KILL_AT")
[ "$MODE" = ft ] && KILL+=(--kill-pid "$MASTER")
bg_ns "$NC" "$TMP/client" "$LAB" client --server 10.0.2.2:7000 --tcp "$TCP" --udp "$UDP" \
  --interval-ms "$INTERVAL" --duration "$DURATION" --detail "$TMP/flows.jsonl" "${KILL[@]}"
CLIENT=$LAST
wait "$CLIENT" || die "lab-client failed"
for p in "${ROLE_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || [ "$p" = "${MASTER:-}" ] || die "a role died: see logs"; done

# Where packets were lost, if anywhere: TCP retransmissions at both ends and
# drops on every veth (kept with --keep).
for n in "$NC" "$NM" "$NS"; do
  in_ns "$n" ip -s -s link >"$TMP/diag-${n##*-}-links.txt" 2>&1 || true
  in_ns "$n" nstat -asz >"$TMP/diag-${n##*-}-nstat.txt" 2>&1 || true
done
python3 - "$TMP/client.out" "$MODE" "$JSON" "$TMP/replica.log" "$TMP" <<'EOF'
import json, re, sys
c = json.load(open(sys.argv[1]))
def nstat(side, key):
    try:
        for line in open("%s/diag-%s-nstat.txt" % (sys.argv[5], side)):
            f = line.split()
            if f and f[0] == key:
                return int(f[1])
    except OSError:
        pass
    return None
c["tcp_retransmits"] = {"client": nstat("c", "TcpRetransSegs"), "server": nstat("s", "TcpRetransSegs")}
mode, as_json = sys.argv[2], sys.argv[3] == "1"
c["mode"] = {"ft": "ftmb-ft", "run": "ftmb-run", "kernel": "kernel-nat"}[mode]
if mode == "ft":
    # When the replica took over, relative to the kill (it must be after).
    try:
        m = re.search(r"took over at (\d+) ns", open(sys.argv[4]).read())
    except OSError:
        m = None
    c["takeover_after_kill_ms"] = (int(m.group(1)) - c["mark_ns"]) / 1e6 if m and c.get("mark_ns") else None
flows = c["tcp_connections"] + c["udp_flows"]
# Nothing may be lost: every message echoed, no connection reset, no flow
# silent, every flow answered again after the kill, no translation changed.
ok = (c["resets"] == 0 and c["endpoint_changes"] == 0 and c["silent_flows"] == 0
      and c["unanswered"] == 0 and (c.get("mark_ns") is None or c["flows_across_mark"] == flows)
      and (mode != "ft" or c.get("mark_ns") is None or (c["takeover_after_kill_ms"] or -1) >= 0))
c["ok"] = ok
print(json.dumps(c))
if not as_json:
    m = c.get("mark_stall_ms") or {}
    at = "failover (gap across the SIGKILL)" if mode == "ft" else "baseline (gap across the same instant, nothing killed)"
    print("lab: %s: %d TCP connections + %d UDP flows, resets %d, reconnects %d; %s stall: max %.1f ms, "
          "p99 %.1f ms; longest gap after the first second: max %.1f ms, p99 %.1f ms; unanswered messages %d "
          "(UDP %d); TCP retransmissions %s/%s (client/server); round trip p50 %.3f ms, p99 %.3f ms; "
          "same translated address:port throughout: %s"
          % (c["mode"], c["tcp_connections"], c["udp_flows"], c["resets"], c["reconnects"], at,
             m.get("max", 0), m.get("p99", 0), c["max_stall_ms"], c["p99_stall_ms"], c["unanswered"], c["udp_lost"], c["tcp_retransmits"]["client"], c["tcp_retransmits"]["server"],
             c["rtt_ms"]["p50"], c["rtt_ms"]["p99"],
             "yes" if c["endpoint_changes"] == 0 else "NO (%d flows changed)" % c["endpoint_changes"]),
          file=sys.stderr)
    if mode == "ft" and c.get("mark_ns"):
        t = c["takeover_after_kill_ms"]
        print("lab: the replica took over %s" % ("%.1f ms after the SIGKILL" % t if t is not None
              else "never"), file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
