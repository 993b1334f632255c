"""Small payload schemas: each field says its type, bounds and whether it is optional."""

import re
from dataclasses import dataclass

from core.errors import ProtocolError

USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{3,32}")
ROOM_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class Field:
    """One payload field: its type and bounds; `optional` fields may be absent or null."""

    kind: type
    optional: bool = False
    min_length: int | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: re.Pattern | None = None
    pattern_text: str = ""
    items: "Field | None" = None
    max_items: int | None = None
    choices: tuple = ()

    def check(self, name, value):
        """Return the value if it fits, else raise ProtocolError('invalid')."""
        # A float field takes any JSON number; bool is an int in Python, but a
        # JSON true is never a valid id, count or duration.
        kinds = (int, float) if self.kind is float else self.kind
        if not isinstance(value, kinds) or (self.kind in (int, float) and isinstance(value, bool)):
            raise ProtocolError("invalid", f"{name} must be {KIND_NAMES[self.kind]}")
        if self.choices and value not in self.choices:
            raise ProtocolError("invalid", f"{name} must be one of {', '.join(map(str, self.choices))}")
        if self.kind is str:
            if not storable(value):
                raise ProtocolError("invalid", f"{name} must be text without NUL characters or unpaired surrogates")
            if self.min_length is not None and len(value) < self.min_length:
                raise ProtocolError("invalid", f"{name} must have at least {self.min_length} characters")
            if self.max_length is not None and len(value) > self.max_length:
                raise ProtocolError("invalid", f"{name} must have at most {self.max_length} characters")
            if self.pattern is not None and not self.pattern.fullmatch(value):
                raise ProtocolError("invalid", f"{name} must be {self.pattern_text}")
        if self.kind in (int, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise ProtocolError("invalid", f"{name} must be a finite number")
            if self.minimum is not None and value < self.minimum:
                raise ProtocolError("invalid", f"{name} must be at least {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise ProtocolError("invalid", f"{name} must be at most {self.maximum}")
        if self.kind is list:
            if self.max_items is not None and len(value) > self.max_items:
                raise ProtocolError("invalid", f"{name} must have at most {self.max_items} items")
            return [self.items.check(f"{name}[{index}]", item) for index, item in enumerate(value)]
        return value


def storable(text):
    """Tell whether every database can store the text: UTF-8 encodable (no lone surrogates), no NUL."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


KIND_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "a list",
    dict: "an object",
}

USERNAME = Field(str, pattern=USERNAME_PATTERN, pattern_text="3 to 32 of A-Z a-z 0-9 _ . -")
ROOM_NAME = Field(str, pattern=ROOM_NAME_PATTERN, pattern_text="1 to 64 of A-Z a-z 0-9 _ . -")
PASSWORD = Field(str, min_length=8, max_length=128)
MESSAGE_TEXT = Field(str, min_length=1, max_length=4000)
CLIENT_ID = Field(str, optional=True, min_length=1, max_length=64)
MAX_ID = 2**53  # the largest integer every JSON client reads exactly
MESSAGE_ID = Field(int, minimum=0, maximum=MAX_ID)


def optional(field):
    """Return a copy of the field that may be absent or null."""
    return Field(**{**field.__dict__, "optional": True})


def validate(payload, schema):
    """Check a payload against {name: Field}; return the known fields, absent optionals as None."""
    if not isinstance(payload, dict):
        raise ProtocolError("invalid", "the payload must be a JSON object")
    # Unknown fields are ignored, so clients may send extensions to older servers.
    clean = {}
    for name, field in schema.items():
        value = payload.get(name)
        if value is None:
            if not field.optional:
                raise ProtocolError("invalid", f"{name} is required")
            clean[name] = None
        else:
            clean[name] = field.check(name, value)
    return clean
