#!/bin/sh
# `. reset.sh; grelab_reset IFACE...`: bring a DUT back to its just-booted network state, keeping lo and
# IFACE... No tunnels, SAs, policies, addresses (but the named interfaces' link-local ones), routes (in any
# table), neighbours, extra rules or nftables rules (where there is `nft`) remain. Links present at boot
# (GRELAB_BOOT_LINKS: fallback tunnels such as gre0, which cannot be deleted) stay. In the UML guest, x_tables
# tables a case used are emptied (rules, chains, counters), nftables is flushed when a case ran nft, and the
# interfaces' qdiscs go when it ran tc.
#
# The commands are gathered into one `ip -batch` per family, in variables rather than through $(...),
# which would fork. In the UML guest, where every process and every syscall is expensive, init sources
# this file once and runs grelab_reset in its own shell; the batches go to init's long-lived `ip -batch`
# processes (ipb_send / ipb_wait in init.sh).
grelab_reset() {
  grelab_reset_case "$@" && grelab_reset_links "$@"
}

# grelab_reset_case IFACE...: the first half of grelab_reset, what a case made or left behind: daemons, SAs and
# policies, tunnels (every link but lo, IFACE... and the boot's), the routes plans add (proto boot or static, any
# table), neighbours, x_tables or nftables. The interfaces keep their addresses and MTUs, and rules stay
# (grelab_reset_links takes those): the UML DUT leaves them while the next plan wants the same.
grelab_reset_case() {
  local keep v4 v6 link failed
  # Daemons a case started (grelab.dut.daemon; their pids kept by init's shell in the UML guest) go
  # first, so none puts back a route or an SA the flushes below take away.
  if [ -n "$GRELAB_DAEMON_PIDS" ]; then
    kill -9 $GRELAB_DAEMON_PIDS 2> /dev/null
    wait $GRELAB_DAEMON_PIDS 2> /dev/null
    GRELAB_DAEMON_PIDS=
    # charon's pid file has a compiled-in path: left behind by kill -9, it names a pid the guest may reuse
    rm -rf /tmp/grelab-daemons /run/charon.pid
  fi
  keep=" lo $* $GRELAB_BOOT_LINKS "
  v4="xfrm state flush
xfrm policy flush
route flush table all proto boot
route flush table all proto static"
  for link in /sys/class/net/*; do
    link=${link##*/}
    case "$keep" in *" $link "*) ;; *) v4="$v4
link del dev $link" ;; esac
  done
  v4="$v4
neigh flush all"
  # Routes added (proto boot or static, any table) and those through lo (unreachable...) are flushed here;
  # IPv6 routes of a link deleted below go with it.
  v6="route flush table all proto boot
route flush table all proto static"
  # IPv6 first, then the rest, never both at once: a route flush that lists routes while the other
  # batch deletes their links fails ("Failed to send flush request: No such process").
  grelab_batches "$v6" "$v4" || failed=1
  if [ -n "$GRELAB_UML" ]; then  # the UML guest: a process only for a filter a case used
    [ ! -e /run/grelab-xtables-used ] || { grelab_empty_xtables && rm /run/grelab-xtables-used; } || failed=1
    [ ! -e /run/grelab-nft-used ] || { nft.host flush ruleset && rm /run/grelab-nft-used; } || failed=1
    [ ! -e /run/grelab-tc-used ] || { grelab_clear_qdiscs "$@" && rm /run/grelab-tc-used; } || failed=1
  elif command -v nft > /dev/null; then
    nft flush ruleset || failed=1
  fi
  [ -z "$failed" ]
}

# grelab_reset_links IFACE...: the second half: IFACE...'s addresses (but their link-local ones) and MTUs, the
# routes of table main, extra rules.
grelab_reset_links() {
  local v4 v6 i
  v4="route flush table main"
  for i in "$@"; do
    [ -e "/sys/class/net/$i" ] || continue  # the host DUT's interfaces are the lab's veths: gone with it
    # Not down and up: that costs the UML guest ~10 ms a link and regenerates its link-local address, which
    # stays (and with it neighbour discovery's state: flushed by grelab_reset_case).
    v4="$v4
addr flush dev $i scope global
link set dev $i mtu 1500 up"
  done
  # ipb_wait's end marker lists the rule at priority 32766: re-added here, so it is there to list.
  v4="$v4
rule flush
rule add priority 32766 table main
rule add priority 32767 table default"
  v6="route flush table main dev lo
rule flush
rule add priority 32766 table main"
  grelab_batches "$v6" "$v4"
}

# grelab_batches V6 V4: IPv6's iproute2 lines, then the others, each as one batch (init's `ip -batch`
# processes in the UML guest, a process each elsewhere); fails if a line failed.
grelab_batches() {
  local failed
  if [ -n "$GRELAB_IP_COPROCESS" ]; then
    ipb_send 6 "$1"
    ipb_wait 7 6 || failed=1
    ipb_send 8 "$2"
    ipb_wait 9 8 || failed=1
  else
    printf '%s\n' "$1" | ip -6 -force -batch - 2>&1 > /dev/null || failed=1  # errors, not listings
    printf '%s\n' "$2" | ip -force -batch - 2>&1 > /dev/null || failed=1
  fi
  [ -z "$failed" ]
}

# Empty every x_tables table that exists: no rules, no user chains, every built-in chain back to ACCEPT with its
# counters at zero. Only after a case ran iptables (its wrapper leaves /run/grelab-xtables-used: initramfs.py).
grelab_empty_xtables() {
  local family table tables
  for family in ip ip6; do
    tables=
    [ ! -e /proc/net/${family}_tables_names ] || while read -r table; do
      grelab_builtin_chains $table
      tables="$tables*$table
${grelab_chains}COMMIT
"
    done < /proc/net/${family}_tables_names
    [ -z "$tables" ] || { printf '%s' "$tables" > /tmp/grelab-empty-tables && ${family}tables-restore < /tmp/grelab-empty-tables; } || return 1
  done
}

# grelab_clear_qdiscs IFACE...: the interfaces' own root and ingress qdiscs (netem, shapers) go, in one `tc` process;
# those of links the case made went with the links. Only after a case ran tc (its wrapper's mark, initramfs.py).
grelab_clear_qdiscs() {
  local i lines=
  for i in "$@"; do lines="${lines}qdisc del dev $i root
qdisc del dev $i ingress
"; done
  printf '%s' "$lines" > /tmp/grelab-qdiscs
  tc.host -force -batch /tmp/grelab-qdiscs > /dev/null 2>&1  # "no qdisc" where there was none: not a failure
  return 0
}

# grelab_builtin_chains TABLE: its built-in chains as iptables-restore lines (policy ACCEPT, counters zero), in
# grelab_chains (no $(...): a fork).
grelab_builtin_chains() {
  local chain chains
  grelab_chains=
  case $1 in
    filter) chains="INPUT FORWARD OUTPUT" ;;
    nat) chains="PREROUTING INPUT OUTPUT POSTROUTING" ;;
    raw) chains="PREROUTING OUTPUT" ;;
    *) chains="PREROUTING INPUT FORWARD OUTPUT POSTROUTING" ;;  # mangle, security
  esac
  for chain in $chains; do grelab_chains="$grelab_chains:$chain ACCEPT [0:0]
"; done
}

# Where init sourced this file (the UML guest), for grelab's scripts in init's own shell:

# grelab_counters OUT: every counter a test asserts on, written as "FILE:line" lines into OUT by init's
# long-lived awk (init.sh): every link's statistics (iproute2's JSON, "@links:..."), then /proc's xfrm and
# SNMP tables.
grelab_counters() {
  local done
  printf '%s @links /proc/net/xfrm_stat /proc/net/snmp /proc/net/netstat /proc/net/snmp6\n' "$1" >&5
  read -r done <&4 && [ "$done" = done ]
}
