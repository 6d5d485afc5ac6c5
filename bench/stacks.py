"""Where dockerd's container removals wait: reads goroutine dumps (SIGUSR1) and,
for each goroutine inside daemon.(*Daemon).cleanupContainer, counts the
innermost moby frame and what it waits in (a mutex, a syscall, I/O), summed
over the dumps given.

    python3 bench/stacks.py goroutine-stacks-*.log
"""
import collections
import re
import sys

counts = collections.Counter()
removals = 0
for path in sys.argv[1:]:
    text = open(path, errors="replace").read()
    for block in text.split("\n\n"):
        if "cleanupContainer" not in block:
            continue
        removals += 1
        header = block.splitlines()[0] if block else ""
        state = re.search(r"\[([^\],]+)", header)
        frames = re.findall(r"^(\S+)\(.*\)$", block, re.M)
        moby = next((f for f in frames if "docker/docker" in f), "?")
        moby = moby.split("/")[-1]
        counts[(state.group(1) if state else "?", moby)] += 1

print(f"goroutines removing a container, over {len(sys.argv) - 1} dumps: {removals}")
for (state, frame), n in counts.most_common(12):
    print(f"  {n:4d}  {state:<22} {frame}")
