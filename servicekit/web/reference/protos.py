"""The API described by the proto files: protoc compiles them to a descriptor set with source info, and every
service, RPC, message, field, enum and value is read from it with its leading comment."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2

# Field numbers of FileDescriptorProto, DescriptorProto, EnumDescriptorProto and ServiceDescriptorProto, as they
# appear in SourceCodeInfo paths (descriptor.proto).
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM = 2, 3, 4
ENUM_VALUE = 2
SERVICE_METHOD = 2
FILE_SYNTAX, FILE_PACKAGE = 12, 2

_FIELD = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    _FIELD.TYPE_DOUBLE: "double", _FIELD.TYPE_FLOAT: "float", _FIELD.TYPE_INT64: "int64",
    _FIELD.TYPE_UINT64: "uint64", _FIELD.TYPE_INT32: "int32", _FIELD.TYPE_FIXED64: "fixed64",
    _FIELD.TYPE_FIXED32: "fixed32", _FIELD.TYPE_BOOL: "bool",
    _FIELD.TYPE_STRING: "string", _FIELD.TYPE_BYTES: "bytes", _FIELD.TYPE_UINT32: "uint32",
    _FIELD.TYPE_SFIXED32: "sfixed32", _FIELD.TYPE_SFIXED64: "sfixed64", _FIELD.TYPE_SINT32: "sint32",
    _FIELD.TYPE_SINT64: "sint64",
}


@dataclass
class EnumValue:
    name: str
    number: int
    comment: str


@dataclass
class Enum:
    name: str
    full_name: str
    comment: str
    values: list[EnumValue]


@dataclass
class Field:
    name: str
    number: int
    type_name: str          # scalar name, or the full name of a message or enum (without the leading dot)
    repeated: bool
    comment: str
    oneof: str = ""
    map_key: str = ""       # for map fields: key type; type_name is then the value type
    proto3_optional: bool = False

    @property
    def is_map(self) -> bool:
        return bool(self.map_key)


@dataclass
class Message:
    name: str
    full_name: str
    comment: str
    fields: list[Field]
    messages: list[Message] = field(default_factory=list)
    enums: list[Enum] = field(default_factory=list)


@dataclass
class Method:
    name: str
    input_type: str
    output_type: str
    client_streaming: bool
    server_streaming: bool
    comment: str


@dataclass
class Service:
    name: str
    full_name: str
    comment: str
    methods: list[Method]


@dataclass
class ProtoFile:
    path: str
    package: str
    comment: str
    services: list[Service]
    messages: list[Message]
    enums: list[Enum]

    def all_messages(self) -> list[Message]:
        found: list[Message] = []

        def walk(messages: list[Message]) -> None:
            for message in messages:
                found.append(message)
                walk(message.messages)

        walk(self.messages)
        return found

    def all_enums(self) -> list[Enum]:
        return [*self.enums, *(enum for message in self.all_messages() for enum in message.enums)]


def _clean(comment: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in comment.splitlines()]
    return "\n".join(lines).strip()


def descriptor_set(proto_dir: Path) -> descriptor_pb2.FileDescriptorSet:
    """Compile every .proto under ``proto_dir`` with protoc (grpc_tools), keeping comments (source info)."""
    proto_dir = proto_dir.resolve()
    protos = sorted(str(path.relative_to(proto_dir)) for path in proto_dir.rglob("*.proto"))
    if not protos:
        raise FileNotFoundError(f"no .proto files under {proto_dir}")
    well_known = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "descriptors.pb"
        compiled = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}", f"-I{well_known}",
                                   "--include_source_info", f"--descriptor_set_out={out}", *protos],
                                  cwd=proto_dir, capture_output=True, text=True, timeout=120)
        if compiled.returncode != 0:
            raise RuntimeError(f"protoc failed: {compiled.stderr.strip()}")
        parsed = descriptor_pb2.FileDescriptorSet()
        parsed.ParseFromString(out.read_bytes())
    return parsed


def read_files(descriptors: descriptor_pb2.FileDescriptorSet) -> list[ProtoFile]:
    """Our model of each file, with the leading comment of every element (detached comments are not docs)."""
    return [_file(proto) for proto in descriptors.file]


def _file(proto: descriptor_pb2.FileDescriptorProto) -> ProtoFile:
    comments = {tuple(location.path): _clean(location.leading_comments)
                for location in proto.source_code_info.location if location.leading_comments}
    # The file's description is the comment above its package (or syntax) line.
    file_comment = comments.get((FILE_PACKAGE,), "") or comments.get((FILE_SYNTAX,), "")
    prefix = f"{proto.package}." if proto.package else ""

    def enum(message: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], scope: str) -> Enum:
        return Enum(message.name, f"{scope}{message.name}", comments.get(path, ""),
                    [EnumValue(value.name, value.number, comments.get((*path, ENUM_VALUE, index), ""))
                     for index, value in enumerate(message.value)])

    def message_of(message: descriptor_pb2.DescriptorProto, path: tuple[int, ...], scope: str) -> Message:
        full = f"{scope}{message.name}"
        map_entries = {f"{full}.{nested.name}": nested for nested in message.nested_type
                       if nested.options.map_entry}
        fields = []
        for index, item in enumerate(message.field):
            type_name = _SCALARS.get(item.type, item.type_name.lstrip("."))
            repeated = item.label == _FIELD.LABEL_REPEATED
            map_key = ""
            entry = map_entries.get(type_name)
            if entry is not None:
                key, value = entry.field[0], entry.field[1]
                map_key = _SCALARS.get(key.type, key.type_name.lstrip("."))
                type_name = _SCALARS.get(value.type, value.type_name.lstrip("."))
                repeated = False
            synthetic = item.proto3_optional
            oneof = message.oneof_decl[item.oneof_index].name if item.HasField("oneof_index") and not synthetic \
                else ""
            fields.append(Field(item.name, item.number, type_name, repeated, comments.get((*path, MESSAGE_FIELD,
                                                                                            index), ""),
                                oneof=oneof, map_key=map_key, proto3_optional=synthetic))
        nested = [message_of(inner, (*path, MESSAGE_NESTED, index), f"{full}.")
                  for index, inner in enumerate(message.nested_type) if not inner.options.map_entry]
        enums = [enum(inner, (*path, MESSAGE_ENUM, index), f"{full}.") for index, inner in enumerate(message.enum_type)]
        return Message(message.name, full, comments.get(path, ""), fields, nested, enums)

    services = []
    for index, service in enumerate(proto.service):
        path = (FILE_SERVICE, index)
        services.append(Service(service.name, f"{prefix}{service.name}", comments.get(path, ""), [
            Method(method.name, method.input_type.lstrip("."), method.output_type.lstrip("."),
                   method.client_streaming, method.server_streaming,
                   comments.get((*path, SERVICE_METHOD, number), ""))
            for number, method in enumerate(service.method)]))
    messages = [message_of(message, (FILE_MESSAGE, index), prefix) for index, message in enumerate(proto.message_type)]
    enums = [enum(item, (FILE_ENUM, index), prefix) for index, item in enumerate(proto.enum_type)]
    return ProtoFile(proto.name, proto.package, file_comment, services, messages, enums)
