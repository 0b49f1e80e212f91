"""The deployment files in conf/ read as specifications: the Kubernetes manifests validate against the
Kubernetes schemas (kubernetes-validate, strict; its schemas ship inside the package, no network needed) and
agree with the server's own config and probes; the Dockerfile runs a valid command line as a non-root user,
stops with SIGQUIT and checks /healthz. (The image is not built here: no image registry is reachable.)"""

import json
import os
import re
import subprocess
import sys
import tomllib

import kubernetes_validate
import pytest
import yaml

from oserver.config import build_config
from tests.conftest import HTTPD, REPO

MANIFESTS = os.path.join(REPO, "conf", "kubernetes", "oserver.yaml")
DOCKERFILE = os.path.join(REPO, "conf", "Dockerfile")
KUBERNETES_VERSION = "1.30"
GRACE_MARGIN = 5  # seconds the kubelet's SIGKILL must come after the sleep and graceful_timeout at least


def documents():
    with open(MANIFESTS) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def resource(kind):
    (found,) = [doc for doc in documents() if doc["kind"] == kind]
    return found


def container():
    (only,) = resource("Deployment")["spec"]["template"]["spec"]["containers"]
    return only


def shipped_config(tmp_path):
    """The ConfigMap's oserver.toml, loaded as the server would (its root replaced by an existing directory)."""
    text = resource("ConfigMap")["data"]["oserver.toml"]
    path = tmp_path / "oserver.toml"
    path.write_text(text)
    return build_config(str(path), {"root": str(tmp_path)}), tomllib.loads(text)


def dockerfile_instructions():
    """{instruction: [its arguments, one entry per occurrence]} of the Dockerfile (continuation lines joined)."""
    with open(DOCKERFILE) as f:
        text = re.sub(r"\\\n\s*", " ", f.read())
    found = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            found.setdefault(instruction.upper(), []).append(arguments.strip())
    return found


KINDS = ["ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"]


def test_the_manifests_are_one_of_each_kind():
    assert [doc["kind"] for doc in documents()] == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_each_manifest_is_valid_kubernetes(kind):
    kubernetes_validate.validate(resource(kind), KUBERNETES_VERSION, strict=True)


def test_the_configmap_holds_a_valid_oserver_config(tmp_path):
    config, _ = shipped_config(tmp_path)
    assert config.port == 8080 and config.ready_path == "/readyz"


def test_the_probes_are_the_servers_liveness_and_readiness_paths(tmp_path):
    config, _ = shipped_config(tmp_path)
    probes = container()
    assert probes["livenessProbe"]["httpGet"]["path"] == config.health_path
    assert probes["readinessProbe"]["httpGet"]["path"] == config.ready_path
    assert probes["ports"][0]["containerPort"] == config.port


def test_the_grace_period_outlasts_the_prestop_sleep_and_graceful_timeout(tmp_path):
    config, _ = shipped_config(tmp_path)
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    grace = resource("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= int(command[1]) + config.graceful_timeout + GRACE_MARGIN


def test_the_deployment_runs_the_configmaps_config(tmp_path):
    spec = resource("Deployment")["spec"]["template"]["spec"]
    mount = container()["volumeMounts"][0]
    assert spec["volumes"][0]["configMap"]["name"] == resource("ConfigMap")["metadata"]["name"]
    assert container()["args"] == ["-c", f"{mount['mountPath']}/oserver.toml"]


def test_the_autoscaler_scales_the_deployment_on_cpu():
    hpa = resource("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == resource("Deployment")["metadata"]["name"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu" and "cpu" in container()["resources"]["requests"]


def test_the_image_runs_as_its_own_user_and_stops_gracefully():
    docker = dockerfile_instructions()
    assert re.fullmatch(r"python:3\.\d+-slim", docker["FROM"][0])
    assert docker["USER"] == ["oserver"] and docker["STOPSIGNAL"] == ["SIGQUIT"]
    assert "/healthz" in docker["HEALTHCHECK"][0]


def test_the_images_command_line_is_a_valid_one(tmp_path):
    docker = dockerfile_instructions()
    assert json.loads(docker["ENTRYPOINT"][0]) == ["oserver"]
    args = json.loads(docker["CMD"][0])
    result = subprocess.run([sys.executable, HTTPD, *args, "-r", str(tmp_path), "-t"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
