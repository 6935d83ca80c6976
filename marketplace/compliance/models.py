"""Stored verdicts: every rulebook decision, with the frozen snapshot it judged (its shared facts stored once,
as snapshot parts: see marketplace/compliance/parts.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from marketplace.compliance.contract import Decision, Stage
from marketplace.kit import clock
from marketplace.kit.ids import new_id
from marketplace.kit.sqltypes import UTCDateTime, enum_column, json_document


class StoredVerdict(SQLModel, table=True):
    __tablename__ = "verdict"
    __table_args__ = (
        Index("ix_verdict_subject", "subject_type", "subject_id", "created_at"),
        # The overview's charts: verdicts per stage and decision, and the failed checks, of the last days (read
        # from the index alone on PostgreSQL; the failing verdicts are a small part of all).
        Index("ix_verdict_created", "created_at", "stage", "decision"),
        Index(
            "ix_verdict_failing",
            "created_at",
            postgresql_include=["failed_checks"],
            postgresql_where=text("failed_checks <> '[]'::jsonb"),
            sqlite_where=text("failed_checks <> '[]'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    stage: Stage = Field(sa_type=enum_column(Stage))
    subject_type: str = Field(max_length=32)
    subject_id: str = Field(max_length=64)
    decision: Decision = Field(sa_type=enum_column(Decision))
    findings: list[dict[str, Any]] = Field(sa_type=json_document())
    rulebook_fingerprint: str = Field(max_length=64)
    # The snapshot's inline facts; the parts stored apart are named in `parts`, role -> digest. The default
    # (no parts) is a snapshot wholly inline, as every verdict was before migration 0015.
    snapshot: dict[str, Any] = Field(sa_type=json_document())
    parts: dict[str, str] = Field(
        default_factory=dict, sa_type=json_document(), sa_column_kwargs={"server_default": "{}"}
    )
    # The rule and check of each failed finding, as `findings` has them, written with the verdict: what the
    # overview ranks, without unpacking every verdict's findings (migration 0021 filled it for older verdicts).
    failed_checks: list[dict[str, str]] = Field(
        default_factory=list, sa_type=json_document(), sa_column_kwargs={"server_default": "[]"}
    )
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class SnapshotPart(SQLModel, table=True):
    """Facts many verdicts judged alike (an organisation's, a product version's, a plan), stored once under
    the sha256 of their canonical JSON. Never updated or deleted: a digest names one document for good."""

    __tablename__ = "snapshot_part"

    digest: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    document: dict[str, Any] = Field(sa_type=json_document())
