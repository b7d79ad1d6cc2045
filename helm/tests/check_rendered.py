#!/usr/bin/env python3
"""Asserts on the chart as rendered (YAML on stdin): what Kubernetes will actually run.

Every Deployment has startup, readiness and liveness probes, requests and limits, a non-root,
read-only security context and a zero-downtime rolling update; every HPA targets a Deployment
of the chart; every PDB selects that Deployment's pods; nothing runs as root.
Usage: helm template rm helm/reserve-mesh [-f values.yaml] | check_rendered.py [--product-hpa]
"""
import json
import pathlib
import sys

import yaml

DASHBOARDS = pathlib.Path(__file__).resolve().parent.parent / "reserve-mesh" / "dashboards"

checks = {"passed": 0, "failed": 0}


def check(condition, what):
    if condition:
        checks["passed"] += 1
    else:
        checks["failed"] += 1
        print(f"FAIL: {what}")


def containers(pod_spec):
    return pod_spec.get("containers", []) + pod_spec.get("initContainers", [])


def runs_as_root(pod_spec, container):
    pod = pod_spec.get("securityContext") or {}
    own = container.get("securityContext") or {}
    user = own.get("runAsUser", pod.get("runAsUser"))
    non_root = own.get("runAsNonRoot", pod.get("runAsNonRoot"))
    return user == 0 or (user is None and not non_root)


def check_observability(by_kind, deployments):
    """Every pod exposes /metrics on the port its annotations announce, the services read that
    address, and every dashboard file ships as a ConfigMap Grafana's sidecar picks up."""
    config = next((c for c in by_kind.get("ConfigMap", []) if c["metadata"]["name"].endswith("-config")), None)
    check(config is not None, "the services' ConfigMap is rendered")
    data = (config or {}).get("data", {})
    metrics_addr = data.get("METRICS_ADDR", "")
    check(metrics_addr.startswith("0.0.0.0:"), f"METRICS_ADDR listens on all interfaces ({metrics_addr!r})")
    check(data.get("LOG_FORMAT") in ("json", "text"), "LOG_FORMAT is set")
    check("OTEL_TRACES_SAMPLER" in data, "OTEL_TRACES_SAMPLER is set")
    port = metrics_addr.rpartition(":")[2]
    for name, deployment in deployments.items():
        template = deployment["spec"]["template"]
        annotations = template["metadata"].get("annotations", {})
        check(annotations.get("prometheus.io/scrape") == "true", f"{name}: scraped by Prometheus")
        check(annotations.get("prometheus.io/port") == port, f"{name}: scrape port is METRICS_ADDR's")
        ports = [p for c in template["spec"]["containers"] for p in c.get("ports", []) if p.get("name") == "metrics"]
        check([str(p["containerPort"]) for p in ports] == [port], f"{name}: a metrics container port {port}")

    shipped = sorted(path.name for path in DASHBOARDS.glob("*.json"))
    maps = {}
    for config_map in by_kind.get("ConfigMap", []):
        if config_map["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            maps.update(config_map.get("data", {}))
    check(sorted(maps) == shipped, f"every dashboard ships as a labelled ConfigMap: {sorted(maps)} vs {shipped}")
    for file, text in maps.items():
        try:
            dashboard = json.loads(text)
        except ValueError as err:
            check(False, f"{file}: rendered JSON parses ({err})")
            continue
        check(bool(dashboard.get("uid")) and bool(dashboard.get("panels")), f"{file}: a dashboard with panels")


def check_webhook_credentials(by_kind, deployments):
    """The notice webhook's URL (a messenger's token) and signing secret are never in a
    ConfigMap: notice-svc reads both from a Secret, or the log sink is used."""
    for config in by_kind.get("ConfigMap", []):
        data = config.get("data") or {}
        check("NOTICE_WEBHOOK_URL" not in data and "NOTICE_WEBHOOK_SECRET" not in data,
              f"ConfigMap {config['metadata']['name']} holds no webhook credential")
    notice = next((d for n, d in deployments.items() if n.endswith("-notice")), None)
    if notice is None:
        return
    env = {e["name"]: e for c in notice["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
    if "NOTICE_WEBHOOK_URL" in env:
        for name in ("NOTICE_WEBHOOK_URL", "NOTICE_WEBHOOK_SECRET"):
            ref = env.get(name, {}).get("valueFrom", {}).get("secretKeyRef")
            check(ref is not None, f"notice: {name} comes from a Secret")
            secret = next((s for s in by_kind.get("Secret", [])
                           if ref and s["metadata"]["name"] == ref["name"]), None)
            check(secret is not None and ref["key"] in (secret.get("stringData") or {}),
                  f"notice: {name}'s Secret key is rendered")


def main():
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    check(len(deployments) == 6, f"six Deployments, got {sorted(deployments)}")

    for name, deployment in deployments.items():
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        strategy = spec.get("strategy", {})
        check(strategy.get("rollingUpdate", {}).get("maxUnavailable") == 0,
              f"{name}: rolling update with maxUnavailable 0")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                check(probe in container, f"{where}: has a {probe}")
            resources = container.get("resources", {})
            check(bool(resources.get("requests")) and bool(resources.get("limits")),
                  f"{where}: requests and limits")
            security = container.get("securityContext") or {}
            check(security.get("readOnlyRootFilesystem") is True, f"{where}: read-only root fs")
            check(security.get("allowPrivilegeEscalation") is False, f"{where}: no privilege escalation")
            check("ALL" in security.get("capabilities", {}).get("drop", []), f"{where}: drops all capabilities")
            pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            check(0 < pre_stop < grace, f"{where}: preStop pause shorter than the grace period")

    for kind, items in by_kind.items():
        for doc in items:
            spec = doc.get("spec", {})
            pod = spec.get("template", {}).get("spec") if kind in ("Deployment", "Job") else None
            if pod is None:
                continue
            for container in containers(pod):
                check(not runs_as_root(pod, container),
                      f"{kind} {doc['metadata']['name']}/{container['name']}: not root")

    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        target = hpa["spec"]["scaleTargetRef"]
        check(target["kind"] == "Deployment" and target["name"] in deployments,
              f"HPA {hpa['metadata']['name']} targets an existing Deployment ({target['name']})")

    for pdb in by_kind.get("PodDisruptionBudget", []):
        selector = pdb["spec"]["selector"]["matchLabels"]
        selected = [
            name for name, d in deployments.items()
            if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())
        ]
        check(len(selected) == 1, f"PDB {pdb['metadata']['name']} selects one Deployment's pods, got {selected}")

    check_observability(by_kind, deployments)
    check_webhook_credentials(by_kind, deployments)

    if "--product-hpa" in sys.argv:
        product = [h for h in by_kind.get("HorizontalPodAutoscaler", [])
                   if h["spec"]["scaleTargetRef"]["name"].endswith("-product")]
        check(len(product) == 1, "product-svc has an HPA by default")
        if product:
            spec = product[0]["spec"]
            cpu = spec["metrics"][0]["resource"]["target"]["averageUtilization"]
            check((spec["minReplicas"], spec["maxReplicas"], cpu) == (1, 10, 15),
                  "product-svc HPA: 1-10 replicas at 15% CPU, as the original")

    print(f"chart: {checks['passed']} passed, {checks['failed']} failed")
    return 1 if checks["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
