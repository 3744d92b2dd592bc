"""Scopes: cleanups newest first, every one run even when one fails, nested scopes closed with their parent
or on their own, each cleanup once."""
import pytest

from grelab.scope import Scope, ScopeError


def test_cleanups_run_newest_first_and_a_failing_one_does_not_stop_the_rest():
    ran = []
    scope = Scope("case")
    scope.defer(lambda: ran.append("namespace"), "namespace")
    scope.defer(lambda: (_ for _ in ()).throw(OSError("EBUSY")), "veth")
    scope.defer(lambda: ran.append("capture"), "capture")
    with pytest.raises(ScopeError) as error:
        scope.close()
    assert ran == ["capture", "namespace"]
    assert str(error.value) == "closing case: veth: EBUSY" and error.value.errors == ["veth: EBUSY"]


def test_a_child_closes_with_its_parent_or_alone_and_each_cleanup_runs_once():
    ran = []
    run = Scope("run")
    case = run.child("case")
    lab = case.child("lab")
    lab.defer(lambda: ran.append("lab thing"))
    case.defer(lambda: ran.append("case thing"))
    lab.close()  # on its own: gone from the case's list
    case.close()
    run.close()
    assert ran == ["lab thing", "case thing"]
    other = run.child("other")
    other.defer(lambda: ran.append("other thing"))
    run.close()  # the parent closes what is still open in it
    other.close()
    assert ran == ["lab thing", "case thing", "other thing"]


def test_running_one_cleanup_early_takes_it_off_the_list():
    ran = []
    scope = Scope("x")
    now = scope.defer(lambda: ran.append(1))
    now()
    now()
    scope.close()
    assert ran == [1]
