#!/bin/sh
# PID 1 of grelab's user-mode-linux DUT: load the modules, name the interfaces, then serve the console.
# GRELAB_IFACES (comma-separated, from the kernel command line) names vec0, vec1, ... in order.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -r -t hostfs -o /usr hostfs /host-usr  # iptables and x_tables, on demand (see initramfs.py)
read -r modules < /etc/grelab-modules
modprobe -a $modules || echo "grelab-init: modprobe failed"
read -r GRELAB_BOOT_MODULES < /etc/grelab-boot-modules  # those and what they need: reset keeps them
export GRELAB_BOOT_MODULES
echo 1 > /proc/sys/kernel/printk  # from here only emergencies (a panic) reach the console
# Duplicate address detection would hold IPv6 addresses for ~2 s: off before any link is up.
echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad
echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad

# Two long-lived `ip -batch` processes, IPv4/any (fds 8 in, 9 out) and IPv6 (`ip -6`: fds 6, 7), for the
# boot's and every reset's many iproute2 commands: a batch line cannot say -6, and one process per
# command costs ~25 ms here. What they print (ip flushes stdout after each command) comes in order.
mkfifo /run/ip.in /run/ip.out /run/ip6.in /run/ip6.out
/sbin/ip -force -batch - < /run/ip.in > /run/ip.out 2>&1 &
exec 8> /run/ip.in 9< /run/ip.out
/sbin/ip -6 -force -batch - < /run/ip6.in > /run/ip6.out 2>&1 &
exec 6> /run/ip6.in 7< /run/ip6.out
# ipb_send IN LINES: hand iproute2 commands (batch syntax) to the process fed by fd IN, then a marker: a
# command that always succeeds and prints one short known line (the rule at priority 32766, which the
# boot and every reset leave in place). A failing marker such as `link show dev NOSUCH` would cost ~50 ms
# here (ip looks an unknown name up through a netlink socket of its own), this one ~3 ms.
IPB_MARK='32766:	from all lookup main'
ipb_send() {
  printf '%s\nrule list pref 32766\n' "$2" >&"$1"
}
# ipb_wait OUT: print what that process said up to the marker; fail if a command failed.
ipb_wait() {
  status=0
  while read -r said <&"$1"; do
    case "$said" in
      "$IPB_MARK") return $status ;;
      "Command failed "*) status=1 ;;
      *) echo "$said" ;;
    esac
  done
  echo "grelab: ip -batch exited"
  return 2
}
ipb() { ipb_send 8 "$1" && ipb_wait 9; }
export GRELAB_IP_COPROCESS=1
# A bare `ip` would be busybox's (its shell prefers applets), which has no xfrm: make it iproute2's.
ip() { /sbin/ip "$@"; }

n=0
links="link set dev lo up"
IFS=,
for name in $GRELAB_IFACES; do
  links="$links
link set dev vec$n name $name
link set dev $name up"
  n=$((n + 1))
done
unset IFS
ipb "$links"
for link in /sys/class/net/*; do boot_links="$boot_links ${link##*/}"; done
export GRELAB_BOOT_LINKS="$boot_links"  # reset keeps these (fallback tunnels such as gre0 cannot go)
. /etc/grelab-reset.sh  # grelab_reset, run in this shell: a subshell's fork costs ~9 ms here

# The console protocol: raw tty (no echo, no line length limit, no \r), one command as
#   <id> <number of lines> [here]\n<the script's lines>
# answered by "@@B <id>", the script's output (stdout and stderr), a newline, then "@@E <id> <exit status>".
# A script runs in a subshell, so nothing it does (exit, cd, variables) touches this loop; with "here" it
# runs in this shell, which saves a fork (~9 ms): only for grelab's own scripts (reset).
# Reading uses shell builtins only: every fork costs milliseconds in a user-mode-linux guest.
stty raw -echo
echo "@@READY"
while read -r id n here; do
  while [ "$n" -gt 0 ]; do IFS= read -r line; printf '%s\n' "$line"; n=$((n - 1)); done > /tmp/cmd
  echo "@@B $id"
  if [ -n "$here" ]; then { . /tmp/cmd; } < /dev/null 2>&1; else ( . /tmp/cmd ) < /dev/null 2>&1; fi
  rc=$?
  printf '\n@@E %s %s\n' "$id" "$rc"  # on a line of its own even after output with no newline at its end
done
echo "@@CONSOLE-CLOSED"
