#!/usr/bin/env python3
"""Where one tunnel pass of an idle echo spends its time, step by step.

Reads a `perf record -a -e sched:sched_switch,sched:sched_wakeup,raw_syscalls:sys_enter,
raw_syscalls:sys_exit` file made during pings, finds every pass of the tunnel thread that
`ping` woke (its TUN device had the echo request), from that wake-up to the thread's next
`epoll_wait`, and prints the most common sequence of steps with the median and 75th
percentile of each: wake-up to on-CPU, each system call, and the user-space time between
them. The step where the thread wakes the far end's tunnel thread ends the send.

Tracing costs about a microsecond per event, the same for every tunnel measured, so the
steps compare across tunnels in one run, not with untraced round trips.

Usage: echo_steps.py PERF_DATA THREAD_PREFIX [LABEL]
"""

import re
import subprocess
import sys
from collections import defaultdict

SYSCALLS = {0: "read", 1: "write", 20: "writev", 44: "sendto", 45: "recvfrom",
            46: "sendmsg", 47: "recvmsg", 232: "epoll_wait", 233: "epoll_ctl",
            281: "epoll_pwait", 299: "recvmmsg", 307: "sendmmsg"}
EPOLL_WAITS = (232, 281)
LINE = re.compile(r"\s*(\S+)\s+(\d+)\s+\[\d+\]\s+([\d.]+):\s+(\S+):\s*(.*)")
LIMIT_US = 3000  # a pass longer than this is not an idle echo's


def events(path):
    """(time in us, comm, tid, event, details) for every record, in time order."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,tid,cpu,time,event,trace"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            comm, tid, ts, name, details = m.groups()
            yield float(ts) * 1e6, comm, int(tid), name, details


def passes(evs, prefix):
    """Each pass as a list of (step, time) marks, from ping's wake-up of the tunnel."""
    i = 0
    while i < len(evs):
        ts, comm, _, name, details = evs[i]
        woken = re.search(r"comm=(\S+) pid=(\d+)", details)
        i += 1
        if not (comm == "ping" and name == "sched:sched_wakeup" and woken
                and woken.group(1).startswith(prefix)):
            continue
        tid = int(woken.group(2))
        marks = [("woken", ts)]
        while i < len(evs) and evs[i][0] - ts < LIMIT_US:
            t, _, etid, ename, edet = evs[i]
            i += 1
            if ename == "sched:sched_switch" and f"next_pid={tid} " in edet + " ":
                marks.append(("on-cpu", t))
            elif etid == tid and ename == "sched:sched_wakeup":
                marks.append(("wakes " + re.search(r"comm=(\S+)", edet).group(1), t))
            elif etid == tid and ename.startswith("raw_syscalls:"):
                nr = int(re.search(r"NR (\d+)", edet).group(1))
                call = SYSCALLS.get(nr, f"syscall {nr}")
                if ename.endswith("sys_enter"):
                    marks.append((call + " in", t))
                    if nr in EPOLL_WAITS and len(marks) > 3:
                        yield marks
                        break
                else:
                    marks.append((call + " out", t))


def main():
    path, prefix = sys.argv[1], sys.argv[2]
    label = sys.argv[3] if len(sys.argv) > 3 else prefix
    shapes = defaultdict(list)
    for marks in passes(list(events(path)), prefix):
        shape = tuple(m[0] for m in marks)
        shapes[shape].append([b[1] - a[1] for a, b in zip(marks, marks[1:])])
    if not shapes:
        print(f"{label}: no pass found (was {prefix}* woken by ping?)")
        return
    total = sum(len(v) for v in shapes.values())
    shape, rows = max(shapes.items(), key=lambda kv: len(kv[1]))
    print(f"{label}: {total} passes, {len(rows)} of the most common shape (us, p50 / p75):")
    q = lambda v, p: sorted(v)[int(len(v) * p)]
    for k in range(len(shape) - 1):
        v = [r[k] for r in rows]
        print(f"  {shape[k]:>18} -> {shape[k + 1]:<18} {q(v, .5):5.0f} / {q(v, .75):5.0f}")
    sums = [sum(r) for r in rows]
    print(f"  {'whole pass':>40} {q(sums, .5):5.0f} / {q(sums, .75):5.0f}")


if __name__ == "__main__":
    main()
