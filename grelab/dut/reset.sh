#!/bin/sh
# grelab-reset IFACE...: bring a DUT back to its just-booted network state, keeping only lo and IFACE...
# No tunnels, SAs, policies, nftables rules, addresses, routes, neighbours or extra rules remain; the
# named interfaces are down/up once, so their IPv6 link-local address comes back. One `ip -batch`
# process does the work because every exec costs milliseconds in a user-mode-linux guest.
keep=" lo $* "
batch=/tmp/grelab-reset.batch
{
  echo "xfrm state flush"
  echo "xfrm policy flush"
  for link in /sys/class/net/*; do
    link=${link##*/}
    case "$keep" in *" $link "*) ;; *) echo "link del dev $link" ;; esac  # fallback tunnels refuse: -force
  done
  echo "route flush table main"
  echo "-6 route flush table main"
  for i in "$@"; do
    echo "link set dev $i down"
    echo "addr flush dev $i"
    echo "link set dev $i mtu 1500 up"
  done
  echo "neigh flush all"
  echo "rule flush"
  echo "rule add priority 32766 table main"
  echo "rule add priority 32767 table default"
  echo "-6 rule flush"
  echo "-6 rule add priority 32766 table main"
} > $batch
/sbin/ip -force -batch $batch >/dev/null 2>&1
[ -z "$GRELAB_RESET_NFT" ] || nft flush ruleset
exit 0
