#!/usr/bin/env python3
"""Where the light-load tail comes from (docs/PERFORMANCE.md, "Where the tail at light load comes from").

Runs the load tool's light shape (200 docs x 5 clients x 1 op/s = 1,000 ops/s) against a Collab server this script
starts itself (pinned to CPU 0, the generator to CPU 1, both at nice -20), and around the measured window reads the
counters that resist a noisy shared machine, per op:

* server CPU (utime + stime from /proc/PID/stat), context switches (voluntary = a thread blocked and was woken;
  involuntary = preempted) and run-queue wait (time its threads were runnable but another process had CPU 0) summed
  over /proc/PID/task/*/{status,schedstat};
* thread-pool work items, GCs, GC pause time, bytes allocated (the runtime's meters on /metrics);
* the server's own latency breakdown (collab_submit_stage_seconds, collab_submit_ack_written_seconds): means and
  p50/p99 of each stage over the window, from the bucket deltas;
* the load tool's ack p50/p99, its scheduler lag and its CPU (from its JSON report).

Variant keys besides environment variables: CHRT=N (both processes in SCHED_FIFO N), NICE=N (their nice value,
default -20), SERVER_DLL=path (another build), GEN_ARGS=... (load-tool arguments, e.g. --generator-slice 100),
WRAP=cmd (a prefix for both commands), AUTOGROUP=N (each process in its own session, whose
autogroup gets nice N: between sessions only the groups' nice values count). Server arguments go after |, e.g. |--Server:SchedulerSlice=00:00:00.0001.

Variants (--variant NAME=ENV;ENV...|ARGS) are run interleaved (A, B, A, B, ...), so a paired comparison sees the
same background load. Usage:

  scripts/light-tail-attribution.py --repeat 3 --variant base= --variant gen0=DOTNET_GCgen0size=0x4000000
  scripts/light-tail-attribution.py --submit ping --variant base=
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(REPO, "src/Server/bin/Release/net10.0/Collab.Server.dll")
LOADTEST = os.path.join(REPO, "loadtest/bin/Release/net10.0/Collab.LoadTest.dll")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        key, _, value = line.rpartition(" ")
        try:
            samples[key] = float(value)
        except ValueError:
            pass
    return samples


def proc_snapshot(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    vol = invol = run_ns = wait_ns = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        invol += int(line.split()[1])
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                r, w, _ = f.read().split()
                run_ns += int(r)
                wait_ns += int(w)
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended between listdir and open
    return dict(cpu_s=(utime + stime) / TICK, user_s=utime / TICK, sys_s=stime / TICK,
                vol=vol, invol=invol, run_s=run_ns / 1e9, runq_wait_s=wait_ns / 1e9, t=time.monotonic())


def hist(samples, name, label=None):
    """Buckets (le -> cumulative count), sum and count of one histogram (optionally one stage)."""
    buckets = {}
    pattern = re.compile(re.escape(name) + r'_bucket\{(.*)\}$')
    for key, value in samples.items():
        m = pattern.match(key)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if label is not None and labels.get("stage") != label:
            continue
        buckets[float("inf") if labels["le"] == "+Inf" else float(labels["le"])] = value
    suffix = "" if label is None else f'{{stage="{label}"}}'
    return buckets, samples.get(f"{name}_sum{suffix}", 0.0), samples.get(f"{name}_count{suffix}", 0.0)


def quantile(before, after, q):
    les = sorted(after)
    counts = [after[le] - before.get(le, 0) for le in les]
    total = counts[-1] if counts else 0
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in zip(les, counts):
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / max(c - prev_c, 1e-9))
        prev_le, prev_c = le, c
    return les[-1]


def set_autogroup(pid, nice):
    """Gives the session led by pid an autogroup nice value (needs CAP_SYS_NICE to lower it)."""
    if nice is not None:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))


def run_one(variant, env_extra, server_args, args, out_dir, index):
    port, mport = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="collab-tail-")
    env = dict(os.environ)
    env_extra = dict(env_extra)
    # CHRT=N: server and generator in the real-time class (SCHED_FIFO N) instead of nice -20, so other processes on
    # their CPUs cannot delay their wake-ups: what the run looks like without the neighbours.
    rt = env_extra.pop("CHRT", None)
    # SERVER_DLL=path: another build of the server (an A/B of a code change in one sitting).
    server_dll = env_extra.pop("SERVER_DLL", SERVER)
    sched = ["chrt", "-f", rt] if rt else ["nice", "-n", "-20"]
    # NICE=N: the nice value of both processes when not in SCHED_FIFO (default -20, the tool's).
    nice = env_extra.pop("NICE", None)
    if nice is not None and not rt:
        sched = ["nice", "-n", nice]
    # GEN_ARGS=...: extra load-tool arguments (space-separated), e.g. the generator's scheduler slice.
    gen_extra = env_extra.pop("GEN_ARGS", "").split()
    # WRAP=cmd args: a command prefix for both processes (e.g. a tool that sets a scheduling attribute and execs).
    wrap = env_extra.pop("WRAP", "").split()
    sched = sched + wrap
    # AUTOGROUP=N: each process in its own session, whose autogroup gets nice N. With kernel.sched_autogroup_enabled=1
    # a process's nice only counts inside its session's group; between sessions (other users' builds) the groups share
    # the CPU at their own nice values, 0 unless set.
    autogroup = env_extra.pop("AUTOGROUP", None)
    env.update(env_extra)
    cmd = ["taskset", "-c", "0"] + sched + ["dotnet", server_dll, f"--Transport:Port={port}",
           f"--Transport:ManagementPort={mport}", f"--Storage:DataDirectory={data}",
           f"--Storage:SqliteSynchronous={args.sync}", "--Logging:LogLevel:Default=Warning",
           f"--Limits:OpsPerSecond=1000"] + server_args
    log = open(os.path.join(out_dir, f"{index:02d}-{variant}-server.log"), "w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=autogroup is not None)
    set_autogroup(server.pid, autogroup)
    try:
        metrics = f"http://127.0.0.1:{mport}/metrics"
        for _ in range(200):
            try:
                scrape(metrics)
                break
            except OSError:
                time.sleep(0.1)
        report = os.path.join(out_dir, f"{index:02d}-{variant}.json")
        gen = ["taskset", "-c", "1"] + sched + ["dotnet", LOADTEST, "small", "--rate", "1",
               "--url", f"ws://127.0.0.1:{port}/ws", "--metrics", metrics, "--server-pid", str(server.pid),
               "--generator-cpus", "none", "--warmup", str(args.warmup), "--duration", str(args.duration),
               "--submit", args.submit, "--json", report, "--no-chart", "--quiet"] + gen_extra
        load_before = os.getloadavg()[0]
        generator = subprocess.Popen(gen, stdout=open(os.path.join(out_dir, f"{index:02d}-{variant}-gen.log"), "w"),
                                     stderr=subprocess.STDOUT, start_new_session=autogroup is not None)
        set_autogroup(generator.pid, autogroup)
        # The tool connects and seeds the documents (one op each), then warms up, then measures: wait for the load to
        # start (more ops committed than the seeding), then take the window inside its measured part.
        key = 'collab_messages_received_total{kind="ping"}' if args.submit == "ping" else "collab_ops_committed_total"
        started = time.monotonic()
        while scrape(metrics).get(key, 0) < 1000 and time.monotonic() - started < 120:
            time.sleep(0.2)
        time.sleep(args.warmup)
        p0, m0 = proc_snapshot(server.pid), scrape(metrics)
        time.sleep(args.duration - 2)
        p1, m1 = proc_snapshot(server.pid), scrape(metrics)
        generator.wait(timeout=args.duration + 120)
        load_after = os.getloadavg()[0]
        with open(report) as f:
            rep = json.load(f)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)

    step = get(rep, "steps")[0]
    seconds = p1["t"] - p0["t"]
    if args.submit == "ping":
        ops = (m1.get('collab_messages_received_total{kind="ping"}', 0) - m0.get('collab_messages_received_total{kind="ping"}', 0))
    else:
        ops = m1.get("collab_ops_committed_total", 0) - m0.get("collab_ops_committed_total", 0)
    ops = max(ops, 1)

    def delta(key):
        return m1.get(key, 0) - m0.get(key, 0)

    row = dict(variant=variant, run=index, seconds=round(seconds, 1), ops=int(ops), load=f"{load_before:.1f}-{load_after:.1f}",
               cpu_us_per_op=(p1["cpu_s"] - p0["cpu_s"]) * 1e6 / ops,
               user_us_per_op=(p1["user_s"] - p0["user_s"]) * 1e6 / ops,
               sys_us_per_op=(p1["sys_s"] - p0["sys_s"]) * 1e6 / ops,
               vol_cs_per_op=(p1["vol"] - p0["vol"]) / ops,
               invol_cs_per_op=(p1["invol"] - p0["invol"]) / ops,
               runq_wait_us_per_op=(p1["runq_wait_s"] - p0["runq_wait_s"]) * 1e6 / ops,
               runq_wait_ms_per_s=(p1["runq_wait_s"] - p0["runq_wait_s"]) * 1e3 / seconds,
               tp_items_per_op=delta("system_runtime_dotnet_thread_pool_work_item_count") / ops,
               gc0_per_s=delta('system_runtime_dotnet_gc_collections{gc_heap_generation="gen0"}') / seconds,
               gc1_per_s=delta('system_runtime_dotnet_gc_collections{gc_heap_generation="gen1"}') / seconds,
               gc2_per_s=delta('system_runtime_dotnet_gc_collections{gc_heap_generation="gen2"}') / seconds,
               gc_pause_ms_per_s=delta("system_runtime_dotnet_gc_pause_time") * 1e3 / seconds,
               alloc_bytes_per_op=delta("system_runtime_dotnet_gc_heap_total_allocated") / ops,
               jit_ms_per_s=delta("system_runtime_dotnet_jit_compilation_time") * 1e3 / seconds)
    row.update(ack_p50_ms=get(step, "ack", "p50"), ack_p99_ms=get(step, "ack", "p99"), ack_p999_ms=get(step, "ack", "p999"),
               lag_p99_ms=get(step, "send_lag", "p99"), generator_cpu=get(step, "generator", "cpu_percent"),
               server_cpu=get(step, "server", "cpu_percent"), acked_per_s=get(step, "acked_ops_per_sec"))
    if args.submit != "ping":
        for stage in ("sequence", "commit", "ack"):
            b0, s0, c0 = hist(m0, "collab_submit_stage_seconds", stage)
            b1, s1, c1 = hist(m1, "collab_submit_stage_seconds", stage)
            n = max(c1 - c0, 1)
            row[f"{stage}_mean_us"] = (s1 - s0) / n * 1e6
            row[f"{stage}_p50_us"] = quantile(b0, b1, 0.5) * 1e6
            row[f"{stage}_p99_us"] = quantile(b0, b1, 0.99) * 1e6
        b0, s0, c0 = hist(m0, "collab_submit_ack_written_seconds")
        b1, s1, c1 = hist(m1, "collab_submit_ack_written_seconds")
        row["server_mean_us"] = (s1 - s0) / max(c1 - c0, 1) * 1e6
        row["server_p50_us"] = quantile(b0, b1, 0.5) * 1e6
        row["server_p99_us"] = quantile(b0, b1, 0.99) * 1e6
        b0, s0, c0 = hist(m0, "collab_storage_commit_seconds")
        b1, s1, c1 = hist(m1, "collab_storage_commit_seconds")
        row["store_commit_mean_us"] = (s1 - s0) / max(c1 - c0, 1) * 1e6
        row["store_commit_p99_us"] = quantile(b0, b1, 0.99) * 1e6
    return row


def get(node, *path):
    """A field of the load tool's JSON report, whatever the casing of its names."""
    for name in path:
        if not isinstance(node, dict):
            return None
        node = next((v for k, v in node.items() if k.lower() == name.lower()), None)
    return node


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME=ENV=VALUE;ENV=VALUE|--Server:Arg=value ... (empty after = : defaults)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--sync", default="Normal", help="Storage:SqliteSynchronous (Normal or Full)")
    ap.add_argument("--submit", default="pipelined", help="pipelined (the tool's default), one-in-flight or ping")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(REPO, "loadtest/results/tail"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    variants = []
    for spec in args.variant or ["base="]:
        name, _, rest = spec.partition("=")
        env_part, _, arg_part = rest.partition("|")
        env = dict(kv.split("=", 1) for kv in env_part.split(";") if kv)
        variants.append((name, env, arg_part.split() if arg_part else []))
    rows = []
    index = 0
    for _ in range(args.repeat):
        for name, env, sargs in variants:
            index += 1
            row = run_one(name, env, sargs, args, args.out, index)
            rows.append(row)
            print(json.dumps(row), flush=True)
    with open(os.path.join(args.out, f"summary-{int(time.time())}.json"), "w") as f:
        json.dump(dict(args=vars(args), rows=rows), f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
