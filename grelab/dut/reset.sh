#!/bin/sh
# `set -- IFACE...; . reset.sh`: bring a DUT back to its just-booted network state, keeping lo and IFACE...
# No tunnels, SAs, policies, addresses, routes, neighbours, extra rules or nftables rules (where there is
# `nft`) remain; the named interfaces go down and up once, so their IPv6 link-local address comes back
# (and IPv6 routes through them go). Links present at boot (GRELAB_BOOT_LINKS: fallback tunnels such as
# gre0, which cannot be deleted) stay. The commands are gathered into one `ip -batch` per family, in
# variables rather than through $(...), which would fork: in the UML guest they go to the long-lived
# `ip -batch` processes init started (see ipb in init.sh), as every process there costs milliseconds.
keep=" lo $* $GRELAB_BOOT_LINKS "
v4="xfrm state flush
xfrm policy flush
route flush table main"
for link in /sys/class/net/*; do
  link=${link##*/}
  case "$keep" in *" $link "*) ;; *) v4="$v4
link del dev $link" ;; esac
done
for i in "$@"; do
  v4="$v4
link set dev $i down
addr flush dev $i
link set dev $i mtu 1500 up"
done
v4="$v4
neigh flush all
rule flush
rule add priority 32766 table main
rule add priority 32767 table default"
# IPv6 routes through the links above go with them; those through lo (unreachable...) do not.
v6="route flush table main dev lo
rule flush
rule add priority 32766 table main"
if [ -n "$GRELAB_IP_COPROCESS" ]; then  # both at once: they touch different things
  ipb_send 6 "$v6"
  ipb_send 8 "$v4"
  ipb_wait 9 || failed=1
  ipb_wait 7 || failed=1  # both drained, always: a marker left behind would end the next reset early
  [ -z "$failed" ]
else
  printf '%s\n' "$v6" | ip -6 -force -batch - > /dev/null 2>&1
  printf '%s\n' "$v4" | ip -force -batch - > /dev/null 2>&1
fi
ok=$?
! command -v nft > /dev/null || nft flush ruleset
[ $ok = 0 ]
