"""`grelab bench`, scenario part: each refusal at speed, counted by the DUT under the kernel's name for it."""
import pytest

from grelab.bench.refusals import measures


@pytest.mark.needs_esp
def test_refusals_at_speed_are_counted_each_under_its_counter():
    results = {m.name: m for m in measures(quick=True)}
    for kind in ("plaintext_gre", "flipped_bit", "left_of_window", "replayed", "unknown_spi", "truncated_header"):
        assert results[f"refuse_{kind}_pps"].grelab > 5 * results[f"refuse_{kind}_pps"].baseline
        counted = results[f"refuse_{kind}_counted"]
        assert counted.grelab >= 0.25 * counted.baseline, counted.what  # the UML DUT drops some at full rate
    assert results["refuse_expired_counted"].grelab == 1
