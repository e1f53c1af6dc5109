"""Pure parts of the typed-function service: the Integry schema rule and predict's lexical ranking."""

import pytest

from connections.models import Function
from functions.services import functions_predicted, integry_schema
from tests.factories import make_integration


@pytest.mark.parametrize("schema, served", [
    ({"type": "integer", "minimum": 1}, {"type": "number", "minimum": 1}),
    ({"type": ["string", "null"]}, {"type": "string"}),
    ({"anyOf": [{"type": "null"}, {"type": "integer"}]}, {"type": "number"}),
    ({"oneOf": [{"type": "object", "properties": {"a": {}}}, {"type": "string"}]}, {"type": "object"}),
    ({}, {"type": "string"}),
    ({"description": "free"}, {"type": "string", "description": "free"}),
    ({"type": "array", "items": {"type": "integer"}}, {"type": "array", "items": {"type": "number"}}),
    ({"type": "array"}, {"type": "array"}),
    ({"properties": {"n": {"type": ["integer", "null"]}}, "additionalProperties": False},
     {"type": "object", "properties": {"n": {"type": "number"}}}),
    ({"type": "object", "properties": {"deep": {"type": "object", "properties": {"x": {"enum": [1, 2]}}}}},
     {"type": "object", "properties": {"deep": {"type": "object", "properties": {"x": {"type": "string", "enum": [1, 2]}}}}}),
])
def test_every_node_has_one_integry_type(schema, served):
    assert integry_schema(schema) == served


@pytest.fixture
def functions(db):
    crm = make_integration(slug="crm", base_url="https://crm.test")
    chat = make_integration(slug="chat", base_url="https://chat.test")
    rows = [(crm, "crm-create-contact", "Create a contact\n\nAdd a person to the CRM."),
            (crm, "crm-list-contacts", "List contacts"),
            (crm, "crm-delete-deal", "Delete a deal"),
            (chat, "chat-post-message", "Post a message to a channel"),
            (chat, "chat-list-channels", "List channels the bot is in"),
            (chat, "chat-archive-channel", "Archive a channel")]
    for integration, name, description in rows:
        Function.objects.create(integration=integration, name=name, type="action", description=description,
                                parameters={"type": "object"})
    return Function.objects.select_related("integration")


def names(found):
    return [f.name for f in found]


@pytest.mark.parametrize("prompt, best", [
    ("post a message to the #sales channel", "chat-post-message"),
    ("add a new contact named Ada to my CRM", "crm-create-contact"),
    ("which channels am I in", "chat-list-channels"),
    ("DeleteDeal", "crm-delete-deal"),
])
def test_best_match_comes_first(functions, prompt, best):
    assert names(functions_predicted(prompt, functions))[0] == best


def test_at_most_five_and_only_matching_ones(functions):
    found = names(functions_predicted("list", functions))
    assert sorted(found) == ["chat-list-channels", "crm-list-contacts"]
    assert len(functions_predicted("crm chat contact channel message deal list archive", functions)) == 5


@pytest.mark.parametrize("prompt", ["", "send an invoice", "the of to a", "!!!"])
def test_nothing_matching_gives_nothing(functions, prompt):
    assert functions_predicted(prompt, functions) == []
