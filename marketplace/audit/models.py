"""The append-only audit log and its head (the last sequence number and hash)."""

from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from marketplace.kit.sqltypes import UTCDateTime, json_document


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"
    # An object's history (an order's, a product's) is read by its type and id.
    __table_args__ = (Index("ix_audit_entry_object", "object_type", "object_id", "seq"),)

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    actor: str = Field(max_length=80, index=True)
    action: str = Field(max_length=80)
    object_type: str = Field(max_length=40)
    object_id: str = Field(max_length=64)
    payload: dict[str, Any] = Field(sa_type=json_document())
    prev_hash: str = Field(max_length=64, unique=True)
    hash: str = Field(max_length=64, unique=True)


class AuditHead(SQLModel, table=True):
    """One row: where the chain ends. Appends serialise on it, so the chain cannot fork;
    it also lets verification notice entries cut off the end."""

    __tablename__ = "audit_head"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int
    hash: str = Field(max_length=64)
