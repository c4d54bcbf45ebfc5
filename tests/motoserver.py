# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A moto server (real HTTP on loopback) for the tests of the S3 state backend."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from helpers import free_port

ACCESS_KEY = "AKIDSTATETESTING"
SECRET_KEY = "state-secret-do-not-print-8d1e"
REGION = "us-east-1"


class MotoServer:
    """``with MotoServer(logdir) as moto:`` -- ``moto.url``, ``moto.client()``, ``moto.env()``."""

    def __init__(self, logdir: Path):
        self.logdir = Path(logdir)
        self.proc = None
        self.url = None

    def __enter__(self):
        port = free_port()
        self.logdir.mkdir(parents=True, exist_ok=True)
        log = self.logdir / "moto.log"
        exe = Path(sys.executable).parent / "moto_server"
        with open(log, "w") as handle:
            self.proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=handle,
                                         stderr=subprocess.STDOUT)
        self.url = "http://127.0.0.1:%d" % port
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1)
                return self
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.__exit__(None, None, None)
                    raise RuntimeError("moto server did not start: %s" % log.read_text())
                time.sleep(0.1)

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return False

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY)

    def bucket(self, name):
        self.client().create_bucket(Bucket=name)
        return name

    def env(self):
        """The AWS settings a controller gets from its environment (CI secrets, an AWX credential)."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL": self.url}
