"""The reference point: a bare FastAPI endpoint, served the same way as the mock, measured in the same run."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/bare")
async def bare() -> dict[str, bool]:
    return {"ok": True}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
