"""The UML guest's initramfs: built once from Debian's files into the cache, with what the guest needs."""
import time

from grelab.dut.uml import initramfs


def names_in(archive: bytes) -> set[str]:
    """Member names of a cpio "newc" archive."""
    names, at = set(), 0
    while True:
        header = archive[at:at + 110]
        size, name_size = int(header[54:62], 16), int(header[94:102], 16)
        name = archive[at + 110:at + 110 + name_size - 1].decode()
        if name == "TRAILER!!!":
            return names
        names.add(name)
        at += 110 + name_size
        at += -at % 4 + size
        at += -at % 4


def test_prepare_is_cached_and_quick_the_second_time():
    first = initramfs.prepare()
    start = time.perf_counter()
    again = initramfs.prepare()
    assert again == first and time.perf_counter() - start < 1.0
    assert first.initramfs.parent.parent == initramfs.CACHE


def test_the_image_holds_what_the_guest_needs():
    names = names_in(initramfs.prepare().initramfs.read_bytes())
    for need in ("init", "bin/busybox", "bin/sh", "sbin/ip", "etc/protocols", "etc/grelab-reset.sh",
                 "dev/console", "lib64/ld-linux-x86-64.so.2", "sbin/iptables", "sbin/ip6tables", "sbin/nft",
                 "sbin/nft.host", "sbin/xtables-legacy-multi", "host-usr"):
        assert need in names, need
    # grelab's kernel has everything built in: no module goes into the guest, and no list of them is kept
    assert not [n for n in names if n.endswith(".ko") or n.startswith("lib/modules")]


def test_a_kernel_with_modules_gets_its_modules_folder(tmp_path):
    """A kernel of yours with modules: its whole modules folder, loaded on demand by the kernel (modules.alias)."""
    from grelab.dut.uml import kernel
    mods = tmp_path / "lib/modules/6.6.0"
    (mods / "kernel/net/ipv4").mkdir(parents=True)
    (mods / "kernel/net/ipv4/ip_gre.ko").write_bytes(b"\x7fELF")
    (mods / "modules.dep").write_text("kernel/net/ipv4/ip_gre.ko:\n")
    (mods / "modules.alias").write_text("alias rtnl-link-gre ip_gre\n")
    base = kernel.grelab_kernel()
    modular = kernel.Kernel(base.path, "6.6.0", {**base.config, "CONFIG_MODULES": "y"}, "a test's", mods)
    names = names_in(initramfs.prepare(modular, cache=tmp_path / "cache").initramfs.read_bytes())
    assert {"lib/modules/6.6.0/kernel/net/ipv4/ip_gre.ko", "lib/modules/6.6.0/modules.dep",
            "lib/modules/6.6.0/modules.alias"} <= names


def test_a_truncated_cached_image_is_rebuilt(tmp_path):
    image = initramfs.prepare(cache=tmp_path).initramfs
    whole = image.read_bytes()
    image.write_bytes(whole[:len(whole) // 2])  # what a full disk or a killed copy leaves
    again = initramfs.prepare(cache=tmp_path).initramfs
    assert again == image and image.read_bytes() == whole


def test_a_damaged_image_that_cannot_be_rebuilt_is_refused_with_the_hint(tmp_path, monkeypatch):
    import errno
    import pytest
    from grelab.dut.base import DutError
    image = initramfs.prepare(cache=tmp_path).initramfs
    image.write_bytes(image.read_bytes()[:-1])

    def read_only(*_):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(initramfs, "_write_cpio", read_only)  # a cache folder that can no longer be written
    with pytest.raises(DutError, match=r"is damaged \(\d+ bytes, \d+ recorded at build\) and cannot be rebuilt "
                                       r"here \(Read-only file system\): run `grelab dut prepare`"):
        initramfs.prepare(cache=tmp_path)
