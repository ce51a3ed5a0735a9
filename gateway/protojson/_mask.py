"""The proto paths of the fields a JSON object sets: the FieldMask of a PATCH (AIP-134).

As grpc-gateway's `FieldMaskFromRequestBody`: keys of nested message objects are
followed down; a map, a list, a well-known type, an empty object or null is a leaf, named
by its own path. Unknown keys are skipped (decoding has refused them if it had to).
"""

from __future__ import annotations

from typing import Any, TypeAlias

from google.protobuf.descriptor import Descriptor

from gateway.protojson._kinds import is_plain_message

_Entry: TypeAlias = "tuple[str, _MaskPlan | None]"
"""(proto name, the plan of its message when the field is a plain message)."""


class _MaskPlan:
    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: dict[str, _Entry] = {}

    def collect(self, value: dict[str, Any], prefix: str, out: list[str]) -> None:
        for key, item in value.items():
            entry = self.fields.get(key)
            if entry is None:
                continue
            name, inner = entry
            if inner is not None and isinstance(item, dict) and item:
                inner.collect(item, f"{prefix}{name}.", out)
            else:
                out.append(prefix + name)


class Masks:
    """Mask plans, one per message type."""

    def __init__(self) -> None:
        self._plans: dict[Descriptor, _MaskPlan] = {}

    def plan(self, message: Descriptor) -> _MaskPlan:
        plan = self._plans.get(message)
        if plan is None:
            # Cached before its fields are compiled, so that recursive types find it.
            self._plans[message] = plan = _MaskPlan()
            for field in message.fields:
                nested = field.message_type
                plain = nested is not None and is_plain_message(field)
                inner = self.plan(nested) if plain and nested is not None else None
                entry = (field.name, inner)
                plan.fields[field.name] = plan.fields[field.json_name] = entry
        return plan
