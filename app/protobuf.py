"""The protobuf type registry: which manifests the service understands, and how payloads map to JSON.

A registry knows the well-known types (`google.protobuf.*`, as the installed protobuf runtime defines
them) and every message of the `FileDescriptorSet` files it is loaded from (`protoc --include_imports
--descriptor_set_out`, `buf build -o`). It keeps a descriptor pool of its own, never protobuf's global one.

Loading
    A file that is missing, unreadable, corrupt or empty raises `DescriptorSetError`. The same `.proto`
    file (same path name, e.g. an import that `--include_imports` bundled into several sets) may appear
    more than once if its top-level definitions are identical (source info and file options are not
    compared); the first copy is used. A full name defined differently by two copies of a file, or
    defined by two different `.proto` files, is refused. Copies of the well-known types inside a set are
    ignored, the runtime's definitions win, so sets built by an older or newer protoc load. A set built
    without `--include_imports` loads when another set holds its imports.

Valid payloads (`check_payload`)
    A payload of a known type must parse as that type and set every proto2 `required` field. Fields the
    type does not define (a writer with a newer schema) are kept under `unknown_fields="keep"`, and
    refused under `"reject"`. Zero bytes is a valid message. The same holds for the message inside every
    `google.protobuf.Any` whose type the registry knows (eGo's Go store writes each state as an Any); an
    Any of a type it does not know is accepted unchecked, as an unknown manifest is.

Reading (`decode`)
    Protobuf's canonical JSON mapping: lowerCamelCase names, 64-bit integers as strings, bytes as base64,
    enums by name, default values left out, an Any as `{"@type": url, ...}` with its message's fields.
    Fields the type does not define are left out of the JSON, and `Decoded.unknown_fields` says that
    some were there. None when the registry cannot know the state's shape: an unknown manifest, or an
    Any anywhere in the message whose type it does not know (rendering part of a state would pass for
    all of it). Stored bytes that do not parse as their known type (written opaquely before the
    descriptor set was loaded) raise `InvalidState` naming the manifest. The raw payload stays readable
    without decoding.

    A rendering costs Python objects and time in proportion to the values it holds, not to the bytes of
    the payload: 400 KB of empty sub-messages are 200,000 JSON objects. So a state of more than
    `MAX_RENDERED_VALUES` values (fields set, and elements of repeated fields and maps, all counted, Any
    contents included), or more than the `max_values` a caller allows, is refused with `TooManyValues`
    before any rendering starts; its payload can still be read. `Decoded.values` is the count.

Writing (`from_json`)
    Serializes deterministically, Any contents included, so payload -> JSON -> payload gives back the
    same bytes for every payload that was itself serialized deterministically. A JSON state of more than
    `MAX_RENDERED_VALUES` values (objects, arrays and scalars, keys not counted) is refused before it is
    parsed, for the same reason as above. The JSON mapping cannot
    carry NaN payload bits, nor tell an unset `google.protobuf.Value` from a JSON null; and protobuf's
    Python JSON parser refuses ±3.4028235e38, the JSON form of a float field's largest finite values.

Messages nested more than 100 levels deep, counted through Any, are refused, as protobuf's own parsers
refuse them.

Cost (`checks_quickly`)
    All of the above walks every value of a message, with the interpreter lock held. A payload check is
    quick whatever its size when its type cannot repeat messages (no repeated message field, map or Any
    reachable from it: the protobuf runtime parses its repeated scalars in C), or when the payload is at
    most `QUICK_CHECK_BYTES`; `app.protobuf_worker` runs the rest in a process of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from google.protobuf import (
    any_pb2,
    api_pb2,
    descriptor_pb2,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    json_format,
    message_factory,
    source_context_pb2,
    struct_pb2,
    timestamp_pb2,
    type_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError, EncodeError, Message

from app.errors import InvalidState

if TYPE_CHECKING:  # the worker process imports this module, and need not load the settings' pydantic
    from app.settings import UnknownFields

_ANY = "google.protobuf.Any"
_MAX_DEPTH = 100
MAX_RENDERED_VALUES = 50_000
QUICK_CHECK_BYTES = 16 * 1024
_MAX_SUMMARY = 300
_RUNTIME = "the protobuf runtime"
_WELL_KNOWN_FILES: tuple[FileDescriptor, ...] = (
    any_pb2.DESCRIPTOR,
    api_pb2.DESCRIPTOR,
    descriptor_pb2.DESCRIPTOR,
    duration_pb2.DESCRIPTOR,
    empty_pb2.DESCRIPTOR,
    field_mask_pb2.DESCRIPTOR,
    source_context_pb2.DESCRIPTOR,
    struct_pb2.DESCRIPTOR,
    timestamp_pb2.DESCRIPTOR,
    type_pb2.DESCRIPTOR,
    wrappers_pb2.DESCRIPTOR,
)
_NON_OBJECT_JSON_TYPES = frozenset(
    f"google.protobuf.{name}"
    for name in (
        "Duration",
        "Timestamp",
        "FieldMask",
        "Value",
        "ListValue",
        "DoubleValue",
        "FloatValue",
        "Int64Value",
        "UInt64Value",
        "Int32Value",
        "UInt32Value",
        "BoolValue",
        "StringValue",
        "BytesValue",
    )
)


class DescriptorSetError(Exception):
    """A descriptor set that cannot be loaded; the message is one line naming the file and what is wrong."""


class TooManyValues(InvalidState):
    """A state whose JSON form would hold more values than a rendering or a parse may take."""


class TypeRegistry:
    """The message types the service knows, each reachable by its full name (the manifest)."""

    def __init__(self, pool: DescriptorPool, files: Sequence[FileDescriptor]) -> None:
        descriptors = _message_descriptors(files)
        self._pool = pool
        self._descriptors = {descriptor.full_name: descriptor for descriptor in descriptors}
        self._classes: dict[str, type[Message]] = {}
        fields = [*_fields(descriptors), *_file_extensions(files)]
        self._any_holders = _types_that_reach({_ANY}, fields)
        repeaters = {  # types with a repeated message field, maps included (their entries are messages)
            field.containing_type.full_name
            for field in fields
            if field.is_repeated and field.message_type is not None and field.containing_type is not None
        }
        self._message_repeaters = _types_that_reach(repeaters | {_ANY}, fields)

    @classmethod
    def load(cls, paths: Sequence[Path]) -> TypeRegistry:
        loader = _DescriptorSetLoader()
        for path in paths:
            loader.read(path)
        pool = loader.build_pool()
        return cls(pool, [pool.FindFileByName(name) for name in loader.file_names])

    def knows(self, manifest: str) -> bool:
        return manifest in self._descriptors

    def checks_quickly(self, manifest: str, payload_size: int) -> bool:
        """Whether `check_payload` is quick whatever the bytes hold: their size, or their type, bounds the
        work."""
        return payload_size <= QUICK_CHECK_BYTES or manifest not in self._message_repeaters

    def check_payload(self, manifest: str, payload: bytes, unknown_fields: UnknownFields = "keep") -> None:
        message_class = self._message_class(manifest)
        if message_class is None:
            return
        parsing = _Parsing(unknown_fields)
        try:
            self._unpack_anys(parsing.parse(message_class, payload), parsing)
        except _Unfit as unfit:
            raise InvalidState(f"payload is not a valid {manifest}: {unfit}") from unfit

    def decode(self, manifest: str, payload: bytes, max_values: int = MAX_RENDERED_VALUES) -> Decoded | None:
        message_class = self._message_class(manifest)
        if message_class is None:
            return None
        parsing = _Parsing("keep")
        try:
            message = parsing.parse(message_class, payload)
            anys = self._unpack_anys(message, parsing)
        except _Unfit as unfit:
            raise InvalidState(f"the stored payload is not a valid {manifest}: {unfit}") from unfit
        if any(inner is None for _, inner in anys):
            return None
        values = _rendered_values([message, *(inner for _, inner in anys if inner is not None)], max_values)
        if values > max_values:
            raise TooManyValues(
                f"the stored {manifest} holds more than {max_values} values, more than one"
                " state's JSON rendering may take; read its payload instead (without decode=true)"
            )
        try:
            state = json_format.MessageToDict(message, descriptor_pool=self._pool)
        except (json_format.SerializeToJsonError, ValueError) as error:
            raise InvalidState(f"the stored {manifest} has no JSON form: {error}") from error
        return Decoded(state, parsing.found_unknown_fields, values)

    def check_json_state(self, manifest: str, state: Any) -> int:
        """What `from_json` refuses before parsing: an unknown manifest, a state of the wrong JSON type, and
        one of more than MAX_RENDERED_VALUES values; else the state's values. Quick: it walks at most that
        many values."""
        if manifest not in self._descriptors:
            raise InvalidState(
                f"a JSON state needs a known manifest; {manifest} is neither a well-known type"
                " nor in the loaded descriptor sets"
            )
        if not isinstance(state, dict) and manifest not in _NON_OBJECT_JSON_TYPES:
            raise InvalidState(f"state does not fit {manifest}: it must be a JSON object")
        values = _json_values(state)
        if values > MAX_RENDERED_VALUES:
            raise TooManyValues(
                f"the state holds more than {MAX_RENDERED_VALUES} JSON values, more than one state's JSON"
                " form may take; send its serialized payload instead"
            )
        return values

    def from_json(self, manifest: str, state: Any) -> bytes:
        self.check_json_state(manifest, state)
        message_class = self._message_class(manifest)
        assert message_class is not None  # the manifest is known
        message = message_class()
        try:
            json_format.ParseDict(state, message, descriptor_pool=self._pool)
        except (json_format.ParseError, EncodeError, TypeError, ValueError, AttributeError) as error:
            raise InvalidState(f"state does not fit {manifest}: {_summary(error)}") from error
        if not message.IsInitialized():
            raise InvalidState(f"state does not fit {manifest}: {_missing_required_fields(message)}")
        try:
            anys = self._unpack_anys(message, _Parsing("reject"))
        except _Unfit as unfit:
            raise InvalidState(f"state does not fit {manifest}: {unfit}") from unfit
        for any_message, inner in anys:
            if inner is not None:
                cast(any_pb2.Any, any_message).value = inner.SerializeToString(deterministic=True)
        return message.SerializeToString(deterministic=True)

    def _message_class(self, manifest: str) -> type[Message] | None:
        message_class = self._classes.get(manifest)
        if message_class is None and manifest in self._descriptors:
            message_class = message_factory.GetMessageClass(self._descriptors[manifest])
            self._classes[manifest] = message_class
        return message_class

    def _unpack_anys(
        self, message: Message, parsing: _Parsing, depth: int = 1
    ) -> list[tuple[Message, Message | None]]:
        """Every Any set in the message, innermost first, with its parsed content (None for an unknown type).

        Raises `_Unfit` when the content of an Any of known type is not a valid message of that type.
        """
        if depth > _MAX_DEPTH:
            raise _Unfit(f"messages are nested more than {_MAX_DEPTH} levels deep")
        if message.DESCRIPTOR.full_name == _ANY:
            return self._unpack_any(message, parsing, depth)
        found: list[tuple[Message, Message | None]] = []
        for field, value in message.ListFields():
            if field.message_type is not None and field.message_type.full_name in self._any_holders:
                for child in _child_messages(field, value):
                    found += self._unpack_anys(child, parsing, depth + 1)
        return found

    def _unpack_any(
        self, message: Message, parsing: _Parsing, depth: int
    ) -> list[tuple[Message, Message | None]]:
        if not message.ListFields():
            return []
        # The class comes from this registry's pool, not any_pb2, but has the same fields.
        any_message = cast(any_pb2.Any, message)
        inner_class = self._message_class(any_message.type_url.rpartition("/")[2])
        if inner_class is None:
            return [(message, None)]
        try:
            inner = parsing.parse(inner_class, any_message.value)
        except _Unfit as unfit:
            raise _Unfit(f"its {_ANY} holding {inner_class.DESCRIPTOR.full_name}: {unfit}") from unfit
        return [*self._unpack_anys(inner, parsing, depth + 1), (message, inner)]


class _Unfit(Exception):
    """Bytes that are not a valid message of their type; the message says why."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """A state in protobuf's JSON mapping; `unknown_fields`: the payload held fields its type does not define,
    which the JSON leaves out; `values`: what the rendering counted."""

    state: Any
    unknown_fields: bool
    values: int


@dataclass(slots=True)
class _Parsing:
    """The parses of one payload (its Any contents included): what to do with fields the type does not
    define, and whether any were found."""

    unknown_fields: UnknownFields
    found_unknown_fields: bool = False

    def parse(self, message_class: type[Message], data: bytes) -> Message:
        message = message_class()
        try:
            message.ParseFromString(data)
        except DecodeError as error:
            raise _Unfit(str(error).rpartition(": ")[2]) from error
        if not message.IsInitialized():
            raise _Unfit(_missing_required_fields(message))
        size_with_unknown_fields = message.ByteSize()
        message.DiscardUnknownFields()
        if message.ByteSize() != size_with_unknown_fields:
            if self.unknown_fields == "reject":
                raise _Unfit(f"it carries fields that {message.DESCRIPTOR.full_name} does not define")
            self.found_unknown_fields = True
        return message


def _rendered_values(messages: Iterable[Message], limit: int) -> int:
    """The values protobuf's JSON mapping renders for the messages, counted until past `limit`: the count
    never walks more than that many, whatever the messages hold."""
    count = 0
    pending = list(messages)
    while pending and count <= limit:
        for field, value in pending.pop().ListFields():
            count += len(value) if field.is_repeated else 1
            if count > limit:
                break
            if field.message_type is None:
                continue
            if field.message_type.GetOptions().map_entry:
                if field.message_type.fields_by_name["value"].message_type is not None:
                    pending += value.values()
            elif field.is_repeated:
                pending += value
            else:
                pending.append(value)
    return count


def _json_values(state: Any) -> int:
    """The objects, arrays and scalars of a JSON value, counted until past MAX_RENDERED_VALUES. A number
    beyond a double's range (which the body's parser reads as infinite) is refused: the state would be
    stored, then have no JSON form to read it back in (a `google.protobuf.Value`, say)."""
    count = 0
    pending = [state]
    while pending and count <= MAX_RENDERED_VALUES:
        value = pending.pop()
        count += 1
        if isinstance(value, dict):
            pending += value.values()
        elif isinstance(value, list):
            pending += value
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidState(
                "state holds a number beyond a double's range; protobuf's JSON mapping writes infinity and"
                ' NaN as the strings "Infinity", "-Infinity" and "NaN", where a field takes them'
            )
    return count


def _summary(error: Exception) -> str:
    """The first line of a JSON parse error, cut short: protobuf's messages may quote the whole value."""
    first_line = str(error).partition("\n")[0].rstrip(".")
    return first_line if len(first_line) <= _MAX_SUMMARY else first_line[: _MAX_SUMMARY - 1] + "…"


def _missing_required_fields(message: Message) -> str:
    missing: list[str] = message.FindInitializationErrors()  # type: ignore[attr-defined]  # not in the stubs
    return f"required fields are missing: {', '.join(missing)}"


def _child_messages(field: FieldDescriptor, value: Any) -> Iterable[Message]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return cast(Iterable[Message], value.values())
    if field.is_repeated:
        return cast(Iterable[Message], value)
    return (cast(Message, value),)


def _message_descriptors(files: Iterable[FileDescriptor]) -> list[Descriptor]:
    found: list[Descriptor] = []
    pending = [descriptor for file in files for descriptor in file.message_types_by_name.values()]
    while pending:
        descriptor = pending.pop()
        found.append(descriptor)
        pending += descriptor.nested_types
    return found


def _fields(descriptors: Iterable[Descriptor]) -> list[FieldDescriptor]:
    """The fields of the messages, and the extensions declared inside them."""
    return [field for descriptor in descriptors for field in (*descriptor.fields, *descriptor.extensions)]


def _file_extensions(files: Iterable[FileDescriptor]) -> list[FieldDescriptor]:
    return [extension for file in files for extension in file.extensions_by_name.values()]


def _types_that_reach(targets: Iterable[str], fields: Iterable[FieldDescriptor]) -> frozenset[str]:
    """Full names of the targets, and of the types from which one can be reached through these fields."""
    containers: dict[str, set[str]] = {}
    for field in fields:
        if field.message_type is not None and field.containing_type is not None:
            container = field.containing_type.full_name
            containers.setdefault(field.message_type.full_name, set()).add(container)
    holders: set[str] = set()
    pending = list(targets)
    while pending:
        name = pending.pop()
        if name not in holders:
            holders.add(name)
            pending += containers.get(name, ())
    return frozenset(holders)


@dataclass(frozen=True)
class _SourcedFile:
    proto: descriptor_pb2.FileDescriptorProto
    origin: str


class _DescriptorSetLoader:
    """Gathers the files of several descriptor sets, refusing conflicts, then builds one pool from them."""

    def __init__(self) -> None:
        self._files: dict[str, _SourcedFile] = {}
        self._definers: dict[str, _SourcedFile] = {}
        for file in _WELL_KNOWN_FILES:
            self._merge(descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb), _RUNTIME)

    @property
    def file_names(self) -> list[str]:
        return list(self._files)

    def read(self, path: Path) -> None:
        for proto in _read_descriptor_set(path).file:
            self._merge(proto, str(path))

    def build_pool(self) -> DescriptorPool:
        pool = DescriptorPool()
        added: set[str] = set()
        for file in self._files.values():
            self._add_with_imports(pool, file, added)
        return pool

    def _merge(self, proto: descriptor_pb2.FileDescriptorProto, origin: str) -> None:
        file = _SourcedFile(proto, origin)
        known = self._files.get(proto.name)
        if known is None:
            self._add_new_file(file)
        elif known.origin != _RUNTIME:
            _require_same_definitions(known, file)

    def _add_new_file(self, file: _SourcedFile) -> None:
        for name in _definitions(file.proto):
            other = self._definers.get(name)
            if other is not None:
                raise DescriptorSetError(
                    f"{file.origin}: {name} in {file.proto.name} is already defined"
                    f" in {other.proto.name} from {other.origin}"
                )
            self._definers[name] = file
        self._files[file.proto.name] = file

    def _add_with_imports(self, pool: DescriptorPool, file: _SourcedFile, added: set[str]) -> None:
        if file.proto.name in added:
            return
        added.add(file.proto.name)
        for dependency in file.proto.dependency:
            imported = self._files.get(dependency)
            if imported is None:
                raise DescriptorSetError(
                    f"{file.origin}: {file.proto.name} imports {dependency}, which no descriptor set holds"
                    " (build the set with --include_imports)"
                )
            self._add_with_imports(pool, imported, added)
        try:
            pool.Add(file.proto)
        except TypeError as error:
            raise DescriptorSetError(f"{file.origin}: {file.proto.name} does not load: {error}") from error


def _read_descriptor_set(path: Path) -> descriptor_pb2.FileDescriptorSet:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DescriptorSetError(f"{path}: cannot read it: {error.strerror or error}") from error
    try:
        descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(data)
    except DecodeError as error:
        raise DescriptorSetError(f"{path}: not a FileDescriptorSet, the bytes do not parse") from error
    if not descriptor_set.file:
        raise DescriptorSetError(f"{path}: not a FileDescriptorSet, it holds no .proto file")
    return descriptor_set


_Definition = (
    descriptor_pb2.DescriptorProto
    | descriptor_pb2.EnumDescriptorProto
    | descriptor_pb2.ServiceDescriptorProto
    | descriptor_pb2.FieldDescriptorProto
)


def _definitions(proto: descriptor_pb2.FileDescriptorProto) -> dict[str, bytes]:
    """The file's top-level definitions by full name, each serialized; nested ones are inside their parent."""
    prefix = f"{proto.package}." if proto.package else ""
    definitions: list[_Definition] = [*proto.message_type, *proto.enum_type, *proto.service, *proto.extension]
    return {
        prefix + definition.name: definition.SerializeToString(deterministic=True)
        for definition in definitions
    }


def _require_same_definitions(known: _SourcedFile, duplicate: _SourcedFile) -> None:
    ours, theirs = _definitions(known.proto), _definitions(duplicate.proto)
    for name in sorted(ours.keys() | theirs.keys()):
        if ours.get(name) != theirs.get(name):
            raise DescriptorSetError(
                f"{duplicate.origin}: {name} in {duplicate.proto.name} differs from its definition"
                f" in {known.origin}"
            )
