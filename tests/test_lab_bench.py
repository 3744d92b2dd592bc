"""`grelab bench`, engine part: every promised key, measured beside its baseline."""
from grelab.bench.lab import measures


def test_bench_measures_each_figure_beside_its_baseline():
    results = {m.name: m for m in measures(quick=True)}
    assert {"send_pps", "capture_100k_percent", "capture_lag_ms", "topology_ms"} <= set(results)
    assert results["send_pps"].grelab > 10 * results["send_pps"].baseline
    assert results["capture_100k_percent"].grelab == 100
    assert results["capture_100k_percent"].baseline is not None
    assert results["topology_ms"].grelab < results["topology_ms"].baseline
