#!/usr/bin/env python3
"""deploy/validate.sh's checks that a generic schema cannot make.

    validate_deploy.py k8s DIR          every manifest in DIR/*.yaml
    validate_deploy.py compose FILE     burrow's rules for compose.yaml
    validate_deploy.py dockerfile FILE  burrow's rules for the Dockerfile

`k8s` validates each built-in resource with the JSON schemas that the PyPI package
kubernetes-validate ships (strict: unknown fields are errors), against the oldest and the newest
Kubernetes version in K8S_VERSIONS; a kind with no shipped schema is an error, not a warning,
except KEDA's ScaledObject and TriggerAuthentication, which are checked against the schemas
written for burrow in deploy/schemas/. Then it cross-checks the manifests against each other
(names, Secret keys, the drain timeout against the grace period, the queue name, probes).

Each check prints one line; any failure prints `FAIL` and the command exits 1. Runs in the venv
that validate.sh builds (PyYAML, jsonschema, kubernetes-validate).
"""
import json
import pathlib
import re
import sys

import jsonschema
import kubernetes_validate
import yaml

# The oldest Kubernetes the manifests must apply to, and the newest the package knows.
K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())
SCHEMAS = pathlib.Path(__file__).resolve().parent / "schemas"
KEDA_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.schema.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication.schema.json",
}
# Seconds between the end of the worker's drain timeout and the SIGKILL, at least.
GRACE_MARGIN_SECS = 10
WORKER_HEALTH_PORT = 9090
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|make|cmake|build-essential|cargo|rustc|rustup|pkg-config|libssl-dev)\b"
)


class Report:
    """Collects check results; `ok` and `fail` print one line each."""

    def __init__(self):
        self.failures = 0

    def ok(self, where, what):
        print(f"  ok    {where}: {what}")

    def fail(self, where, what):
        self.failures += 1
        print(f"  FAIL  {where}: {what}")

    def check(self, condition, where, what, why=""):
        if condition:
            self.ok(where, what)
        else:
            self.fail(where, what + (f" ({why})" if why else ""))
        return condition


# --- Kubernetes ---------------------------------------------------------------------------


def load_manifests(directory, report):
    """(file, resource) for every YAML document under `directory`."""
    files = sorted(pathlib.Path(directory).glob("*.yaml"))
    if not files:
        report.fail(directory, "no *.yaml manifests found")
    resources = []
    for path in files:
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except yaml.YAMLError as err:
            report.fail(path.name, f"not valid YAML: {err}")
            continue
        for doc in docs:
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                report.fail(path.name, "a document without apiVersion/kind")
                continue
            resources.append((path.name, doc))
    return resources


def name_of(resource):
    return f"{resource['kind']}/{resource.get('metadata', {}).get('name', '?')}"


def validate_schemas(resources, report):
    for file, resource in resources:
        where = f"{file} {name_of(resource)}"
        keda = KEDA_SCHEMAS.get((resource["apiVersion"], resource["kind"]))
        if keda:
            schema = json.loads((SCHEMAS / keda).read_text())
            validator = jsonschema.Draft202012Validator(schema)
            errors = sorted(validator.iter_errors(resource), key=lambda e: list(e.path))
            if errors:
                for err in errors:
                    path = ".".join(str(p) for p in err.absolute_path) or "(root)"
                    report.fail(where, f"deploy/schemas/{keda}: {path}: {err.message}")
            else:
                report.ok(where, f"valid against deploy/schemas/{keda} (burrow's KEDA schema)")
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
                report.ok(where, f"valid against Kubernetes {version} (strict)")
            except kubernetes_validate.ValidationError as err:
                path = ".".join(str(p) for p in err.path) or "(root)"
                report.fail(where, f"Kubernetes {version}: {path}: {err.message}")
            except kubernetes_validate.SchemaNotFoundError as err:
                report.fail(where, f"no schema to check it against: {err.message}")


def containers(resource):
    spec = resource.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
    if not template:
        return [], {}
    pod = template.get("spec", {})
    return pod.get("containers", []), pod


def env_value(container, name):
    for var in container.get("env", []):
        if var.get("name") == name:
            return var.get("value")
    return None


def cross_check(resources, report):
    by_kind = {}
    for _, resource in resources:
        by_kind.setdefault(resource["kind"], {})[resource["metadata"]["name"]] = resource
    configmaps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    deployments = by_kind.get("Deployment", {})
    secret_keys = {
        name: set(s.get("stringData", {})) | set(s.get("data", {})) for name, s in secrets.items()
    }

    # References from pods to ConfigMaps and Secret keys.
    for kind in ("Deployment", "Job"):
        for name, resource in by_kind.get(kind, {}).items():
            where = f"{kind}/{name}"
            conts, pod = containers(resource)
            for cont in conts:
                for ref in cont.get("envFrom", []):
                    if "configMapRef" in ref:
                        cm = ref["configMapRef"]["name"]
                        report.check(cm in configmaps, where, f"envFrom ConfigMap {cm} exists")
                    if "secretRef" in ref:
                        sec = ref["secretRef"]["name"]
                        report.check(sec in secrets, where, f"envFrom Secret {sec} exists")
                for var in cont.get("env", []):
                    ref = var.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        report.check(
                            ref["key"] in secret_keys.get(ref["name"], set()),
                            where,
                            f"env {var['name']} from Secret {ref['name']} key {ref['key']} exists",
                        )
                report.check(
                    pod.get("securityContext", {}).get("runAsNonRoot") is True
                    or cont.get("securityContext", {}).get("runAsNonRoot") is True,
                    where,
                    f"container {cont['name']} runs as non-root",
                )
                report.check(
                    "resources" in cont and "requests" in cont["resources"],
                    where,
                    f"container {cont['name']} has resource requests",
                )
            if kind == "Deployment":
                selector = resource["spec"]["selector"].get("matchLabels", {})
                labels = resource["spec"]["template"]["metadata"].get("labels", {})
                report.check(
                    all(labels.get(k) == v for k, v in selector.items()),
                    where,
                    "selector matches the pod template's labels",
                )

    # The worker: drain timeout < grace period, probes on the worker's health port.
    settings = {}
    for cm in configmaps.values():
        settings.update(cm.get("data", {}))
    drain = int(settings.get("WORKER_DRAIN_TIMEOUT_SECS", "30"))
    report.check("burrow-worker" in deployments, "Deployment/burrow-worker", "exists")
    workers = {n: d for n, d in deployments.items() if n.startswith("burrow-worker")}
    for worker_name, worker in workers.items():
        where_worker = f"Deployment/{worker_name}"
        conts, pod = containers(worker)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        report.check(
            grace >= drain + GRACE_MARGIN_SECS,
            where_worker,
            f"terminationGracePeriodSeconds {grace} >= WORKER_DRAIN_TIMEOUT_SECS {drain} "
            f"+ {GRACE_MARGIN_SECS}",
        )
        cont = conts[0] if conts else {}
        addr = env_value(cont, "WORKER_HTTP_ADDR") or ""
        report.check(
            addr == f"0.0.0.0:{WORKER_HEALTH_PORT}",
            where_worker,
            f"WORKER_HTTP_ADDR is 0.0.0.0:{WORKER_HEALTH_PORT} (reachable by the kubelet)",
            f"found {addr!r}",
        )
        ports = {p.get("name"): p["containerPort"] for p in cont.get("ports", [])}
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = cont.get(probe, {}).get("httpGet", {})
            port = ports.get(get.get("port"), get.get("port"))
            report.check(
                get.get("path") == path and port == WORKER_HEALTH_PORT,
                where_worker,
                f"{probe} is GET {path} on port {WORKER_HEALTH_PORT}",
                f"found {get.get('path')} on {port}",
            )
        live = cont.get("livenessProbe", {})
        window = live.get("periodSeconds", 10) * live.get("failureThreshold", 3)
        report.check(
            window >= grace,
            where_worker,
            f"livenessProbe needs {window} s of failures to restart, >= the {grace} s grace "
            "period (a drain is never cut short)",
        )
        report.check(
            "replicas" not in worker["spec"],
            where_worker,
            "sets no replicas (the ScaledObject owns the count)",
        )

    # KEDA: target, queue, and the Secret behind the TriggerAuthentication.
    auths = by_kind.get("TriggerAuthentication", {})
    prefix = settings.get("BURROW_QUEUE_PREFIX", "burrow")
    scaled = by_kind.get("ScaledObject", {})
    report.check(bool(scaled), "keda", "a ScaledObject is defined")
    for name, so in scaled.items():
        where = f"ScaledObject/{name}"
        spec = so["spec"]
        target = spec["scaleTargetRef"]
        report.check(
            target.get("kind", "Deployment") == "Deployment" and target["name"] in deployments,
            where,
            f"scaleTargetRef names the Deployment {target['name']}",
        )
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        report.check(low <= high, where, f"minReplicaCount {low} <= maxReplicaCount {high}")
        report.check(
            low >= 1,
            where,
            "minReplicaCount >= 1 (the sweeper and recurring jobs run in workers)",
        )
        # Jobs wait in two work queues (normal and high priority) per queue the target
        # consumes (WORKER_QUEUES; unset: the default queue): each needs a trigger.
        work_queues = []
        target_conts, _ = containers(deployments.get(target["name"], {"spec": {}}))
        consumed = env_value(target_conts[0], "WORKER_QUEUES") if target_conts else None
        for queue in (consumed or "default").split(","):
            queue = queue.strip()
            base = f"{prefix}.jobs.work" if queue == "default" else f"{prefix}.jobs.q.{queue}"
            work_queues += [base, f"{base}.high"]
        read = []
        for trigger in spec["triggers"]:
            meta = trigger["metadata"]
            if trigger["type"] == "rabbitmq":
                read.append(meta.get("queueName"))
                report.check(
                    meta.get("queueName") in work_queues,
                    where,
                    f"rabbitmq trigger reads a work queue ({' or '.join(work_queues)})",
                    f"found {meta.get('queueName')!r}",
                )
            ref = trigger.get("authenticationRef", {}).get("name")
            if ref:
                auth = auths.get(ref)
                if report.check(auth is not None, where, f"TriggerAuthentication {ref} exists"):
                    for st in auth["spec"].get("secretTargetRef", []):
                        report.check(
                            st["key"] in secret_keys.get(st["name"], set()),
                            f"TriggerAuthentication/{ref}",
                            f"parameter {st['parameter']} from Secret {st['name']} "
                            f"key {st['key']} exists",
                        )
        missing = [queue for queue in work_queues if queue not in read]
        report.check(
            not missing,
            where,
            "a rabbitmq trigger for each work queue (a backlog in either one scales the workers)",
            f"none for {', '.join(missing)}",
        )


def check_k8s(directory):
    report = Report()
    resources = load_manifests(directory, report)
    print(f"Kubernetes manifests in {directory}: schemas (kubernetes-validate "
          f"{kubernetes_validate.__version__}, Kubernetes {' and '.join(K8S_VERSIONS)})")
    validate_schemas(resources, report)
    print("Kubernetes manifests: cross-checks")
    if resources:
        try:
            cross_check(resources, report)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            # A malformed manifest (already reported by its schema) can break a cross-check.
            report.fail("cross-checks", f"stopped on a malformed manifest: {err!r}")
    return report.failures


# --- Compose ------------------------------------------------------------------------------


def duration_secs(text):
    """Compose durations: `45s`, `1m30s`, `1h`, or a bare number of seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?", str(text))
    if not parts or not any(parts.groups()):
        raise ValueError(f"not a duration: {text!r}")
    h, m, s, ms = (int(g or 0) for g in parts.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def check_compose(file):
    report = Report()
    path = pathlib.Path(file)
    print(f"Compose rules for {file}")
    compose = yaml.safe_load(path.read_text())
    services = compose.get("services", {})
    for name in ("rabbitmq", "postgres", "migrate", "api", "worker"):
        report.check(name in services, path.name, f"service {name} is defined")
    if report.failures:
        return report.failures
    worker, api, migrate = services["worker"], services["api"], services["migrate"]

    env = {k: str(v) for k, v in (worker.get("environment") or {}).items()}
    drain = int(env.get("WORKER_DRAIN_TIMEOUT_SECS", "30"))
    try:
        grace = duration_secs(worker.get("stop_grace_period", "10s"))
        report.check(
            grace >= drain + GRACE_MARGIN_SECS,
            "worker",
            f"stop_grace_period {grace:g}s >= WORKER_DRAIN_TIMEOUT_SECS {drain}s "
            f"+ {GRACE_MARGIN_SECS}s",
        )
    except ValueError as err:
        report.fail("worker", str(err))
    report.check(
        "ports" not in worker and "container_name" not in worker,
        "worker",
        "publishes no host port and has no container_name (so --scale worker=N works)",
    )
    report.check(
        env.get("WORKER_HTTP_ADDR") == f"0.0.0.0:{WORKER_HEALTH_PORT}",
        "worker",
        f"WORKER_HTTP_ADDR is 0.0.0.0:{WORKER_HEALTH_PORT}",
    )
    for var in ("WORKER_CONCURRENCY", "WORKER_PREFETCH", "WORKER_DRAIN_TIMEOUT_SECS"):
        report.check(var in env, "worker", f"sets {var}")
    api_env = {k: str(v) for k, v in (api.get("environment") or {}).items()}
    report.check(api_env.get("BIND_ADDR") == "0.0.0.0:8080", "api", "BIND_ADDR is 0.0.0.0:8080")
    for name, svc, needed in (
        ("api", api, ("DATABASE_URL", "AMQP_URL")),
        ("worker", worker, ("DATABASE_URL", "AMQP_URL")),
        ("migrate", migrate, ("DATABASE_URL",)),
    ):
        svc_env = svc.get("environment") or {}
        for var in needed:
            report.check(var in svc_env, name, f"sets {var}")
    report.check(migrate.get("command") == ["migrate"], "migrate", "runs `burrow-api migrate`")
    report.check(str(migrate.get("restart", "no")) == "no", "migrate", "is one-shot (restart: no)")
    for name, svc in (("api", api), ("worker", worker)):
        deps = svc.get("depends_on") or {}
        report.check(
            isinstance(deps, dict)
            and deps.get("migrate", {}).get("condition") == "service_completed_successfully",
            name,
            "starts only after migrate completed successfully",
        )
        for dep, cond in deps.items() if isinstance(deps, dict) else []:
            if cond.get("condition") == "service_healthy":
                report.check("healthcheck" in services[dep], name,
                             f"waits for {dep} healthy, and {dep} has a healthcheck")
        report.check("healthcheck" in svc, name, "has a healthcheck")
        report.check(svc.get("restart") in ("unless-stopped", "always", "on-failure"), name,
                     f"has a restart policy ({svc.get('restart')})")
        build = svc.get("build") or {}
        dockerfile = path.parent / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        report.check(dockerfile.is_file(), name, f"builds from {build.get('dockerfile')}, "
                     "which exists")
        if dockerfile.is_file():
            stages = [s.name for s in parse_dockerfile(dockerfile.read_text())]
            report.check(build.get("target") in stages, name,
                         f"build target {build.get('target')!r} is a Dockerfile stage")
    for svc in services.values():
        for volume in svc.get("volumes") or []:
            source = str(volume).split(":")[0]
            if source.startswith("."):
                report.check((path.parent / source).exists(), "volumes", f"{source} exists")
    return report.failures


# --- Dockerfile ---------------------------------------------------------------------------


class Stage:
    def __init__(self, base, name):
        self.base, self.name, self.instructions = base, name, []


def parse_dockerfile(text):
    """Stages with their (INSTRUCTION, arguments) lists; continuations joined, comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    stages, global_args = [], {}
    for line in lines:
        word, _, args = line.partition(" ")
        word = word.upper()
        if word == "ARG" and not stages:
            name, _, default = args.strip().partition("=")
            global_args[name] = default.strip('"')
        elif word == "FROM":
            # Global ARGs (before the first FROM) may be used in FROM lines: use their defaults.
            args = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), args)
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.I)
            stages.append(Stage(m.group(1), (m.group(2) or "").lower() or None))
        elif stages:
            stages[-1].instructions.append((word, args.strip()))
    return stages


def chain(stages, stage):
    """The stage and the stages it is built FROM, nearest first."""
    by_name = {s.name: s for s in stages if s.name}
    out = [stage]
    while stage.base.lower() in by_name:
        stage = by_name[stage.base.lower()]
        out.append(stage)
    return out


def check_dockerfile(file):
    report = Report()
    path = pathlib.Path(file)
    print(f"Dockerfile rules for {file}")
    stages = parse_dockerfile(path.read_text())
    names = [s.name for s in stages]
    file = path.name
    every = [(s, i) for s in stages for i in s.instructions]
    report.check(
        any(w == "RUN" and "cargo chef prepare" in a for _, (w, a) in every)
        and any(w == "RUN" and "cargo chef cook" in a for _, (w, a) in every),
        file,
        "caches dependencies with cargo-chef (prepare + cook)",
    )
    report.check(
        not any(w == "ADD" and re.search(r"https?://", a) for _, (w, a) in every),
        file,
        "no ADD of a URL",
    )
    for target in ("api", "worker"):
        if not report.check(target in names, file, f"has a `{target}` target"):
            continue
        stage = stages[names.index(target)]
        line = chain(stages, stage)
        users = [a for s in line for w, a in s.instructions if w == "USER"]
        user = users[0] if users else "root"
        report.check(
            user.split(":")[0] not in ("root", "0"),
            target,
            f"runs as a non-root USER ({user})",
        )
        report.check(
            any(w == "HEALTHCHECK" and a.upper() != "NONE" for s in line for w, a in s.instructions),
            target,
            "has a HEALTHCHECK",
        )
        report.check(
            any(w == "ENTRYPOINT" for s in line for w, a in s.instructions),
            target,
            "has an ENTRYPOINT",
        )
        base = line[-1].base
        report.check(
            re.match(r"(docker\.io/(library/)?)?debian:[\w.${}-]*slim", base) is not None
            or base.startswith("gcr.io/distroless/cc"),
            target,
            f"runtime base is debian slim or distroless/cc ({base})",
        )
        installs = " ".join(a for s in line for w, a in s.instructions if w == "RUN")
        tools = sorted(set(BUILD_TOOLS.findall(installs)))
        report.check(not tools, target, "installs no build tools", f"found {', '.join(tools)}")
    ignore = path.with_name(path.name + ".dockerignore")
    if report.check(ignore.is_file(), file, f"{ignore.name} exists beside it"):
        patterns = [l.strip() for l in ignore.read_text().splitlines()
                    if l.strip() and not l.startswith("#")]
        report.check(any(p.rstrip("/").endswith("target") for p in patterns)
                     and ".git" in patterns, ignore.name, "keeps target/ and .git out of the context")
        needed = ("crates", "migrations", "fixtures", "Cargo.toml", "Cargo.lock")
        report.check(not any(p in needed for p in patterns), ignore.name,
                     "keeps crates/, migrations/, fixtures/ and the manifests in the context")
    return report.failures


def main(argv):
    commands = {"k8s": check_k8s, "compose": check_compose, "dockerfile": check_dockerfile}
    if len(argv) != 3 or argv[1] not in commands:
        sys.exit(__doc__)
    failures = commands[argv[1]](argv[2])
    if failures:
        print(f"{failures} check(s) FAILED in {argv[2]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
