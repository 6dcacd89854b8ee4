"""The incentive catalogue's publication (N17, N20, H14; docs/adr/0511, docs/adr/0516).

A region's operator publishes its scheme's scenario catalogue (``[[incentives]]``
in the scheme file, validated by :mod:`scoring._incentives`: incentives only,
H14, N14) with a catalogue version, a publication date and an application guide
(``[catalogue]`` in ``node.toml``).  The node serves it two ways, both built
from the same catalogue:

* signed by the node's signing key as a DSSE envelope
  (``application/vnd.huxin.catalogue.v1+proto``) through
  ``PeerService.GetSignedCatalogue``, public trust material that any
  certificate of the federation CA may read (docs/adr/0415);
* with its guide through ``CitizenService.GetIncentiveCatalogue`` (public on
  the citizen port), which carries the signed envelope too.

Peers fetch and verify it with ``huxin catalogue fetch``; ``huxin catalogue
show`` prints a node's own.

Modules: ``_publish`` (guide loading, building, signing, the citizen view),
``_render`` (text and Markdown), ``_fetch`` (a peer's catalogue against the trust
material), ``_hub`` (where it differs from the hub's recognised catalogue, ADR 0516), ``_peers`` (a peer's catalogue taken by the peer sync, N20;
docs/adr/0205), ``_held`` (the held trust list and peer catalogues),
``_unlocks`` (which of a region's scenarios a recognised grade unlocks, N20).
The commands are :mod:`node.cli._catalogue`.
"""

from node.catalogue._fetch import FetchedCatalogue, fetch_catalogue, held_trust
from node.catalogue._held import held_catalogue
from node.catalogue._hub import hub_disagreements
from node.catalogue._peers import (
    ITEM,
    MAX_SIGNED_CATALOGUE_BYTES,
    CatalogueRefused,
    PeerCatalogue,
    check_listed,
    verify_peer_catalogue,
)
from node.catalogue._publish import Publisher, catalogue_message, citizen_view, load_guide
from node.catalogue._render import illustrative_note, render_markdown, render_text
from node.catalogue._unlocks import Unlocks, shipped_catalogue, target_catalogue, unlocks

__all__ = [
    "ITEM",
    "MAX_SIGNED_CATALOGUE_BYTES",
    "CatalogueRefused",
    "FetchedCatalogue",
    "PeerCatalogue",
    "Publisher",
    "Unlocks",
    "catalogue_message",
    "check_listed",
    "citizen_view",
    "fetch_catalogue",
    "held_catalogue",
    "held_trust",
    "hub_disagreements",
    "illustrative_note",
    "load_guide",
    "render_markdown",
    "render_text",
    "shipped_catalogue",
    "target_catalogue",
    "unlocks",
    "verify_peer_catalogue",
]
