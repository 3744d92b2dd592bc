#!/bin/sh
# `set -- IFACE...; . reset.sh`: bring a DUT back to its just-booted network state, keeping lo and IFACE...
# No tunnels, SAs, policies, addresses, routes, neighbours, extra IPv4 rules or nftables rules (where
# there is `nft`) remain; the named interfaces go down and up once,
# so their IPv6 link-local address comes back. Links present at boot (GRELAB_BOOT_LINKS: the fallback
# tunnels gre0... that cannot be deleted) stay. All of it is one `ip -batch` per family; in the UML guest
# they go to the long-lived ones init started (see ipb in init.sh), as an exec there costs tens of ms.
batch() {
  keep=" lo $* $GRELAB_BOOT_LINKS "
  echo "xfrm state flush"
  echo "xfrm policy flush"
  for link in /sys/class/net/*; do
    link=${link##*/}
    case "$keep" in *" $link "*) ;; *) echo "link del dev $link" ;; esac
  done
  echo "route flush table main"
  for i in "$@"; do
    echo "link set dev $i down"
    echo "addr flush dev $i"
    echo "link set dev $i mtu 1500 up"
  done
  echo "neigh flush all"
  echo "rule flush"
  echo "rule add priority 32766 table main"
  echo "rule add priority 32767 table default"
}
batch6() {  # IPv6 routes through the links above go with their link; those through lo do not
  echo "route flush table main dev lo"
  echo "rule flush"
  echo "rule add priority 32766 table main"
}
if [ -n "$GRELAB_IP_COPROCESS" ]; then  # both at once: they touch different things
  ipb_send 6 "$(batch6)"
  ipb_send 8 "$(batch "$@")"
  ipb_wait 9 || failed=1
  ipb_wait 7 || failed=1  # both drained, always: a marker left behind would end the next reset early
  [ -z "$failed" ]
else
  batch6 | ip -6 -force -batch - > /dev/null 2>&1
  batch "$@" | ip -force -batch - > /dev/null 2>&1
fi
ok=$?
! command -v nft > /dev/null || nft flush ruleset
[ $ok = 0 ]
