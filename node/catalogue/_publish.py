"""The node's publication of its incentive catalogue (N17; docs/adr/0511).

A :class:`Publisher` holds the operator's ``[catalogue]`` (version, date) and its
application guide, read and checked once when the node starts: a guide that is
unreadable, too large, malformed, punitive or names a scenario the scheme in
force does not have stops the node from starting (``INVALID_CONFIG
catalogue.guide``) instead of being published wrong.  The catalogue itself is
built from the scheme version *in force* at each call (a rollout switches it
live, docs/adr/0507) and signed with the node's signing key; the signed bytes
are cached per (scheme version, signing key), so a call signs at most once per
switch.

Invariants: the citizen view (``CitizenService.GetIncentiveCatalogue``) and
the signed document (``PeerService.GetSignedCatalogue``) come from the same
:class:`scoring.Catalogue`, so they never disagree; the node signs nothing with
a key its key set does not allow now (``NODE_KEY_EXPIRED``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from keys import Envelope, sign_catalogue
from node.core._config import MAX_GUIDE_BYTES, ConfigError, NodeConfig
from node.core._errors import FailedPreconditionError
from node.core._secrets import NodeSecrets
from node.pb.v1 import catalogue_pb2, node_pb2
from scoring import (
    Catalogue,
    CatalogueError,
    Guide,
    Publication,
    Scheme,
    build_catalogue,
    parse_guide,
)

__all__ = ["Publisher", "catalogue_message", "citizen_view", "load_guide"]


def load_guide(path: Path | None) -> Guide:
    """The operator's application guide (``[catalogue] guide``), or the empty guide."""
    if path is None:
        return Guide()
    field = "catalogue.guide"
    try:
        with path.open("rb") as f:
            data = f.read(MAX_GUIDE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(field, f"cannot read {str(path)!r} ({exc.strerror})") from None
    if len(data) > MAX_GUIDE_BYTES:
        raise ConfigError(field, f"{str(path)!r} is larger than {MAX_GUIDE_BYTES} bytes")
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(field, f"{str(path)!r} is not UTF-8 TOML: {exc}") from None
    try:
        return parse_guide(raw)
    except CatalogueError as exc:
        raise ConfigError(field, f"{exc.field}: {exc.message}") from None


def catalogue_message(cat: Catalogue) -> catalogue_pb2.Catalogue:
    """The wire form of a catalogue (the payload that is signed)."""
    return catalogue_pb2.Catalogue(
        region=cat.region,
        scheme_id=cat.scheme_id,
        scheme_version=cat.scheme_version,
        version=cat.version,
        published_on=cat.published_on.isoformat(),
        incentive_tier=cat.incentive_tier,
        illustrative=list(cat.illustrative),
        statement=cat.statement,
        intro=cat.intro,
        scenarios=[
            catalogue_pb2.CatalogueScenario(
                ref=s.ref,
                id=s.incentive.id,
                title=s.incentive.title,
                title_en=s.incentive.title_en,
                domain=s.incentive.domain,
                sector=s.incentive.sector.value,
                effect=s.incentive.effect.value,
                min_grade=s.incentive.min_grade,
                qualifying_grades=list(s.qualifying_grades),
                disclosure=s.incentive.disclosure.value,
                basic_public_service=s.incentive.basic_public_service,
                provider=s.provider,
                how_to_apply=s.how_to_apply,
                relying_party_sees=s.relying_party_sees,
            )
            for s in cat.scenarios
        ],
    )


def citizen_view(cat: Catalogue, signed: Envelope) -> node_pb2.IncentiveCatalogue:
    """``CitizenService.GetIncentiveCatalogue``: the catalogue, its guide and its signed form."""
    return node_pb2.IncentiveCatalogue(
        scheme_id=cat.scheme_id,
        scheme_version=cat.scheme_version,
        incentive_tier=cat.incentive_tier,
        statement=cat.statement,
        catalogue_version=cat.version,
        published_on=cat.published_on.isoformat(),
        guide_intro=cat.intro,
        illustrative=list(cat.illustrative),
        signed_catalogue=signed.to_proto(),
        entries=[
            node_pb2.IncentiveEntry(
                id=s.incentive.id,
                title=s.incentive.title,
                domain=s.incentive.domain,
                effect=s.incentive.effect.value,
                min_grade=s.incentive.min_grade,
                basic_public_service=s.incentive.basic_public_service,
                qualifying_grades=list(s.qualifying_grades),
                ref=s.ref,
                title_en=s.incentive.title_en,
                sector=s.incentive.sector.value,
                disclosure=s.incentive.disclosure.value,
                provider=s.provider,
                how_to_apply=s.how_to_apply,
                relying_party_sees=s.relying_party_sees,
            )
            for s in cat.scenarios
        ],
    )


class Publisher:
    """One node's catalogue publication (module docstring)."""

    def __init__(self, config: NodeConfig, scheme: Scheme) -> None:
        self._region = config.region
        self._version = config.catalogue.version
        self._published_on = config.catalogue.published_on
        self._guide = load_guide(config.catalogue.guide)
        try:  # the guide must fit the scheme in force when the node starts
            self._build(scheme)
        except CatalogueError as exc:
            raise ConfigError("catalogue.guide", f"{exc.field}: {exc.message}") from None
        self._signed: tuple[tuple[str, str], Catalogue, Envelope] | None = None

    def publication(self, scheme: Scheme) -> Publication:
        return Publication(
            self._version or scheme.version,
            self._published_on or scheme.effective,
            self._guide,
        )

    def _build(self, scheme: Scheme) -> Catalogue:
        return build_catalogue(scheme, self._region, self.publication(scheme))

    def catalogue(self, scheme: Scheme) -> Catalogue:
        """The catalogue of ``scheme`` (the version in force); a guide that does not fit
        it (a rolled-out version without one of its scenarios) is refused, not published."""
        try:
            return self._build(scheme)
        except CatalogueError as exc:
            raise FailedPreconditionError(
                "CATALOGUE_INVALID",
                f"the operator's guide does not fit {scheme.key}: {exc.field}: {exc.message}",
            ) from None

    def signed(self, scheme: Scheme, secrets: NodeSecrets, now: int) -> tuple[Catalogue, Envelope]:
        """The catalogue of ``scheme`` and its envelope, signed by the node's key."""
        if secrets.signing_problem_at(now) is not None:
            raise FailedPreconditionError(
                "NODE_KEY_EXPIRED",
                "this node's signing key is not valid now; the operator must rotate it",
            )
        key = (scheme.key, secrets.signing.key_id)
        if self._signed is not None and self._signed[0] == key:
            return self._signed[1], self._signed[2]
        cat = self.catalogue(scheme)
        envelope = sign_catalogue(catalogue_message(cat), secrets.signing)
        self._signed = (key, cat, envelope)
        return cat, envelope
