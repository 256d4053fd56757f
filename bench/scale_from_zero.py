"""Time from submit to the first instance RUNNING on a compute environment scaled to zero.

Run by bench/scale_from_zero.sh, which builds kiln and says what each figure means. Standard
library only. For each provider asked for (local, docker, slurm) it starts one `kiln server`,
creates an environment with `min_nodes: 0, max_nodes: 1, idle_timeout: 2s`, and RUNS times:
waits until the environment has no node, submits a one-instance job (`sleep 1`), and measures
from just before the submit to the first poll (every 20 ms) that sees the instance RUNNING.
Then it measures the provider's own floor the same number of times — what it takes the provider
alone to start a process there: `kiln --version` (local), `docker run --rm IMAGE true`
(docker), `sbatch --wrap true` until Slurm says it is RUNNING or done (slurm) — and prints
the medians and their ratio.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, kiln, work, listen_host):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = os.path.join(work, "server")
        self.log = open(os.path.join(work, "server.log"), "w")
        self.proc = subprocess.Popen(
            [kiln, "server", "--listen", f"{listen_host}:{self.port}", "--data-dir", self.data],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 30
        while True:
            try:
                self.call("GET", "/v1/health")
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemExit("error: the server did not start; see " + self.log.name)
                time.sleep(0.1)
        with open(os.path.join(self.data, "admin-token")) as f:
            self.token = f.read().strip()

    def call(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, method=method)
        if getattr(self, "token", None):
            req.add_header("Authorization", "Bearer " + self.token)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, data, timeout=30) as resp:
            text = resp.read()
            return json.loads(text) if text else None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wait(what, cond, secs=180, every=0.02):
    deadline = time.time() + secs
    while not cond():
        if time.time() > deadline:
            raise SystemExit(f"error: timed out waiting for {what}")
        time.sleep(every)


def measure_kiln(server, env, runs):
    out = []
    for i in range(runs):
        wait("the environment to scale to 0",
             lambda: not server.call("GET", f"/v1/compute-envs/{env}")["nodes"], secs=120, every=0.2)
        job = {"name": f"zero-{i}", "tasks": {"t": {"command": "sleep 1", "compute_env": env}}}
        start = time.perf_counter()
        jid = server.call("POST", "/v1/jobs", job)["id"]

        def running():
            items = server.call("GET", f"/v1/jobs/{jid}/tasks/t/instances")["items"]
            return bool(items) and items[0]["state"] in ("RUNNING", "SUCCEED")

        wait("the instance to run", running)
        out.append(time.perf_counter() - start)
        wait("the job to end", lambda: server.call("GET", f"/v1/jobs/{jid}")["state"] == "SUCCEED",
             every=0.1)
    return out


def floor(provider, kiln, image, runs):
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        if provider == "local":
            subprocess.run([kiln, "--version"], check=True, stdout=subprocess.DEVNULL)
        elif provider == "docker":
            subprocess.run(["docker", "run", "--rm", image, "true"], check=True)
        else:
            jid = subprocess.run(["sbatch", "--parsable", "--output=/dev/null", "--wrap", "sleep 1"],
                                 check=True, capture_output=True, text=True).stdout.strip()

            def started():
                st = subprocess.run(["squeue", "-h", "-j", jid, "-o", "%T"],
                                    capture_output=True, text=True).stdout.strip()
                return st in ("", "RUNNING", "COMPLETING", "COMPLETED")

            wait("the Slurm job to run", started)
        out.append(time.perf_counter() - start)
        if provider == "slurm":
            wait("the Slurm job to end", lambda: not subprocess.run(
                ["squeue", "-h", "-j", jid], capture_output=True, text=True).stdout.strip(), every=0.2)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kiln", required=True)
    p.add_argument("--image", default="kiln-test/busybox:1")
    p.add_argument("--partition", default=None)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("providers", nargs="+")
    a = p.parse_args()
    print(f"{'provider':<9} {'kiln_median_s':>14} {'floor_median_s':>15} {'ratio':>7}  kiln runs (s)")
    for provider in a.providers:
        with tempfile.TemporaryDirectory() as work:
            server = Server(a.kiln, work, "0.0.0.0" if provider == "docker" else "127.0.0.1")
            try:
                env = {"name": f"zero-{provider}", "provider": provider, "min_nodes": 0,
                       "max_nodes": 1, "idle_timeout": "2s"}
                if provider == "docker":
                    env["image"] = a.image
                if provider == "slurm" and a.partition:
                    env["partition"] = a.partition
                server.call("POST", "/v1/compute-envs", env)
                kiln_s = measure_kiln(server, env["name"], a.runs)
                server.call("DELETE", f"/v1/compute-envs/{env['name']}")
            finally:
                server.stop()
        floor_s = floor(provider, a.kiln, a.image, a.runs)
        km, fm = statistics.median(kiln_s), statistics.median(floor_s)
        runs = " ".join(f"{x:.2f}" for x in kiln_s)
        print(f"{provider:<9} {km:>14.2f} {fm:>15.2f} {km / fm:>7.1f}  {runs}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
