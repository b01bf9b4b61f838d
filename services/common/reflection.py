"""gRPC server reflection: each listener describes only its own services, and Parley's own files
keep their proto comments.

grpcio-reflection copies files out of a descriptor pool, which holds no source info, so the
comments the gateway turns into /openapi.json would be lost. Files of the committed descriptor
set (gen/agents/v1/descriptors.binpb, `make gen`) are served from it instead, comments included.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

SERVICE_NAME = reflection.SERVICE_NAME


@functools.cache
def sourced_files() -> dict[str, bytes]:
    """Each agents/v1 file's serialized FileDescriptorProto, with source info."""
    raw = resources.files("agents.v1").joinpath("descriptors.binpb").read_bytes()
    return {
        f.name: f.SerializeToString() for f in descriptor_pb2.FileDescriptorSet.FromString(raw).file
    }


# grpcio-reflection's asyncio servicer has no type information (types-grpcio covers the sync one).
class SourceInfoReflectionServicer(ReflectionServicer):  # type: ignore[misc]
    """The stock servicer, answering file requests from the descriptor set where it can."""

    def _file_by_filename(self, request: Any, filename: str) -> Any:
        return self._answer(request, lambda: self._pool.FindFileByName(filename))

    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        return self._answer(
            request, lambda: self._pool.FindFileContainingSymbol(fully_qualified_name)
        )

    def _file_containing_extension(
        self, request: Any, containing_type: str, extension_number: int
    ) -> Any:
        def find() -> descriptor.FileDescriptor:
            message = self._pool.FindMessageTypeByName(containing_type)
            extension = self._pool.FindExtensionByNumber(message, extension_number)
            found: descriptor.FileDescriptor = self._pool.FindFileContainingSymbol(
                extension.full_name
            )
            return found

        return self._answer(request, find)

    def _answer(self, request: Any, find: Any) -> Any:
        try:
            found = find()
        except KeyError:
            return reflection_pb2.ServerReflectionResponse(
                error_response=reflection_pb2.ErrorResponse(
                    error_code=grpc.StatusCode.NOT_FOUND.value[0],
                    error_message=b"not found",
                ),
                original_request=request,
            )
        sourced = sourced_files()
        files: dict[str, bytes] = {}

        def visit(fd: descriptor.FileDescriptor) -> None:
            if fd.name in files:
                return
            serialized = sourced.get(fd.name)
            if serialized is None:
                proto = descriptor_pb2.FileDescriptorProto()
                fd.CopyToProto(proto)
                serialized = proto.SerializeToString()
            files[fd.name] = serialized
            for dep in fd.dependencies:
                visit(dep)

        visit(found)
        return reflection_pb2.ServerReflectionResponse(
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=list(files.values())
            ),
            original_request=request,
        )


def listener_pool(service_names: list[str]) -> descriptor_pool.DescriptorPool:
    """The files defining these services and their imports, and nothing else this process
    loaded: reflection on a listener describes what it serves (the public API's does not show
    the store's internal service)."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: descriptor.FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        pool.AddSerializedFile(file.serialized_pb)
        added.add(file.name)

    for name in service_names:
        add(descriptor_pool.Default().FindServiceByName(name).file)
    return pool


def enable(service_names: list[str], server: grpc.aio.Server) -> None:
    """Reflection on `server` for these services (and itself), from their own files only."""
    described = [*service_names, SERVICE_NAME]
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        SourceInfoReflectionServicer(described, pool=listener_pool(described)), server
    )
