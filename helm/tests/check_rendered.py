#!/usr/bin/env python3
"""Asserts on the chart as rendered (YAML on stdin): what Kubernetes will actually run.

Every Deployment has startup, readiness and liveness probes on ports it declares, requests
and limits, a non-root, read-only security context and a zero-downtime rolling update; every
HPA targets a Deployment of the chart and scales with a behavior; PDBs only where a component
runs more than one replica; every Secret and ConfigMap a pod reads is rendered (or named
as the operator's own with --external); the bundled PostgreSQL creates the five databases
and roles; NetworkPolicies allow exactly the mesh's flows; the ServiceMonitor selects the
metrics ports; the PrometheusRule carries files/alerts.yaml; `helm test` has its hook Pod.
Usage: helm template rm helm/reserve-mesh [-f values.yaml] |
       check_rendered.py [--product-hpa] [--bundled] [--external NAME]...
"""
import base64
import json
import pathlib
import sys

import yaml

CHART = pathlib.Path(__file__).resolve().parent.parent / "reserve-mesh"
DASHBOARDS = CHART / "dashboards"
COMPONENTS = {"product", "reservation", "payment", "mypage", "notice", "gateway"}
DATABASES = COMPONENTS - {"gateway"}

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
    stores = len(by_kind.get("StatefulSet", []))
    check(len(policies) == len(deployments) + stores, f"one NetworkPolicy per component and store, got {len(policies)}")
    policies = [p for p in policies if any(selects(p["spec"]["podSelector"], d) for d in deployments.values())]
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


def check_identity(by_kind, deployments):
    """The services verify tokens: jwt mode names the issuer and a key source (the bundled
    issuer's JWKS written by an init container that alone mounts the signing key); dev mode
    is never rendered unless asked for (checked by check-chart)."""
    config = next((c for c in by_kind.get("ConfigMap", []) if c["metadata"]["name"].endswith("-config")), {})
    data = config.get("data", {})
    check(data.get("AUTH_MODE") == "jwt", f"AUTH_MODE is jwt ({data.get('AUTH_MODE')!r})")
    check(bool(data.get("AUTH_ISSUER")), "AUTH_ISSUER is set")
    check(bool(data.get("AUTH_JWKS_URL") or data.get("AUTH_JWKS_FILE")), "a JWKS source is set")
    check(data.get("PRODUCT_INTERNAL_URL", "").endswith(":7081"), "reservation-svc locks through the internal port")
    bundled = data.get("AUTH_JWKS_FILE", "").startswith("/var/run/reserve-mesh/jwks/")
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        inits = pod.get("initContainers", [])
        check(bool(inits) == bundled, f"{name}: the issuer-jwks init container exactly with the bundled issuer")
        for container in pod["containers"]:
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            check("issuer-key" not in mounts, f"{name}: the service never mounts the signing key")


def pod_spec_of(doc):
    if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if doc["kind"] == "Pod":
        return doc["spec"]
    return None


def check_references(by_kind, externals):
    """Every Secret and ConfigMap a pod reads (env, envFrom, volumes) is rendered with the key
    it reads, or is one the operator names as theirs (--external)."""
    secrets = {s["metadata"]["name"]: set(s.get("data", {})) | set(s.get("stringData", {}))
               for s in by_kind.get("Secret", [])}
    maps = {c["metadata"]["name"]: set(c.get("data", {})) for c in by_kind.get("ConfigMap", [])}
    for kind, items in by_kind.items():
        for doc in items:
            pod = pod_spec_of(doc)
            if pod is None:
                continue
            where = f"{kind} {doc['metadata']['name']}"
            wanted = []
            for container in containers(pod):
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {})
                    if "secretKeyRef" in ref:
                        wanted.append(("Secret", ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]))
                    if "configMapKeyRef" in ref:
                        wanted.append(("ConfigMap", ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"]))
                for source in container.get("envFrom", []):
                    if "secretRef" in source:
                        wanted.append(("Secret", source["secretRef"]["name"], None))
                    if "configMapRef" in source:
                        wanted.append(("ConfigMap", source["configMapRef"]["name"], None))
            for volume in pod.get("volumes", []):
                if "secret" in volume:
                    keys = [i["key"] for i in volume["secret"].get("items", [])] or [None]
                    wanted += [("Secret", volume["secret"]["secretName"], k) for k in keys]
                if "configMap" in volume:
                    keys = [i["key"] for i in volume["configMap"].get("items", [])] or [None]
                    wanted += [("ConfigMap", volume["configMap"]["name"], k) for k in keys]
            for ref_kind, name, key in wanted:
                if name in externals:
                    continue
                rendered = secrets if ref_kind == "Secret" else maps
                check(name in rendered, f"{where}: reads {ref_kind} {name}, which is rendered")
                if name in rendered and key is not None:
                    check(key in rendered[name], f"{where}: {ref_kind} {name} has the key {key}")


def check_probe_ports(by_kind):
    """Every probe asks a port its container declares."""
    for kind in ("Deployment", "StatefulSet"):
        for doc in by_kind.get(kind, []):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                declared = {p["containerPort"] for p in container.get("ports", [])} | \
                           {p.get("name") for p in container.get("ports", [])}
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    spec = container.get(probe, {})
                    for how in ("httpGet", "grpc", "tcpSocket"):
                        if how in spec:
                            port = spec[how]["port"]
                            check(port in declared, f"{doc['metadata']['name']}/{container['name']}: {probe} port {port} is declared")


def check_pool_budget(by_kind, deployments, hpas):
    """Every pod's pool at the replicas' maxima fits PostgreSQL's connections (the bundled
    server's max_connections, else PostgreSQL's default 100), ten kept for operators."""
    limit = 100
    for store in by_kind.get("StatefulSet", []):
        for arg in store["spec"]["template"]["spec"]["containers"][0].get("args", []):
            if arg.startswith("max_connections="):
                limit = int(arg.split("=", 1)[1])
    total = 0
    for name, deployment in deployments.items():
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        if "DATABASE_URL" not in env:
            continue
        check(env.get("DB_POOL_SIZE") is not None, f"{name}: DB_POOL_SIZE is set")
        most = hpas[name]["spec"]["maxReplicas"] if name in hpas else deployment["spec"]["replicas"]
        total += int(env.get("DB_POOL_SIZE") or 16) * most
        check("PAGE_TOKEN_SECRET" in env, f"{name}: PAGE_TOKEN_SECRET, shared by the replicas")
    check(total <= limit - 10, f"database pools at full scale ({total}) fit max_connections {limit} less 10")


def check_monitoring(by_kind):
    """The ServiceMonitor selects the six components' Services, each with a metrics port; the
    PrometheusRule carries the rule file verbatim."""
    services = by_kind.get("Service", [])
    for monitor in by_kind.get("ServiceMonitor", []):
        selector = monitor["spec"]["selector"]
        def picks(service):
            labels = service["metadata"].get("labels", {})
            if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
                return False
            for expression in selector.get("matchExpressions", []):
                if expression["operator"] == "In" and labels.get(expression["key"]) not in expression["values"]:
                    return False
                if expression["operator"] == "DoesNotExist" and expression["key"] in labels:
                    return False
            return True
        picked = [s for s in services if picks(s)]
        names = {s["metadata"]["labels"]["app.kubernetes.io/name"] for s in picked}
        check(names == COMPONENTS, f"the ServiceMonitor selects the six components' Services ({sorted(names)})")
        endpoint_ports = {e["port"] for e in monitor["spec"]["endpoints"]}
        for service in picked:
            ports = {p["name"] for p in service["spec"]["ports"]}
            check(endpoint_ports <= ports, f"Service {service['metadata']['name']} has the monitored port {endpoint_ports}")
    for rule in by_kind.get("PrometheusRule", []):
        shipped = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
        check(rule["spec"] == shipped, "the PrometheusRule is files/alerts.yaml")


def check_helm_test(by_kind):
    """`helm test` runs one Pod that checks the gateway's /readyz and a reservation."""
    hooks = [p for p in by_kind.get("Pod", []) if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    check(len(hooks) == 1, f"one helm test hook Pod ({len(hooks)})")
    gateway = next((s for s in by_kind.get("Service", [])
                    if s["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "gateway"), None)
    for pod in hooks:
        script = " ".join(" ".join(c.get("args", [])) for c in pod["spec"]["containers"])
        if gateway:
            target = f"http://{gateway['metadata']['name']}:{gateway['spec']['ports'][0]['port']}"
            check(target in script, f"the test calls the gateway Service ({target})")
        for step in ("/readyz", "/reservation", "/reservationupdate"):
            check(step in script, f"the test calls {step}")


def check_bundled_stores(by_kind, deployments):
    """The bundled NATS and PostgreSQL: StatefulSets with volumes; the init script creates the
    five databases, each owned by its own role, none open to PUBLIC; each service's URL names
    its role, password and database on the bundled server; only the services reach them."""
    stores = {s["metadata"]["labels"]["app.kubernetes.io/name"]: s for s in by_kind.get("StatefulSet", [])}
    check(set(stores) == {"nats", "postgresql"}, f"StatefulSets for NATS and PostgreSQL ({sorted(stores)})")
    for name, store in stores.items():
        check(bool(store["spec"].get("volumeClaimTemplates")), f"{name}: keeps its data on a volume")
    init = next((c for c in by_kind.get("ConfigMap", []) if c["metadata"]["name"].endswith("-postgresql-init")), None)
    check(init is not None, "the PostgreSQL init script is rendered")
    script = init["data"]["init-databases.sh"] if init else ""
    listed = next((line.split(" in ", 1)[1].split(";")[0].split() for line in script.splitlines()
                   if line.startswith("for db in ")), [])
    check(set(listed) == DATABASES, f"the init script creates the five databases ({listed})")
    for statement in ('CREATE ROLE :"db" LOGIN PASSWORD', 'CREATE DATABASE :"db" OWNER :"db"',
                      'REVOKE ALL ON DATABASE :"db" FROM PUBLIC'):
        check(statement in script, f"the init script runs {statement}")
    pg_env = {e["name"] for e in stores.get("postgresql", {}).get("spec", {}).get("template", {}).get("spec", {})
              .get("containers", [{}])[0].get("env", [])}
    check({f"{d.upper()}_PASSWORD" for d in DATABASES} <= pg_env, "each role's password reaches the init script")
    generated = next((s for s in by_kind.get("Secret", []) if s["metadata"]["name"].endswith("-generated")), {})
    pg_service = next((s["metadata"]["name"] for s in by_kind.get("Service", [])
                       if s["metadata"]["labels"].get("app.kubernetes.io/name") == "postgresql"), None)
    for database in DATABASES:
        url = base64.b64decode(generated.get("data", {}).get(f"{database}-database-url", "")).decode()
        password = base64.b64decode(generated.get("data", {}).get(f"{database}-password", "")).decode()
        check(bool(password) and url == f"postgres://{database}:{password}@{pg_service}:5432/{database}",
              f"{database}: its URL is its own role on its own database of the bundled server")
    config = next((c for c in by_kind.get("ConfigMap", []) if c["metadata"]["name"].endswith("-config")), {})
    nats_service = next((s["metadata"]["name"] for s in by_kind.get("Service", [])
                         if s["metadata"]["labels"].get("app.kubernetes.io/name") == "nats"), None)
    check(config.get("data", {}).get("NATS_URL") == f"nats://{nats_service}:4222", "the services use the bundled NATS")
    policies = {p["metadata"]["labels"]["app.kubernetes.io/name"]: p for p in by_kind.get("NetworkPolicy", [])}
    for name in ("nats", "postgresql"):
        policy = policies.get(name)
        check(policy is not None, f"{name}: a NetworkPolicy")
        if policy:
            callers = peers_of(policy["spec"]["ingress"][0], deployments)
            check(callers == DATABASES, f"{name}: only the five services reach it ({callers})")
            check(policy["spec"].get("egress") == [], f"{name}: reaches nothing")


def check_balanced_clients(by_kind, deployments):
    """Every gRPC component has a headless Service selecting its pods, and every client URL in
    the services' ConfigMap names one: clients resolve it to every replica and balance calls."""
    headless = {}
    for service in by_kind.get("Service", []):
        spec = service["spec"]
        if spec.get("clusterIP") == "None":
            headless[service["metadata"]["name"]] = service
    for name, deployment in deployments.items():
        if name.endswith("-gateway"):
            continue
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [n for n, svc in headless.items()
                    if all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())]
        check(len(matching) == 1, f"{name}: one headless Service selects its pods ({matching})")
    config = next((c for c in by_kind.get("ConfigMap", []) if c["metadata"]["name"].endswith("-config")), None)
    data = (config or {}).get("data", {})
    urls = ["PRODUCT_INTERNAL_URL", "PRODUCT_SVC_URL", "RESERVATION_SVC_URL", "PAYMENT_SVC_URL",
            "MYPAGE_SVC_URL", "NOTICE_SVC_URL"]
    for key in urls:
        host = data.get(key, "").split("://")[-1].rsplit(":", 1)[0]
        check(host in headless, f"{key} names a headless Service ({data.get(key)!r})")


def main():
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    check(len(deployments) == 6, f"six Deployments, got {sorted(deployments)}")
    externals = {sys.argv[i + 1] for i, arg in enumerate(sys.argv) if arg == "--external"}

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
            pre_stop = container.get("lifecycle", {}).get("preStop", {})
            if "sleep" in pre_stop:
                pause = pre_stop["sleep"].get("seconds", 0)
            else:
                command = pre_stop.get("exec", {}).get("command", [])
                pause = int(command[1]) if command[:1] == ["/bin/sleep"] and len(command) == 2 else 0
            check(0 < pause < grace, f"{where}: preStop pause shorter than the grace period")

    for kind, items in by_kind.items():
        for doc in items:
            spec = doc.get("spec", {})
            pod = pod_spec_of(doc)
            if pod is None:
                continue
            for container in containers(pod):
                check(not runs_as_root(pod, container),
                      f"{kind} {doc['metadata']['name']}/{container['name']}: not root")

    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        target = hpa["spec"]["scaleTargetRef"]
        check(target["kind"] == "Deployment" and target["name"] in deployments,
              f"HPA {hpa['metadata']['name']} targets an existing Deployment ({target['name']})")

    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind.get("HorizontalPodAutoscaler", [])}
    for hpa in hpas.values():
        spec = hpa["spec"]
        cpu = spec["metrics"][0]["resource"]["target"]["averageUtilization"]
        check(cpu >= 50, f"HPA {hpa['metadata']['name']}: a CPU target that means load ({cpu}%)")
        check("scaleDown" in spec.get("behavior", {}), f"HPA {hpa['metadata']['name']}: a scale-down behavior")
    covered = set()
    for pdb in by_kind.get("PodDisruptionBudget", []):
        selector = pdb["spec"]["selector"]["matchLabels"]
        selected = [
            name for name, d in deployments.items()
            if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())
        ]
        check(len(selected) == 1, f"PDB {pdb['metadata']['name']} selects one Deployment's pods, got {selected}")
        check(pdb["spec"].get("minAvailable") == 1, f"PDB {pdb['metadata']['name']}: minAvailable 1")
        covered.update(selected)
    for name, deployment in deployments.items():
        least = hpas[name]["spec"]["minReplicas"] if name in hpas else deployment["spec"]["replicas"]
        most = hpas[name]["spec"]["maxReplicas"] if name in hpas else deployment["spec"]["replicas"]
        check((name in covered) == (least > 1),
              f"{name}: a PDB exactly when it runs more than one replica (min {least})")
        spread = deployment["spec"]["template"]["spec"].get("topologySpreadConstraints")
        check(bool(spread) == (most > 1), f"{name}: spread over nodes exactly when it can run several replicas")

    check_observability(by_kind, deployments)
    check_webhook_credentials(by_kind, deployments)
    check_network_policies(by_kind, deployments)
    check_identity(by_kind, deployments)
    check_rollouts(deployments)
    check_references(by_kind, externals)
    check_probe_ports(by_kind)
    check_pool_budget(by_kind, deployments, hpas)
    check_monitoring(by_kind)
    check_helm_test(by_kind)
    check_balanced_clients(by_kind, deployments)
    if "--bundled" in sys.argv:
        check_bundled_stores(by_kind, deployments)

    if "--product-hpa" in sys.argv:
        product = [h for h in by_kind.get("HorizontalPodAutoscaler", [])
                   if h["spec"]["scaleTargetRef"]["name"].endswith("-product")]
        check(len(product) == 1, "product-svc has an HPA by default")
        if product:
            spec = product[0]["spec"]
            cpu = spec["metrics"][0]["resource"]["target"]["averageUtilization"]
            check((spec["minReplicas"], spec["maxReplicas"], cpu) == (1, 10, 70),
                  "product-svc HPA: 1-10 replicas at 70% of its requested CPU")

    print(f"chart: {checks['passed']} passed, {checks['failed']} failed")
    return 1 if checks["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
