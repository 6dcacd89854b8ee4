"""How a catalogue reads: text for ``huxin catalogue show|fetch``, Markdown for docs/catalogue.md.

Both render the wire form (``catalogue_pb2.Catalogue``), so a peer's verified
catalogue and the node's own read the same way.  Every rendering states the
tier each scenario requires and what the relying party sees, and says so
plainly when the scheme's tiers are illustrative (not published by the source).
"""

from __future__ import annotations

from node.pb.v1 import catalogue_pb2
from scoring import Sector

__all__ = ["illustrative_note", "render_markdown", "render_text"]


def _sector(value: str) -> str:
    try:
        return f"{Sector(value).label} ({value})"
    except ValueError:  # a peer's sector this version does not know: shown as sent
        return value


def illustrative_note(cat: catalogue_pb2.Catalogue) -> str:
    """'' when the tiers are published; otherwise one line saying they are not."""
    if not cat.illustrative:
        return ""
    return (
        "ILLUSTRATIVE: the source publishes no tiers for these scenarios "
        f"({', '.join(cat.illustrative)}); the grades below are ours"
    )


def render_text(cat: catalogue_pb2.Catalogue) -> str:
    lines = [
        f"{cat.scheme_id}@{cat.scheme_version} incentive catalogue {cat.version}, "
        f"published {cat.published_on} by {cat.region}",
    ]
    note = illustrative_note(cat)
    if note:
        lines.append(note)
    lines += [
        f"incentives from grade {cat.incentive_tier}; {len(cat.scenarios)} scenarios",
        cat.statement,
        cat.intro,
        "",
    ]
    for s in cat.scenarios:
        flags = "  basic public service (only made faster)" if s.basic_public_service else ""
        mark = "  [illustrative tier]" if cat.illustrative else ""
        lines += [
            f"{s.ref}  tier >= {s.min_grade} ({' '.join(s.qualifying_grades)})"
            f"  discloses: {s.disclosure}{mark}{flags}",
            f"  {s.title}",
            f"  {s.title_en}",
            f"  sector: {_sector(s.sector)}  effect: {s.effect}  domain: {s.domain}",
            f"  provider: {s.provider}",
            f"  relying party sees: {s.relying_party_sees}",
            f"  how to apply: {s.how_to_apply}",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(cat: catalogue_pb2.Catalogue) -> str:
    """One scheme's section of docs/catalogue.md."""
    lines = [
        f"## {cat.scheme_id} ({cat.scheme_id}@{cat.scheme_version})",
        "",
        f"Incentives from grade **{cat.incentive_tier}**; {len(cat.scenarios)} scenarios.",
    ]
    note = illustrative_note(cat)
    if note:
        lines += ["", f"**{note}.**"]
    lines += [
        "",
        "| scenario (consent purpose) | 场景 | scenario | tier | discloses | sector | provider |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in cat.scenarios:
        basic = " (basic public service: only faster)" if s.basic_public_service else ""
        lines.append(
            f"| `{s.ref}` | {_cell(s.title)} | {_cell(s.title_en)}{basic} "
            f"| {s.min_grade}+ | {s.disclosure} | {_cell(_sector(s.sector))} "
            f"| {_cell(s.provider)} |"
        )
    return "\n".join(lines) + "\n"
