"""Strict offline validation of objects against a Kubernetes release's OpenAPI v2 document.

The definitions become JSON Schema as kubeconform's openapi2jsonschema makes them:
`int-or-string` fields take an integer or a string, Quantity a number or a string, and
(strict) every object with declared properties refuses the ones it does not declare, as
`kubectl --validate=strict` and the API server's field validation do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from gibbous.devcluster.installtools import openapi_document

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("format") == "int-or-string":
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    out = {key: _strict(value) for key, value in schema.items() if not key.startswith("x-")}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


@cache
def _validators(version: str) -> Mapping[tuple[str, str], jsonschema.Draft4Validator]:
    document = json.loads(Path(openapi_document(version)).read_text())
    definitions = {name: _strict(schema) for name, schema in document["definitions"].items()}
    definitions[QUANTITY] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
    out: dict[tuple[str, str], jsonschema.Draft4Validator] = {}
    for name, schema in document["definitions"].items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            root = {"$ref": f"#/definitions/{name}", "definitions": definitions}
            out[(api_version, gvk["kind"])] = jsonschema.Draft4Validator(root)
    return out


def served(version: str, api_version: str, kind: str) -> bool:
    return (api_version, kind) in _validators(version)


def problems(version: str, obj: Mapping[str, Any]) -> list[str]:
    """What Kubernetes `version` would refuse in `obj` ([] when nothing)."""
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    validator = _validators(version).get(key)
    if validator is None:
        return [f"{key[0]} {key[1]} is not served by Kubernetes {version}"]
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in validator.iter_errors(obj)
    ]
