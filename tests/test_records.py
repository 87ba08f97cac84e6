"""The stored records' own rules (the validation ones are in test_store_contract.py)."""

from __future__ import annotations

import dataclasses

import pytest

from triochat.core.events import Said
from triochat.core.records import StoredMessage


def test_stored_message_written_out_init_sets_every_field() -> None:
    """``StoredMessage.__init__`` is written out (one is built per chat line): every
    field is set, in order, and the record stays frozen, equal and hashable."""
    values = {"room": "#a", "id": 7, "ts": 1.5, "kind": "me", "sender": "bob", "text": "waves"}
    message = StoredMessage("#a", 7, 1.5, "me", "bob", "waves")
    assert {f.name: getattr(message, f.name) for f in dataclasses.fields(message)} == values
    by_name = StoredMessage(**values)  # type: ignore[arg-type]
    assert message == by_name
    assert hash(message) == hash(by_name)
    assert dataclasses.replace(message, id=8) == StoredMessage("#a", 8, 1.5, "me", "bob", "waves")
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.text = "edited"  # type: ignore[misc]


def test_said_written_out_init_sets_every_field() -> None:
    """``Said.__init__`` is written out likewise: every field set, defaults as declared."""
    said = Said(1.5, "#a", 7, "bob", "hi", True, True, "+a=b")
    assert dataclasses.astuple(said) == (1.5, "#a", 7, "bob", "hi", True, True, "+a=b")
    plain = Said(1.5, "#a", 7, "bob", "hi")
    defaults = {f.name: f.default for f in dataclasses.fields(Said)[5:]}
    assert {name: getattr(plain, name) for name in defaults} == defaults
    assert plain == Said(ts=1.5, room="#a", id=7, sender="bob", text="hi", tags="")
    assert hash(plain) == hash(Said(1.5, "#a", 7, "bob", "hi"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.text = "edited"  # type: ignore[misc]
