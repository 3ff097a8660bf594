#!/usr/bin/env python3
"""The demo's client: waits for the api, calls POST /api/simulate, prints the jobs table each
time it changes until every job has ended, then the number of imported rows.

Exits 1 unless all five jobs succeeded with 1000 rows in total. Standard library only.
"""
import json
import sys
import time
import urllib.error
import urllib.request

EXPECTED_JOBS = 5
EXPECTED_ROWS = 1000
DEADLINE_SECONDS = 120


def call(method, url):
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def wait_ready(base):
    deadline = time.monotonic() + 60
    while True:
        try:
            if call("GET", base + "/readyz").get("status") == "ready":
                return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            sys.exit("the api did not become ready (see target/demo/api.log)")
        time.sleep(0.2)


def table(jobs, elapsed):
    lines = [f"[{elapsed:6.2f}s] {'file':<18} {'status':<11} {'attempts':>8}  {'worker':<14} {'rows':>5}  message"]
    for job in jobs:
        rows = job["rows_imported"] if job["rows_imported"] is not None else "-"
        lines.append(
            f"{'':10}{job['file_name']:<18} {job['status']:<11} {job['attempts']:>8}  "
            f"{job['worker'] or '-':<14} {rows:>5}  {job['message'] or ''}"
        )
    return "\n".join(lines)


def main():
    base = sys.argv[1].rstrip("/")
    wait_ready(base)
    started = time.monotonic()
    ids = [job["id"] for job in call("POST", base + "/api/simulate")["jobs"]]
    print(f"POST /api/simulate -> 202 Accepted, {len(ids)} jobs queued\n")

    last = None
    while True:
        jobs = [call("GET", f"{base}/api/jobs/{job_id}") for job_id in ids]
        snapshot = [(j["status"], j["worker"], j["rows_imported"]) for j in jobs]
        if snapshot != last:
            print(table(jobs, time.monotonic() - started), end="\n\n", flush=True)
            last = snapshot
        if all(j["status"] in ("succeeded", "failed") for j in jobs):
            break
        if time.monotonic() - started > DEADLINE_SECONDS:
            sys.exit("jobs did not end in time (see target/demo/*.log)")
        time.sleep(0.1)

    succeeded = sum(j["status"] == "succeeded" for j in jobs)
    rows = sum(j["rows_imported"] or 0 for j in jobs)
    print(f"{succeeded} of {len(jobs)} jobs succeeded; {rows} rows imported")
    if succeeded != EXPECTED_JOBS or rows != EXPECTED_ROWS:
        sys.exit(f"expected {EXPECTED_JOBS} succeeded jobs and {EXPECTED_ROWS} rows")


if __name__ == "__main__":
    main()
