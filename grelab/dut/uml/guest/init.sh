#!/bin/sh
# PID 1 of grelab's user-mode-linux DUT: name the interfaces, then serve the console.
# GRELAB_IFACES (comma-separated, from the kernel command line) names vec0, vec1, ... in order.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -r -t hostfs -o /usr hostfs /host-usr  # iptables, nft and daemons, from the host (see initramfs.py)
# grelab's folder for this guest on the host: plans come in as files there, since the console reads a
# script one byte per system call (~0.1 ms a byte) and a file is read in blocks.
[ -z "$GRELAB_SHARE" ] || mount -t hostfs -o "$GRELAB_SHARE" hostfs /grelab
trap '' PIPE  # a write to an `ip -batch` that died must fail, not kill init (and with it the guest)
# A kernel with modules (one of yours) loads what it asks for itself (busybox's modprobe); IPv6 first, whose
# sysctls are written below. grelab's own kernel has everything built in.
[ ! -d /lib/modules ] || modprobe ipv6 2>/dev/null
export GRELAB_UML=1
echo 1 > /proc/sys/kernel/printk  # from here only emergencies (a panic) reach the console
# Duplicate address detection would hold IPv6 addresses for ~2 s: off before any link is up.
echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad
echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad

# Two long-lived `ip -batch` processes, IPv4/any (fds 8 in, 9 out) and IPv6 (`ip -6`: fds 6, 7), for the
# boot's and every reset's many iproute2 commands: a batch line cannot say -6, and one process per
# command costs ~25 ms here. What they print (ip flushes stdout after each command) comes in order.
# ipb_start IN OUT OPTIONS: (re)start the process behind fds IN/OUT. iproute2 exits on some errors (an
# argument it cannot parse) even with -force: ipb_wait then restarts it, and the plan's error is reported.
ipb_generation=0
ipb_start() {
  ipb_generation=$((ipb_generation + 1))
  local fifo=/run/ip$1.$ipb_generation  # fifos of their own: an old process still draining its input reads none of it
  mkfifo $fifo.in $fifo.out
  # Without init's other pipe ends (fds 4-9): a child holding a writer of another's input would keep it alive.
  /sbin/ip $3 -force -batch - < $fifo.in > $fifo.out 2>&1 4<&- 5>&- 6>&- 7<&- 8>&- 9<&- &
  eval "ipb_line$1=0"
  # Opening a fifo blocks until the other end opens, and a signal (another child's SIGCHLD) interrupts it
  # (EINTR): `exec` failing there would end init, and with it the guest. `command` keeps the shell alive;
  # try again until it is open.
  until command eval "exec $1> $fifo.in" 2>/dev/null; do :; done
  until command eval "exec $2< $fifo.out" 2>/dev/null; do :; done
}
ipb_start 8 9 ""
ipb_start 6 7 -6
# ipb_restart: new processes, forgetting what the old ones knew. iproute2 caches interface names: a link
# another process deleted and re-made under the same name would be looked up by its old index.
ipb_restart() {
  exec 8>&- 9<&- 6>&- 7<&-
  rm -f /run/ip[0-9]*.*
  ipb_start 8 9 ""
  ipb_start 6 7 -6
}
NL='
'
# ipb_send IN LINES: hand iproute2 commands (batch syntax) to the process fed by fd IN, then a marker: a
# command that always succeeds and prints one short known line (the rule at priority 32766, which the
# boot and every reset leave in place). A failing marker such as `link show dev NOSUCH` would cost ~50 ms
# here (ip looks an unknown name up through a netlink socket of its own), this one ~3 ms. ip numbers the
# lines it reads since it started: ipb_base<IN> remembers where these begin, so a failure is told by its
# line in LINES.
IPB_MARK='32766:	from all lookup main'
ipb_send() {
  local n=1 rest="$2"
  while case "$rest" in *"$NL"*) true ;; *) false ;; esac; do rest=${rest#*"$NL"}; n=$((n + 1)); done
  eval "ipb_base$1=\$ipb_line$1; ipb_line$1=\$((ipb_line$1 + n + 1))"
  printf '%s\nrule list pref 32766\n' "$2" >&"$1"
}
# ipb_wait OUT IN: print what that process said up to the marker, its failures as "@@failed <line of the
# batch>"; fail if a command failed. If the process died, start it again and say so.
ipb_wait() {
  local status=0 said base
  eval "base=\$ipb_base$2"
  while read -r said <&"$1"; do
    case "$said" in
      "$IPB_MARK") return $status ;;
      "Command failed -:"*) status=1; echo "@@failed $((${said#Command failed -:} - base))" ;;
      *) echo "$said" ;;
    esac
  done
  echo "@@died ip -batch exited"
  eval "exec $2>&- $1<&-"
  if [ "$2" = 6 ]; then ipb_start 6 7 -6; else ipb_start 8 9 ""; fi
  return 2
}
ipb() { ipb_send 8 "$1" && ipb_wait 9 8; }
# A long-lived awk reads files for grelab_counters (reset.sh): `cat` would be a new process (~25 ms) at every
# reading, the shell's `read` takes a byte per system call. A line "OUT FILE..." makes it write "FILE:line" for
# every line of every FILE into OUT (under /grelab: the host reads it there), then answer "done". The FILE
# "@links" is every link's statistics at once, as iproute2's JSON (a line "@links:[...]"), asked of a long-lived
# `ip -j -s -s` (one netlink dump: reading each link's ~24 files in sysfs took the awk ~35 ms); its answer
# ends at the marker rule's line.
mkfifo /run/read.in /run/read.out /run/stats.in /run/stats.out
awk '{ for (i = 2; i <= NF; i++) {
         if ($i == "@links") {
           print "link show\nrule list pref 32766" > "/run/stats.in"; fflush("/run/stats.in")
           while ((getline line < "/run/stats.out") > 0 && line !~ /"priority":32766/) print "@links:" line > $1
           continue
         }
         while ((getline line < $i) > 0) print $i ":" line > $1; close($i)
       }
       close($1); print "done"; fflush() }' < /run/read.in > /run/read.out 6>&- 7<&- 8>&- 9<&- &
/sbin/ip -j -s -s -force -batch - < /run/stats.in > /run/stats.out 2>&1 4<&- 5>&- 6>&- 7<&- 8>&- 9<&- &
until command exec 5> /run/read.in 2>/dev/null; do :; done
until command exec 4< /run/read.out 2>/dev/null; do :; done
export GRELAB_IP_COPROCESS=1
# A bare `ip` would be busybox's (its shell prefers applets), which has no xfrm: make it iproute2's.
ip() { /sbin/ip "$@"; }
tc() { /sbin/tc "$@"; }  # likewise: iproute2's (busybox's has no netem), through the wrapper that marks it used

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
# Before they first come up: no duplicate address detection on the guest's own interfaces either (they
# existed before `all`/`default` were set), or their link-local addresses stay tentative for ~2 s.
for link in /sys/class/net/vec*; do echo 0 > /proc/sys/net/ipv6/conf/${link##*/}/accept_dad; done
ipb "$links"
for link in /sys/class/net/*; do boot_links="$boot_links ${link##*/}"; done
export GRELAB_BOOT_LINKS="$boot_links"  # reset keeps these (fallback tunnels such as gre0 cannot go)
for link in $boot_links; do
  case ",lo,$GRELAB_IFACES," in *",$link,"*) ;; *) GRELAB_FALLBACK_LINKS="$GRELAB_FALLBACK_LINKS $link" ;; esac
done
. /etc/grelab-reset.sh  # grelab_reset, run in this shell: a subshell's fork costs ~9 ms here

# The console protocol: raw tty (no echo, no line length limit, no \r), one command as
#   <id> <number of lines> [here]\n<the script's lines>     or     <id> f [here]\n
# the second with the script in grelab's folder, /grelab/c<id>: the console's every byte is a system call
# here (~0.15 ms), a file on hostfs is read in blocks, so a script of 100 bytes costs ~15 ms less that way.
# Answered by "@@B <nonce>-<id>", the script's output (stdout and stderr), a newline, then
# "@@E <nonce>-<id> <exit status>"; the nonce (GRELAB_NONCE, from the kernel command line) is new at every
# boot. A script runs in a subshell, so nothing it does (exit, cd, variables) touches this loop; with "here"
# it runs in this shell, which saves a fork (~9 ms): only for grelab's own scripts (reset, plans).
# Reading uses shell builtins only: every fork costs milliseconds in a user-mode-linux guest.
stty raw -echo
echo "@@READY"
while read -r id n here; do
  if [ "$n" = f ]; then
    cmd=/grelab/c$id
  else
    while [ "$n" -gt 0 ]; do IFS= read -r line; printf '%s\n' "$line"; n=$((n - 1)); done > /tmp/cmd
    cmd=/tmp/cmd
  fi
  echo "@@B $GRELAB_NONCE-$id"
  if [ -n "$here" ]; then { . $cmd; } < /dev/null 2>&1; else ( . $cmd ) < /dev/null 2>&1; fi
  rc=$?
  printf '\n@@E %s-%s %s\n' "$GRELAB_NONCE" "$id" "$rc"  # on a line of its own even after output with no newline at its end
done
echo "@@CONSOLE-CLOSED"
