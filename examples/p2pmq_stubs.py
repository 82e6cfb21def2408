"""Python stubs for proto/p2pmq/v1/p2pmq.proto, generated at run time.

The examples use Debian's python3-grpcio and python3-grpc-tools (run them with /usr/bin/python3).
Nothing generated is checked in: load() runs grpc_tools.protoc into a temporary directory and
imports p2pmq_pb2 / p2pmq_pb2_grpc from there, so a clean clone works as is.
"""
import atexit
import importlib
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "proto")
PROTO = os.path.join("p2pmq", "v1", "p2pmq.proto")


def load():
    """Returns (p2pmq_pb2, p2pmq_pb2_grpc) for package p2pmq.v1."""
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError:
        sys.exit("needs python3-grpc-tools (apt install python3-grpcio python3-grpc-tools)")
    out = tempfile.mkdtemp(prefix="p2pmq-stubs-")
    atexit.register(shutil.rmtree, out, True)
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["grpc_tools.protoc", "-I" + PROTO_ROOT, "-I" + well_known,
            "--python_out=" + out, "--grpc_python_out=" + out, PROTO]
    if protoc.main(args) != 0:
        sys.exit("protoc failed on " + os.path.join(PROTO_ROOT, PROTO))
    sys.path.insert(0, out)
    pb = importlib.import_module("p2pmq.v1.p2pmq_pb2")
    rpc = importlib.import_module("p2pmq.v1.p2pmq_pb2_grpc")
    return pb, rpc
