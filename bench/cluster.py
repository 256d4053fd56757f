#!/usr/bin/env python3
"""The measuring client of bench/cluster.sh: talks to a running `kiln server` over its REST API.

Standard library only. One keep-alive HTTP connection, so that a poll costs one round trip on
loopback and no connection set-up.

    cluster.py --url URL --token-file FILE wait-node NAME [--timeout S]
    cluster.py --url URL --token-file FILE throughput N [--env ENV] [--poll-ms MS]
    cluster.py --url URL --token-file FILE latency RUNS [--env ENV] [--node NAME]

`throughput` prints the wall time in seconds from just before the POST of the job to the first
poll (every --poll-ms) that sees it SUCCEED. `latency` prints one line per run (milliseconds
from just before the POST to the first poll that sees the instance RUNNING; polls back to back,
no sleep; the instance is `sleep --sleep` and the next run waits until it ended), then a summary line `median_ms p90_ms max_ms min_ms`.
"""

import argparse
import http.client
import json
import statistics
import sys
import time
import urllib.parse

TERMINAL = {"SUCCEED", "FAILED", "FAILED_INTERRUPTED"}


class Api:
    def __init__(self, url, token):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.auth = "Bearer " + token
        self.conn = None

    def request(self, method, path, body=None, content_type=None):
        headers = {"Authorization": self.auth}
        if content_type:
            headers["Content-Type"] = content_type
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                # The server closed the kept-alive connection: reconnect once.
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        if resp.status >= 300:
            raise SystemExit(f"{method} {path}: HTTP {resp.status}: {data.decode(errors='replace')}")
        return json.loads(data) if data else None

    def submit(self, spec):
        return self.request("POST", "/v1/jobs", json.dumps(spec).encode(), "application/json")["id"]

    def job(self, job_id):
        return self.request("GET", "/v1/jobs/" + urllib.parse.quote(job_id, safe=""))

    def nodes(self):
        return self.request("GET", "/v1/nodes")["items"]


def wait_node(api, name, timeout):
    deadline = time.monotonic() + timeout
    while True:
        for n in api.nodes():
            if n["name"] == name and n["state"] == "RUNNING":
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"node {name} did not become RUNNING within {timeout} s")
        time.sleep(0.05)


def wait_idle(api, job_id, node, timeout=60):
    """Until the job is terminal and the node runs nothing."""
    deadline = time.monotonic() + timeout
    while True:
        job = api.job(job_id)
        if job["state"] in TERMINAL and all(
            n["running"] == 0 for n in api.nodes() if node is None or n["name"] == node
        ):
            return job
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} did not end / node did not go idle: {job}")
        time.sleep(0.02)


def throughput(api, n, env, poll_ms):
    spec = {
        "name": f"bench-throughput-{n}",
        "tasks": {"t": {"instances": n, "compute_env": env, "command": ["true"]}},
    }
    start = time.perf_counter()
    job_id = api.submit(spec)
    while True:
        job = api.job(job_id)
        if job["state"] in TERMINAL:
            elapsed = time.perf_counter() - start
            break
        time.sleep(poll_ms / 1000)
    if job["state"] != "SUCCEED":
        raise SystemExit(f"throughput job {job_id} ended {job['state']}: {json.dumps(job)}")
    print(f"{elapsed:.2f}")


def running(job):
    # The instance, not the task: a task is RUNNING already while its instance is STARTING
    # (leased to the agent, start not yet reported).
    return any(task["counts"].get("RUNNING", 0) > 0 for task in job["tasks"])


def latency(api, runs, env, node, sleep_s, deadline_s=30):
    # The instance runs `sleep` and is left to end by itself: terminating it instead would
    # cost 4–5 s per sample (apparently until the agent's next heartbeat) before the agent is idle again.
    spec = {
        "name": "bench-latency",
        "tasks": {"t": {"instances": 1, "compute_env": env, "command": ["sleep", f"{sleep_s:g}"]}},
    }
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        job_id = api.submit(spec)
        while True:
            job = api.job(job_id)
            now = time.perf_counter()
            if running(job):
                break
            if job["state"] in TERMINAL:
                raise SystemExit(
                    f"latency job {job_id} ended {job['state']} before it was seen RUNNING"
                    f" (latency over --sleep {sleep_s} s?): {json.dumps(job)}"
                )
            if now - start > deadline_s:
                raise SystemExit(f"latency job {job_id} not RUNNING after {deadline_s} s: {json.dumps(job)}")
        ms = (now - start) * 1000
        samples.append(ms)
        print(f"run {i + 1}: {ms:.1f} ms", file=sys.stderr)
        job = wait_idle(api, job_id, node)
        if job["state"] != "SUCCEED":
            raise SystemExit(f"latency job {job_id} ended {job['state']}: {json.dumps(job)}")
    samples.sort()
    p90 = samples[min(len(samples) - 1, max(0, -(-len(samples) * 9 // 10) - 1))]
    print(f"{statistics.median(samples):.1f} {p90:.1f} {samples[-1]:.1f} {samples[0]:.1f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--token-file", required=True)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait-node")
    w.add_argument("name")
    w.add_argument("--timeout", type=float, default=30)
    t = sub.add_parser("throughput")
    t.add_argument("n", type=int)
    t.add_argument("--env", default="pool")
    t.add_argument("--poll-ms", type=float, default=50)
    lt = sub.add_parser("latency")
    lt.add_argument("runs", type=int)
    lt.add_argument("--env", default="pool")
    lt.add_argument("--node")
    lt.add_argument("--sleep", type=float, default=1, help="seconds each instance runs")
    a = p.parse_args()
    with open(a.token_file) as f:
        api = Api(a.url, f.read().strip())
    if a.cmd == "wait-node":
        wait_node(api, a.name, a.timeout)
    elif a.cmd == "throughput":
        throughput(api, a.n, a.env, a.poll_ms)
    else:
        latency(api, a.runs, a.env, a.node, a.sleep)


if __name__ == "__main__":
    main()
