"""Bundles proto/p2pmq/v1/p2pmq.proto into the built package (p2pmq/_proto), so an installed
p2pmq generates its stubs without the repository. The repository keeps the one copy."""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join("p2pmq", "v1", "p2pmq.proto")


class BuildWithProto(build_py):
    def run(self):
        super().run()
        source = os.path.join(HERE, "..", "..", "proto", PROTO)
        target = os.path.join(self.build_lib, "p2pmq", "_proto", PROTO)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)


setup(cmdclass={"build_py": BuildWithProto})
