"""Form templates: define, replace, retire and read them (admin REST and ``dancu forms``).

Every change is an audit event (``admin.form.create``, ``admin.form.replace``, ``admin.form.retire``) with the
definition before and after, committed with the change. A template is refused (422) when a source names no
resident field or member, a format does not exist or cannot write its source, two fields share a name, or its
purpose is not registered.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.writer import AdminLog
from app.auth.repository import PurposeRepository
from app.db import utcnow
from app.errors import FieldError, ValidationFailed
from app.forms.errors import FormExists, FormNotFound
from app.forms.models import FormTemplate
from app.forms.repository import FormRepository
from app.forms.schemas import FormFieldOut, FormIn, FormOut, FormPage, FormReplace, field_specs
from app.forms.sources import source_problems

CREATE = "admin.form.create"
REPLACE = "admin.form.replace"
RETIRE = "admin.form.retire"


def form_view(form: FormTemplate) -> FormOut:
    return FormOut(
        code=form.code,
        title=form.title,
        purpose=form.purpose,
        legal_basis=form.legal_basis,
        fields=[FormFieldOut(**{"format": None, **f}) for f in form.fields],
        status="retired" if form.status == "retired" else "active",
        created_at=form.created_at,
        updated_at=form.updated_at,
    )


def _state(form: FormTemplate) -> dict[str, Any]:
    """A template as its audit events record it."""
    return form_view(form).model_dump(mode="json", exclude={"created_at", "updated_at"})


def _nfc(text: str | None) -> str | None:
    return None if text is None else unicodedata.normalize("NFC", text)


class FormAdmin:
    """Form templates, changed in ``session``'s transaction on behalf of ``log.actor``."""

    def __init__(self, session: AsyncSession, log: AdminLog) -> None:
        self.session = session
        self.log = log
        self.forms = FormRepository(session)
        self.purposes = PurposeRepository(session)

    @staticmethod
    def definition(form: FormIn | FormReplace | FormOut) -> dict[str, Any]:
        """What a template says (title, purpose, legal basis, fields), to tell whether two are the same."""
        return {
            "title": _nfc(form.title),
            "purpose": form.purpose,
            "legal_basis": _nfc(form.legal_basis),
            "fields": [
                {"name": f.name, "label": _nfc(f.label), "source": f.source, "format": f.format}
                for f in form.fields
            ],
        }

    async def _check(self, spec: FormIn | FormReplace) -> list[dict[str, Any]]:
        fields = field_specs(spec.fields)
        problems: list[FieldError] = source_problems(fields)
        if not await self.purposes.registered([spec.purpose]):
            problems.append(
                {
                    "loc": ["body", "purpose"],
                    "code": "unknown_purpose",
                    "message": "Purpose is not registered.",
                }
            )
        if problems:
            raise ValidationFailed(problems)
        for field in fields:
            field["label"] = _nfc(field["label"])
        return fields

    async def create(self, spec: FormIn) -> FormOut:
        fields = await self._check(spec)
        if await self.forms.get(spec.code) is not None:
            raise FormExists()
        now = utcnow()
        form = FormTemplate(
            code=spec.code,
            title=_nfc(spec.title),
            purpose=spec.purpose,
            legal_basis=_nfc(spec.legal_basis),
            fields=fields,
            status="active",
            created_at=now,
            updated_at=now,
        )
        try:
            await self.forms.add(form)
        except IntegrityError:  # defined by another request since the check above
            raise FormExists() from None
        await self.log.record(CREATE, None, {"form": form.code, "before": None, "after": _state(form)}, 201)
        return form_view(form)

    async def replace(self, code: str, spec: FormReplace) -> FormOut:
        if spec.code is not None and spec.code != code:
            raise ValidationFailed(
                [{"loc": ["body", "code"], "code": "code_mismatch", "message": "Must be the path's code."}]
            )
        form = await self._form(code, retired=True)
        fields = await self._check(spec)
        before = _state(form)
        form.title = _nfc(spec.title) or form.title
        form.purpose = spec.purpose
        form.legal_basis = _nfc(spec.legal_basis)
        form.fields = fields
        form.status = "active"
        form.updated_at = utcnow()
        await self.session.flush()
        await self.log.record(REPLACE, None, {"form": code, "before": before, "after": _state(form)})
        return form_view(form)

    async def retire(self, code: str) -> None:
        form = await self._form(code, retired=True)
        if form.status == "retired":
            return
        before = _state(form)
        form.status = "retired"
        form.updated_at = utcnow()
        await self.session.flush()
        await self.log.record(RETIRE, None, {"form": code, "before": before, "after": _state(form)})

    async def get(self, code: str) -> FormOut:
        return form_view(await self._form(code, retired=True))

    async def list(self) -> FormPage:
        return FormPage(items=[form_view(f) for f in await self.forms.all()])

    async def _form(self, code: str, *, retired: bool) -> FormTemplate:
        form = await self.forms.get(code)
        if form is None or (form.status == "retired" and not retired):
            raise FormNotFound()
        return form


async def active_form(session: AsyncSession, code: str) -> FormTemplate:
    """The template a prefill or confirmation names; 404 ``form_not_found`` when unknown or retired."""
    form = await FormRepository(session).get(code)
    if form is None or form.status != "active":
        raise FormNotFound()
    return form
