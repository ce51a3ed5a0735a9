"""A protoc/buf plugin that writes gRPC Python stubs with grpcio-tools.

grpcio-tools builds the gRPC Python generator into its bundled protoc, and no
`protoc-gen-grpc_python` executable is published on PyPI, so buf cannot call
it as a plugin. This adapter speaks the plugin protocol: it reads the
CodeGeneratorRequest, hands the files to grpcio-tools' protoc as a descriptor
set, and returns what that wrote as a CodeGeneratorResponse.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse()
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        descriptors = root / "descriptors.binpb"
        descriptors.write_bytes(
            descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString()
        )
        out = root / "out"
        out.mkdir()
        args = [
            "grpc_tools.protoc",
            f"--descriptor_set_in={descriptors}",
            f"--grpc_python_out={out}",
        ]
        if request.parameter:
            args[-1] = f"--grpc_python_out={request.parameter}:{out}"
        code = protoc.main([*args, *request.file_to_generate])
        if code != 0:
            response.error = f"grpcio-tools protoc exited with {code}"
            return response
        for path in sorted(out.rglob("*.py")):
            generated = response.file.add()
            generated.name = path.relative_to(out).as_posix()
            generated.content = path.read_text()
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
