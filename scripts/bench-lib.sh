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
