#!/bin/sh
# `set -- IFACE...; . reset.sh`: bring a DUT back to its just-booted network state, keeping lo and IFACE...
# No tunnels, SAs, policies, addresses, routes, neighbours, extra IPv4 rules or nftables rules (where
# there is `nft`) remain; the named interfaces go down and up once,
# so their IPv6 link-local address comes back. All of it is one `ip -batch`; in the UML guest it goes to
# the long-lived `ip -batch` that init started (see ipb in init.sh), because an exec there costs tens of ms.
batch() {
  keep=" lo $* "
  echo "xfrm state flush"
  echo "xfrm policy flush"
  for link in /sys/class/net/*; do
    link=${link##*/}
    case "$keep" in *" $link "*) ;; *) echo "link del dev $link" ;; esac  # fallback tunnels refuse: -force
  done
  echo "route flush table main"
  echo "route flush table main root ::/0"
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
if [ -n "$GRELAB_IP_COPROCESS" ]; then
  ipb "$(batch "$@")" > /dev/null  # fallback tunnels refuse deletion: failures expected
else
  batch "$@" | ip -force -batch - >/dev/null 2>&1
fi
! command -v nft >/dev/null || nft flush ruleset
true
