"""Adding or editing one item or currency of the draft: every field, through put_draft with
the ETag the form was opened with, refused with the store's own field paths and messages."""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.wrappers import Response as WebResponse

from ..errors import PreconditionFailed, ValidationFailed
from .forms import CurrencyForm, ItemForm, field_errors
from .overview import current_draft, put_draft, show_catalog
from .page import done, render, scales


def edit_item(sku: str | None = None) -> WebResponse:
    """Adds an item to the draft (no sku) or edits one."""
    draft, etag = current_draft()
    index = next((i for i, item in enumerate(draft["items"]) if item["sku"] == sku), None)
    if sku is not None and index is None:
        return show_catalog(404, errors=[f"{sku} is not in the draft (was it removed?)"])
    if request.method == "GET":
        form = ItemForm.from_item(draft["items"][index]) if index is not None else ItemForm()
        return _item_page(form, draft, etag, sku=sku)
    form = ItemForm.from_request(request.form)
    item, own_errors = form.to_item()
    sent_etag = request.form.get("etag", "")
    items = list(draft["items"])
    position = index if index is not None else len(items)
    if own_errors:
        errors = {k: [f"items.{position}.{k}: {m}" for m in v] for k, v in own_errors.items()}
        return _item_page(form, draft, sent_etag, sku=sku, errors=errors, status=422)
    if index is None:
        items.append(item)
    else:
        # What the form does not show (an item's localized text) stays as it was.
        items[index] = {**draft["items"][index], **item}
    content = {**draft, "items": items}
    try:
        put_draft(content, sent_etag)
    except ValidationFailed as exc:
        errors = field_errors(exc.details, prefix=f"items.{position}", data=content)
        return _item_page(form, draft, sent_etag, sku=sku, errors=errors, status=422)
    except PreconditionFailed:
        return _item_page(form, draft, sent_etag, sku=sku, conflict=True, status=412)
    verb = "Added" if sku is None else "Saved"
    return done("studio_web.catalog_page", f"{verb} {item['sku']} in the draft.")


def _item_page(
    form: ItemForm,
    draft: dict[str, Any],
    etag: str,
    *,
    sku: str | None,
    errors: dict[str, list[str]] | None = None,
    conflict: bool = False,
    status: int = 200,
) -> WebResponse:
    codes = [c["code"] for c in draft["currencies"]]
    skus = [i["sku"] for i in draft["items"] if i["kind"] != "bundle" and i["sku"] != sku]
    return render(
        "studio/item.html",
        status,
        form=form,
        etag=etag,
        sku=sku,
        codes=codes,
        skus=skus,
        segments=[s["id"] for s in draft.get("segments", [])],
        errors=errors or {},
        conflict=conflict,
        scales=scales(draft),
    )


def edit_currency(code: str | None = None) -> WebResponse:
    """Adds a currency to the draft (no code) or edits one."""
    draft, etag = current_draft()
    index = next((i for i, c in enumerate(draft["currencies"]) if c["code"] == code), None)
    if code is not None and index is None:
        return show_catalog(404, errors=[f"{code} is not in the draft (was it removed?)"])
    if request.method == "GET":
        form = (
            CurrencyForm.from_currency(draft["currencies"][index])
            if index is not None
            else CurrencyForm()
        )
        return _currency_page(form, etag, code=code)
    form = CurrencyForm.from_request(request.form)
    currency = form.to_currency()
    sent_etag = request.form.get("etag", "")
    currencies = list(draft["currencies"])
    position = index if index is not None else len(currencies)
    if index is None:
        currencies.append(currency)
    else:
        currencies[index] = currency
    content = {**draft, "currencies": currencies}
    try:
        put_draft(content, sent_etag)
    except ValidationFailed as exc:
        errors = field_errors(exc.details, prefix=f"currencies.{position}", data=content)
        return _currency_page(form, sent_etag, code=code, errors=errors, status=422)
    except PreconditionFailed:
        return _currency_page(form, sent_etag, code=code, conflict=True, status=412)
    verb = "Added" if code is None else "Saved"
    return done("studio_web.catalog_page", f"{verb} {currency['code']} in the draft.")


def _currency_page(
    form: CurrencyForm,
    etag: str,
    *,
    code: str | None,
    errors: dict[str, list[str]] | None = None,
    conflict: bool = False,
    status: int = 200,
) -> WebResponse:
    return render(
        "studio/currency.html",
        status,
        form=form,
        etag=etag,
        code=code,
        errors=errors or {},
        conflict=conflict,
    )
