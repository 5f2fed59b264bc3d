"""Public goods text protocol: contributions as ``<<proposal_start>> x <<proposal_end>>``, chat in
message markers (when the game has a chat); everyone's contributions shown after each round."""

from __future__ import annotations

from typing import ClassVar

from detente.games.base import Event, Game, Kind, others, player_name
from detente.games.public_goods import PublicGoods, PublicGoodsConfig, RoundEnd, RoundStart
from detente.protocol.amounts import GroupProtocol, names
from detente.protocol.base import (
    PROPOSAL_END,
    PROPOSAL_START,
    Style,
    number,
    plural,
)


class PublicGoodsProtocol(GroupProtocol):
    """Text face of the public goods game. ``high`` is the endowment of the game's config
    (checked in ``rules``): it bounds the contributions the parser accepts."""

    game: ClassVar[str] = PublicGoods.name
    unit: ClassVar[str] = "coins you give"
    default_high: ClassVar[int] = PublicGoodsConfig().endowment
    bound_name: ClassVar[str] = "endowment"

    # ---- prompts ---------------------------------------------------------------------------------
    def rules(self, game: Game, player: int) -> str:
        assert isinstance(game, PublicGoods)
        c = game.config
        self.check_bound(c)
        e, r, n, quota = c.endowment, number(c.multiplier), c.players, c.messages_per_player
        if self.style is Style.COMPACT:
            horizon = f" {game.num_rounds} rounds." if c.tell_horizon else ""
            chat = f" {quota} msg each, then" if quota else ""
            return (
                f"public-goods. {n} players. {e} coins each, pot x{r} shared by all.{chat} "
                f"give 0-{e}.{horizon}"
            )
        horizon = self.horizon_sentence(game)
        chat = self.chat_rules(2, "contributing", "chat", "player", quota, n)
        formats = self.format_rules(quota, "contributions", "contribution")
        return (
            f"You are {player_name(player)}, playing an iterated public goods game with "
            f"{n - 1} other players: {names(others(player, n))}. {horizon}\n"
            "Every round:\n"
            f"1. Each of you receives {e} coins.\n"
            f"{chat}"
            "3. You all decide, at the same time, how many of your coins to put into a shared "
            f"pot: an integer from 0 to {e}. You keep the coins you do not put in.\n"
            f"4. The coins in the pot are multiplied by {r} and shared equally among all {n} "
            "players, whatever each of them put in.\n"
            "5. Your points for the round = the coins you keep + your share of the pot = "
            f"{e} − your contribution + {r} × (sum of all contributions) / {n}.\n"
            "After each round you see how many coins every player put in and the points "
            "everyone got.\n"
            "Your goal is to get as many points as possible over the whole game.\n"
            f"{formats}"
        )

    def render_event(self, event: Event, player: int) -> str:
        if isinstance(event, RoundStart):
            if self.style is Style.COMPACT:
                if event.opener is None:
                    return ""
                return (
                    "you open" if event.opener == player else f"{player_name(event.opener)} opens"
                )
            opens = self.opener_sentence(event.opener, player)
            return f"Round {event.round + 1} begins. You have {event.endowment} coins.{opens}"
        if isinstance(event, RoundEnd):
            co = others(player, len(event.contributions))
            if self.style is Style.COMPACT:
                given = " ".join(str(event.contributions[p]) for p in co)
                return f"you {event.own_contribution} others {given}, +{number(event.own_reward)}"
            pot = sum(event.contributions)
            gave = ", ".join(f"{player_name(p)} {event.contributions[p]}" for p in co)
            got = ", ".join(f"{player_name(p)} {number(event.rewards[p])}" for p in co)
            return (
                f"Round {event.round + 1} result: coins put in: you {event.own_contribution}, "
                f"{gave}. The pot of {plural(pot, 'coin')} was multiplied and shared: "
                f"{plural(event.share, 'point')} to each player. Points this round: you "
                f"{number(event.own_reward)}, {got}."
            )
        raise TypeError(f"not a public goods event: {event!r}")

    def instruction(self, kind: Kind) -> str:
        if self.style is Style.COMPACT:
            return "msg?" if kind is Kind.MESSAGE else "give?"
        if kind is Kind.MESSAGE:
            return self.message_instruction()
        return (
            f"Submit your contribution now: reply with {PROPOSAL_START} x {PROPOSAL_END}, where "
            f"x is the number of coins you put into the pot, an integer from 0 to {self.high}."
        )

    # ---- replies ---------------------------------------------------------------------------------
    def default_move(self) -> int:
        """Give everything: an invalid reply costs its author (1 − r/N a coin) and never hurts
        the others (giving nothing would reward an invalid reply with the dominant move)."""
        return self.high
