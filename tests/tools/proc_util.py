# SPDX-License-Identifier: BSD-3-Clause
"""What the ampctl tests read from /proc about the processes they start."""

import os


def children(pid):
    """The pids of `pid`'s children (of all its threads); [] once it is gone."""
    found = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                found += [int(c) for c in f.read().split()]
    except FileNotFoundError:
        pass
    return found
