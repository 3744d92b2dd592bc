#!/bin/sh
# PID 1 of grelab's user-mode-linux DUT: load the modules, name the interfaces, then serve the console.
# GRELAB_IFACES (comma-separated, from the kernel command line) names vec0, vec1, ... in order.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
read -r modules < /etc/grelab-modules
modprobe -a $modules || echo "grelab-init: modprobe failed"
echo 1 > /proc/sys/kernel/printk  # from here only emergencies (a panic) reach the console
# Duplicate address detection would hold IPv6 addresses for ~2 s: off before any link is up.
echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad
echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad

# A long-lived `ip -batch` for the boot's and every reset's many iproute2 commands: one process instead
# of one each (~25 ms apiece here). fd 8 feeds it; fd 9 reads its messages (stderr, unbuffered).
mkfifo /run/ip.in /run/ip.out
/sbin/ip -force -batch - < /run/ip.in > /run/ip.out 2>&1 &
exec 8> /run/ip.in 9< /run/ip.out
# ipb LINES: run iproute2 commands (batch syntax, no options) on it; print its messages; fail if one did.
# The error for a link that does not exist marks the end (then comes its own "Command failed" line).
ipb() {
  printf '%s\nlink show dev grelab-done\n' "$1" >&8
  status=0
  while read -r said <&9; do
    case "$said" in
      *'"grelab-done"'*) read -r said <&9; return $status ;;
      "Command failed "*) status=1 ;;
      *) echo "$said" ;;
    esac
  done
  echo "grelab: ip -batch exited"
  return 2
}
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

# The console protocol: raw tty (no echo, no line length limit, no \r), one command as
#   <id> <number of lines>\n<the script's lines>
# answered by "@@B <id>", the script's output (stdout and stderr), then "@@E <id> <exit status>".
# Reading uses shell builtins only: every fork costs milliseconds in a user-mode-linux guest.
stty raw -echo
echo "@@READY"
while read -r id n; do
  while [ "$n" -gt 0 ]; do IFS= read -r line; printf '%s\n' "$line"; n=$((n - 1)); done > /tmp/cmd
  echo "@@B $id"
  ( . /tmp/cmd ) < /dev/null 2>&1
  echo "@@E $id $?"
done
echo "@@CONSOLE-CLOSED"
