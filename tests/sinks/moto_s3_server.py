"""moto's S3 server in a process of its own, with S3's atomic conditional writes (a script).

The Delta tests use it instead of the in-process server of ``tests/conftest.py``, for two
reasons:

* some deltalake calls (``DeltaTable.is_deltatable``, measured with deltalake 1.6.6) wait on
  the network without releasing the GIL, so a moto server running as a thread of the same
  process never gets to answer them: the call hangs until its timeout;
* moto checks ``If-None-Match: *`` and stores the object in two steps while its server
  answers requests in threads, so two concurrent conditional PUTs of one key could both
  succeed. S3 never lets that happen, and delta-rs's commits rely on it (two tasks writing
  the same log version: exactly one must win). Serialising moto's object writes (PUT, POST)
  gives the S3 behaviour; reads stay concurrent.

``python moto_s3_server.py`` prints ``http://127.0.0.1:<port>`` on its first line and serves
until it is terminated or its standard input closes (the test process that started it died).
"""

from __future__ import annotations

import signal
import sys
import threading

from moto.s3.responses import S3Response
from moto.server import ThreadedMotoServer

_WRITES = threading.Lock()
_key_response = S3Response.key_response


def _serialised_key_response(self, request, full_url, headers):
    if request.method in ("PUT", "POST"):
        with _WRITES:
            return _key_response(self, request, full_url, headers)
    return _key_response(self, request, full_url, headers)


def main() -> None:
    S3Response.key_response = _serialised_key_response
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"http://{host}:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
