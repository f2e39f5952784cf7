"""Who the team is: the one answer to "is this sender us or the requester's side?".

The team is ``settings.team.addresses``, every owner address, on-call, the report's
recipients, the bot's own address, and everyone at ``settings.team.domains``. A team
member's message on a ticket is never the requester's reply; team addresses are also
never treated as requesters by the caps. A requester's colleague (their own domain, on
Cc) stays on the requester's side, unless that domain is the team's.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.rules.ruleset import RuleSettings


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


@dataclass(frozen=True)
class Team:
    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def of(cls, settings: RuleSettings, own_address: str) -> Team:
        addresses = {a.lower() for a in settings.team_addresses}
        if own_address:
            addresses.add(own_address.lower())
        return cls(frozenset(addresses), frozenset(d.lower() for d in settings.team_domains))

    def is_team(self, address: str) -> bool:
        a = address.lower()
        return a in self.addresses or (bool(self.domains) and domain_of(a) in self.domains)
