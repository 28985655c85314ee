#!/usr/bin/env python3
"""Load test of `cofi serve` on loopback, bounded in count and time (standard library only).

Starts `cofi serve --model MODEL --port 0`, holds IDLE connections open that send nothing, measures the server's
CPU while only they are open, then runs CLIENTS threads of REQUESTS `POST /predict` each ({"inputs": [...]} of 1-4
texts, keep-alive) while one more thread polls `GET /health` every 50 ms. Reports errors, /health latency (max,
p99), /predict latency (p50, p99, max), throughput, how many idle connections the server kept, and a few
/metrics lines, as one JSON object on stdout. Exit status 1 when a request failed or /health took over 100 ms.

  swift build -c release --product cofi
  python3 scripts/serve_load.py --cofi .build/release/cofi --model runs/x/best [--idle 2000] [--clients 8] \
      [--requests 200] [--serve-args "--max-connections 1000"]

Not part of the test suite; the suite's small version is ServerLimitsTests.testIdleConnectionsBesideClientsCostNothing.
"""
import argparse
import http.client
import json
import os
import random
import resource
import select
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

TEXTS = [
    "a gripping, funny film", "dull and far too long", "the actors played well", "an awful plot",
    "one of the best films of the year , with a story that never lets go", "it was fine", "superb",
    "the director lost the thread halfway through and never found it again", "great fun", "bad",
]


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cofi", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--texts", help="a TSV file whose first column gives the texts (header skipped)")
    parser.add_argument("--serve-args", default="", help="more cofi serve arguments")
    parser.add_argument("--time-limit", type=float, default=300, help="seconds for the whole load")
    args = parser.parse_args()

    texts = TEXTS
    if args.texts:
        with open(args.texts) as f:
            texts = [line.split("\t")[0] for line in f.read().splitlines()[1:] if line.strip()][:500]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.idle + 512
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))

    server = subprocess.Popen([args.cofi, "serve", "--model", args.model, "--port", "0"]
                              + shlex.split(args.serve_args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr_lines = []
    threading.Thread(target=lambda: stderr_lines.extend(server.stderr), daemon=True).start()
    line = server.stdout.readline()
    if not line.startswith("listening on http://"):
        server.kill()
        sys.exit(f"cofi serve did not start: {line!r} {''.join(stderr_lines)}")
    host, port = line.strip().rsplit("/", 1)[1].rsplit(":", 1)
    port = int(port)
    result = {"idle_connections": args.idle, "clients": args.clients, "requests_per_client": args.requests}
    try:
        idle = []
        start = time.monotonic()
        for _ in range(args.idle):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            idle.append(s)
        result["idle_connect_s"] = round(time.monotonic() - start, 3)
        time.sleep(1)
        before = cpu_seconds(server.pid)
        time.sleep(5)
        result["server_cpu_percent_with_only_idle_connections"] = round((cpu_seconds(server.pid) - before) / 5 * 100, 2)

        errors = []
        latencies = []
        health = []
        lock = threading.Lock()
        done = threading.Event()
        deadline = time.monotonic() + args.time_limit

        def client(c):
            rng = random.Random(c)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for r in range(args.requests):
                if time.monotonic() > deadline:
                    with lock:
                        errors.append(f"client {c}: time limit")
                    return
                n = rng.randint(1, 4)
                body = json.dumps({"inputs": [{"text": rng.choice(texts)} for _ in range(n)]})
                t = time.monotonic()
                try:
                    connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    data = response.read()
                    elapsed = time.monotonic() - t
                    outputs = json.loads(data).get("outputs", [])
                    ok = response.status == 200 and len(outputs) == n and all("error" not in o for o in outputs)
                    with lock:
                        latencies.append(elapsed)
                        if not ok:
                            errors.append(f"client {c} request {r}: {response.status} {data[:200]!r}")
                except Exception as e:  # noqa: BLE001 - every failure is an error to report
                    with lock:
                        errors.append(f"client {c} request {r}: {e!r}")
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def poll_health():
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            while not done.is_set():
                t = time.monotonic()
                try:
                    connection.request("GET", "/health")
                    response = connection.getresponse()
                    response.read()
                    with lock:
                        health.append(time.monotonic() - t)
                        if response.status != 200:
                            errors.append(f"/health: {response.status}")
                except Exception as e:  # noqa: BLE001
                    with lock:
                        errors.append(f"/health: {e!r}")
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                time.sleep(0.05)

        poller = threading.Thread(target=poll_health)
        poller.start()
        workers = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
        start = time.monotonic()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.monotonic() - start
        done.set()
        poller.join()

        closed = 0
        poller = select.poll()
        by_fd = {s.fileno(): s for s in idle}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        for fd, _ in poller.poll(0):
            try:
                if by_fd[fd].recv(1) == b"":
                    closed += 1
            except OSError:
                closed += 1
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/metrics")
        metrics = connection.getresponse().read().decode()
        result.update({
            "errors": len(errors), "first_errors": errors[:5],
            "requests": len(latencies), "wall_s": round(wall, 3),
            "requests_per_s": round(len(latencies) / wall, 1) if wall > 0 else None,
            "predict_p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
            "predict_p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
            "predict_max_ms": round(max(latencies) * 1000, 2) if latencies else None,
            "health_checks": len(health),
            "health_p99_ms": round(percentile(health, 99) * 1000, 2) if health else None,
            "health_max_ms": round(max(health) * 1000, 2) if health else None,
            "idle_closed_by_server": closed,
            "metrics": [m for m in metrics.splitlines() if m.startswith((
                "cofi_serve_connections", "cofi_serve_errors_total", "cofi_serve_read_timeouts",
                "cofi_serve_batch_records_sum", "cofi_serve_batch_records_count"))],
        })
        for s in idle:
            s.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    result["server_exit_status"] = server.returncode
    print(json.dumps(result, indent=2))
    failed = result.get("errors", 1) > 0 or (result.get("health_max_ms") or 1e9) > 100
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
