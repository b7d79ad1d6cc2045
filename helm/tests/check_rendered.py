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


def selects(selector, deployment):
    """Whether a label selector picks `deployment`'s pods."""
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def peers_of(rule, deployments):
    """The Deployments a rule's `from`/`to` pod selectors pick; None when it names no pods
    (anyone, or addresses outside the mesh)."""
    peers = rule.get("from", rule.get("to"))
    if not peers:
        return None
    picked = set()
    for peer in peers:
        if "podSelector" in peer and "namespaceSelector" not in peer:
            picked |= {n.rsplit("-", 1)[1] for n, d in deployments.items() if selects(peer["podSelector"], d)}
        else:
            return None
    return picked


def check_network_policies(by_kind, deployments):
    """One NetworkPolicy per component, both directions, allowing exactly the mesh's flows:
    the gateway reaches the services' public ports and nothing internal; only reservation-svc
    reaches product-svc's internal port; the gateway touches neither NATS nor a database."""
    policies = by_kind.get("NetworkPolicy", [])
    check(len(policies) == len(deployments), f"one NetworkPolicy per component, got {len(policies)}")
    ports = {}
    for name, deployment in deployments.items():
        component = name.rsplit("-", 1)[1]
        ports[component] = {p["name"]: p["containerPort"]
                            for c in deployment["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    for policy in policies:
        spec = policy["spec"]
        owners = [n for n, d in deployments.items() if selects(spec["podSelector"], d)]
        check(len(owners) == 1, f"NetworkPolicy {policy['metadata']['name']} selects one component: {owners}")
        if len(owners) != 1:
            continue
        component = owners[0].rsplit("-", 1)[1]
        check(sorted(spec.get("policyTypes", [])) == ["Egress", "Ingress"], f"{component}: ingress and egress are restricted")
        mine = ports[component]
        for rule in spec.get("ingress", []):
            rule_ports = {p["port"] for p in rule.get("ports", [])}
            check(bool(rule_ports), f"{component}: every ingress rule names its ports")
            check(rule_ports <= set(mine.values()), f"{component}: ingress only to ports it serves ({rule_ports})")
            callers = peers_of(rule, deployments)
            if mine.get("grpc-internal") in rule_ports:
                check(callers == {"reservation"}, f"{component}: only reservation-svc reaches the internal port ({callers})")
            if component != "gateway" and mine.get("grpc") in rule_ports:
                check(callers == {"gateway"}, f"{component}: only the gateway reaches the public gRPC port ({callers})")
        egress_ports = {p["port"] for rule in spec.get("egress", []) for p in rule.get("ports", [])}
        check(53 in egress_ports, f"{component}: DNS")
        if component == "gateway":
            upstream = {ports[c]["grpc"] for c in ports if c != "gateway"}
            check(upstream <= egress_ports, f"gateway: reaches every public gRPC port")
            internal = {p.get("grpc-internal") for p in ports.values()} - {None}
            check(not (internal & egress_ports), "gateway: never reaches an internal port")
            check(not ({4222, 5432} & egress_ports), "gateway: neither NATS nor a database")
        else:
            check({4222, 5432} <= egress_ports, f"{component}: NATS and its database")
        reaches_internal = any(
            peers_of(rule, deployments) == {"product"} and ports["product"].get("grpc-internal") in {p["port"] for p in rule.get("ports", [])}
            for rule in spec.get("egress", []))
        check(reaches_internal == (component == "reservation"), f"{component}: reaches the lock only if reservation-svc")


def check_rollouts(deployments):
    """Pods roll when anything they read changes, and the gateway is ready only with its
    upstreams."""
    for name, deployment in deployments.items():
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        check(len(annotations.get("checksum/config", "")) == 64, f"{name}: a checksum of its ConfigMap")
        check(len(annotations.get("checksum/secrets", "")) == 64, f"{name}: a checksum of its Secrets")
    gateway = next((d for n, d in deployments.items() if n.endswith("-gateway")), None)
    if gateway:
        container = gateway["spec"]["template"]["spec"]["containers"][0]
        check(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "gateway: readiness is /readyz")
        check(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "gateway: liveness is /healthz")


def check_identity(by_kind):
    """The services verify tokens: jwt mode names the issuer and a key source, dev mode is
    never rendered unless asked for (checked by check-chart)."""
    config = next((c for c in by_kind.get("ConfigMap", []) if c["metadata"]["name"].endswith("-config")), {})
    data = config.get("data", {})
    check(data.get("AUTH_MODE") == "jwt", f"AUTH_MODE is jwt ({data.get('AUTH_MODE')!r})")
    check(bool(data.get("AUTH_ISSUER")), "AUTH_ISSUER is set")
    check(bool(data.get("AUTH_JWKS_URL") or data.get("AUTH_JWKS_FILE")), "a JWKS source is set")
    check(data.get("PRODUCT_INTERNAL_URL", "").endswith(":7081"), "reservation-svc locks through the internal port")


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
    check_network_policies(by_kind, deployments)
    check_identity(by_kind)
    check_rollouts(deployments)

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
