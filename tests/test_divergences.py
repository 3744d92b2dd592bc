"""grelab.dut.divergences: which rows say how an implementation a case runs on behaves."""
from grelab.dut.divergences import Divergence, case_id, divergences_for, implementations_of, reason

TABLE = (Divergence("ovs", "gre_options.py::test_iseq*", "does not check GRE sequence numbers", "lib/netdev-native-tnl.c"),
         Divergence("libreswan", "ikev2.py::test_rekey[*]", "rekeys its way", "changelog 4.10"))


def test_case_id_drops_the_folders():
    assert case_id("scenarios/gre_options.py::test_iseq[gre]") == "gre_options.py::test_iseq[gre]"
    assert case_id("gre_options.py::test_iseq") == "gre_options.py::test_iseq"


def test_a_row_matches_its_implementation_and_cases_only():
    assert divergences_for("scenarios/gre_options.py::test_iseq_drops[gre]", {"ovs"}, TABLE) == [TABLE[0]]
    assert divergences_for("scenarios/gre_options.py::test_iseq_drops[gre]", {"uml"}, TABLE) == []
    assert divergences_for("scenarios/gre_options.py::test_key[gre]", {"ovs"}, TABLE) == []


def test_a_variants_implementations_count_beside_the_dut_kind():
    found = implementations_of("uml", "strongswan→libreswan")
    assert found == {"uml", "strongswan", "libreswan"}
    assert divergences_for("scenarios/ikev2.py::test_rekey[psk-strongswan-libreswan]", found, TABLE) == [TABLE[1]]
    assert "libreswan: rekeys its way (changelog 4.10)" == reason([TABLE[1]])
