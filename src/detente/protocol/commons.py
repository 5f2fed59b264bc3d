"""Commons harvest text protocol (GovSim-like prompts): catches as ``<<proposal_start>> x
<<proposal_end>>``, chat in message markers (when the game has a chat).

The parser accepts 0..capacity; the rules reject a request above the current stock (the
rollout then treats the reply as invalid), and ``move_replies`` lists only 0..stock, the stock
read from the seat's last round start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from detente.games.base import Event, Game, Kind, MessageEvent, others, player_name
from detente.games.commons import Commons, CommonsConfig, RoundEnd, RoundStart
from detente.protocol.amounts import GroupProtocol, names
from detente.protocol.base import (
    PROPOSAL_END,
    PROPOSAL_START,
    Style,
    plural,
)


def _last_start(events: Sequence[Event]) -> RoundStart | None:
    return next((e for e in reversed(events) if isinstance(e, RoundStart)), None)


class CommonsProtocol(GroupProtocol):
    """Text face of the commons harvest. ``high`` is the capacity of the game's config (checked
    in ``rules``): no stock, hence no legal request, exceeds it."""

    game: ClassVar[str] = Commons.name
    unit: ClassVar[str] = "tons you catch"
    default_high: ClassVar[int] = CommonsConfig().capacity
    bound_name: ClassVar[str] = "capacity"

    # ---- prompts ---------------------------------------------------------------------------------
    def rules(self, game: Game, player: int) -> str:
        assert isinstance(game, Commons)
        c = game.config
        self.check_bound(c)
        n, cap, low, quota = c.players, c.capacity, c.collapse_below, c.messages_per_player
        if self.style is Style.COMPACT:
            horizon = f" {game.num_rounds} rounds." if c.tell_horizon else ""
            chat = f" {quota} msg each, then" if quota else ""
            collapse = f" under {low} left: collapse, game over." if low else ""
            return (
                f"commons. {n} players. lake {c.stock} of max {cap}; what is left doubles (max "
                f"{cap}).{collapse}{chat} fish 0-lake.{horizon}"
            )
        horizon = self.horizon_sentence(game)
        chat = self.chat_rules(1, "fishing", "talk", "fisherman", quota, n)
        formats = self.format_rules(quota, "catches", "catch")
        collapse = (
            f"5. If fewer than {plural(low, 'ton')} are left after fishing, the lake collapses "
            "and the game ends at once.\n"
            if low
            else "5. A lake left empty stays empty.\n"
        )
        return (
            f"You are {player_name(player)}, a fisherman. Every round you fish in a lake together "
            f"with {n - 1} other fishermen: {names(others(player, n))}. {horizon}\n"
            f"The lake can hold at most {plural(cap, 'ton')} of fish; at the start it holds "
            f"{plural(c.stock, 'ton')}.\n"
            "Every round:\n"
            f"{chat}"
            "2. You all decide, at the same time, how many tons of fish to catch: an integer "
            "from 0 to the tons in the lake.\n"
            "3. If the requests add up to at most the tons in the lake, every fisherman catches "
            "what they asked for. If they add up to more, the fish are shared in proportion to "
            "the requests: you catch (tons in the lake) × your request / (sum of all requests), "
            "rounded down to whole tons.\n"
            "4. After fishing, the fish left in the lake reproduce and double, up to "
            f"{plural(cap, 'ton')}.\n"
            f"{collapse}"
            "Your points for the round = the tons of fish you catch.\n"
            "After each round you see how many tons every fisherman asked for and caught, and "
            "how many tons the lake holds.\n"
            "Your goal is to get as many points as possible over the whole game.\n"
            f"{formats}"
        )

    def render_event(self, event: Event, player: int) -> str:
        if isinstance(event, RoundStart):
            if self.style is Style.COMPACT:
                line = f"lake {event.stock}"
                if event.opener is not None:
                    opens = "you" if event.opener == player else player_name(event.opener)
                    line += f", {opens} open" + ("" if event.opener == player else "s")
                return line
            opens = self.opener_sentence(event.opener, player)
            return (
                f"Round {event.round + 1} begins. The lake holds {plural(event.stock, 'ton')} of "
                f"fish.{opens}"
            )
        if isinstance(event, RoundEnd):
            co = others(player, len(event.harvests))
            if self.style is Style.COMPACT:
                caught = " ".join(str(event.harvests[p]) for p in co)
                end = ", collapse" if event.collapsed else ""
                return f"you {event.own_harvest} others {caught}, left {event.remaining}{end}"
            asked = ", ".join(f"{player_name(p)} {event.requests[p]}" for p in co)
            caught = ", ".join(f"{player_name(p)} {event.harvests[p]}" for p in co)
            after = (
                "The lake has collapsed: the game is over."
                if event.collapsed
                else f"The lake now holds {plural(event.next_stock, 'ton')}."
            )
            return (
                f"Round {event.round + 1} result: tons asked for: you {event.own_request}, "
                f"{asked}. Tons caught: you {event.own_harvest}, {caught}. "
                f"{plural(event.remaining, 'ton')} were left in the lake. {after}"
            )
        raise TypeError(f"not a commons event: {event!r}")

    def reminder(self, history: Sequence[Event], kind: Kind, player: int) -> str:
        """Compact style, before a catch that follows a chat: the stock (``lake 80``), which the
        round-start line gave before the messages."""
        start = _last_start(history)
        if self.style is not Style.COMPACT or kind is not Kind.MOVE or start is None:
            return ""
        chatted = any(isinstance(e, MessageEvent) and e.round == start.round for e in history)
        return f"lake {start.stock}" if chatted else ""

    def instruction(self, kind: Kind) -> str:
        if self.style is Style.COMPACT:
            return "msg?" if kind is Kind.MESSAGE else "fish?"
        if kind is Kind.MESSAGE:
            return self.message_instruction()
        return (
            f"Submit your catch now: reply with {PROPOSAL_START} x {PROPOSAL_END}, where x is the "
            "tons of fish you catch, an integer from 0 to the tons in the lake."
        )

    # ---- replies ---------------------------------------------------------------------------------
    def default_move(self) -> int:
        """Catch nothing: an invalid reply costs its author the round and never hurts the others
        or the lake."""
        return 0

    def move_replies(self, events: Sequence[Event] = ()) -> tuple[str, ...]:
        """0..stock, the stock of the seat's last round start (0..capacity before any)."""
        start = _last_start(events)
        top = self.high if start is None else min(start.stock, self.high)
        return tuple(self.format_move(amount) for amount in range(top + 1))
