"""Property: whatever accounts are opened and transfers posted, replayed or refused, the ledger in the
database equals a pure-Python model of it, debits equal credits, no no-overdraft account is negative
and the check of the books passes.

Hypothesis drives the state machine from a worker thread; every database call runs on the test's
event loop, where the run's engine lives. Each example starts from an empty ledger.
LEDGER_STATEFUL_EXAMPLES sets how many examples run (CI may ask for more)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, select
from sqlmodel import col

from marketplace.db import SessionMaker, unit_of_work
from marketplace.errors import DomainError
from marketplace.ledger.models import (
    ORDER_CODES,
    ORGANIZATION_CODES,
    AccountCode,
    LedgerAccount,
    Transfer,
    TransferKind,
)
from marketplace.ledger.repository import account_totals
from marketplace.ledger.service import (
    Balance,
    InvalidTransfer,
    LedgerCheck,
    LedgerService,
    Overdraft,
    PostResult,
    TransferIdReused,
)

T = TypeVar("T")

EXAMPLES = int(os.environ.get("LEDGER_STATEFUL_EXAMPLES", "50"))
MAX_ACCOUNTS = 10
# Three orders: two of the first provider, one of the second (an escrow names its order's provider).
ORDERS = [(uuid.uuid4(), 0), (uuid.uuid4(), 0), (uuid.uuid4(), 1)]
CURRENCIES = ["CNY", "CNY", "CNY", "USD"]  # mostly one currency, so most pairs of accounts can trade

amounts = st.integers(min_value=1, max_value=1_000)
kinds = st.sampled_from(TransferKind)
order_ids = st.none() | st.sampled_from([order_id for order_id, _ in ORDERS])


@dataclass
class ModelAccount:
    account: LedgerAccount  # as opened: its id, key, currency, flags
    debits: int = 0
    credits: int = 0

    @property
    def held(self) -> int:
        return self.credits - self.debits


@dataclass(frozen=True)
class ModelTransfer:
    debit: uuid.UUID
    credit: uuid.UUID
    amount: int
    currency: str
    kind: TransferKind
    order_id: uuid.UUID | None


class LedgerMachine(RuleBasedStateMachine):
    # bound by the test: the loop the database lives on, its sessions, two provider organisations
    loop: ClassVar[asyncio.AbstractEventLoop]
    sessions: ClassVar[SessionMaker]
    providers: ClassVar[list[uuid.UUID]]

    transfers = Bundle("transfers")

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[uuid.UUID, ModelAccount] = {}
        self.posted: dict[uuid.UUID, ModelTransfer] = {}

    # talking to the database

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def open(self, code: AccountCode, currency: str, **where: uuid.UUID) -> uuid.UUID:
        """Open an account, or find it open already (the same id as before)."""

        async def open_it() -> LedgerAccount:
            async with unit_of_work(self.sessions) as session:
                return await LedgerService(session).account(code, currency, **where)

        account = self.run(open_it())
        if account.id in self.model:
            assert self.model[account.id].account.key == account.key
        else:
            assert account.key not in {m.account.key for m in self.model.values()}
            assert (account.debits_posted, account.credits_posted) == (0, 0)
            self.model[account.id] = ModelAccount(account)
        return account.id

    def post(self, transfer_id: uuid.UUID, transfer: ModelTransfer) -> PostResult | DomainError:
        """One transfer in its own transaction, committed even when the ledger refuses it: a caller
        that catches the error must find nothing of the refused transfer in what it commits."""

        async def post_it() -> PostResult | DomainError:
            async with unit_of_work(self.sessions) as session:
                try:
                    return await LedgerService(session).post(
                        transfer_id,
                        self.model[transfer.debit].account,
                        self.model[transfer.credit].account,
                        transfer.amount,
                        transfer.currency,
                        transfer.kind,
                        order_id=transfer.order_id,
                    )
                except (InvalidTransfer, Overdraft, TransferIdReused) as refused:
                    return refused

        return self.run(post_it())

    def posted_in_model(self, transfer_id: uuid.UUID, transfer: ModelTransfer) -> uuid.UUID:
        self.model[transfer.debit].debits += transfer.amount
        self.model[transfer.credit].credits += transfer.amount
        self.posted[transfer_id] = transfer
        return transfer_id

    # choosing accounts

    def pairs(self, *, valid: bool) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(debit, credit) pairs the ledger accepts (two accounts, one currency), or those it refuses."""
        return [
            (debit, credit)
            for debit, source in self.model.items()
            for credit, destination in self.model.items()
            if (debit != credit and source.account.currency == destination.account.currency) == valid
        ]

    def overdrawable_pairs(self) -> list[tuple[uuid.UUID, uuid.UUID]]:
        return [pair for pair in self.pairs(valid=True) if self.model[pair[0]].account.no_overdraft]

    # rules

    @initialize()
    def start_from_an_empty_ledger(self) -> None:
        async def empty() -> None:
            async with unit_of_work(self.sessions) as session:
                await session.execute(delete(Transfer))
                await session.execute(delete(LedgerAccount))

        self.run(empty())
        self.open(AccountCode.PLATFORM_CLEARING, "CNY")

    @precondition(lambda self: len(self.model) < MAX_ACCOUNTS)
    @rule(
        code=st.sampled_from(AccountCode),
        currency=st.sampled_from(CURRENCIES),
        order=st.sampled_from(ORDERS),
        provider=st.sampled_from([0, 1]),
    )
    def open_account(self, code: AccountCode, currency: str, order: tuple[uuid.UUID, int], provider: int) -> None:
        order_id, order_provider = order
        if code in ORDER_CODES:
            self.open(code, currency, organization_id=self.providers[order_provider], order_id=order_id)
        elif code in ORGANIZATION_CODES:
            self.open(code, currency, organization_id=self.providers[provider])
        else:
            self.open(code, currency)

    def fundable(self) -> list[uuid.UUID]:
        return [i for i, m in self.model.items() if m.account.code != AccountCode.PLATFORM_CLEARING]

    @precondition(lambda self: self.fundable())
    @rule(target=transfers, data=st.data(), amount=amounts)
    def fund(self, data: st.DataObject, amount: int) -> uuid.UUID:
        """Money into an account from the clearing account of its currency (which may go negative)."""
        credit = data.draw(st.sampled_from(self.fundable()), label="credit")
        currency = self.model[credit].account.currency
        transfer = ModelTransfer(
            self.open(AccountCode.PLATFORM_CLEARING, currency), credit, amount, currency, TransferKind.PAYMENT, None
        )
        transfer_id = uuid.uuid4()
        assert self.post(transfer_id, transfer) == PostResult.CREATED
        return self.posted_in_model(transfer_id, transfer)

    @precondition(lambda self: self.pairs(valid=True))
    @rule(target=transfers, data=st.data(), amount=amounts, kind=kinds, order_id=order_ids)
    def transfer(self, data: st.DataObject, amount: int, kind: TransferKind, order_id: uuid.UUID | None) -> Any:
        """Any transfer between two accounts of one currency: posted, or refused for an overdraft."""
        debit, credit = data.draw(st.sampled_from(self.pairs(valid=True)), label="accounts")
        source = self.model[debit]
        transfer = ModelTransfer(debit, credit, amount, source.account.currency, kind, order_id)
        transfer_id = uuid.uuid4()
        if source.account.no_overdraft and source.held < amount:
            assert isinstance(self.post(transfer_id, transfer), Overdraft)
            return multiple()
        assert self.post(transfer_id, transfer) == PostResult.CREATED
        return self.posted_in_model(transfer_id, transfer)

    @precondition(lambda self: self.overdrawable_pairs())
    @rule(data=st.data(), excess=amounts, kind=kinds)
    def overdraw(self, data: st.DataObject, excess: int, kind: TransferKind) -> None:
        debit, credit = data.draw(st.sampled_from(self.overdrawable_pairs()), label="accounts")
        source = self.model[debit]
        transfer = ModelTransfer(debit, credit, source.held + excess, source.account.currency, kind, None)
        assert isinstance(self.post(uuid.uuid4(), transfer), Overdraft)

    def drainable_pairs(self) -> list[tuple[uuid.UUID, uuid.UUID]]:
        return [pair for pair in self.overdrawable_pairs() if self.model[pair[0]].held > 0]

    @precondition(lambda self: self.drainable_pairs())
    @rule(target=transfers, data=st.data(), kind=kinds)
    def drain(self, data: st.DataObject, kind: TransferKind) -> uuid.UUID:
        """Everything a no-overdraft account holds, to the last minor unit."""
        debit, credit = data.draw(st.sampled_from(self.drainable_pairs()), label="accounts")
        source = self.model[debit]
        transfer = ModelTransfer(debit, credit, source.held, source.account.currency, kind, None)
        transfer_id = uuid.uuid4()
        assert self.post(transfer_id, transfer) == PostResult.CREATED
        return self.posted_in_model(transfer_id, transfer)

    @rule(data=st.data(), amount=amounts)
    def malformed(self, data: st.DataObject, amount: int) -> None:
        """One account on both sides, or accounts of two currencies."""
        debit, credit = data.draw(st.sampled_from(self.pairs(valid=False)), label="accounts")
        transfer = ModelTransfer(debit, credit, amount, self.model[debit].account.currency, TransferKind.PAYMENT, None)
        assert isinstance(self.post(uuid.uuid4(), transfer), InvalidTransfer)

    @rule(transfer_id=transfers)
    def replay(self, transfer_id: uuid.UUID) -> None:
        assert self.post(transfer_id, self.posted[transfer_id]) == PostResult.EXISTS

    @rule(transfer_id=transfers, change=st.sampled_from(["amount", "kind", "order_id", "direction"]))
    def replay_changed(self, transfer_id: uuid.UUID, change: str) -> None:
        original = self.posted[transfer_id]
        changed = {
            "amount": dataclasses.replace(original, amount=original.amount + 1),
            "kind": dataclasses.replace(original, kind=next(k for k in TransferKind if k != original.kind)),
            "order_id": dataclasses.replace(original, order_id=None if original.order_id else ORDERS[0][0]),
            "direction": dataclasses.replace(original, debit=original.credit, credit=original.debit),
        }[change]
        assert isinstance(self.post(transfer_id, changed), TransferIdReused)

    @rule(provider=st.sampled_from([0, 1]), currency=st.sampled_from(["CNY", "USD"]))
    def balance(self, provider: int, currency: str) -> None:
        organization_id = self.providers[provider]

        async def read() -> Balance:
            async with self.sessions() as session:
                return await LedgerService(session).balance(organization_id, currency)

        def held(code: AccountCode) -> int:
            return sum(
                m.held
                for m in self.model.values()
                if (m.account.organization_id, m.account.currency, m.account.code) == (organization_id, currency, code)
            )

        assert self.run(read()) == Balance(
            currency=currency,
            available_minor=held(AccountCode.PROVIDER_PAYABLE),
            pending_minor=held(AccountCode.ESCROW),
            paid_out_minor=held(AccountCode.PAYOUTS),
            debt_minor=-held(AccountCode.PROVIDER_DEBT),
        )

    @invariant()
    def database_matches_the_model(self) -> None:
        async def read() -> tuple[dict[uuid.UUID, tuple[str, bool, int, int]], LedgerCheck]:
            async with self.sessions() as session:
                totals = account_totals()  # a pooled account's totals are its transfers'
                query = select(
                    col(LedgerAccount.id),
                    col(LedgerAccount.currency),
                    col(LedgerAccount.no_overdraft),
                    totals.c.debits,
                    totals.c.credits,
                ).join(totals, totals.c.id == col(LedgerAccount.id))
                rows = {row[0]: (row[1], row[2], row[3], row[4]) for row in await session.execute(query)}
                return rows, await LedgerService(session).check()

        rows, check = self.run(read())
        assert {id_: (debits, credits) for id_, (_, _, debits, credits) in rows.items()} == {
            id_: (m.debits, m.credits) for id_, m in self.model.items()
        }
        for currency in set(CURRENCIES):
            totals = [(debits, credits) for c, _, debits, credits in rows.values() if c == currency]
            assert sum(debits for debits, _ in totals) == sum(credits for _, credits in totals)
        assert all(credits >= debits for _, no_overdraft, debits, credits in rows.values() if no_overdraft)
        assert check.ok, check
        assert check.transfers == len(self.posted)


async def test_ledger_matches_its_model(sessions: SessionMaker, providers: list[uuid.UUID]) -> None:
    bound = type(
        "BoundLedgerMachine",
        (LedgerMachine,),
        {"loop": asyncio.get_running_loop(), "sessions": sessions, "providers": providers},
    )
    machine_settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    await asyncio.to_thread(run_state_machine_as_test, bound, settings=machine_settings)
