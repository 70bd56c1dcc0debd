"""CPU used by process trees, from /proc: shared by the benchmark scripts in this directory."""
import os

TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """(ppid, utime+stime, cutime+cstime) in clock ticks, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    rest = raw[raw.rindex(b")") + 2:].split()  # comm may hold spaces and parentheses
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])


def process_table():
    """{pid: (ppid, own ticks, reaped children's ticks)} for every process."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat_fields(int(name))
            if fields is not None:
                table[int(name)] = fields
    return table


def tree_ticks(table, root):
    """CPU ticks a process tree has used so far: every live member's own time plus the time of the members
    it has reaped (cutime/cstime). A child that exits is reaped by its parent in the tree, so its time moves
    from its own entry to its parent's cutime and the sum only grows."""
    if root not in table:
        return 0
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        _, own, reaped = table[pid]
        total += own + reaped
        todo.extend(children.get(pid, ()))
    return total


def tree_cpu_seconds(roots):
    """CPU seconds the process trees under `roots` have used so far, from one scan of /proc."""
    table = process_table()
    return sum(tree_ticks(table, root) for root in roots) / TICK
