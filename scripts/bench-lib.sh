# Helpers shared by scripts/bench-deploy.sh and scripts/bench-agent.sh (sourced, not run).
# Public tools only: bash, python3, /proc.

# CPU (user + sys, ms) of a subshell and everything it waited for, from the two lines of bash's
# `times` printed at its end ("0m0.010s 0m0.002s" for the shell, then for its children).
times_ms() { # FILE
  awk '{ for (i = 1; i <= NF; i++) { split($i, p, "m"); sub(/s$/, "", p[2]); ms += (p[1] * 60 + p[2]) * 1000 } }
       END { printf "%d\n", ms + 0.5 }' "$1"
}

# Appends one row of the summary table to FILE: the figure, c2quay's value, the reference it is
# compared with (the floor, or the target itself), the ratio, the target and whether it is met.
# MET is computed here: RATIO <= LIMIT (LIMIT "<L": RATIO < L); LIMIT "-": the value must be 0; LIMIT "none": a
# reference row, no verdict.
figure_row() { # FILE FIGURE C2QUAY REFERENCE RATIO TARGET LIMIT
  local met
  if [ "$7" = none ]; then
    met="-"
  elif [ "$7" = "-" ]; then
    met=$([ "$3" = 0 ] && echo yes || echo NO)
  else
    met=$(awk -v r="$5" -v l="$7" 'BEGIN { strict = sub(/^</, "", l)
      print (r ~ /^[0-9.]+x?$/ && (strict ? r + 0 < l + 0 : r + 0 <= l + 0)) ? "yes" : "NO" }')
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$2" "$3" "$4" "$5" "$6" "$met" >> "$1"
}

# Prints the rows of FILE as an aligned table.
print_summary() { # FILE TITLE
  echo
  echo "$2"
  python3 - "$1" <<'EOF'
import sys
rows = [("figure", "c2quay", "floor / reference", "ratio", "target", "met?")]
rows += [tuple(line.rstrip("\n").split("\t")) for line in open(sys.argv[1]) if line.strip()]
widths = [max(len(r[i]) for r in rows) for i in range(6)]
for k, row in enumerate(rows):
    print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if k == 0:
        print("  " + "  ".join("-" * w for w in widths))
EOF
}

# Total RSS (KiB) of PID and all its descendants, the number of descendants and their names,
# walking the parent links of every process in /proc at this instant.
tree_rss() { # PID -> "TOTAL_KIB OWN_KIB DESCENDANTS NAME,NAME"
  python3 - "$1" <<'EOF'
import os, sys
root = sys.argv[1]
parent, name = {}, {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    name[pid] = stat[stat.index("(") + 1:stat.rindex(")")]
    parent[pid] = stat[stat.rindex(")") + 2:].split()[1]
children = {}
for pid, ppid in parent.items():
    children.setdefault(ppid, []).append(pid)
tree, todo = [], [root]
while todo:
    pid = todo.pop()
    tree.append(pid)
    todo.extend(children.get(pid, []))
def rss(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
own = rss(root)
total = own + sum(rss(p) for p in tree[1:])
print(total, own, len(tree) - 1, ",".join(sorted(name.get(p, "?") for p in tree[1:])) or "-")
EOF
}

# A free 127.0.0.1 TCP port (bound, then released: another program may take it in between, so
# use it at once).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# CPU (clock ticks: utime + stime + cutime + cstime) of PID and of every live descendant, at this
# instant. A descendant's reaped children are in its own cutime/cstime, so the sum is the CPU of
# the whole process tree since PID started (less what died unreaped, which is nothing for a
# parent that waits for its children).
tree_cpu_ticks() { # PID -> "TICKS"
  python3 - "$1" <<'EOF2'
import os, sys
root = sys.argv[1]
stat = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        text = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    stat[pid] = text[text.rindex(")") + 2:].split()
children = {}
for pid, fields in stat.items():
    children.setdefault(fields[1], []).append(pid)
total, todo = 0, [root]
while todo:
    pid = todo.pop()
    if pid in stat:
        total += sum(int(x) for x in stat[pid][11:15])
    todo.extend(children.get(pid, []))
print(total)
EOF2
}

# utime + stime (clock ticks) of the processes called NAME (e.g. dockerd), summed; 0 when none.
named_cpu_ticks() { # NAME...
  local pids total=0 pid
  for name in "$@"; do
    pids=$(pgrep -x "$name" || true)
    for pid in $pids; do
      total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
  done
  echo "$total"
}

# Every successful execve of an `strace -f -ttt -e trace=execve` output file, one line each:
# "TIMESTAMP PROGRAM", PROGRAM being the program's name and, for docker and the compose plugin,
# its subcommand with the global options skipped ("docker compose up", "docker-compose config",
# "docker-compose docker-cli-plugin-metadata", "docker ps"). Calls split by another process's
# ("<unfinished ...>" / "<... execve resumed>") are joined.
execve_programs() { # STRACE_FILE
  python3 - "$1" <<'EOF2'
import re, sys
whole = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+execve\((.*)\)\s+=\s+(-?\d+)")
unfinished = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+execve\((.*) <unfinished \.\.\.>")
resumed = re.compile(r"^(\d+)\s+\d+\.\d+\s+<\.\.\. execve resumed>.*\)\s+=\s+(-?\d+)")
# Global options that take a value, of docker and of docker compose.
valued = {"-p", "--project-name", "--project-directory", "-f", "--file", "--env-file", "--profile",
          "--ansi", "--progress", "--parallel", "-H", "--host", "-c", "--context", "--config",
          "-l", "--log-level"}
def label(argv):
    name = argv[0].rsplit("/", 1)[-1] if argv else "?"
    if name not in ("docker", "docker-compose"):
        return name
    words, skip = [name], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg in valued:
            skip = True
        elif arg.startswith("-"):
            continue
        elif arg == "compose" and len(words) == 1:
            # `docker compose X`; the plugin run by the docker CLI gets `compose X` too.
            if name == "docker":
                words.append(arg)
        else:
            words.append(arg)
            break
    return " ".join(words)
pending = {}
for line in open(sys.argv[1], errors="replace"):
    if m := whole.match(line):
        pid, ts, args, ret = m.group(1), m.group(2), m.group(3), m.group(4)
    elif m := unfinished.match(line):
        pending[m.group(1)] = (m.group(2), m.group(3))
        continue
    elif (m := resumed.match(line)) and m.group(1) in pending:
        pid, ret = m.group(1), m.group(2)
        ts, args = pending.pop(pid)
    else:
        continue
    if ret != "0":
        continue
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
    argv = strings[1:] or strings
    print(ts, label(argv))
EOF2
}

# How many more bridge networks the Docker daemon can create from its default address pools:
# "FREE POOLS_TEXT", where POOLS_TEXT says which pools (the daemon's `default-address-pools`
# from `docker info`, or the engine's built-in defaults: 172.17-31.x.x in /16s and 192.168.x.x
# in /20s, 31 networks) and how many subnets they hold. A subnet is free when no existing
# network's subnet, no host route and no nameserver overlaps it (the daemon's own rule).
networks_free() {
  local pools subnets
  pools=$(docker info --format '{{json .DefaultAddressPools}}' 2>/dev/null || echo null)
  # shellcheck disable=SC2046
  subnets=$(docker network inspect --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}' $(docker network ls -q) 2>/dev/null || true)
  python3 - "$pools" "$subnets" <<'EOF2'
import ipaddress, json, sys
pools = json.loads(sys.argv[1] or "null") or None
source = "default-address-pools of the daemon"
if not pools:
    source = "the engine's built-in pools"
    pools = [{"Base": b, "Size": 16} for b in ("172.17.0.0/16", "172.18.0.0/16", "172.19.0.0/16",
             "172.20.0.0/14", "172.24.0.0/14", "172.28.0.0/14")] + [{"Base": "192.168.0.0/16", "Size": 20}]
used = []
for s in sys.argv[2].split():
    try:
        used.append(ipaddress.ip_network(s, strict=False))
    except ValueError:
        pass
try:
    for line in list(open("/proc/net/route"))[1:]:
        f = line.split()
        dest, mask = int(f[1], 16), int(f[7], 16)
        if mask:
            used.append(ipaddress.ip_network(f"{ipaddress.IPv4Address(dest.to_bytes(4, 'little'))}/"
                                             f"{bin(mask).count('1')}", strict=False))
except OSError:
    pass
try:
    for line in open("/etc/resolv.conf"):
        f = line.split()
        if len(f) >= 2 and f[0] == "nameserver":
            try:
                used.append(ipaddress.ip_network(f[1]))
            except ValueError:
                pass
except OSError:
    pass
total = free = 0
for pool in pools:
    base = ipaddress.ip_network(pool.get("Base") or pool.get("base"), strict=False)
    if base.version != 4:
        continue
    size = int(pool.get("Size") or pool.get("size"))
    for subnet in base.subnets(new_prefix=size) if size >= base.prefixlen else [base]:
        total += 1
        free += not any(subnet.overlaps(u) for u in used if u.version == 4)
print(free, f"{source}: {total} subnets, {total - free} taken by networks, host routes or nameservers")
EOF2
}
