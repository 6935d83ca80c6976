"""The certificates issued: the first one issued for an order is kept, so an order always answers the same
document."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, Text
from sqlmodel import Field, SQLModel

from marketplace.kit.sqltypes import UTCDateTime


class TradeCertificate(SQLModel, table=True):
    """`signed` is the notary's compact JWS of the certificate's payload; `tree_size` is the size of the tree head
    its inclusion proof leads to."""

    __tablename__ = "trade_certificate"

    order_id: uuid.UUID = Field(foreign_key="trade_order.id", primary_key=True)
    certificate_id: uuid.UUID = Field(unique=True)
    tree_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    issued_at: datetime = Field(sa_type=UTCDateTime)
    signed: str = Field(sa_column=Column(Text, nullable=False))
