"""The audit log's tables: its entries, the transparency tree's perfect subtrees, and every signed tree head."""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, LargeBinary, SmallInteger, Text, text
from sqlmodel import Field, SQLModel

from marketplace.kit.sqltypes import CanonicalJSON, UTCDateTime


class AuditEntry(SQLModel, table=True):
    """One act. Appending is a plain INSERT: `id` is taken at insert (not in commit order) and the entry waits,
    `leaf_index` NULL, until the sequencer makes it the next leaf of the tree. `leaf` is the text the leaf hashes:
    the canonical JSON of the entry's body with its id (marketplace/audit/leaves.py), written with the entry; the
    payload is stored as its canonical JSON too, so the database compares the columns with the leaf as text."""

    __tablename__ = "audit_entry"
    __table_args__ = (
        # An object's history (an order's, a product's) is read by its type and id.
        Index("ix_audit_entry_object", "object_type", "object_id", "id"),
        # The sequencer's queue: the entries not yet in the tree, in id order.
        Index(
            "ix_audit_entry_pending",
            "id",
            postgresql_where=text("leaf_index IS NULL"),
            sqlite_where=text("leaf_index IS NULL"),
        ),
    )

    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    actor: str = Field(max_length=80, index=True)
    action: str = Field(max_length=80)
    object_type: str = Field(max_length=40)
    object_id: str = Field(max_length=64)
    payload: dict[str, Any] = Field(sa_column=Column(CanonicalJSON, nullable=False))
    leaf: str = Field(sa_column=Column(Text, nullable=False))
    leaf_index: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True, unique=True))


class AuditNode(SQLModel, table=True):
    """The hash of a perfect subtree of the tree: the 2**level leaves from position * 2**level (level 0: a leaf's
    hash). Written once, when the sequencer completes it; a proof reads O(log n) of them."""

    __tablename__ = "audit_node"

    level: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    position: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class AuditTreeHead(SQLModel, table=True):
    """A signed tree head, one per size the tree was published at: `signed` is the notary's compact JWS of
    {"tree_size", "root_hash", "timestamp"}; the other columns repeat it for queries."""

    __tablename__ = "audit_tree_head"

    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: str = Field(max_length=64)
    published_at: datetime = Field(sa_type=UTCDateTime)
    signed: str = Field(sa_column=Column(Text, nullable=False))
