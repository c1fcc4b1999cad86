#!/usr/bin/env python3
"""Regenerates docs/compatibility.md: every Redis 7.2 command and subcommand,
marked supported, partial (what differs) or not supported (why).

    redis-server --port 6499 --save '' --daemonize yes
    python3 docs/gen/compatibility.py 6499 > docs/compatibility.md

Which commands Rampart serves is read from proto/src/command_table.rs (the
one source of truth); the differences are the NOTES below, kept next to the
generator so a reviewer sees them in one place. proto's test
`compatibility_doc_matches_the_command_table` fails when the two disagree.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

port = sys.argv[1] if len(sys.argv) > 1 else "6379"
root = Path(__file__).resolve().parents[2]
table = (root / "proto" / "src" / "command_table.rs").read_text()
ours = set(re.findall(r'cmd!\(\s*"([^"]+)"', table))
docs = json.loads(
    subprocess.check_output(["redis-cli", "-p", port, "--json", "COMMAND", "DOCS"])
)

# Redis 7.2 commands Debian's redis-server 7.0 does not know.
EXTRA_7_2 = {
    "client|no-touch": ("connection", "Controls whether commands sent by the client affect the LRU/LFU of accessed keys."),
    "client|setinfo": ("connection", "Sets information specific to the client or connection."),
    "waitaof": ("generic", "Blocks until all of the preceding write commands sent by the connection are written to the append-only file of the master and/or replicas."),
}

# Served, with a difference a user can observe.
PARTIAL = {
    "select": "Only database 0; other indexes answer `ERR DB index is out of range` (16 databases: issue 18).",
    "info": "Sections server, clients, stats, replication, cluster (cluster_enabled:0), keyspace and rampart; no memory, persistence, cpu, commandstats, errorstats, modules yet (issue 18).",
    "client|list": "Lists the connections of the proxy it is sent to, not of every proxy.",
    "client|kill": "Kills connections of the proxy it is sent to only.",
    "client|no-evict": "Accepted; there is no eviction.",
    "client|no-touch": "Accepted; access times are not tracked.",
    "object|idletime": "Always 0: access times are not tracked.",
    "object|freq": "Answers Redis's error for a non-LFU eviction policy (there is no eviction).",
    "object|encoding": "Computed from the current contents (Redis never converts back to listpack after deletions); see collections.md.",
    "object|refcount": "2147483647 for the shared integers 0..9999, 1 otherwise.",
    "script|kill": "Stops every script running on the leader (Redis has one at a time).",
    "eval": "Scripts run on the Raft leader and commit as one log entry; see scripting.md for the few differences.",
    "evalsha": "As EVAL.",
    "eval_ro": "As EVAL.",
    "evalsha_ro": "As EVAL.",
    "pfcount": "Estimates are Redis's to the unit, but PFCOUNT does not write the estimate back into the value's cache bytes (that would make every count a replicated write), so GET shows a stale-cache header where Redis shows a fresh one.",
    "time": "Answered by the proxy from its own clock; expiry runs on the Raft leader's clock (docs/time.md), which NTP keeps within milliseconds of it.",
    "acl|setuser": "Selectors `(...)` and first-argument rules (such as allowing SELECT only with 0) are refused with an error; everything else is Redis 7.2's (docs/security.md).",
    "acl|getuser": "`selectors` is always empty (selectors are not supported).",
    "acl|load": "Answers Redis's error for a server without an ACL file: users live in the replicated cluster state.",
    "acl|save": "As ACL LOAD.",
    "acl|log": "Each proxy keeps its own log, as each Redis server does.",
    "xadd": "`~` trimming removes whole groups of 100 oldest entries (Redis: radix-tree nodes); see streams.md.",
    "xtrim": "As XADD's `~` trimming.",
    "xinfo|stream": "`radix-tree-keys`/`radix-tree-nodes` are estimates for 100-entry nodes.",
    "fcall": "Functions run on the Raft leader like EVAL and commit as one log entry (scripting.md, Functions); a library's load code runs again on each call.",
    "fcall_ro": "As FCALL.",
    "function|dump": "The payload is Rampart's own format (checksummed, round-trips through FUNCTION RESTORE), not Redis's RDB bytes: a Redis payload is refused.",
    "function|restore": "Takes FUNCTION DUMP payloads of Rampart only (see FUNCTION DUMP).",
    "function|kill": "Stops every script or function running on the leader past the time limit (as SCRIPT KILL), not only functions.",
    "function|stats": "`running_script` shows a function running on the leader (several may run at once; the longest-running one is shown).",
    "function|list": "Libraries are listed in name order and functions in name order (Redis's order is unspecified).",
    "xread": "A BLOCK that spans a leader change restarts with the full timeout (entries in between are still returned).",
    "config|get": "The parameters in docs/config.md (encoding thresholds, maxmemory*, stream-node-max-*, notify-keyspace-events, busy-reply-threshold, timeout, proto-max-bulk-len, slowlog-*, latency-*, appendonly, save, databases); others are not listed. Several are report-only (docs/config.md says which).",
    "config|set": "The parameters of CONFIG GET; cluster parameters are replicated through Raft, proxy parameters apply to the proxy it is sent to; proto-max-bulk-len and databases are immutable (docs/config.md).",
    "config|rewrite": "Writes the proxy's own parameters to the `[redis]` section of its TOML config file; cluster parameters are kept by the cluster.",
    "dump": "Redis's RDB payload (RDB version 10, loadable by Redis 7.0 and later); strings are not LZF-compressed (see dump-restore.md).",
    "restore": "Takes Redis 2.x–7.2 payloads of strings, lists, sets, sorted sets, hashes and streams (not modules); IDLETIME and FREQ are validated but not kept (access times are not tracked); see dump-restore.md.",
    "sort": "BY and GET patterns read any key (one Raft group holds them all; once keys are sharded, issue 21, they will have to hash to the sorted key's slot as in Redis Cluster). ALPHA compares bytes (Redis's strcoll in the C locale). `BY nosort` on a set returns Rampart's stored order (Redis's is unspecified too); always a replicated write, as Redis flags it.",
    "sort_ro": "As SORT.",
    "touch": "Counts the keys that exist; access times are not tracked (no LRU/LFU).",
    "config|resetstat": "Resets nothing: INFO shows no resettable counters, and Prometheus counters are never reset.",
}

# Not served, and why. Keys are commands or whole families (prefix before `|`).
NOT_SUPPORTED = {
    "cluster": "Rampart is one endpoint: its proxies hide nodes, leaders and groups, so Redis Cluster topology commands are not served.",
    "asking": "Redis Cluster redirection; the proxy routes, clients are never redirected.",
    "readonly": "Redis Cluster replica reads; reads are served by the Raft leader.",
    "readwrite": "As READONLY.",
    "pfdebug": "Redis-internal debugging command.",
    "pfselftest": "Redis-internal self test.",
    "restore-asking": "Redis Cluster migration internals.",
    "migrate": "Moves keys between Redis instances; Rampart moves slots between Raft groups itself (issue 22).",
    "move": "Planned with 16 databases (issue 18).",
    "swapdb": "Planned with 16 databases (issue 18).",
    "lastsave": "No RDB: every write is in the Raft log and RocksDB (snapshots: `rampart admin snapshot`).",
    "save": "No RDB: every acknowledged write is already fsynced on a majority.",
    "bgsave": "As SAVE.",
    "bgrewriteaof": "No AOF: the Raft log plays its part.",
    "wait": "Not implemented yet.",
    "waitaof": "Not implemented yet (there is no AOF; acknowledged writes are fsynced on a majority).",
    "replicaof": "Replication is Raft's; membership changes with `rampart admin`.",
    "slaveof": "As REPLICAOF.",
    "failover": "Leadership moves by Raft election; see docs/operations.md.",
    "role": "Not implemented yet.",
    "psync": "Redis replication protocol; replication is Raft's.",
    "sync": "As PSYNC.",
    "replconf": "As PSYNC.",
    "module": "No modules.",
    "debug": "Not exposed: it can crash or stall a Redis server on purpose.",
    "monitor": "Not implemented yet.",
    "shutdown": "Processes stop on SIGTERM; a client cannot stop a cluster.",
    "slowlog": "Planned (issue 18).",
    "latency": "Planned (issue 18); latency histograms are in Prometheus (docs/metrics.md).",
    "memory": "Planned (issue 18).",
    "lolwut": "Not implemented yet.",
    "client|caching": "Planned: client-side caching (issue 18).",
    "client|tracking": "Planned: client-side caching (issue 18).",
    "client|trackinginfo": "Planned: client-side caching (issue 18).",
    "client|getredir": "Planned: client-side caching (issue 18).",
    "client|pause": "Planned (issue 18).",
    "client|unpause": "Planned (issue 18).",
    "client|reply": "Planned (issue 18).",
    "client|unblock": "Planned (issue 18).",
    "script|debug": "No Lua debugger.",
}


def reason(name):
    if name in NOT_SUPPORTED:
        return NOT_SUPPORTED[name]
    parent = name.split("|")[0]
    if parent in NOT_SUPPORTED:
        return NOT_SUPPORTED[parent]
    sys.exit(f"no reason given for unsupported command {name}")


rows = []  # (group, name, summary)
for name, doc in docs.items():
    rows.append((doc["group"], name, doc["summary"]))
    for sub, sdoc in doc.get("subcommands", {}).items():
        rows.append((sdoc["group"], sub, sdoc["summary"]))
for name, (group, summary) in EXTRA_7_2.items():
    rows.append((group, name, summary))

for name in list(PARTIAL) + list(NOT_SUPPORTED):
    if not any(r[1] == name or r[1].split("|")[0] == name for r in rows):
        sys.exit(f"note for a command Redis does not have: {name}")
for name in PARTIAL:
    if name not in ours:
        sys.exit(f"{name} is marked partial but is not in the command table")

counts = {"supported": 0, "partial": 0, "not supported": 0}
out = []
for group in sorted({r[0] for r in rows}):
    out.append(f"\n## {group}\n")
    out.append("| command | status | notes |")
    out.append("| --- | --- | --- |")
    for _, name, summary in sorted(r for r in rows if r[0] == group):
        display = name.upper().replace("|", " ")
        if name in ours and name in PARTIAL:
            status, note = "partial", PARTIAL[name]
        elif name in ours:
            status, note = "supported", ""
        elif "|" not in name and any(r[1].startswith(name + "|") and r[1] in ours for r in rows):
            status, note = "partial", "Container command: see its subcommands."
        else:
            status, note = "not supported", reason(name)
        counts[status] += 1
        out.append(f"| `{display}` | {status} | {note} |")

print("""# Compatibility with Redis 7.2

Generated by `docs/gen/compatibility.py` from Redis's command list and
Rampart's command table (`proto/src/command_table.rs`); do not edit by hand.
Every Redis 7.2 command and subcommand is listed once:

- **supported**: the documented arguments, replies (RESP2 and RESP3) and
  error texts of Redis 7.2;
- **partial**: served, with the difference stated;
- **not supported**: the connection gets `ERR unknown command` (or
  `ERR unknown subcommand`), and the reason is stated.

Behaviour that differs because Rampart is replicated, for every command:

- A write is acknowledged only once it is committed by a Raft majority and
  fsynced; nothing acknowledged is lost when a node fails.
- A leader change is invisible to clients except for latency: the proxy
  retries requests whose outcome is known not to be applied, and retries
  the rest only where the node's dedup table makes that safe.
- Requests may be paced or refused with `-BUSY` by the proxy's admission
  policies (docs/policies.md) when a client or class exceeds its budget.
- Rampart-only commands (`RAMPART.*`) are administrative and are not listed.
""")
total = sum(counts.values())
print(
    f"Totals: {counts['supported']} supported, {counts['partial']} partial, "
    f"{counts['not supported']} not supported, of {total}."
)
print("\n".join(out))
