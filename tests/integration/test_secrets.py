"""Where a key file may live (issue 14, secret hygiene).

A key file inside BACKING would travel with every copy of the ciphertext:
refused by init (test_cli.py), and here by the mount, by every tool that
reads keys (ekmfs-admin verify and test, ekmfs-rotate), also when the path
reaches BACKING through a symlink or lies in BACKING/.ekmfs/. A key file
whose directory others may write could be replaced under the daemon:
refused like ssh refuses such a key (src/keys/secret_file.c), while a
sticky world-writable ancestor (/tmp, where every test volume lives) is
fine.
"""
import os
import shutil

import pytest

from conftest import ROTATE, run_cli
from test_cli import mount_fails, one_line_error


def move_key(vol, dest, link=None):
    """The volume's key moved to dest (0600), the configuration naming
    link (a symlink to dest) or dest itself."""
    shutil.copyfile(vol.key_file, dest)
    os.chmod(dest, 0o600)
    named = dest
    if link is not None:
        os.symlink(dest, link)
        named = link
    vol.write_config("[tenant.default]\nkey_file = %s\n" % named)
    return named


def refused_everywhere(vol, named, needle, reads_no_key_too=True):
    """Mount, verify, test and ekmfs-rotate kek refuse; so does
    ekmfs-rotate status, which reads no key, when the rule is about where
    the key is rather than about reading it (reads_no_key_too)."""
    r = mount_fails(vol)
    one_line_error(r, named, needle)
    r = vol.admin("verify", vol.backing)
    assert r.returncode != 0 and needle in r.stderr, r.stderr
    r = vol.admin("test", vol.backing)
    assert r.returncode != 0 and needle in r.stdout + r.stderr, r.stdout + r.stderr
    if reads_no_key_too:
        r = run_cli([ROTATE, "-c", vol.config, "status", vol.backing])
        assert r.returncode != 0 and needle in r.stdout + r.stderr, r.stdout + r.stderr
    r = run_cli([ROTATE, "-c", vol.config, "kek", vol.backing])
    assert r.returncode != 0 and needle in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.parametrize("where", ["top", "meta", "symlink"])
def test_key_inside_backing_refused_by_mount_and_tools(volume, where):
    if where == "top":
        named = move_key(volume, volume.backing / "local.key")
    elif where == "meta":
        named = move_key(volume, volume.backing / ".ekmfs" / "local.key")
    else:
        named = move_key(volume, volume.backing / "sub.key", link=volume.keydir / "link.key")
    refused_everywhere(volume, named, "inside the backing directory")


def test_key_via_symlink_outside_backing_mounts(volume):
    # A symlink is fine as such: what counts is where it leads.
    named = move_key(volume, volume.keydir / "real.key", link=volume.keydir / "link.key")
    m = volume.mount()
    (m.path / "f").write_bytes(b"x")
    m.unmount()
    assert volume.admin("verify", volume.backing).returncode == 0
    assert named.is_symlink()


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_key_directory_writable_by_others_refused(volume, mode):
    os.chmod(volume.keydir, mode)
    try:
        refused_everywhere(volume, volume.key_file, "chmod go-w", reads_no_key_too=False)
    finally:
        os.chmod(volume.keydir, 0o700)


def test_key_directory_owned_by_another_user_refused(volume):
    os.chown(volume.keydir, 65534, 65534)
    try:
        r = mount_fails(volume)
        one_line_error(r, volume.key_file, "owned by uid 65534")
    finally:
        os.chown(volume.keydir, 0, 0)


def test_writable_ancestor_without_sticky_bit_refused(volume):
    # The key's own directory is fine; the one above it is not.
    os.chmod(volume.root, 0o757)
    try:
        r = mount_fails(volume)
        one_line_error(r, volume.key_file, str(volume.root))
    finally:
        os.chmod(volume.root, 0o755)
