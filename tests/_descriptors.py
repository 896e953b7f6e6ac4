"""Descriptor sets built from .proto sources during the test run, the way an operator builds them.

`protoc` comes from grpcio-tools and runs as a child process, so nothing is generated into the repository and
the test process keeps protobuf's global descriptor pool untouched.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message

SAMPLE_PROTO = Path(__file__).parent / "protos" / "sample.proto"


def build_descriptor_set(
    proto: Path, destination: Path, *, include_imports: bool = True, include_source_info: bool = False
) -> Path:
    """Compiles `proto` into a FileDescriptorSet at `destination`; imports resolve from its folder."""
    command = [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={proto.parent}"]
    command += ["--include_imports"] if include_imports else []
    command += ["--include_source_info"] if include_source_info else []
    command += [f"--descriptor_set_out={destination}", str(proto)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"protoc failed on {proto}: {result.stderr.strip()}")
    return destination


def message_classes(descriptor_set: Path) -> dict[str, type[Message]]:
    """Classes of every message in a self-contained descriptor set, from a pool of their own."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes()).file
    pool = DescriptorPool()
    for file in files:
        pool.Add(file)
    return message_factory.GetMessageClassesForFiles([file.name for file in files], pool)
