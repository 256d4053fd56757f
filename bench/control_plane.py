#!/usr/bin/env python3
"""The measuring client of bench/control-plane.sh (standard library only).

    control_plane.py --url URL --token-file FILE reads N [--seconds S]
        submits one job of N instances of `true` in compute environment `pool`; while it runs
        (at most S seconds), GETs the job and a page of 100 instances (at a cursor that moves
        over the task) back to back on one keep-alive connection; prints
        `requests p50_job_ms p99_job_ms p50_page_ms p99_page_ms`.
    control_plane.py --url URL --token-file FILE jobs N [--threads T]
        submits N one-instance jobs (`true`, in `pool`) from T threads, each job after the
        previous one of its thread ended; prints the wall time in seconds.
"""

import argparse
import sys
import threading
import time

from cluster import TERMINAL, Api


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def reads(api, n, seconds):
    spec = {
        "name": "reads",
        "tasks": {"work": {"instances": n, "compute_env": "pool", "command": ["true"]}},
    }
    job_id = api.submit(spec)
    job_ms, page_ms = [], []
    deadline = time.monotonic() + seconds
    cursor = 0
    while time.monotonic() < deadline:
        s = time.perf_counter()
        job = api.job(job_id)
        job_ms.append((time.perf_counter() - s) * 1000)
        if job["state"] in TERMINAL:
            break
        s = time.perf_counter()
        api.request("GET", f"/v1/jobs/{job_id}/tasks/work/instances?limit=100&cursor={cursor}")
        page_ms.append((time.perf_counter() - s) * 1000)
        cursor = (cursor + 997) % max(1, n - 100)
    if len(job_ms) < 10:
        raise SystemExit(f"only {len(job_ms)} reads before the job ended")
    print(
        len(job_ms) + len(page_ms),
        f"{percentile(job_ms, 0.5):.2f}",
        f"{percentile(job_ms, 0.99):.2f}",
        f"{percentile(page_ms, 0.5):.2f}",
        f"{percentile(page_ms, 0.99):.2f}",
    )


def jobs(url, token, n, threads):
    spec = {
        "name": "tiny",
        "tasks": {"t": {"compute_env": "pool", "command": ["true"]}},
    }
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    errors = []

    def worker(count):
        try:
            api = Api(url, token)
            for _ in range(count):
                job_id = api.submit(spec)
                while api.job(job_id)["state"] not in TERMINAL:
                    time.sleep(0.005)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    start = time.monotonic()
    ts = [threading.Thread(target=worker, args=(c,)) for c in per]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise SystemExit(f"submitting failed: {errors[0]}")
    print(f"{time.monotonic() - start:.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token-file", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reads")
    r.add_argument("n", type=int)
    r.add_argument("--seconds", type=float, default=60)
    j = sub.add_parser("jobs")
    j.add_argument("n", type=int)
    j.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    token = open(args.token_file).read().strip()
    if args.cmd == "reads":
        reads(Api(args.url, token), args.n, args.seconds)
    else:
        jobs(args.url, token, args.n, args.threads)


if __name__ == "__main__":
    sys.exit(main())
