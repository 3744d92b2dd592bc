#!/usr/bin/env bash
# Set up everything grelab needs on a Debian 12 machine, as root. Idempotent: a second run only checks.
#   Debian packages -> .venv with grelab -> the user-mode-linux guest's kernel and files (built once, cached).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

# netbase: /etc/protocols (the guest's `proto gre`); iptables, nftables: the guest's packet filters (its tools come
# from the host's /usr); make, gcc, libc6-dev, flex, bison, bc, xz-utils: building grelab's UML kernel from
# Debian's kernel source (grelab.dut.uml.kernel); tcpreplay: grelab replay's comparison; chromium +
# chromium-driver: the run report's browser test; frr, strongswan-*: real daemons the DUTs run for daemon
# scenarios (grelab.dut.daemon), from the host's /usr; libcharon-extra-plugins: charon's kernel-libipsec (userspace
# ESP, libipsec.so) and libstrongswan-standard-plugins its gcm plugin (userspace_esp's AES-GCM). libreswan conflicts
# with strongswan-libcharon: `grelab dut prepare` (below) downloads its .deb and unpacks it into grelab's cache; here
# only the libraries its pluto needs (libnss3-tools: certutil and pk12util for its NSS database too). openvswitch-switch: the OVS DUT
# (grelab.dut.ovs), which runs its own ovsdb-server and ovs-vswitchd in a namespace of grelab's.
debs=(iproute2 nftables tshark tcpdump busybox-static iptables netbase tcpreplay chromium chromium-driver
      frr strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins
      make gcc libc6-dev flex bison bc xz-utils
      libnss3-tools libldns3 libunbound8 libevent-core-2.1-7 libevent-pthreads-2.1-7 libcurl3-nss libcap-ng0
      libaudit1 libldap-2.5-0 libpam0g openvswitch-switch)
# Open vSwitch's own services are never wanted: on a machine running systemd, its postinst would start
# openvswitch-switch.service and ovs-record-hostname.service (deb-systemd-invoke), which require ovsdb-server and
# ovs-vswitchd, in the root namespace, with the openvswitch kernel module. Before a first install their units are
# masked: deb-systemd-invoke starts only units `systemctl is-enabled` calls enabled, and the postinst's
# `deb-systemd-helper unmask` removes only masks it made itself. (`systemctl unmask` them to use OVS as a service.)
if [ -d /run/systemd/system ] && ! dpkg-query -W -f='${Status}' openvswitch-switch 2>/dev/null | grep -q 'install ok installed'; then
  systemctl mask openvswitch-switch.service ovs-record-hostname.service ovsdb-server.service ovs-vswitchd.service >/dev/null
fi
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$py" -m venv .venv
fi
stamp=.venv/.grelab-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing grelab and its Python dependencies into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test,shell]'
  touch "$stamp"
fi

# The UML DUT's kernel is built from Debian's pinned kernel source (~6 minutes on 2 cores, once), and its
# initramfs from the Debian packages above, into grelab's cache; a second run finds both in well under a second.
# A failure stops set-up (set -e) with grelab's message.
.venv/bin/grelab kernel build >/dev/null
.venv/bin/grelab dut prepare >/dev/null   # and Debian's libreswan, unpacked into the cache
# The test corpus of other projects' captures (tests/data/corpus/README.md): from Debian's tcpdump and wireshark
# source packages (cached in /var/cache/grelab/corpus) and the shared folder beside the checkout; never committed.
.venv/bin/python tests/corpus.py
echo "setup: ready"
