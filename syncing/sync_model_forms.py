"""Sync models edited as rows of the Integration admin form: one row per model, one column per key of the spec.

The rows cover every key `syncing.spec` knows (nested `pagination` and `modified_since` keys get a column each), so
no JSON is written by hand. A row becomes an entry the way the README writes one; `load_catalog`'s validator then
judges the whole list, and each of its messages is shown on the row and column it is about.
"""

import re

from django import forms

from syncing.spec import DEFAULT_FREQUENCY_SECONDS, FORMATS, STYLES

PREFIX = "sync_models"
NUMBER = re.compile(r"-?[0-9]+")
# Cells that say what the spec does without the key, so the entry leaves the key out (as the README's examples do);
# a blank name or path is left out for the validator's "Required" message.
LEFT_OUT_WHEN = {"name": {""}, "path": {""}, "records_field": {""}, "id_field": {"id"},
                 "updated_at_field": {"updated_at"}, "lookback_seconds": {"", 0}}
# The column a validator message about `key` (or `key.sub`) is shown on.
COLUMN_OF = {"modified_since": "modified_since_param", "pagination": "pagination_style"}
NESTED = {"pagination": ("style", "param", "next_field", "page_size_param", "page_size", "start"),
          "modified_since": ("param", "format")}
# The page's columns: each stacks a few cells, so a row fits the admin's width.
COLUMNS = [("Model", ("name", "path")), ("Records", ("records_field", "id_field", "updated_at_field")),
           ("Pagination", ("pagination_style", "pagination_param", "pagination_next_field", "pagination_page_size_param",
                           "pagination_page_size", "pagination_start")),
           ("Modified since", ("modified_since_param", "modified_since_format")),
           ("Schedule", ("frequency_seconds", "lookback_seconds")), ("Delete", ("DELETE",))]
NUMERIC = {"pagination_page_size", "pagination_start", "frequency_seconds", "lookback_seconds"}


def _cell(label: str, size: int = 10, **kwargs) -> forms.CharField:
    return forms.CharField(required=False, label=label, widget=forms.TextInput(attrs={"size": size}), **kwargs)


def _number(text: str):
    """A cell as a number when it is one; anything else goes to the validator as written, for its message."""
    return int(text) if NUMBER.fullmatch(text) else text


class SyncModelForm(forms.Form):
    name = _cell("Name", 12)
    path = _cell("Path", 22)
    records_field = _cell("Records field", help_text='Dotted path to the list; blank: the answer is the list.')
    id_field = _cell("Id field", 6, initial="id")
    updated_at_field = _cell("Modified field", initial="updated_at", help_text="Blank: none (every run sees all).")
    pagination_style = forms.CharField(required=False, label="Pagination", initial="none",
                                       widget=forms.Select(choices=[(style, style) for style in STYLES]))
    pagination_param = _cell("Cursor / page / offset param", 8)
    pagination_next_field = _cell("Next cursor / URL field", 10)
    pagination_page_size_param = _cell("Page size (limit) param", 8)
    pagination_page_size = _cell("Page size", 5)
    pagination_start = _cell("First page", 4, help_text="style page: 1 by default.")
    modified_since_param = _cell("Modified-since param", 10, help_text="Blank: every run fetches everything.")
    modified_since_format = forms.CharField(required=False, label="Format", initial="iso8601",
                                            widget=forms.Select(choices=[(f, f) for f in FORMATS]))
    frequency_seconds = _cell("Every (s)", 6, initial=str(DEFAULT_FREQUENCY_SECONDS), help_text="Blank: manual only.")
    lookback_seconds = _cell("Lookback (s)", 4, initial="0")

    def columns(self) -> list[list]:
        return [[self[name] for name in names] for _, names in COLUMNS]

    def entry(self) -> dict:
        """The spec entry this row describes (call on a valid, changed row)."""
        row = {name: (_number(value) if name in NUMERIC and value else value) for name, value in self.cleaned_data.items()
               if name != "DELETE"}
        entry = {key: row[key] for key in ("name", "path", "records_field", "id_field", "updated_at_field", "lookback_seconds")
                 if row[key] not in LEFT_OUT_WHEN.get(key, ())}
        pagination = {key: row[f"pagination_{key}"] for key in NESTED["pagination"] if row[f"pagination_{key}"] != ""}
        if pagination.keys() - {"style"} or pagination.get("style", "none") != "none":
            entry["pagination"] = pagination
        if row["modified_since_param"]:
            entry["modified_since"] = {"param": row["modified_since_param"], "format": row["modified_since_format"] or "iso8601"}
        entry["frequency_seconds"] = None if row["frequency_seconds"] == "" else row["frequency_seconds"]
        return entry


def rows(models) -> list[dict]:
    """The stored `sync_models` as row initials (an absent key shows the column's default)."""
    initial = []
    for model in models if isinstance(models, list) else []:
        if not isinstance(model, dict):
            continue
        row = {key: model[key] for key in ("name", "path", "records_field", "id_field", "updated_at_field",
                                           "frequency_seconds", "lookback_seconds") if key in model}
        for outer, keys in NESTED.items():
            inner = model.get(outer)
            row.update({f"{outer}_{key}": inner[key] for key in keys if isinstance(inner, dict) and key in inner})
        initial.append({key: "" if value is None else str(value) for key, value in row.items()})  # as a browser posts it
    return initial


class BaseSyncModelFormSet(forms.BaseFormSet):
    title = "Sync models"
    column_titles = [title for title, _ in COLUMNS]
    help_text = ("One row per model; fill an empty row to add one (save to get more empty rows), tick Delete to "
                 "remove one. Blank \"Every (s)\": manual syncs only; blank \"Modified field\": none. Checked like "
                 "load_catalog; the README (Syncing) explains every cell.")

    def __init__(self, data=None, *, value=None):
        super().__init__(data, initial=rows(value), prefix=PREFIX)

    def kept_forms(self) -> list[SyncModelForm]:
        """The rows that are models: not deleted, and not an empty row left as it was."""
        return [form for form in self.forms
                if not self._should_delete_form(form) and not (form.empty_permitted and not form.has_changed())]

    def value(self) -> list[dict]:
        return [form.entry() for form in self.kept_forms()]

    def show_problem(self, problem: str) -> bool:
        """Put a validator line `sync_models[i] (name) key.sub: message` on its row and column; False when it is
        not about one row."""
        match = re.match(rf"{PREFIX}\[([0-9]+)\]", problem)
        kept = self.kept_forms()
        if match is None or int(match[1]) >= len(kept):
            return False
        form = kept[int(match[1])]
        key = problem[match.end():].split(":", 1)[0].rsplit(" ", 1)[-1]  # after the "(name)" label, if any
        column = COLUMN_OF.get(key, key.replace(".", "_"))
        form.add_error(column if column in form.fields else None, problem)
        return True


SyncModelFormSet = forms.formset_factory(SyncModelForm, formset=BaseSyncModelFormSet, extra=2, can_delete=True)
