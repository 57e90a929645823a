"""A real S3-compatible server for tests: `moto_server` (moto[server] from PyPI) on 127.0.0.1,
plus a TCP proxy in front of it that a test can cut, to see how tracelake behaves when its
object store goes away in the middle of a write."""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """`moto_server` on a free port, with one bucket."""

    def __init__(self, bucket="tracelake-test"):
        self.port = free_port()
        self.bucket = bucket
        moto = Path(sys.executable).with_name("moto_server")
        # moto logs every request: to a file, never to a pipe nobody reads (it would block).
        self.log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.proc.kill()
                    raise AssertionError(f"moto_server did not start: {Path(self.log.name).read_text()[-2000:]}")
                time.sleep(0.1)
        # moto does not check signatures: an unsigned PUT creates the bucket.
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT"), timeout=10).read()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def env(self, endpoint=None):
        """Environment for tracelake processes using this server (or a proxy in front of it)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        })
        return env

    def url(self, prefix):
        return f"s3://{self.bucket}/{prefix}"

    def keys(self, prefix):
        """Object keys under `prefix` (ListObjectsV2, parsed crudely but sufficiently)."""
        import re
        keys, token = [], None
        while True:
            q = f"{self.endpoint}/{self.bucket}?list-type=2&prefix={prefix}" + (f"&continuation-token={token}" if token else "")
            body = urllib.request.urlopen(q, timeout=10).read().decode()
            keys += re.findall(r"<Key>([^<]*)</Key>", body)
            m = re.search(r"<NextContinuationToken>([^<]*)</NextContinuationToken>", body)
            if not m:
                return keys
            token = urllib.request.quote(m.group(1), safe="")

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()
        os.unlink(self.log.name)


class CuttableProxy:
    """Forwards 127.0.0.1:port to a target port. `cut_after_puts(n)` lets n more HTTP PUT
    requests start, then closes every connection and refuses new ones until `restore()`."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.puts_left = None  # None: unlimited
        self.down = False
        self.conns = []
        self.puts_seen = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def cut_after_puts(self, n):
        with self.lock:
            self.puts_left = n

    def restore(self):
        with self.lock:
            self.down, self.puts_left = False, None

    def _cut(self):
        self.down = True
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.conns.clear()

    def _accept(self):
        while True:
            client, _ = self.listener.accept()
            with self.lock:
                if self.down:
                    client.close()
                    continue
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self.conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src, dst, from_client):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_client:
                    with self.lock:
                        if self.down:
                            break
                        puts = data.count(b"PUT /")
                        self.puts_seen += puts
                        if self.puts_left is not None and puts:
                            self.puts_left -= puts
                            if self.puts_left < 0:
                                self._cut()
                                break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
