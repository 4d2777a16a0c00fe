#!/usr/bin/env python3
"""Validates Kubernetes manifests offline against the Kubernetes API's own models (the
`kubernetes` Python package, generated from the API's OpenAPI spec): no cluster runs here.

    validate.py FILE.yaml...    exit 1 naming every mistake found
    validate.py --self-test     proves that planted mistakes are caught

The generated models check required fields but silently drop unknown keys and accept any type,
so this walks each document against the models' attribute and type tables itself: an unknown or
misspelled key, a string where a number belongs, a missing required field are all reported with
their path. A few rules the models do not encode, and that the example relies on, are checked too.
"""

import re
import sys

import kubernetes
import yaml
from kubernetes import client

PRIMITIVES = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
    "datetime": str,
    "date": str,
    "object": object,
}

ENUMS = {
    ("V1PodFailurePolicyRule", "action"): {"FailJob", "FailIndex", "Ignore", "Count"},
    ("V1PodFailurePolicyOnExitCodesRequirement", "operator"): {"In", "NotIn"},
    ("V1PodSpec", "restart_policy"): {"Always", "OnFailure", "Never"},
    ("V1CronJobSpec", "concurrency_policy"): {"Allow", "Forbid", "Replace"},
    ("V1SeccompProfile", "type"): {"RuntimeDefault", "Localhost", "Unconfined"},
    ("V1Container", "image_pull_policy"): {"Always", "IfNotPresent", "Never"},
}

QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def model_class(api_version, kind):
    group_version = api_version.split("/")[-1]
    name = group_version[0].upper() + group_version[1:] + kind
    cls = getattr(client, name, None)
    if cls is None:
        raise LookupError(f"no model {name} for apiVersion {api_version}, kind {kind}")
    return cls


def check(value, type_name, path, errors, owner=None, attribute=None):
    if value is None:
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check(item, type_name[5:-1], f"{path}[{i}]", errors)
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            check(item, inner, f"{path}.{key}", errors)
        return
    if type_name in PRIMITIVES:
        expected = PRIMITIVES[type_name]
        # YAML booleans are not numbers, though Python's bool is an int.
        if (type_name in ("int", "float") and isinstance(value, bool)) or not isinstance(
            value, expected
        ):
            errors.append(f"{path}: expected {type_name}, got {value!r}")
        allowed = ENUMS.get((owner, attribute))
        if allowed and value not in allowed:
            errors.append(f"{path}: {value!r} is not one of {sorted(allowed)}")
        return
    cls = getattr(client, type_name)
    if type_name == "IntOrString" or not hasattr(cls, "attribute_map"):
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({type_name}), got {value!r}")
        return
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append(f"{path}: unknown field {key!r} in {type_name}")
            continue
        item_type = cls.openapi_types[attr]
        if item_type == "dict(str, str)" and type_name == "V1ResourceRequirements":
            for name, quantity in (item or {}).items():
                if not QUANTITY.match(str(quantity)):
                    errors.append(f"{path}.{key}.{name}: {quantity!r} is not a quantity")
            continue
        check(item, item_type, f"{path}.{key}", errors, type_name, attr)


def deserialize(document, cls):
    """The models' own validation (required fields) runs when the document is deserialized."""
    api = client.ApiClient()
    return api._ApiClient__deserialize(document, cls.__name__)


def semantic_checks(document, errors):
    if document.get("kind") != "CronJob":
        return
    job = document.get("spec", {}).get("jobTemplate", {}).get("spec", {})
    pod = job.get("template", {}).get("spec", {})
    if job.get("podFailurePolicy") and pod.get("restartPolicy") != "Never":
        errors.append("spec.jobTemplate.spec.podFailurePolicy needs restartPolicy: Never")
    names = {c.get("name") for c in pod.get("containers", [])}
    for rule in (job.get("podFailurePolicy") or {}).get("rules", []):
        codes = rule.get("onExitCodes") or {}
        if codes.get("containerName") and codes["containerName"] not in names:
            errors.append(f"podFailurePolicy names container {codes['containerName']!r}, which is not in the pod")
        if 0 in (codes.get("values") or []) and codes.get("operator") == "In":
            errors.append("podFailurePolicy: exit code 0 cannot be in an In rule")
    for container in pod.get("containers", []):
        image = container.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2] if "@" not in image else "digest"
        if tag in ("", "latest"):
            errors.append(f"container {container.get('name')}: image {image!r} is not pinned (name a version tag or a digest, not latest)")
    mounts = {v.get("name") for v in pod.get("volumes", [])}
    for container in pod.get("containers", []):
        for mount in container.get("volumeMounts", []):
            if mount.get("name") not in mounts:
                errors.append(f"container {container.get('name')}: volumeMount {mount.get('name')!r} has no volume")


def validate(documents):
    errors = []
    for n, document in enumerate(documents):
        if not document:
            continue
        where = f"document {n + 1} ({document.get('kind', '?')})"
        try:
            cls = model_class(document["apiVersion"], document["kind"])
        except (KeyError, LookupError) as e:
            errors.append(f"{where}: {e}")
            continue
        found = []
        check(document, cls.__name__, "", found)
        semantic_checks(document, found)
        try:
            deserialize(document, cls)
        except (ValueError, TypeError) as e:
            found.append(f"the {cls.__name__} model rejects it: {e}")
        errors += [f"{where}: {e}" for e in found]
    return errors


SELF_TEST = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: planted}
spec:
  schedule: "0 * * * *"
  concurencyPolicy: Forbid
  jobTemplate:
    spec:
      backoffLimit: "1"
      podFailurePolicy:
        rules:
          - action: FailJobs
            onExitCodes: {containerName: dbtool, operator: In, values: [2, 4]}
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: dbtool
              image: dbtool
              securityContext: {readOnlyRootFileSystem: true}
              resources: {limits: {memory: 128 MB}}
              volumeMounts: [{name: ca, mountPath: /ca}]
"""


def self_test():
    errors = validate(list(yaml.safe_load_all(SELF_TEST)))
    expected = [
        "concurencyPolicy",
        "backoffLimit: expected int",
        "FailJobs",
        "readOnlyRootFileSystem",
        "128 MB",
        "restartPolicy: Never",
        "volumeMount 'ca'",
        "is not pinned",
    ]
    missed = [e for e in expected if not any(e in error for error in errors)]
    # A CronJob without its required schedule is the model's own check.
    required = validate([{"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"jobTemplate": {}}}])
    if not any("schedule" in e for e in required):
        missed.append("missing schedule")
    if missed:
        print(f"validate.py self-test: planted mistakes not caught: {missed}\n{errors}", file=sys.stderr)
        return 1
    print(f"validate.py self-test: all {len(expected) + 1} planted mistakes caught", file=sys.stderr)
    return 0


def main(args):
    if args == ["--self-test"]:
        return self_test()
    status = 0
    for path in args:
        with open(path) as f:
            errors = validate(list(yaml.safe_load_all(f)))
        for error in errors:
            print(f"{path}: {error}", file=sys.stderr)
        if errors:
            status = 1
        else:
            print(f"{path}: valid against the models of kubernetes {kubernetes.__version__}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
