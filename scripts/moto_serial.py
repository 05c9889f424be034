"""moto_server, serving one request at a time.

moto's own `moto_server` runs Werkzeug with threaded=True and does not lock its
DynamoDB backend, so two concurrent conditional writes can both pass their condition.
Real DynamoDB evaluates each conditional write atomically; serving requests one at a
time gives the emulator the same semantics, which the multi-instance tests rely on.

Usage: python scripts/moto_serial.py HOST PORT
"""

import os
import sys

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
app = DomainDispatcherApplication(create_backend_app)
run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)
