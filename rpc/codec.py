"""Wire encoding: superjson (or bare) envelopes in and out, with decoders built once per type.

Inputs are decoded straight into each procedure's msgspec type when the envelope carries no
`meta` (the common case); with `meta`, the value is decoded generically, revived by superjson's
rules and then converted. Outputs are JSON-native (timestamps are ISO strings), so a result
never needs `meta`.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import msgspec

from rpc._jsondepth import exceeds_depth
from rpc._superjson import UNDEFINED, SuperjsonError, revive
from rpc.errors import ErrorCode, ErrorShape, RPCError

__all__ = ["UNDEFINED", "InputCodec", "Transformer"]


class Transformer(StrEnum):
    SUPERJSON = "superjson"  #: inputs and outputs wrapped as {"json": value, "meta"?: ...}
    NONE = "none"  #: bare JSON values


class _Envelope(msgspec.Struct):
    json: msgspec.Raw = msgspec.Raw(b"")
    meta: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_batch_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_any_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()

_NO_DEFAULT = object()


class InputCodec:
    """Decodes one procedure's input from wire bytes or from Python values."""

    __slots__ = ("_decoder", "default", "enveloped", "type")

    def __init__(self, input_type: Any) -> None:
        self.type = input_type
        self._decoder = None if input_type is None else msgspec.json.Decoder(input_type)
        #: `{"json": <input>}` decoded in one pass, for the common envelope without meta. Only
        #: for Struct inputs: one never decodes from null, which the general path reads as
        #: "no input" (the default), so both paths always agree.
        is_struct = isinstance(input_type, type) and issubclass(input_type, msgspec.Struct)
        self.enveloped = _enveloped_decoder(input_type) if is_struct else None
        self.default = _default_for(input_type)

    def absent(self) -> Any:
        """The input when none was sent; an error when the procedure requires one."""
        if self.default is _NO_DEFAULT:
            raise RPCError(ErrorCode.BAD_REQUEST, "Input is required")
        return self.default

    def from_json(self, raw: bytes | msgspec.Raw) -> Any:
        if self._decoder is None:
            return None
        if self.default is not _NO_DEFAULT and bytes(raw).strip() == b"null":
            return self.default
        try:
            return self._decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise _invalid_input(exc) from None
        except msgspec.DecodeError as exc:
            raise RPCError(ErrorCode.PARSE_ERROR, f"Input is not valid JSON: {exc}") from None

    def from_python(self, value: Any) -> Any:
        if self.type is None:
            return None
        if value is UNDEFINED or (value is None and self.default is not _NO_DEFAULT):
            return self.absent()
        try:
            return msgspec.convert(value, self.type)
        except msgspec.ValidationError as exc:
            raise _invalid_input(exc) from None


def _enveloped_decoder(input_type: Any) -> msgspec.json.Decoder[Any]:
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [
        ("json", input_type),
        ("meta", dict[str, Any] | msgspec.UnsetType, msgspec.UNSET),
    ]
    return msgspec.json.Decoder(msgspec.defstruct("Enveloped", fields))


def _default_for(input_type: Any) -> Any:
    if input_type is None:
        return None
    try:
        return msgspec.convert({}, input_type)
    except (msgspec.ValidationError, TypeError):
        return _NO_DEFAULT


def _invalid_input(exc: msgspec.ValidationError) -> RPCError:
    return RPCError(ErrorCode.BAD_REQUEST, f"Invalid input: {exc}")


def check_depth(raw: bytes, max_depth: int, wrappers: int = 0) -> None:
    """`wrappers` levels (batch object, superjson envelope) do not count against the limit."""
    if exceeds_depth(raw, max_depth + wrappers):
        raise RPCError(
            ErrorCode.BAD_REQUEST, f"Input nests deeper than the limit of {max_depth} levels"
        )


def decode_input(
    raw: bytes | msgspec.Raw | None, codec: InputCodec, transformer: Transformer
) -> Any:
    """One call's input, validated, from its wire bytes (None or empty: no input)."""
    if raw is None or len(raw) == 0:
        return codec.absent()
    if transformer is Transformer.NONE:
        return codec.from_json(raw)
    if codec.enveloped is not None:
        try:
            plain = codec.enveloped.decode(raw)
        except msgspec.DecodeError:
            pass  # the general path below reads it again, and rejects it with its own message
        else:
            if plain.meta is msgspec.UNSET:
                return plain.json
    envelope = _open_envelope(raw)
    if envelope is None:
        return codec.absent()
    if envelope.meta is msgspec.UNSET:
        return codec.from_json(envelope.json)
    return codec.from_python(_revive(envelope))


def decode_value(raw: bytes | msgspec.Raw | None, transformer: Transformer) -> Any:
    """One input as a plain Python value (UNDEFINED when absent), for amending before validation."""
    if raw is None or len(raw) == 0:
        return UNDEFINED
    if transformer is Transformer.NONE:
        return _decode_any(raw)
    envelope = _open_envelope(raw)
    if envelope is None:
        return UNDEFINED
    if envelope.meta is msgspec.UNSET:
        return _decode_any(envelope.json)
    return _revive(envelope)


def _open_envelope(raw: bytes | msgspec.Raw) -> _Envelope | None:
    """The superjson envelope; None for `{}`, which superjson reads as undefined."""
    try:
        envelope = _envelope_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        if "$.meta" in str(exc):
            raise RPCError(ErrorCode.PARSE_ERROR, 'Superjson "meta" must be an object') from None
        raise RPCError(ErrorCode.PARSE_ERROR, _NOT_AN_ENVELOPE) from None
    except msgspec.DecodeError as exc:
        raise RPCError(ErrorCode.PARSE_ERROR, f"Input is not valid JSON: {exc}") from None
    if len(envelope.json) > 0:
        return envelope
    if envelope.meta is not msgspec.UNSET:
        raise RPCError(ErrorCode.PARSE_ERROR, 'A superjson envelope with "meta" needs "json"')
    if bytes(raw).strip() != b"{}" and _decode_any(raw):
        raise RPCError(ErrorCode.PARSE_ERROR, _NOT_AN_ENVELOPE)
    return None


_NOT_AN_ENVELOPE = 'Input is not a superjson envelope: send {"json": <input>}'


def _revive(envelope: _Envelope) -> Any:
    value = _decode_any(envelope.json)
    try:
        return revive(value, envelope.meta)  # type: ignore[arg-type]
    except SuperjsonError as exc:
        raise RPCError(ErrorCode.PARSE_ERROR, f"Invalid superjson meta: {exc}") from None
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        # Meta shaped in a way no check above foresaw: still the client's fault, never a 500.
        raise RPCError(ErrorCode.PARSE_ERROR, f"Invalid superjson meta: {exc}") from None


def _decode_any(raw: bytes | msgspec.Raw) -> Any:
    try:
        return _any_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise RPCError(ErrorCode.PARSE_ERROR, f"Input is not valid JSON: {exc}") from None


def split_batch(raw: bytes | None, count: int) -> list[msgspec.Raw | None]:
    """Each call's raw input from a batch's {"0": ..., "1": ...} object; a missing key is None."""
    if raw is None or len(raw) == 0:
        return [None] * count
    try:
        inputs = _batch_decoder.decode(raw)
    except msgspec.ValidationError:
        raise RPCError(
            ErrorCode.BAD_REQUEST, '"input" needs to be an object when doing a batch call'
        ) from None
    except msgspec.DecodeError as exc:
        raise RPCError(ErrorCode.PARSE_ERROR, f"Input is not valid JSON: {exc}") from None
    return [inputs.get(str(index)) for index in range(count)]


def parse_json_object_of_strings(raw: bytes) -> dict[str, str]:
    try:
        return msgspec.json.decode(raw, type=dict[str, str])
    except msgspec.DecodeError as exc:  # ValidationError included
        raise RPCError(
            ErrorCode.PARSE_ERROR, f"connectionParams must be a JSON object of strings: {exc}"
        ) from None


# Responses. Prefixes are spliced around msgspec's output rather than building dicts.

_RESULT_OPEN = {
    Transformer.SUPERJSON: b'{"result":{"data":{"json":',
    Transformer.NONE: b'{"result":{"data":',
}
_RESULT_CLOSE = {Transformer.SUPERJSON: b"}}}", Transformer.NONE: b"}}"}
_ERROR_OPEN = {Transformer.SUPERJSON: b'{"error":{"json":', Transformer.NONE: b'{"error":'}
_ERROR_CLOSE = {Transformer.SUPERJSON: b"}}", Transformer.NONE: b"}"}


def encode_result(output: Any, transformer: Transformer) -> bytes:
    return b"".join(
        (_RESULT_OPEN[transformer], _encoder.encode(output), _RESULT_CLOSE[transformer])
    )


def encode_error(shape: ErrorShape, transformer: Transformer) -> bytes:
    return b"".join((_ERROR_OPEN[transformer], _encoder.encode(shape), _ERROR_CLOSE[transformer]))


def encode_batch(envelopes: Sequence[bytes]) -> bytes:
    return b"[" + b",".join(envelopes) + b"]"


def encode_value(value: Any, transformer: Transformer) -> bytes:
    """A bare value as the transformer serialises it: SSE data lines, JSONL lines."""
    if transformer is Transformer.SUPERJSON:
        return b'{"json":' + _encoder.encode(value) + b"}"
    return _encoder.encode(value)


def encode_raw(value: Any) -> bytes:
    return _encoder.encode(value)
