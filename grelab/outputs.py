"""Output files of grelab's commands: checked before any work, written whole or not at all.

Each output is written to a temporary file in its own folder and renamed over its path only once every
output of the command has been written, so a failure (a full disk, a folder that is not writable) leaves
no half file and no mix of old and new.
"""
from __future__ import annotations

import os
from collections.abc import Callable

from grelab.errors import GrelabError, InputError


def check_outputs(outputs: dict[str, str], force: bool) -> None:
    """outputs: {option: path}. Refuse, naming the option and path, a path whose folder is missing, a folder,
    an existing file without force, a read-only file, or two options naming the same file."""
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise InputError(option, path, f"a file in an existing folder ({folder} is not one: create it first)")
        if os.path.isdir(path):
            raise InputError(option, path, "a file name, not a folder")
        if os.path.exists(path):
            if not force:
                raise InputError(option, path, "a path that does not exist yet (or --force to overwrite)")
            if not os.stat(path).st_mode & 0o222:  # root could write it anyway: respect the owner's intent
                raise InputError(option, path, "a writable file (this one is read-only: chmod u+w it, or "
                                               "choose another path)")
        real = os.path.realpath(path)
        if real in seen:
            raise InputError(option, path, f"a file other than {seen[real]}'s (both would write {real})")
        seen[real] = option


def write_all(writers: dict[str, Callable[[str], None]]) -> None:
    """writers: {path: write(temporary path)}. Every file is written to a temporary path beside it, then all
    are renamed into place; on any failure the temporary files go and the paths are left as they were."""
    temporary = {path: os.path.join(os.path.dirname(os.path.abspath(path)),
                                    f".{os.path.basename(path)}.{os.getpid()}.tmp") for path in writers}
    try:
        for path, write in writers.items():
            try:
                write(temporary[path])
            except OSError as exc:
                raise GrelabError(f"cannot write {path}: {exc.strerror or exc}: choose a writable folder "
                                  "with free space") from None
        for path, tmp in temporary.items():
            os.replace(tmp, path)
    finally:
        for tmp in temporary.values():
            try:
                os.unlink(tmp)
            except OSError:
                pass
