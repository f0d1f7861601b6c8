#!/usr/bin/env python3
"""The round-trip floor of this machine, for reading latency figures: a trivial TCP echo server on one CPU and a
client on another, one connection, one small message per round trip. Prints p50/p90/p99 with a pause between round
trips (the other side's CPU goes idle, as at light load) and back to back.

    scripts/rtt-floor.py [--server-cpu 0] [--client-cpu 1] [--count 3000] [--gap-ms 2]
"""
import argparse, os, socket, subprocess, sys, time

def echo_server(port):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    print("ready", flush=True)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)

def measure(port, count, gap):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = b"x" * 16
    rtts = []
    for _ in range(count):
        start = time.perf_counter_ns()
        s.sendall(message)
        got = 0
        while got < len(message):
            got += len(s.recv(65536))
        rtts.append((time.perf_counter_ns() - start) / 1e6)
        if gap:
            time.sleep(gap / 1000)
    s.close()
    rtts.sort()
    n = len(rtts)
    return f"p50 {rtts[n // 2]:.3f}  p90 {rtts[int(n * 0.9)]:.3f}  p99 {rtts[int(n * 0.99)]:.3f} ms"

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--gap-ms", type=float, default=2.0)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        echo_server(args.serve)
        return
    os.sched_setaffinity(0, {int(args.client_cpu)})
    for gap in (args.gap_ms, 0):
        probe = socket.socket(); probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]; probe.close()
        server = subprocess.Popen(["taskset", "-c", args.server_cpu, sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE, text=True)
        server.stdout.readline()
        label = f"{args.gap_ms:g} ms between round trips" if gap else "back to back"
        print(f"echo round trip, server CPU {args.server_cpu}, client CPU {args.client_cpu}, {label}: {measure(port, args.count, gap)}")
        server.wait(timeout=10)

if __name__ == "__main__":
    main()
