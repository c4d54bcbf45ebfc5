# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 12 #1: an answer whose headers come at once but whose body trickles a byte at a time
(under the read timeout each time) ends at the request's total deadline, for health probes and
shutdown requests alike, with a fixed or a chunked body."""

from __future__ import annotations

import socketserver
import threading
import time

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import UNREACHABLE


class BodyTrickle(socketserver.BaseRequestHandler):
    """Answers the status line and headers at once, then one body byte every 50 ms."""

    def handle(self):
        self.request.recv(65536)
        chunked = self.server.chunked
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        head += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: 400\r\n\r\n"
        try:
            self.request.sendall(head)
            for dummy in range(400):
                if self.server.stop_event.wait(0.05):
                    return
                self.request.sendall(b"1\r\n \r\n" if chunked else b" ")
        except OSError:
            return


@pytest.fixture(params=[False, True], ids=["content-length", "chunked"])
def trickle(request):
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), BodyTrickle)
    srv.daemon_threads = True
    srv.chunked = request.param
    srv.stop_event = threading.Event()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % srv.server_address[1]
    finally:
        srv.stop_event.set()
        srv.shutdown()
        srv.server_close()


def test_a_trickling_health_body_ends_at_the_deadline(trickle):
    started = time.monotonic()
    with AgentClient(read_timeout=1.0, request_deadline=0.8) as client:
        probe = client.probe(trickle)
    assert not probe["healthy"] and not probe["reachable"]
    assert "deadline" in probe["cause"]
    assert time.monotonic() - started < 3.0  # ~0.8 s; the trickle alone takes 20 s


def test_a_trickling_shutdown_answer_ends_at_the_deadline(trickle):
    started = time.monotonic()
    with AgentClient(read_timeout=1.0, request_deadline=0.8, connect_retries=0) as client:
        answer = client.ask(trickle, {"reason": "r", "confirm": True, "deployment_id": "d-1"})
    # the POST is cut at its deadline, then one health probe (cut too) finds no answer: unreachable
    assert answer["decision"] == UNREACHABLE and "deadline" in answer["reason"]
    assert time.monotonic() - started < 5.0  # two deadlines of 0.8 s
