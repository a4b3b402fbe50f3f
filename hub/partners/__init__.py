"""Partner hubs (跨省通办) as configuration: who they are (`partners/NAME.yaml`), their keys and
ours, and the cross-region item list (跨域通办目录清单) — what we publish to each and how theirs
joins our catalogue. The protocol that carries messages between hubs is `hub.exchange`."""

from hub.partners.config import Partner, PartnerFile, Partners, load_partners

__all__ = ["Partner", "PartnerFile", "Partners", "load_partners"]
