"""Privileges: the user and group the workers run as, and the switch to them (the master stays root)."""

import grp
import os
import pwd


def worker_ids(user, group):
    """(uid, gid) the workers run as; the group defaults to the user's primary group, -1 leaves one as is."""
    account = pwd.getpwnam(user) if user else None
    uid = account.pw_uid if account else -1
    gid = grp.getgrnam(group).gr_gid if group else account.pw_gid if account else -1
    return uid, gid


def drop_privileges(user, group):
    """When running as root and asked to, become user/group (with the user's supplementary groups)."""
    if os.getuid() != 0 or not (user or group):
        return
    uid, gid = worker_ids(user, group)
    if user:
        os.initgroups(user, gid)
    else:
        os.setgroups([])
    os.setgid(gid)
    if user:
        os.setuid(uid)
