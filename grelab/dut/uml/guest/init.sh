#!/bin/sh
# PID 1 of grelab's user-mode-linux DUT: load the modules, name the interfaces, then serve the console.
# GRELAB_IFACES (comma-separated, from the kernel command line) names vec0, vec1, ... in order.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
modprobe -a $(cat /etc/grelab-modules) || echo "grelab-init: modprobe failed"
echo 1 > /proc/sys/kernel/printk  # from here only emergencies (a panic) reach the console
# Duplicate address detection would hold IPv6 addresses for ~2 s: off before any link is up.
sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
ifaces=$(echo "$GRELAB_IFACES" | tr , ' ')
n=0
for name in $ifaces; do
  /sbin/ip link set dev "vec$n" name "$name" && /sbin/ip link set dev "$name" up
  n=$((n + 1))
done
/sbin/ip link set dev lo up
# A long-lived `ip -batch` for grelab-reset (see reset.sh): fd 8 feeds it, fd 9 reads what it says.
mkfifo /run/ip.in /run/ip.out
/sbin/ip -force -batch - < /run/ip.in > /run/ip.out 2>&1 &
exec 8> /run/ip.in 9< /run/ip.out
export GRELAB_IP_COPROCESS=1
# A bare `ip` would be busybox's (its shell prefers applets), which has no xfrm: make it iproute2's.
ip() { /sbin/ip "$@"; }
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
