"""A mountpoint given where a tool wants the backing directory (and back).

Owns: every ekmfs-admin and ekmfs-rotate command that takes BACKING (or a
path inside one) refuses an ekmfs mountpoint or a path inside a mount with
one line that names the backing directory and gives the command to run
instead (exit 1, nothing written), also when the mount's daemon is gone;
and lock/unlock given the backing directory name the mountpoint.
Real mounts throughout.
"""
import os
import shlex
import signal

from conftest import ADMIN, ROTATE, dir_state, run_cli, wait_sealed


def one_line(r):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def backing_commands(vol, where):
    """argv of every command that takes BACKING, with where as BACKING."""
    c = ["-c", str(vol.config)]
    manifest = str(vol.root / "manifest")
    admin = [[ADMIN] + c + args for args in (
        ["status", where], ["status", "--json", where], ["verify", where],
        ["test", where], ["audit", "verify", where],
        ["audit", "show", "--event", "mount", where],
        ["backup-manifest", "-o", manifest, where],
        ["backup-manifest", "--check", manifest, where])]
    rotate = [[ROTATE] + c + args for args in (
        ["status", where], ["kek", where], ["rewrap", where],
        ["retire", "--version", "1", where], ["cmk", where], ["migrate", where],
        ["kek", "--dry-run", where, "--jobs", "1"])]
    return admin + rotate


def test_backing_commands_refuse_a_mountpoint(mounted):
    vol = mounted
    (vol.mnt / "d").mkdir()
    (vol.mnt / "d" / "f").write_bytes(b"content")
    wait_sealed(vol.backing)     # the daemon's own last write to f
    before = dir_state(vol.backing)
    for argv in backing_commands(vol, str(vol.mnt)):
        prog = argv[0].name
        line = one_line(run_cli(argv))
        # the command as typed, BACKING replaced where it stood
        suggested = [prog] + [str(vol.backing) if a == str(vol.mnt) else str(a)
                              for a in argv[1:]]
        assert line == ("%s: %s is an ekmfs mountpoint; give its backing directory: %s"
                        % (prog, vol.mnt, shlex.join(suggested))), (argv, line)
    assert dir_state(vol.backing) == before
    assert not (vol.root / "manifest").exists()


def test_the_suggested_command_works(mounted):
    vol = mounted
    (vol.mnt / "f").write_bytes(b"x" * 5000)
    line = one_line(vol.admin("verify", vol.mnt))
    suggested = shlex.split(line.split("give its backing directory: ", 1)[1])
    assert suggested == ["ekmfs-admin", "-c", str(vol.config), "verify", str(vol.backing)]
    r = run_cli([ADMIN] + suggested[1:])
    assert r.returncode == 0 and "1 files checked, 0 damaged" in r.stdout, r.stdout + r.stderr


def test_paths_inside_a_mount(mounted):
    vol = mounted
    (vol.mnt / "d").mkdir()
    (vol.mnt / "d" / "f").write_bytes(b"content")
    line = one_line(vol.admin("verify", vol.mnt / "d"))
    assert line == ("ekmfs-admin: %s/d is inside the ekmfs mount %s; give the volume's "
                    "backing directory: ekmfs-admin -c %s verify %s"
                    % (vol.mnt, vol.mnt, vol.config, vol.backing))
    # import-plaintext takes paths inside a backing directory: the same path there
    line = one_line(vol.admin("import-plaintext", vol.mnt / "d" / "f"))
    assert line == ("ekmfs-admin: %s/d/f is inside the ekmfs mount %s; give the path in "
                    "its backing directory: ekmfs-admin -c %s import-plaintext %s/d/f"
                    % (vol.mnt, vol.mnt, vol.config, vol.backing))
    # init must not make a volume inside a mounted one
    line = one_line(vol.admin("init", vol.mnt / "d"))
    assert line.startswith("ekmfs-admin: %s/d is inside the ekmfs mount %s (of the volume "
                           "%s); a new volume needs a directory that is not on an ekmfs "
                           "mount" % (vol.mnt, vol.mnt, vol.backing)), line
    assert sorted(os.listdir(vol.mnt / "d")) == ["f"]


def test_rotate_json_reports_the_refusal_as_json(mounted):
    import json
    vol = mounted
    r = run_cli([ROTATE, "-c", vol.config, "status", "--json", vol.mnt])
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["outcome"] == "error" and out["exit_code"] == 1
    assert out["message"].startswith("%s is an ekmfs mountpoint; give its backing "
                                     "directory: " % vol.mnt)


def test_dead_mount_is_still_recognised(volume):
    """A mount whose daemon died (ENOTCONN on every access) is still
    recognised from the mount table."""
    m = volume.mount()
    try:
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait()
        line = one_line(volume.admin("status", volume.mnt))
        assert line == ("ekmfs-admin: %s is an ekmfs mountpoint; give its backing "
                        "directory: ekmfs-admin -c %s status %s"
                        % (volume.mnt, volume.config, volume.backing))
    finally:
        m.kill()


def test_lock_given_the_backing_directory_names_the_mountpoint(mounted):
    vol = mounted
    line = one_line(vol.admin("lock", vol.backing))
    assert line == ("ekmfs-admin: %s is the backing directory of the ekmfs mount %s; give "
                    "the mountpoint: ekmfs-admin lock %s" % (vol.backing, vol.mnt, vol.mnt))


def test_not_a_mount_is_left_to_the_command(volume):
    """A backing directory that is not mounted is not refused by the check."""
    assert volume.admin("status", volume.backing).returncode == 0
    r = run_cli([ROTATE, "-c", volume.config, "status", volume.backing])
    assert r.returncode == 0, r.stderr
