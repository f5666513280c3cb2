"""The HTTP contract: parameters with their rules, response bodies, and the errors each route can
answer. The OpenAPI document is made from these, and FastAPI validates requests with them, so
what the document promises and what the server checks cannot drift (tests/test_fuzz.py holds
the server to the document).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from fastapi import Path as PathParam
from fastapi import Query
from pydantic import BaseModel, BeforeValidator

from core.choices import FILE_TYPES, LANG_FILTERS, MAX_ID, MAX_QUERY_CHARS, MODES
from search.searcher import Hit
from search.summarize import Summary

MAX_SUMMARY_K = 20  # hits one summary reads
DOC_ID = PathParam(..., ge=1, le=MAX_ID, description="A document id, as hits give it")
ECHO_CHARS = 200  # of a rejected value, in a 422 body
# A query must hold a word: a character that is neither a control character nor whitespace (what
# `search.searcher.validate_query` strips; tests/test_fuzz.py checks the two agree on every code point).
# The schema states it; the app answers a query without one with 400 "empty query", not 422.
QUERY_PATTERN = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
QUERY = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, json_schema_extra={"pattern": QUERY_PATTERN},  # stated, not enforced: 400, not 422
              description="Query, English or Chinese. One without a word (only whitespace or control characters) is answered 400 \"empty query\"")
Lang = Literal[LANG_FILTERS]
Mode = Literal[MODES]
FileType = Literal[FILE_TYPES]


def _iso_day(value):
    """What the schema's `format: date` (RFC 3339 full-date) allows, no more and no less: pydantic alone also
    takes "0" (a timestamp) and "2024-01-01T00:00", and refuses year 0000, which is before any file as year 1 is."""
    if not isinstance(value, str):
        return value
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValueError("expected a date as YYYY-MM-DD")
    if value.startswith("0000-"):
        date.fromisoformat("2000" + value[4:])  # a real day? Year 0 is a leap year, as 2000 is
        return date.min
    return value


Day = Annotated[date, BeforeValidator(_iso_day)]


class SearchResponse(BaseModel):
    query: str
    lang: str
    balance: bool
    hits: list[Hit]


class DocumentResponse(BaseModel):
    id: int
    title: str
    path: str
    key: str
    lang: str
    text: str


class SummarizeResponse(BaseModel):
    query: str
    summary: Summary
    hits: list[Hit]


class ErrorResponse(BaseModel):
    error: str


class HealthResponse(BaseModel):
    status: str
    model: str
    precision: str
    search_batches: dict[str, int]  # how many batched searches of each size ran


NOT_FOUND = {404: {"model": ErrorResponse, "description": "No document with this id"}}
# An HTML route's errors are JSON all the same: its responses= names the media type, or FastAPI would say text/html
NOT_FOUND_JSON = {404: {"description": "No document with this id", "content": {"application/json": {"schema": ErrorResponse.model_json_schema()}}}}
EMPTY_QUERY = {400: {"model": ErrorResponse, "description": "A query without a word: only whitespace or control characters"}}


def capped_error(error: dict) -> dict:
    """A 422 detail with its rejected value cut short: a 100 kB query is not sent back."""
    value = error.get("input")
    if isinstance(value, str) and len(value) > ECHO_CHARS:
        error = {**error, "input": value[:ECHO_CHARS] + f"… ({len(value)} characters)"}
    return error
