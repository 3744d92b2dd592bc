"""`grelab sweep`: remove what dead grelab runs left (namespaces, the processes inside them, recorded guests)."""
from grelab.lab.ownership import sweep_dead_runs


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    removed = sweep_dead_runs()
    print("removed: " + (", ".join(removed) if removed else "nothing"))
    return 0
