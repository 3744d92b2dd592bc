"""The device under test: a real GRE / IPsec endpoint the lab wires in.

    base.py        the Dut interface (subclass it to bring your own) and its result types
    select.py      --dut auto|host|uml|module:Class -> a backend to start DUTs from
    host.py        `host`: a namespace on this machine's kernel, when it can do GRE and ESP
    uml/           `uml`: a user-mode-linux guest (initramfs.py builds it, guest.py runs it, console.py talks to it)
    plumbing.py    the DUT's own namespace and iproute2 batches in it
    reset.sh       back to just-booted, shared by both backends
    doctor.py, cli.py, bench.py   `grelab doctor`, `grelab dut`, `grelab bench` figures
"""
