"""Every context's tables, imported once so that ``Base.metadata`` is complete (Alembic, tests)."""

from __future__ import annotations

import app.admin.models
import app.audit.models
import app.auth.models
import app.console.models
import app.forms.models
import app.operators.models

__all__ = ["app"]
