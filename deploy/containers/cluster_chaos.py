#!/usr/bin/env python3
"""The driver of `just cluster-chaos` (cluster-chaos.sh starts the three RabbitMQ nodes and
removes everything afterwards). Standard library only; runs podman, psql and burrow's debug
binaries, talks HTTP to the api on a loopback port.

1. Waits until the three nodes form one cluster; migrates a fresh database; starts the api and
   two workers on this host with AMQP_URL = the three nodes' published ports, comma-separated
   (heartbeat 5 s); checks that every quorum queue has a replica on each node.
2. Streams jobs through the api from a thread of its own: NOOP_PER_SEC noop jobs a second and an
   import of a 200-row fixture every IMPORT_EVERY_SECS.
3. Fault 1: stops (SIGTERM, then 10 s) the node leading the work queue, holds FAULT_SECS, starts
   it again and waits until it is back in the cluster with its replicas.
   Fault 2: cuts the node leading the work queue then off the network (`podman network
   disconnect`: it loses the other nodes and the clients connected through it), holds
   FAULT_SECS, reconnects it and waits until it is back.
   For each: the time to recover = from the fault until a noop job created at that moment has
   succeeded, and the slowest job created during the fault (creation to success).
4. Stops the stream, waits until every job ended, then requires: every job succeeded (lost = 0),
   no job succeeded twice (one `succeeded` event each) and every import wrote exactly its 200
   rows (applied twice = 0), the work queues and the dead-letter queue empty.
Every wait has a deadline; exits 1 on any failure. Logs in target/cluster-chaos/.
"""
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOGS = ROOT / "target" / "cluster-chaos"
BIN = ROOT / "target" / "debug"
CONTAINERS = os.environ["CLUSTER_CONTAINERS"].split()
NODES = ["rabbit@rabbit1", "rabbit@rabbit2", "rabbit@rabbit3"]
HOSTNAMES = ["rabbit1", "rabbit2", "rabbit3"]
NETWORK = os.environ["CLUSTER_NETWORK"]
PORTS = os.environ["CLUSTER_AMQP_PORTS"].split()
PASSWORD = os.environ["CLUSTER_PASSWORD"]
DATABASE = os.environ["CLUSTER_DATABASE"]
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
AMQP_URL = ",".join(f"amqp://burrow:{PASSWORD}@127.0.0.1:{port}/%2f?heartbeat=5" for port in PORTS)
NOOP_PER_SEC = int(os.environ.get("CLUSTER_NOOP_PER_SEC", "10"))
IMPORT_EVERY_SECS = float(os.environ.get("CLUSTER_IMPORT_EVERY_SECS", "2"))
FAULT_SECS = int(os.environ.get("CLUSTER_FAULT_SECS", "20"))
FIXTURES = [ROOT / "fixtures" / f"MOCK_DATA_{n}.xlsx" for n in range(1, 6)]
ROWS_PER_FILE = 200
WORK_QUEUE = "burrow.jobs.work"
EMPTY_AT_END = ("burrow.jobs.work", "burrow.jobs.work.high", "burrow.jobs.q.imports",
                "burrow.jobs.q.imports.high", "burrow.jobs.dead")

T0 = time.monotonic()


def say(text):
    print(f"[{time.monotonic() - T0:6.1f} s] {text}", flush=True)


class Failed(Exception):
    pass


def wait_for(what, deadline_secs, probe, every=0.5):
    """Calls probe() until it returns something truthy, for at most deadline_secs."""
    deadline = time.monotonic() + deadline_secs
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {deadline_secs} s waiting for {what}")
        time.sleep(every)


def run(argv, check=True, timeout=60):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise Failed(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return result


def ctl(node, *args):
    """rabbitmqctl on node `node` (0-based); None if the node does not answer."""
    try:
        result = run(["podman", "exec", CONTAINERS[node], "rabbitmqctl", "-q", *args], check=False, timeout=30)
    except subprocess.TimeoutExpired:
        return None
    return result.stdout if result.returncode == 0 else None


def running_nodes(node):
    """The cluster's running nodes as node `node` sees them."""
    out = ctl(node, "cluster_status", "--formatter", "json")
    if not out:
        return set()
    try:
        return set(json.loads(out).get("running_nodes", []))
    except json.JSONDecodeError:
        return set()


def quorum_queues(node):
    """{queue: (leader, members, online)} of the quorum queues, as node `node` sees them."""
    out = ctl(node, "list_queues", "--formatter", "json", "name", "type", "leader", "members", "online", "messages")
    if not out:
        return {}
    try:
        rows = json.loads(out)
    except json.JSONDecodeError:
        return {}
    return {r["name"]: r for r in rows if r.get("type") == "quorum"}


def whole_cluster(via):
    """True once node `via` sees all three nodes running and every quorum queue has all three
    replicas online."""
    if running_nodes(via) != set(NODES):
        return False
    queues = quorum_queues(via)
    return bool(queues) and all(len(q.get("online", [])) == 3 for q in queues.values())


def psql(sql):
    out = run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DATABASE, "-AtF", "\t", "-c", sql]).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """The api and the workers on this host; stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self):
        self.procs = []

    def start(self, name, binary, env):
        log = open(LOGS / f"{name}.log", "w")
        full_env = {**os.environ, "DATABASE_URL": DATABASE_URL, "AMQP_URL": AMQP_URL, "RUST_LOG": "info", **env}
        proc = subprocess.Popen([str(BIN / binary)], env=full_env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.procs.append((name, proc))
        return proc

    def stop(self):
        for _, proc in self.procs:
            proc.terminate()
        for name, proc in self.procs:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop in 40 s; killing it")
                proc.kill()


class Api:
    def __init__(self, base):
        self.base = base

    def request(self, method, path, body=None, headers=None, timeout=30):
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except OSError as e:  # refused, reset, timed out: the api is not (yet) there
            return 0, str(e)

    def noop(self):
        return self.request("POST", "/api/jobs", json.dumps({"kind": "noop"}).encode(),
                            {"content-type": "application/json"})

    def upload(self, path):
        boundary = uuid.uuid4().hex
        body = b"".join([
            (f'--{boundary}\r\ncontent-disposition: form-data; name="file"; filename="{path.name}"\r\n'
             "content-type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet\r\n\r\n").encode(),
            path.read_bytes(),
            f"\r\n--{boundary}--\r\n".encode(),
        ])
        return self.request("POST", "/api/jobs", body, {"content-type": f"multipart/form-data; boundary={boundary}"})

    def status(self, job_id):
        code, job = self.request("GET", f"/api/jobs/{job_id}")
        return job.get("status") if code == 200 and isinstance(job, dict) else None


class Stream(threading.Thread):
    """Submits noop jobs and imports at a steady rate until stopped; records every job."""

    def __init__(self, api):
        super().__init__(daemon=True)
        self.api = api
        self.jobs = {}  # id -> kind
        self.refused = []
        self.halt = threading.Event()

    def run(self):
        tick = 1.0 / NOOP_PER_SEC
        next_import = time.monotonic()
        n = 0
        while not self.halt.is_set():
            started = time.monotonic()
            self.submit("noop", self.api.noop)
            if started >= next_import:
                fixture = FIXTURES[n % len(FIXTURES)]
                n += 1
                self.submit("import_xlsx", lambda: self.api.upload(fixture))
                next_import = started + IMPORT_EVERY_SECS
            self.halt.wait(max(0.0, tick - (time.monotonic() - started)))

    def submit(self, kind, send):
        code, job = send()
        if code == 202:
            self.jobs[job["id"]] = kind
        else:
            self.refused.append(f"{kind}: {code} {job}")


def leader_of_work_queue(via):
    queue = quorum_queues(via).get(WORK_QUEUE)
    if not queue or queue.get("leader") not in NODES:
        raise Failed(f"no leader known for {WORK_QUEUE}: {queue}")
    return NODES.index(queue["leader"])


def recovery(api, fault_at):
    """Seconds from `fault_at` until a noop job created now has succeeded."""
    code, job = api.noop()
    if code != 202:
        raise Failed(f"the api refused a job during the fault: {code} {job}")
    wait_for(f"the probe job {job['id']}", 180, lambda: api.status(job["id"]) == "succeeded", every=0.1)
    return time.monotonic() - fault_at, job["id"]


def slowest_job(since_sql, secs):
    """The longest time (s) from creation to success of a job created in the `secs` seconds
    after that moment: how long the fault held up the unluckiest job."""
    [[slowest]] = psql(
        "SELECT coalesce(max(extract(epoch FROM completed_at - created_at)), 0) FROM jobs "
        f"WHERE created_at BETWEEN {since_sql} AND {since_sql}::timestamptz + interval '{secs} seconds'")
    return float(slowest)


def other_node(node):
    return (node + 1) % 3


def main():
    LOGS.mkdir(parents=True, exist_ok=True)
    wait_for("three running nodes in one cluster", 240, lambda: running_nodes(0) == set(NODES), every=2)
    version = (ctl(0, "version") or "?").strip()
    say(f"cluster up: RabbitMQ {version}, nodes {', '.join(NODES)}")

    migrate = subprocess.run([str(BIN / "burrow-api"), "migrate"], env={**os.environ, "DATABASE_URL": DATABASE_URL},
                             capture_output=True, text=True, timeout=120)
    if migrate.returncode != 0:
        raise Failed(f"migrate exited {migrate.returncode}: {migrate.stderr[-500:]}")

    procs = Processes()
    try:
        api_port = free_port()
        procs.start("api", "burrow-api", {"BIND_ADDR": f"127.0.0.1:{api_port}"})
        for n in (1, 2):
            procs.start(f"worker{n}", "burrow-worker", {
                "WORKER_ID": f"worker{n}", "WORKER_HTTP_ADDR": f"127.0.0.1:{free_port()}",
                "IMPORT_ROW_DELAY_MS": "5", "RETRY_BASE_MS": "500",
            })
        api = Api(f"http://127.0.0.1:{api_port}")
        wait_for("the api's /readyz", 60, lambda: api.request("GET", "/readyz")[0] == 200)
        wait_for("all quorum queues with a replica on each node", 120, lambda: whole_cluster(0), every=1)
        queues = quorum_queues(0)
        say(f"api and 2 workers up; {len(queues)} quorum queues, each with members on all 3 nodes: "
            f"{', '.join(sorted(queues))}")

        stream = Stream(api)
        stream.start()
        time.sleep(5)
        results = []

        # Fault 1: the work queue's leader stops, then starts again.
        victim = leader_of_work_queue(0)
        survivor = other_node(victim)
        say(f"fault 1: stopping {NODES[victim]}, the leader of {WORK_QUEUE}")
        [[since]] = psql("SELECT quote_literal(clock_timestamp())")
        fault_at = time.monotonic()
        run(["podman", "stop", "-t", "10", CONTAINERS[victim]], timeout=60)
        took, probe = recovery(api, fault_at)
        new_leader = leader_of_work_queue(survivor)
        say(f"fault 1: recovered in {took:.1f} s (probe job {probe} succeeded); new leader {NODES[new_leader]}")
        time.sleep(FAULT_SECS)
        run(["podman", "start", CONTAINERS[victim]], timeout=60)
        back_at = time.monotonic()
        wait_for(f"{NODES[victim]} back in the cluster with its replicas", 240, lambda: whole_cluster(survivor), every=1)
        say(f"fault 1: {NODES[victim]} rejoined, replicas online, {time.monotonic() - back_at:.1f} s after its start")
        results.append(("stop and start the work queue's leader", took, slowest_job(since, FAULT_SECS)))

        # Fault 2: a node cut off from the network, then reconnected.
        victim = leader_of_work_queue(survivor)
        survivor = other_node(victim)
        say(f"fault 2: cutting {NODES[victim]} (the leader of {WORK_QUEUE}) off the network")
        [[since]] = psql("SELECT quote_literal(clock_timestamp())")
        fault_at = time.monotonic()
        run(["podman", "network", "disconnect", NETWORK, CONTAINERS[victim]])
        took, probe = recovery(api, fault_at)
        say(f"fault 2: recovered in {took:.1f} s (probe job {probe} succeeded)")
        time.sleep(FAULT_SECS)
        run(["podman", "network", "connect", "--alias", HOSTNAMES[victim], NETWORK, CONTAINERS[victim]])
        back_at = time.monotonic()
        wait_for(f"{NODES[victim]} back in the cluster with its replicas", 300, lambda: whole_cluster(survivor), every=1)
        say(f"fault 2: {NODES[victim]} reconnected and rejoined, {time.monotonic() - back_at:.1f} s after")
        results.append(("cut a node off the network and reconnect it", took, slowest_job(since, FAULT_SECS)))

        time.sleep(5)
        stream.halt.set()
        stream.join()
        jobs = dict(stream.jobs)
        imports = [j for j, kind in jobs.items() if kind == "import_xlsx"]
        say(f"stream stopped: {len(jobs)} jobs accepted ({len(imports)} imports), {len(stream.refused)} refused")

        ids = ",".join(f"'{j}'" for j in jobs)
        wait_for("every job to end", 300, lambda: psql(
            f"SELECT count(*) FROM jobs WHERE id IN ({ids}) AND status NOT IN "
            "('succeeded','failed','dead','cancelled')") == [["0"]], every=1)
        problems = []
        if stream.refused:
            problems.append(f"the api refused {len(stream.refused)} job(s): {stream.refused[:3]}")
        statuses = dict(psql(f"SELECT status, count(*) FROM jobs WHERE id IN ({ids}) GROUP BY status"))
        succeeded = int(statuses.get("succeeded", 0))
        lost = len(jobs) - succeeded
        if lost:
            problems.append(f"lost = {lost}: statuses {statuses}")
        twice = psql(f"SELECT job_id, count(*) FROM job_events WHERE event = 'succeeded' AND job_id IN ({ids}) "
                     "GROUP BY job_id HAVING count(*) > 1")
        import_ids = ",".join(f"'{j}'" for j in imports)
        bad_imports = psql(
            f"SELECT j.id, count(r.id), count(DISTINCT r.id) FROM jobs j LEFT JOIN imported_rows r ON r.job_id = j.id "
            f"WHERE j.id IN ({import_ids}) GROUP BY j.id HAVING count(r.id) <> {ROWS_PER_FILE} "
            f"OR count(DISTINCT r.id) <> {ROWS_PER_FILE}") if imports else []
        applied_twice = len(twice) + len(bad_imports)
        if applied_twice:
            problems.append(f"applied twice = {applied_twice}: {twice[:3]} {bad_imports[:3]}")
        [[rerun]] = psql(f"SELECT count(*) FROM jobs WHERE id IN ({ids}) AND attempts > 1")
        queues = wait_for("the work queues and the DLQ to be empty", 60, lambda: (
            lambda q: q if q and all(int(q.get(name, {}).get("messages", 1)) == 0 for name in EMPTY_AT_END) else None
        )(quorum_queues(survivor)), every=1) if not problems else {}
        say(f"jobs: {len(jobs)} accepted, {succeeded} succeeded, lost = {lost}, applied twice = {applied_twice}, "
            f"run more than once (redelivered, exactly-once effect kept) = {rerun}")
        for what, took, slowest in results:
            say(f"  {what}: time to recover {took:.1f} s; the slowest job created during the fault "
                f"took {slowest:.1f} s from creation to success")
        if queues:
            say("work queues and DLQ empty at the end")
        if problems:
            for p in problems:
                say(f"FAIL: {p}")
            return 1
        say("PASS: a 3-node RabbitMQ cluster lost its work queue's leader (stopped) and a node "
            "(cut off the network); 0 lost, 0 applied twice")
        return 0
    finally:
        procs.stop()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as e:
        say(f"FAIL: {e}")
        sys.exit(1)
