"""The generated gRPC code of proto/p2pmq/v1/p2pmq.proto, made at import time.

Nothing generated is checked in: load() runs grpc_tools.protoc into a temporary directory and
adds its p2pmq/ to this package's __path__, so the generated modules are p2pmq.v1.p2pmq_pb2 and
p2pmq.v1.p2pmq_pb2_grpc (the names the generated code imports each other by).

The proto comes from, in order: $P2PMQ_PROTO_DIR (a directory holding p2pmq/v1/p2pmq.proto),
the repository this package sits in (clients/python/p2pmq -> proto/), or the copy an install
bundles (p2pmq/_proto, copied there by setup.py at build time).
"""
import atexit
import importlib
import os
import shutil
import tempfile

PROTO = os.path.join("p2pmq", "v1", "p2pmq.proto")
HERE = os.path.dirname(os.path.abspath(__file__))


class MissingDependency(ImportError):
    """grpcio or grpcio-tools (Debian: python3-grpcio, python3-grpc-tools) is missing."""


def proto_root():
    candidates = [os.environ.get("P2PMQ_PROTO_DIR", ""),
                  os.path.join(HERE, "..", "..", "..", "proto"),
                  os.path.join(HERE, "_proto")]
    for root in candidates:
        if root and os.path.isfile(os.path.join(root, PROTO)):
            return os.path.normpath(root)
    raise FileNotFoundError("no %s in %s (set P2PMQ_PROTO_DIR)" % (PROTO, candidates))


def load(package_path):
    """Generates the stubs, extends package_path (the p2pmq package's __path__) and returns
    (p2pmq_pb2, p2pmq_pb2_grpc)."""
    try:
        import grpc  # noqa: F401
        import grpc_tools
        from grpc_tools import protoc
    except ImportError as e:
        raise MissingDependency("p2pmq needs grpcio and grpcio-tools (Debian: apt install "
                                "python3-grpcio python3-grpc-tools): %s" % e) from e
    root = proto_root()
    out = tempfile.mkdtemp(prefix="p2pmq-stubs-")
    atexit.register(shutil.rmtree, out, True)
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["grpc_tools.protoc", "-I" + root, "-I" + well_known,
            "--python_out=" + out, "--grpc_python_out=" + out, PROTO]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on " + os.path.join(root, PROTO))
    package_path.append(os.path.join(out, "p2pmq"))
    pb = importlib.import_module("p2pmq.v1.p2pmq_pb2")
    rpc = importlib.import_module("p2pmq.v1.p2pmq_pb2_grpc")
    return pb, rpc
