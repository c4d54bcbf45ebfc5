"""A small in-memory AWX API (the subset the awx.awx modules use) on loopback that records every call.

Objects live in per-endpoint tables; lists filter on query parameters, objects carry ``related`` links for
their sub-resources (associations such as success_nodes, survey_spec); ``create_approval_template`` on a
workflow node creates a workflow approval template. Not an AWX: enough for the awx.awx modules to create,
look up and associate objects, so a test can assert what a playbook defined.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

API = "/api/v2/"
RELATED = ("success_nodes", "failure_nodes", "always_nodes", "credentials", "labels", "instance_groups",
           "survey_spec", "notification_templates_started", "notification_templates_success",
           "notification_templates_error", "notification_templates_approvals", "workflow_nodes",
           "create_approval_template", "input_sources")


class AwxStub:
    def __init__(self, seed: dict[str, list[dict]]):
        self.tables: dict[str, dict[int, dict]] = {}
        self.links: dict[tuple[str, int, str], list[int]] = {}
        self.surveys: dict[tuple[str, int], dict] = {}
        self.calls: list[tuple[str, str, object]] = []
        self._next = 100
        self._lock = threading.Lock()
        for endpoint, objects in seed.items():
            for obj in objects:
                self._insert(endpoint, dict(obj))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------ data
    def _insert(self, endpoint, obj):
        self._next += 1
        obj.setdefault("id", self._next)
        obj["type"] = obj.get("type") or endpoint.rstrip("s")
        obj["url"] = "%s%s/%d/" % (API, endpoint, obj["id"])
        # a workflow approval template has no node links (AWX answers 404 there: ansible/awx#8777)
        related = () if endpoint == "workflow_approval_templates" else RELATED
        obj["related"] = {name: "%s%s/%d/%s/" % (API, endpoint, obj["id"], name) for name in related}
        obj.setdefault("summary_fields", {})
        self.tables.setdefault(endpoint, {})[obj["id"]] = obj
        return obj

    def objects(self, endpoint):
        return list(self.tables.get(endpoint, {}).values())

    def find(self, endpoint, **fields):
        found = [o for o in self.objects(endpoint) if all(o.get(k) == v for k, v in fields.items())]
        assert len(found) == 1, (endpoint, fields, found)
        return found[0]

    def linked(self, endpoint, obj_id, name):
        return self.links.get((endpoint, obj_id, name), [])

    def survey(self, endpoint, obj_id):
        return self.surveys.get((endpoint, obj_id))

    def _list(self, endpoint, query):
        if endpoint == "unified_job_templates":
            rows = [o for ep in ("job_templates", "workflow_job_templates", "projects") for o in self.objects(ep)]
        else:
            rows = self.objects(endpoint)
        for key, value in query.items():
            if key in ("page_size", "page", "order_by"):
                continue
            key = key.split("__")[0]
            rows = [o for o in rows if str(o.get(key)) == value]
        return {"count": len(rows), "next": None, "previous": None, "results": rows}

    def handle(self, method, path, query, body):
        self.calls.append((method, path, body))
        if not path.startswith(API):
            return 404, {"detail": "not found"}
        parts = [p for p in path[len(API):].split("/") if p]
        with self._lock:
            if parts == ["ping"] or parts == ["config"] or parts == ["me"]:
                return 200, {"version": "24.6.1", "results": [{"id": 1, "username": "admin"}]}
            endpoint = parts[0]
            if len(parts) == 1:
                if method == "GET":
                    return 200, self._list(endpoint, query)
                if method == "POST":
                    return 201, self._insert(endpoint, dict(body or {}))
            obj_id = int(parts[1])
            obj = self.tables.get(endpoint, {}).get(obj_id)
            if obj is None:
                return 404, {"detail": "not found"}
            if len(parts) == 2:
                if method == "GET":
                    return 200, obj
                if method in ("PATCH", "PUT"):
                    obj.update(body or {})
                    return 200, obj
                if method == "DELETE":
                    del self.tables[endpoint][obj_id]
                    return 204, None
            sub = parts[2]
            if sub not in obj["related"]:
                return 404, {"detail": "The requested object could not be found at %s." % path}
            if sub == "survey_spec":
                if method == "GET":
                    return 200, self.surveys.get((endpoint, obj_id), {})
                self.surveys[(endpoint, obj_id)] = body
                return 200, body
            if sub == "create_approval_template":
                approval = self._insert("workflow_approval_templates", dict(body or {}))
                obj["unified_job_template"] = approval["id"]
                obj["related"]["unified_job_template"] = approval["url"]
                obj["summary_fields"]["unified_job_template"] = {"id": approval["id"], "name": approval.get("name"),
                                                                 "unified_job_type": "workflow_approval"}
                return 201, approval
            key = (endpoint, obj_id, sub)
            if method == "GET":
                target = {"success_nodes": "workflow_job_template_nodes", "failure_nodes": "workflow_job_template_nodes",
                          "always_nodes": "workflow_job_template_nodes", "workflow_nodes": "workflow_job_template_nodes",
                          "credentials": "credentials"}.get(sub, "notification_templates")
                if sub == "workflow_nodes":
                    rows = [o for o in self.objects(target) if o.get("workflow_job_template") == obj_id]
                else:
                    rows = [self.tables[target][i] for i in self.links.get(key, []) if i in self.tables.get(target, {})]
                return 200, {"count": len(rows), "next": None, "previous": None, "results": rows}
            if method == "POST":
                ids = self.links.setdefault(key, [])
                if (body or {}).get("disassociate"):
                    ids.remove(body["id"])
                elif body["id"] not in ids:
                    ids.append(body["id"])
                return 204, None
        return 405, {"detail": "method not allowed"}

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _do(self):
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                status, payload = stub.handle(self.command, url.path, dict(parse_qsl(url.query)), body)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-API-Product-Name", "AWX")
                self.send_header("X-API-Product-Version", "24.6.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _do

            def log_message(self, *args):
                pass

        return Handler
