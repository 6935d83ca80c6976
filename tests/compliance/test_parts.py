"""Any snapshot split into content-addressed parts and put together again is the snapshot it was, also after
its documents went through JSON (as the database keeps them); equal facts get one digest whatever their role."""

from __future__ import annotations

import json
from typing import Any, get_args

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.compliance.parts import KINDS, assemble, digest_of, part_of, split
from marketplace.compliance.service import stored_form, verdict_rows
from marketplace.compliance.snapshots import (
    Assessment,
    ComputationFacts,
    DeliveryFacts,
    DeliveryMode,
    FieldSpec,
    LicenceTerms,
    MeasureBounds,
    OrganizationFacts,
    PlanFacts,
    PlanKind,
    PrivateOffer,
    ProductFacts,
    QualityIndicators,
    SampleFacts,
    SettlementFacts,
    Snapshot,
    TradeFacts,
)

texts = st.text(max_size=10)
names = st.lists(texts, max_size=3).map(tuple)
money = st.integers(min_value=-(2**53), max_value=2**53)
shares = st.floats(min_value=0, max_value=1)
reals = st.floats(allow_nan=False, allow_infinity=False)
modes = st.sampled_from(get_args(DeliveryMode))

organizations = st.builds(
    OrganizationFacts,
    id=texts,
    name=texts,
    kind=st.sampled_from(["provider", "buyer", "intermediary"]),
    uscc=texts,
    jurisdiction=texts,
    status=st.sampled_from(["pending", "under_review", "admitted", "rejected", "suspended"]),
    dsmm_level=st.integers(0, 5),
    penalties_last_3y=st.integers(0, 9),
    last_penalty_on=st.none() | st.dates(),
    security_certifications=names,
    retains_no_traded_data=st.none() | st.booleans(),
    trades_in_window=st.integers(0, 10**6),
)
plans = st.builds(
    PlanFacts,
    id=texts,
    kind=st.sampled_from(get_args(PlanKind)),
    price_minor=money,
    currency=texts,
    pricing_basis=st.none() | texts,
    period_days=st.none() | st.integers(1, 3650),
)
assessments = st.builds(
    Assessment, assessor_id=texts, assessor_admitted=st.booleans(), issued_on=st.dates(), valid_until=st.none()
)
products = st.builds(
    ProductFacts,
    id=texts,
    version=st.integers(1, 99),
    title=texts,
    regions=names,
    grade=st.none() | texts,
    contains_personal_info=st.booleans(),
    pi_impact_assessment_on=st.none() | st.dates(),
    compliance_report=st.none() | assessments,
    delivery_modes=st.lists(modes, max_size=3).map(tuple),
    licence=st.none() | st.builds(LicenceTerms, scope=texts, max_licences=st.none() | st.integers(1, 100)),
    plans=st.lists(plans, max_size=2).map(tuple),
    quality=st.none() | st.builds(QualityIndicators, **dict.fromkeys(QualityIndicators.model_fields, shares)),
    fields=st.lists(st.builds(FieldSpec, name=texts, personal=st.booleans(), purposes=names), max_size=3).map(tuple),
    sample=st.none()
    | st.builds(
        SampleFacts,
        sha256=texts,
        rows_total=st.integers(0, 10**6),
        columns=names,
        rows=st.lists(st.lists(st.none() | texts, max_size=3).map(tuple), max_size=3).map(tuple),
    ),
    computation=st.none()
    | st.builds(
        ComputationFacts,
        epsilon_per_query=st.none() | reals,
        bounds=st.none() | st.dictionaries(texts, st.builds(MeasureBounds, lower=reals, upper=reals), max_size=2),
    ),
)
trades = st.builds(
    TradeFacts,
    scenario=st.none() | texts,
    delivery_mode=modes,
    quantity=st.integers(1, 99),
    amount_minor=money,
    currency=texts,
    private_offer=st.none() | st.builds(PrivateOffer, price_minor=money, approved=st.booleans()),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | reals | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    """A snapshot with any of its parts; an organisation may play two roles (a provider buying its own)."""
    parties = draw(st.lists(organizations, min_size=1, max_size=3))
    party = st.none() | st.sampled_from(parties)
    return Snapshot(
        organization=draw(party),
        provider=draw(party),
        buyer=draw(party),
        intermediary=draw(party),
        product=draw(st.none() | products),
        plan=draw(st.none() | plans),
        trade=draw(st.none() | trades),
        delivery=draw(st.none() | st.builds(DeliveryFacts, mode=modes, content_sha256=st.none() | texts)),
        settlement=draw(st.none() | st.builds(SettlementFacts, order_status=texts, amount_minor=money, currency=texts)),
        extensions=draw(st.dictionaries(texts, json_values, max_size=3)),
    )


def stored(value: Any) -> Any:
    """A document as it comes back from a JSON column."""
    return json.loads(json.dumps(value))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_a_snapshot_split_into_parts_and_put_together_is_the_same_snapshot(snapshot: Snapshot) -> None:
    document = snapshot.model_dump(mode="json")
    inline, parts = split(document)
    documents = {part.digest: stored(part.document) for part in parts.values()}

    again = assemble(stored(inline), {role: part.digest for role, part in parts.items()}, documents)

    assert again == document
    assert Snapshot.model_validate(again) == snapshot
    assert set(parts) == {role for role in KINDS if document[role] is not None}
    assert not set(parts) & set(inline)
    for part in parts.values():
        assert part.digest == digest_of(documents[part.digest])  # stored and read back, the same key


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_a_verdicts_rows_name_each_part_once_in_digest_order(snapshot: Snapshot) -> None:
    rows = verdict_rows({}, *stored_form(snapshot))
    digests = [part["digest"] for part in rows.parts]

    assert digests == sorted(set(digests))
    assert set(digests) == set(rows.verdict["parts"].values())
    documents = {part["digest"]: part["document"] for part in rows.parts}
    assert Snapshot.model_validate(assemble(rows.verdict["snapshot"], rows.verdict["parts"], documents)) == snapshot


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(organizations)
def test_one_organisation_in_two_roles_is_one_part(organization: OrganizationFacts) -> None:
    _, parts = split(Snapshot(provider=organization, buyer=organization).model_dump(mode="json"))

    assert parts["provider"] == parts["buyer"]
    assert parts["buyer"].kind == "organization"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots(), st.sets(st.sampled_from(list(KINDS))))
def test_parts_digested_apart_are_the_parts_the_snapshot_makes(snapshot: Snapshot, roles: set[str]) -> None:
    """A kept listing digests its parts once; handed over, they store the verdict as digesting them again would."""
    known = {role: part_of(role, facts) for role in roles if (facts := getattr(snapshot, role)) is not None}

    inline, parts = stored_form(snapshot, known)

    assert (inline, parts) == stored_form(snapshot)
    assert list(parts) == [role for role in KINDS if role in parts]  # in the snapshot's order, as before
