"""deploy/k8s: both overlays rendered with `kubectl kustomize`, every object validated against
Kubernetes' own schemas (strict: an unknown or misspelt field fails), and what the manifests say
checked against the code: the settings each process reads (its real settings loader, fed the
rendered environment), the ports it listens on, the health names it registers, the Services its
`*_ADDR` targets name, the pods' hardening, replicas, disruption budgets, autoscalers and the
NetworkPolicies' flows. No cluster is needed; none is here (what a cluster would add is in the
README: the postgres:15 image's start under these constraints, the probes answered for real)."""

from __future__ import annotations

import base64
import fnmatch
import json
import pathlib
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import kubernetes_validate  # type: ignore[import-untyped]  # no py.typed
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

import gateway.config
import order_svc.app
import order_svc.config
import user_svc.app
from order_svc import user_feed
from shop_common.security import AuthMode
from shop_common.serving import ServiceSettings
from tests.monitoring.support import binary
from tests.support import common_settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.32.0"
"""The schemas every object must satisfy (kubernetes-validate ships them offline): the oldest
release the manifests are for (native gRPC probes are GA since 1.27; the preStop `sleep`
action is on by default since 1.30)."""
MIN_KUBECTL = (1, 27)
"""kustomize 5 (`labels`, `replicas`), built into kubectl since 1.27."""
NAMESPACE = "shop"
IMAGE = "shop:dev"
HARDENED_USER = 10001
PROBES = ("startup", "readiness", "liveness")
SERVING = health_pb2.HealthCheckResponse.SERVING

Obj = dict[str, Any]


@dataclass(frozen=True)
class Process:
    """A process of the image as the code defines it."""

    name: str
    """The image's command (`user_svc`, `order_svc`, `gateway`)."""
    deployment: str
    read_settings: Callable[[Mapping[str, str]], Any]
    served: str | None
    """Its gRPC service's full name (None: the gateway, which serves HTTP)."""


PROCESSES = {
    p.name: p
    for p in (
        Process(
            "user_svc", "user-svc", user_svc.app.PROGRAM.settings, user_svc.app.DESCRIPTOR.full_name
        ),
        Process(
            "order_svc",
            "order-svc",
            order_svc.app.PROGRAM.settings,
            order_svc.app.DESCRIPTOR.full_name,
        ),
        Process("gateway", "gateway", gateway.config.Settings.from_env, None),
    )
}


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not found: the manifests are rendered with `kubectl kustomize`")
    out = subprocess.run(
        [kubectl, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    client = json.loads(out)["clientVersion"]
    version = (int(client["major"]), int(client["minor"].rstrip("+")))
    if version < MIN_KUBECTL:
        pytest.skip(
            f"kubectl {version[0]}.{version[1]} is older than 1.27 (kustomize 5): too old "
            "to render deploy/k8s (Debian's kubernetes-client is 1.20)"
        )
    return kubectl


def render(overlay: str) -> list[Obj]:
    out = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> list[Obj]:
    """Each overlay rendered, once for the module (no test changes it)."""
    return render(str(request.param))


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def workloads(objects: list[Obj]) -> list[Obj]:
    return of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet")


def shop_containers(objects: list[Obj]) -> Iterator[tuple[Obj, Obj, Process]]:
    """(Deployment, container, the process it runs) for each container of the image."""
    for deployment in of_kind(objects, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container["image"] == IMAGE:
                yield deployment, container, PROCESSES[container["args"][0]]


SECRET_PLACEHOLDERS = {
    ("shop-database", "user-svc-url"): "postgresql://user_svc:x@db.example:5432/user_svc",
    ("shop-database", "order-svc-url"): "postgresql://order_svc:x@db.example:5432/order_svc",
    ("shop-page-token", "key"): "ab" * 32,
}
"""What the prod overlay's Secrets (created by hand: secrets.md) hold, for its settings to be
read here."""


def environment(objects: list[Obj], container: Obj) -> dict[str, str]:
    """The container's environment as the kubelet builds it: `envFrom` first, then `env`;
    Secrets the render does not hold (prod's) by their placeholders."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, source
        env.update(named(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        secrets = [s for s in of_kind(objects, "Secret") if s["metadata"]["name"] == ref["name"]]
        if secrets:
            env[var["name"]] = base64.b64decode(secrets[0]["data"][ref["key"]]).decode()
        else:
            env[var["name"]] = SECRET_PLACEHOLDERS[(ref["name"], ref["key"])]
    return env


class ReadingRecorded(Mapping[str, str]):
    """An environment that notes every name the code looks up (`env[name]`, `get`, `in`)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._env[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.read.add(name)
        return name in self._env

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("a settings loader reads names, it does not list the environment")

    def __len__(self) -> int:
        return len(self._env)


def settings_of(objects: list[Obj], container: Obj, process: Process) -> tuple[Any, set[str]]:
    env = ReadingRecorded(environment(objects, container))
    return process.read_settings(env), env.read


def port_of(listen: str) -> int:
    return int(listen.rpartition(":")[2])


# --- rendering and schemas -----------------------------------------------------------------


def test_every_object_is_valid_for_kubernetes_in_strict_mode(objects: list[Obj]) -> None:
    assert objects
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:  # pragma: no cover - the failure
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")


def test_the_validation_refuses_a_misspelt_field() -> None:
    """The schemas are strict: a field Kubernetes does not know (a typo) fails."""
    deployment = named(render("dev"), "Deployment", "user-svc")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["servce"] = ""
    with pytest.raises(kubernetes_validate.ValidationError, match="servce"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_each_process_runs_once_from_the_image(objects: list[Obj]) -> None:
    ran = sorted(process.name for _, _, process in shop_containers(objects))
    assert ran == sorted(PROCESSES)
    for deployment, container, process in shop_containers(objects):
        assert deployment["metadata"]["name"] == process.deployment
        assert container["args"] == [process.name]
        assert "command" not in container, "the image's entrypoint takes the process's name"


# --- what the processes read and serve -----------------------------------------------------


def test_every_variable_set_is_one_the_process_reads_and_accepts(objects: list[Obj]) -> None:
    """The process's own settings loader reads the rendered environment: it accepts every
    value (a ConfigError would stop the pod at start), and reads every name set (a name it
    does not read is a typo, or a setting for another process or mode)."""
    for _, container, process in shop_containers(objects):
        env = environment(objects, container)
        _, read = settings_of(objects, container, process)
        unread = sorted(set(env) - read)
        assert not unread, f"{process.name} never reads {unread}"


def test_container_ports_are_the_ports_the_process_listens_on(objects: list[Obj]) -> None:
    for _, container, process in shop_containers(objects):
        settings, _ = settings_of(objects, container, process)
        listens = [settings.listen, settings.admin_listen]
        if process.served is not None:
            listens.append(settings.health_listen)
        assert all(listens), f"{process.name}: every port on (listen, health, admin)"
        for listen in listens:  # reachable from other pods, not only from the pod itself
            assert listen.rpartition(":")[0] == "0.0.0.0", listen
        declared = sorted(p["containerPort"] for p in container["ports"])
        assert declared == sorted(port_of(listen) for listen in listens), process.name


def registered_health_names(process: Process) -> set[str]:
    """What the process's health service knows: "" and its service (`start_server`), and the
    order service's follower of the user feed (`order_svc.app`)."""
    assert process.served is not None
    names = {"", process.served}
    if process.name == "order_svc":
        names.add(user_feed.HEALTH_NAME)
    return names


def test_the_services_probes_ask_the_health_only_port_for_names_they_register(
    objects: list[Obj],
) -> None:
    """Readiness follows the service's own health name (NOT_SERVING while it drains); liveness
    and the startup probe the process's (""); none follows the user feed, which lags when the
    user service is down, something restarting the order service does not mend."""
    for _, container, process in shop_containers(objects):
        if process.served is None:
            continue
        settings, _ = settings_of(objects, container, process)
        health_port = port_of(settings.health_listen)
        assert health_port not in (port_of(settings.listen), port_of(settings.admin_listen))
        probes = {
            kind: container[f"{kind}Probe"]["grpc"] for kind in ("startup", "readiness", "liveness")
        }
        for kind, probe in probes.items():
            assert probe["port"] == health_port, f"{process.name} {kind}"
            assert probe["service"] in registered_health_names(process), f"{process.name} {kind}"
            if kind != "readiness":
                assert probe["service"] != user_feed.HEALTH_NAME
        assert probes["readiness"]["service"] == process.served
        assert probes["liveness"]["service"] == ""


def test_the_user_feed_name_is_the_one_the_order_service_sets() -> None:
    """The name the probes stay off is the order service's follower's, as the code has it."""
    assert user_feed.HEALTH_NAME.startswith(order_svc.app.DESCRIPTOR.full_name + ".")


def test_the_gateway_is_ready_when_its_backends_are_and_alive_while_it_listens(
    objects: list[Obj],
) -> None:
    (container,) = [c for _, c, p in shop_containers(objects) if p.name == "gateway"]
    settings, _ = settings_of(objects, container, PROCESSES["gateway"])
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": settings.port}
    assert container["livenessProbe"]["tcpSocket"]["port"] == settings.port
    assert container["startupProbe"]["tcpSocket"]["port"] == settings.port


def stop_seconds(objects: list[Obj], container: Obj, process: Process) -> float:
    """How long the process may take after the kubelet begins stopping it: a preStop sleep,
    the drain (the services), the grace for calls in flight."""
    settings, _ = settings_of(objects, container, process)
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    if process.served is None:
        grace: float = settings.grace_seconds
        return float(pre_stop) + grace
    drain: float = settings.common.drain_seconds
    service_grace: float = settings.common.grace_seconds
    return float(pre_stop) + drain + service_grace


def test_the_grace_period_covers_drain_and_grace(objects: list[Obj]) -> None:
    for deployment, container, process in shop_containers(objects):
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > stop_seconds(objects, container, process), process.name


def test_the_services_drain_behind_the_load_balancers(objects: list[Obj]) -> None:
    """A drain long enough for a readiness probe to see NOT_SERVING, and a liveness probe that
    does not restart the pod for the NOT_SERVING the drain reports on purpose."""
    for _, container, process in shop_containers(objects):
        if process.served is None:
            assert container["lifecycle"]["preStop"]["sleep"]["seconds"] >= 5
            continue
        settings, _ = settings_of(objects, container, process)
        drain = settings.common.drain_seconds
        readiness, liveness = container["readinessProbe"], container["livenessProbe"]
        assert drain >= readiness["periodSeconds"] * readiness.get("failureThreshold", 3)
        assert liveness["periodSeconds"] * liveness.get("failureThreshold", 3) > drain


def test_the_startup_probe_gives_migrations_minutes(objects: list[Obj]) -> None:
    for _, container, process in shop_containers(objects):
        if process.served is not None:
            probe = container["startupProbe"]
            assert probe["periodSeconds"] * probe["failureThreshold"] >= 120, process.name


# --- gRPC load balancing -------------------------------------------------------------------


def test_the_addr_targets_are_headless_services_of_the_right_pods(objects: list[Obj]) -> None:
    """Every `*_ADDR` is `dns:///<Service>:<port>`: a headless Service (DNS answers each ready
    pod) of the pods that listen on that port, so round_robin spreads calls over them."""
    listening = {}
    for deployment, container, process in shop_containers(objects):
        settings, _ = settings_of(objects, container, process)
        listening[port_of(settings.listen)] = deployment
    targets = 0
    for _, container, _process in shop_containers(objects):
        for var in container["env"]:
            if not var["name"].endswith("_ADDR"):
                continue
            targets += 1
            value = var["value"]
            assert value.startswith("dns:///"), f"{var['name']}={value}"
            host, _, port = value.removeprefix("dns:///").rpartition(":")
            service = named(objects, "Service", host)
            assert service["spec"]["clusterIP"] == "None", f"{host}: headless"
            assert int(port) in [p["port"] for p in service["spec"]["ports"]]
            target = listening[int(port)]
            pod_labels = target["spec"]["template"]["metadata"]["labels"]
            assert service["spec"]["selector"].items() <= pod_labels.items(), host
            (svc_port,) = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
            (target_container,) = target["spec"]["template"]["spec"]["containers"]
            by_name = {p["name"]: p["containerPort"] for p in target_container["ports"]}
            assert by_name[svc_port["targetPort"]] == int(port)
    assert targets == 3  # ORDER_SVC_USER_SVC_ADDR, GATEWAY_USER_SVC_ADDR, GATEWAY_ORDER_SVC_ADDR


# --- security modes ------------------------------------------------------------------------


def test_dev_runs_development_identity_allowed_off_loopback() -> None:
    objects = render("dev")
    for _, container, process in shop_containers(objects):
        settings, _ = settings_of(objects, container, process)
        security = settings.security if process.served is None else settings.common.security
        assert security.mode is AuthMode.DEV
        assert security.dev_any_address


def mounted_from_secret(deployment: Obj, container: Obj, path: pathlib.Path) -> str:
    """The Secret whose volume holds `path` in the container."""
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        if path.is_relative_to(mount["mountPath"]):
            assert mount.get("readOnly"), mount
            secret: str = volumes[mount["name"]]["secret"]["secretName"]
            return secret
    raise AssertionError(f"{path} is on no volume")


def test_prod_verifies_tokens_over_mutual_tls_from_secrets() -> None:
    objects = render("prod")
    documented = (K8S / "overlays" / "prod" / "secrets.md").read_text()
    for deployment, container, process in shop_containers(objects):
        settings, _ = settings_of(objects, container, process)
        security = settings.security if process.served is None else settings.common.security
        assert security.mode is AuthMode.JWT
        assert security.tls is not None
        assert security.tls.require_client_cert
        assert security.jwt is not None
        assert security.jwt.jwks_file is not None
        own = mounted_from_secret(deployment, container, security.tls.cert_file)
        assert own == f"{process.deployment}-tls", "each part its own certificate"
        for path in (security.tls.ca_file, security.tls.key_file):
            assert mounted_from_secret(deployment, container, path) == own
        jwks = mounted_from_secret(deployment, container, security.jwt.jwks_file)
        for secret in (own, jwks):
            assert secret in documented, f"secrets.md says how to create {secret}"


def test_prod_reads_database_urls_and_the_page_token_key_from_secrets() -> None:
    """Nothing secret is committed: prod's Secrets are not in the render, every reference to
    one is documented, and the replicas of both services share one page-token key."""
    objects = render("prod")
    assert not of_kind(objects, "Secret")
    documented = (K8S / "overlays" / "prod" / "secrets.md").read_text()
    keys = set()
    for _, container, process in shop_containers(objects):
        refs = {
            v["name"]: v["valueFrom"]["secretKeyRef"] for v in container["env"] if "valueFrom" in v
        }
        for ref in refs.values():
            assert ref["name"] in documented
        if process.served is not None:
            prefix = process.name.upper()
            assert set(refs) == {f"{prefix}_DATABASE_URL", "SHOP_PAGE_TOKEN_KEY"}
            keys.add((refs["SHOP_PAGE_TOKEN_KEY"]["name"], refs["SHOP_PAGE_TOKEN_KEY"]["key"]))
    assert len(keys) == 1


# --- hardening -----------------------------------------------------------------------------


def test_every_pod_is_hardened(objects: list[Obj]) -> None:
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        # No `<SERVICE>_PORT=tcp://…` variables beside the settings (`*_PORT`-like names
        # are the processes' own namespace).
        assert pod["enableServiceLinks"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), f"{name} {kind}"
            if container["image"] == IMAGE:
                assert pod["securityContext"]["runAsUser"] == HARDENED_USER
                assert context["runAsUser"] == HARDENED_USER
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                for path in ("/tmp", "/data"):
                    assert mounts[path] in empty_dirs, f"{name}: {path} writable, not kept"


def test_each_process_has_its_own_service_account_without_a_token(objects: list[Obj]) -> None:
    for deployment, _, _ in shop_containers(objects):
        name = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        assert name == deployment["metadata"]["name"]
        assert named(objects, "ServiceAccount", name)["automountServiceAccountToken"] is False


def test_shop_pods_spread_and_are_scraped(objects: list[Obj]) -> None:
    for deployment, container, process in shop_containers(objects):
        template = deployment["spec"]["template"]
        keys = {c["topologyKey"] for c in template["spec"]["topologySpreadConstraints"]}
        assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
        for constraint in template["spec"]["topologySpreadConstraints"]:
            selector = constraint["labelSelector"]["matchLabels"]
            assert selector.items() <= template["metadata"]["labels"].items()
        settings, _ = settings_of(objects, container, process)
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == port_of(settings.admin_listen)
        assert annotations["prometheus.io/path"] == "/metrics"
        # The job name deploy/monitoring's rules and dashboard select on.
        assert template["metadata"]["labels"]["shop.local/process"] == process.name


# --- replicas ------------------------------------------------------------------------------


def selects(selector: Obj, labels: Mapping[str, str]) -> bool:
    """A label selector (`matchLabels`, `matchExpressions` with In/NotIn/Exists/DoesNotExist)."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def test_dev_runs_one_replica_each_and_postgresql_in_the_namespace() -> None:
    objects = render("dev")
    for deployment, _, _ in shop_containers(objects):
        assert deployment["spec"]["replicas"] == 1
    assert not of_kind(objects, "HorizontalPodAutoscaler")
    postgres = named(objects, "StatefulSet", "postgres")
    (container,) = postgres["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "postgres:15"
    assert postgres["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] in {
        m["name"] for m in container["volumeMounts"]
    }
    service = named(objects, "Service", postgres["spec"]["serviceName"])
    assert selects(
        {"matchLabels": service["spec"]["selector"]},
        postgres["spec"]["template"]["metadata"]["labels"],
    )
    assert [p["port"] for p in service["spec"]["ports"]] == [5432]
    for _, container, process in shop_containers(objects):
        if process.served is not None:
            settings, _ = settings_of(objects, container, process)
            assert settings.database_url.startswith(
                f"postgresql://postgres@{service['metadata']['name']}:5432/"
            )


def test_prod_runs_three_replicas_each_with_a_budget_and_an_autoscaler() -> None:
    objects = render("prod")
    budgets = of_kind(objects, "PodDisruptionBudget")
    autoscalers = of_kind(objects, "HorizontalPodAutoscaler")
    for deployment, _, process in shop_containers(objects):
        name = deployment["metadata"]["name"]
        pods = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["replicas"] == 3, name
        (budget,) = [b for b in budgets if selects(b["spec"]["selector"], pods)]
        assert budget["spec"].get("maxUnavailable") == 1 or budget["spec"].get("minAvailable") == 2
        (autoscaler,) = [a for a in autoscalers if a["spec"]["scaleTargetRef"]["name"] == name]
        assert autoscaler["apiVersion"] == "autoscaling/v2"
        assert autoscaler["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert autoscaler["spec"]["minReplicas"] == 3 < autoscaler["spec"]["maxReplicas"]
        (metric,) = autoscaler["spec"]["metrics"]
        assert metric["type"] == "Resource"
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"
        # Utilisation is of the CPU requested: every container requests some.
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["requests"]["cpu"], process.name


# --- NetworkPolicies -----------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """One end of a connection: a pod (its namespace's labels and its own), or an address
    outside the cluster (`namespace` None)."""

    namespace: str | None
    pod: Mapping[str, str]

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {} if self.namespace is None else {"kubernetes.io/metadata.name": self.namespace}


OUTSIDE = Peer(None, {})


def _peer_matches(rule_peer: Obj, peer: Peer) -> bool:
    if "ipBlock" in rule_peer:
        return peer.namespace is None
    if peer.namespace is None:
        return False
    if "namespaceSelector" in rule_peer:
        if not selects(rule_peer["namespaceSelector"], peer.namespace_labels):
            return False
    elif peer.namespace != NAMESPACE:
        return False
    return selects(rule_peer.get("podSelector", {}), peer.pod)


def _rules_admit(rules: list[Obj], side: str, peer: Peer, port: int, protocol: str) -> bool:
    for rule in rules:
        peers = rule.get(side)
        if peers and not any(_peer_matches(p, peer) for p in peers):
            continue
        ports = rule.get("ports")
        if ports and not any(
            p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
        ):
            continue
        return True
    return False


def _allowed(
    policies: list[Obj], direction: str, pod: Peer, other: Peer, port: int, protocol: str
) -> bool:
    """Whether `pod`'s policies let the connection in (`Ingress`, from `other`) or out
    (`Egress`, to `other`); a pod outside the namespace, or no policy: allowed."""
    if pod.namespace != NAMESPACE:
        return True
    applying = [
        p
        for p in policies
        if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod.pod)
    ]
    if not applying:
        return True
    side, key = ("from", "ingress") if direction == "Ingress" else ("to", "egress")
    return any(_rules_admit(p["spec"].get(key, []), side, other, port, protocol) for p in applying)


def flows(objects: list[Obj], src: Peer, dst: Peer, port: int, protocol: str = "TCP") -> bool:
    policies = of_kind(objects, "NetworkPolicy")
    return _allowed(policies, "Egress", src, dst, port, protocol) and _allowed(
        policies, "Ingress", dst, src, port, protocol
    )


def pods(objects: list[Obj]) -> dict[str, Peer]:
    return {
        w["metadata"]["name"]: Peer(NAMESPACE, w["spec"]["template"]["metadata"]["labels"])
        for w in workloads(objects)
    }


def test_network_policies_deny_by_default(objects: list[Obj]) -> None:
    denies = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert denies


def test_network_policies_admit_the_flows_of_the_system(objects: list[Obj]) -> None:
    pod = pods(objects)
    ports = {}
    for deployment, container, process in shop_containers(objects):
        settings, _ = settings_of(objects, container, process)
        ports[deployment["metadata"]["name"]] = (
            port_of(settings.listen),
            port_of(settings.admin_listen),
        )
    user, order, gw = pod["user-svc"], pod["order-svc"], pod["gateway"]
    ingress_controller = Peer("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
    prometheus = Peer("monitoring", {"app.kubernetes.io/name": "prometheus"})
    kube_dns = Peer("kube-system", {"k8s-app": "kube-dns"})
    database = pod.get("postgres", OUTSIDE)

    allowed = [
        (ingress_controller, gw, ports["gateway"][0]),
        (gw, user, ports["user-svc"][0]),
        (gw, order, ports["order-svc"][0]),
        (order, user, ports["user-svc"][0]),
        (user, database, 5432),
        (order, database, 5432),
        *((prometheus, pod[name], ports[name][1]) for name in ports),
    ]
    for src, dst, port in allowed:
        assert flows(objects, src, dst, port), f"{src} -> {dst}:{port} refused"
    for name in ports:
        assert flows(objects, pod[name], kube_dns, 53, "UDP"), f"{name}: DNS refused"
        assert flows(objects, pod[name], kube_dns, 53, "TCP"), f"{name}: DNS refused"

    refused = [
        (user, order, ports["order-svc"][0]),  # the user service calls no one
        (order, gw, ports["gateway"][0]),
        (gw, database, 5432),  # the gateway has no database
        (ingress_controller, user, ports["user-svc"][0]),  # only through the gateway
        (ingress_controller, gw, ports["gateway"][1]),  # metrics: Prometheus only
        (Peer("monitoring", {"app.kubernetes.io/name": "grafana"}), user, ports["user-svc"][1]),
        (gw, OUTSIDE, 443),  # no way out but to the services and DNS
        (user, OUTSIDE, 443),
        (order, Peer("other", {}), 50052),
    ]
    for src, dst, port in refused:
        assert not flows(objects, src, dst, port), f"{src} -> {dst}:{port} admitted"


# --- the render is stable ------------------------------------------------------------------


def test_generated_names_are_referenced_everywhere(objects: list[Obj]) -> None:
    """kustomize renames generated ConfigMaps and Secrets (a hash of their content, so that a
    change rolls the pods): every reference points at a rendered name, not the bare one."""
    rendered = {
        o["metadata"]["name"] for o in of_kind(objects, "ConfigMap") + of_kind(objects, "Secret")
    }
    for _, container, _ in shop_containers(objects):
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] in rendered
            assert fnmatch.fnmatch(source["configMapRef"]["name"], "shop-*-??????????")


# --- the probes, answered by the real services ---------------------------------------------


async def _health(port: int, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(answer.status)


async def test_the_probes_names_are_serving_on_the_real_services_health_ports(
    tmp_path: pathlib.Path,
) -> None:
    """user_svc and order_svc started as the code starts them (on loopback, SQLite), each
    probe of the dev render asked on the health-only port: SERVING, and the user feed's name
    (which no probe follows) is one the order service really reports."""
    probes = {
        process.name: [container[f"{kind}Probe"]["grpc"]["service"] for kind in PROBES]
        for _, container, process in shop_containers(render("dev"))
        if process.served is not None
    }
    users = await user_svc.app.start(
        ServiceSettings(
            listen="127.0.0.1:0",
            database_url=f"sqlite:///{tmp_path / 'users.db'}",
            common=common_settings(tmp_path),
            health_listen="127.0.0.1:0",
            admin_listen=None,
        )
    )
    try:
        orders = await order_svc.app.start(
            order_svc.config.Settings(
                listen="127.0.0.1:0",
                database_url=f"sqlite:///{tmp_path / 'orders.db'}",
                user_svc_addr=f"127.0.0.1:{users.port}",
                user_svc_timeout_seconds=2.0,
                common=common_settings(tmp_path),
                health_listen="127.0.0.1:0",
                admin_listen=None,
            )
        )
        try:
            for name, running in (("user_svc", users), ("order_svc", orders)):
                assert running.health_port is not None
                for service in probes[name]:
                    assert await _health(running.health_port, service) == SERVING, service
            assert orders.health_port is not None
            # Known (NOT_FOUND would raise), whether or not it has caught up yet.
            await _health(orders.health_port, user_feed.HEALTH_NAME)
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await _health(orders.health_port, "shop.order.v1.NoSuchService")
            assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
        finally:
            await orders.stop(grace=0)
    finally:
        await users.stop(grace=0)


def _meta(kind: str, key: str) -> str:
    """Prometheus' name for a pod label or annotation (`__meta_kubernetes_pod_label_<key>`,
    every character outside [a-zA-Z0-9_] an underscore)."""
    return f"__meta_kubernetes_pod_{kind}_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


_PORT_NAME = "__meta_kubernetes_pod_container_port_name"


def test_the_prometheus_scrape_config_reads_what_the_pods_carry(objects: list[Obj]) -> None:
    """deploy/k8s/prometheus/prometheus.yml keeps annotated pods, scrapes their port named
    `metrics` (the admin port) at the annotated path, and names the job after the label the
    shop's pods carry."""
    config = yaml.safe_load((K8S / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    relabels = job["relabel_configs"]
    sources = {name for r in relabels for name in r.get("source_labels", [])}
    (to_job,) = [r for r in relabels if r.get("target_label") == "job"]
    for deployment, _, process in shop_containers(objects):
        template = deployment["spec"]["template"]["metadata"]
        assert to_job["source_labels"] == [_meta("label", "shop.local/process")]
        assert template["labels"]["shop.local/process"] == process.name
        assert _meta("annotation", "prometheus.io/scrape") in sources
        assert _meta("annotation", "prometheus.io/path") in sources
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        settings, _ = settings_of(objects, container, process)
        metrics = [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"]
        assert metrics == [port_of(settings.admin_listen)], process.name
    (by_port,) = [r for r in relabels if r.get("source_labels") == [_PORT_NAME]]
    assert by_port == {"source_labels": [_PORT_NAME], "regex": "metrics", "action": "keep"}
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery["role"] == "pod"
    assert discovery["namespaces"]["names"] == [NAMESPACE]


def test_promtool_checks_the_scrape_config_but_its_discovery(tmp_path: pathlib.Path) -> None:
    """Debian's promtool knows no `kubernetes_sd_configs`: the rest (the relabelling's
    regexes and actions) is checked with a static target in its place."""
    config = yaml.safe_load((K8S / "prometheus" / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        del job["kubernetes_sd_configs"]
        job["static_configs"] = [{"targets": ["127.0.0.1:9091"]}]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [binary("promtool"), "check", "config", str(checked)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
