"""Open vSwitch's userspace datapath as a GRE DUT (`--dut ovs`): the plan's mapping (`mapping`, pure), the daemons
(`daemons`) and the DUT (`switch.Ovs`)."""
