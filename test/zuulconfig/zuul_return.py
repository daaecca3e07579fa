# A local stand-in for Zuul's zuul_return action plugin, used when slipway's
# playbooks run outside Zuul (hack/pipeline.sh, test/e2e). Like Zuul's, it
# merges `data` / `secret_data` (or the JSON/YAML documents named by `file` /
# `secret_file`) into the job's results file ($ZUUL_JOBDIR/work/results.json,
# or `path`): zuul.artifacts and zuul.warnings are appended, mappings are
# merged, anything else is replaced. It checks the artifacts schema
# (name and url required) as Zuul does.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile

import yaml
from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

APPENDED = ("artifacts", "warnings")


def merge(dst, src, path=()):
    for key, value in src.items():
        here = path + (key,)
        old = dst.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            merge(old, value, here)
        elif here in (("zuul", k) for k in APPENDED) and isinstance(old, list):
            old.extend(value)
        else:
            dst[key] = value


def check(data):
    if not isinstance(data, dict):
        raise AnsibleError("zuul_return: data must be a mapping")
    zuul = data.get("zuul", {})
    if not isinstance(zuul, dict):
        raise AnsibleError("zuul_return: data.zuul must be a mapping")
    for i, art in enumerate(zuul.get("artifacts", [])):
        if not isinstance(art, dict) or not art.get("name") or not art.get("url"):
            raise AnsibleError("zuul_return: zuul.artifacts[%d] needs name and url: %r" % (i, art))
        extra = set(art) - {"name", "url", "metadata"}
        if extra:
            raise AnsibleError("zuul_return: zuul.artifacts[%d] has unknown keys %s" % (i, sorted(extra)))


def load(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self._task.args
        path = args.get("path")
        if not path:
            jobdir = os.environ.get("ZUUL_JOBDIR")
            if not jobdir:
                raise AnsibleError("zuul_return: ZUUL_JOBDIR is not set and no path was given")
            path = os.path.join(jobdir, "work", "results.json")
        data = args.get("data")
        if args.get("file"):
            data = load(args["file"])
        secret_data = args.get("secret_data")
        if args.get("secret_file"):
            secret_data = load(args["secret_file"])
        results = {}
        if os.path.exists(path) and os.path.getsize(path) > 0:
            results = load(path)
        if data is not None:
            check(data)
            merge(results.setdefault("data", {}), data)
        if secret_data is not None:
            merge(results.setdefault("secret_data", {}), secret_data)
        fd, tmpname = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".results-")
        with os.fdopen(fd, "w") as f:
            json.dump(results, f, indent=2, sort_keys=True)
        os.chmod(tmpname, 0o600)
        os.rename(tmpname, path)
        result["changed"] = False
        return result
