"""`grelab wireshark PCAP`, run as a user would: Wireshark with the project's keys, or tshark's view without a display."""
import os
import shutil
import stat

import pytest

from cli_user import ROOT, grelab, one_line_error

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (./setup.sh installs it)")
ESP_GOLDEN = ROOT / "pcaps/two_offices/echo-gre-in-esp.pcapng"
NO_DISPLAY = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}


def test_without_a_display_prints_tshark_detailed_view_decrypted():
    done = grelab("wireshark", ESP_GOLDEN, env=NO_DISPLAY)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("no display (DISPLAY and WAYLAND_DISPLAY unset): tshark's detailed view")
    # every ESP packet decrypted down to GRE and its ICMPv6 passenger
    assert done.stdout.count("Encapsulating Security Payload") == 2
    assert done.stdout.count("Generic Routing Encapsulation (IPv6)") == 2
    assert done.stdout.count("Internet Control Message Protocol v6") == 6


def test_esp_sa_file_decrypts_a_crafted_pcap(tmp_path):
    pcap, keys = tmp_path / "demo.pcapng", tmp_path / "demo.esp_sa"
    assert grelab("craft", "--esp", "cbc256-sha256", "--count", "2", "--keys", keys, "-o", pcap).returncode == 0
    assert "Generic Routing Encapsulation" not in grelab("wireshark", pcap, env=NO_DISPLAY).stdout
    done = grelab("wireshark", pcap, "--esp-sa", keys, env=NO_DISPLAY)
    assert done.returncode == 0 and done.stdout.count("Generic Routing Encapsulation (IPv6)") == 2


def test_with_a_display_starts_wireshark_with_the_projects_keys(tmp_path):
    fake = tmp_path / "bin" / "wireshark"  # stands in for Wireshark: says how it was started
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "$@" > "$OUT/argv"\ncp "$WIRESHARK_CONFIG_DIR/esp_sa" "$OUT/esp_sa"\n'
                    'cp "$WIRESHARK_CONFIG_DIR/preferences" "$OUT/preferences"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {"DISPLAY": ":99", "OUT": str(tmp_path), "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    done = grelab("wireshark", ESP_GOLDEN, env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert (tmp_path / "argv").read_text() == f"-r {ESP_GOLDEN}\n"
    assert (tmp_path / "esp_sa").read_text() == (ROOT / "pcaps/esp_sa").read_text()
    assert "esp.enable_encryption_decode: TRUE" in (tmp_path / "preferences").read_text()


def test_missing_pcap_or_bad_keys_one_line_exit_2(tmp_path):
    assert one_line_error(grelab("wireshark", tmp_path / "no.pcapng", env=NO_DISPLAY), "wireshark").endswith(
        "is not allowed; allowed: an existing pcap or pcapng file")
    keys = tmp_path / "bad"
    keys.write_text('"IPv4","1.1.1.1","2.2.2.2","zz"\n')
    assert "line 1" in one_line_error(grelab("wireshark", ESP_GOLDEN, "--esp-sa", keys, env=NO_DISPLAY), "wireshark")
