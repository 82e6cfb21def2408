"""The examples' (and tests/agent's) way to the generated p2pmq.v1 stubs: the p2pmq client
package (clients/python), which generates them from proto/ at import time. An installed p2pmq
package is used when there is one; otherwise the one in this repository."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.normpath(os.path.join(HERE, "..", "clients", "python"))


def import_client():
    """The p2pmq package; exits with a sentence when gRPC for Python is missing."""
    if CLIENT not in sys.path:
        sys.path.insert(0, CLIENT)
    try:
        import p2pmq
    except ImportError as e:
        sys.exit(str(e))
    return p2pmq


def load():
    """Returns (p2pmq_pb2, p2pmq_pb2_grpc) for package p2pmq.v1."""
    p2pmq = import_client()
    return p2pmq.pb, p2pmq.rpc
