"""The embedded ``tiny`` models: a tokenizer, a small Llama and a warm start on persona games.

Scripted personas play every game through the compact protocol; the model is fine-tuned on
the personas' replies (next-token cross-entropy on assistant tokens only). The persona mix is
dominated by cooperative and reciprocal players with some greedy ones, so that the model starts
with a cooperative prior, as an instruct LLM does. Everything is deterministic in the seed.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from detente.games import game_entry, make_config, make_game
from detente.learn.scoring import decoder_and_head
from detente.lm.chat import ChatFormat
from detente.policies.bots import bot_names, make_bot
from detente.policies.bots import ipd as ipd_bots
from detente.policies.bots import trust_split as trust_split_bots
from detente.protocol import Style, make_protocol
from detente.protocol.base import MESSAGE_END, MESSAGE_START, PROPOSAL_END, PROPOSAL_START
from detente.rollout.runner import Match, play


def personas(game: str) -> dict[str, float]:
    """The persona mix of ``game``'s warm start, bot name -> weight (its registration's
    ``personas``; every bot alike when it names none). The persona is the seat being imitated;
    the co-player is drawn uniformly (in a game of more players, every co-seat holds a copy)."""
    return dict(game_entry(game).personas) or dict.fromkeys(bot_names(game), 1.0)


# The prior the persona data implies (``detente.evaluate.prior`` measures; the model sees no
# persona label, so after being cheated the Trust-and-Split target mixes both personas).
PRIOR_TARGETS: dict[str, dict[str, float]] = {
    "ipd": {
        "p_coop_first": ipd_bots.Forgiving.P_FIRST,
        "p_coop_after_c": ipd_bots.Forgiving.P_AFTER_C,
        "p_coop_after_d": ipd_bots.Forgiving.P_AFTER_D,
    },
    "trust-split": {
        "honesty": 1.0,
        "follows_hands": 1.0,
        "concede_otherwise": 1.0,
        "concede_after_cheated": personas("trust-split")["honest"]
        + personas("trust-split")["forgiving"] * (1 - trust_split_bots.Forgiving.P_RETALIATE),
    },
}


# How often each game's chats are drawn in the warm start (the demo games dominate).
GAME_WEIGHTS: dict[str, float] = {"ipd": 0.5, "trust-split": 0.3, "split": 0.1, "dond": 0.1}
# Rounds of the persona games: short for the long-chat games keeps the warm start within minutes
# on a CPU; the IPD, the demo game, gets its full default horizon.
PERSONA_ROUNDS: dict[str, int] = {"ipd": 10, "trust-split": 4, "split": 4, "dond": 3}
# Protocol markers become single tokens: shorter sequences and formats that are easy to learn.
PROTOCOL_TOKENS = ("<A>", "<B>", MESSAGE_START, MESSAGE_END, PROPOSAL_START, PROPOSAL_END)
# The games a spec covers unless it names its own: the two-player games `tiny` and `tiny-test`
# were built on (a game added later gets its own model and leaves their data as it was).
TINY_GAMES: tuple[str, ...] = ("dond", "ipd", "split", "trust-split")


class Schedule(Protocol):
    """The optimisation budget of a warm start."""

    @property
    def steps(self) -> int: ...
    @property
    def batch(self) -> int: ...
    @property
    def lr(self) -> float: ...
    @property
    def seed(self) -> int: ...


@dataclass(frozen=True)
class TinySpec:
    """Sizes and budget of one embedded model, and the games its warm start covers."""

    vocab_size: int
    hidden: int
    layers: int
    heads: int
    games_per_game: int  # persona games per covered game
    steps: int
    batch: int
    lr: float
    games: tuple[str, ...] = TINY_GAMES
    seed: int = 0
    # A curriculum: steps on the chats' first rounds before the steps on whole chats (0: none).
    opening_steps: int = 0


# One model for every game (split and dond train on it).
TINY = TinySpec(
    vocab_size=1024, hidden=96, layers=3, heads=4, games_per_game=300, steps=400, batch=16, lr=3e-3
)
# One model per demo game: all warm-start steps on that game's personas. Measured on the IPD
# (32 probe games per seat order): with half of 400 steps on the IPD (the mixed model) the
# model learned the marginal P(C) only (0.86 after C, 0.87 after D); with all 400 it learned
# the persona's conditional (0.95 / 0.64, target 0.95 / 0.6).
TINY_IPD = replace(TINY, games=("ipd",))
# Trust-and-Split needs the curriculum: on whole 4-round chats the model never learned to copy
# its own hand into its message (teacher-forced P(own hand) 0.33 after 400, 800 and 1200 steps,
# chance level); 300 steps on first rounds first gave 1.00, and whole chats kept it (0.9999).
TINY_TRUST_SPLIT = replace(TINY, games=("trust-split",), opening_steps=300)
# The N-player games, one model each (their CPU presets use them).
TINY_PUBLIC_GOODS = replace(TINY, games=("public-goods",))
TINY_COMMONS = replace(TINY, games=("commons",))
TINY_TEST = TinySpec(
    vocab_size=384, hidden=48, layers=2, heads=2, games_per_game=24, steps=30, batch=16, lr=5e-3
)


Chat = tuple[dict[str, str], ...]
Distribution = dict[str, float]


@dataclass(frozen=True)
class PersonaChat:
    """A persona seat's whole chat (system, user, assistant, ...) and, per assistant reply, the
    persona's reply distribution when it is stochastic (``None``: the reply is the target) and
    the round it was made in."""

    messages: Chat
    distributions: tuple[Distribution | None, ...]
    rounds: tuple[int, ...] = ()

    def opening(self) -> PersonaChat:
        """The chat up to the end of its first round (the system prompt, then its decisions)."""
        replies = sum(1 for r in self.rounds if r == 0)
        return PersonaChat(
            self.messages[: 1 + 2 * replies], self.distributions[:replies], self.rounds[:replies]
        )


def persona_conversations(
    games: Sequence[str],
    games_per_game: int,
    seed: int,
    style: Style = Style.COMPACT,
    rounds: int | None = None,
) -> dict[str, list[PersonaChat]]:
    """Chats of persona seats per game in ``style``: the persona in a seat drawn uniformly, the
    co-player (drawn uniformly) in every other seat. The draws per game are persona, co-player,
    seat, as with two players. Games last ``rounds`` (default: ``PERSONA_ROUNDS``)."""
    conversations: dict[str, list[PersonaChat]] = {}
    for game_index, game in enumerate(games):
        names = bot_names(game)
        weights = personas(game)
        drawn = [n for n in weights if n in names]
        probs = np.array([weights[n] for n in drawn]) / sum(weights[n] for n in drawn)
        rng = np.random.default_rng([seed, game_index])
        bots = {n: make_bot(game, n) for n in names}
        matches, imitated = [], []
        for k in range(games_per_game):
            persona = drawn[rng.choice(len(drawn), p=probs)]
            other = names[rng.integers(len(names))]
            config = make_config(game, {"rounds": rounds or PERSONA_ROUNDS.get(game, 10)})
            played = make_game(game, config, seed * 100_003 + k)
            seat = int(rng.integers(played.num_players))
            policies = tuple(
                bots[persona] if p == seat else bots[other] for p in range(played.num_players)
            )
            matches.append(Match(played, policies, f"{game}-{k}"))
            imitated.append(seat)
        records = play(matches, make_protocol(game, style), seed=seed)
        for record, seat in zip(records, imitated, strict=True):
            seat_record = record.seats[seat]
            chat: list[dict[str, str]] = [{"role": "system", "content": seat_record.system}]
            for turn in seat_record.turns:
                chat += [
                    {"role": "user", "content": turn.prompt},
                    {"role": "assistant", "content": turn.reply},
                ]
            distributions = tuple(turn.distribution for turn in seat_record.turns)
            turn_rounds = tuple(turn.round for turn in seat_record.turns)
            conversations.setdefault(game, []).append(
                PersonaChat(tuple(chat), distributions, turn_rounds)
            )
    return conversations


def conversation_tokens(
    chat: ChatFormat, messages: Sequence[dict[str, str]]
) -> tuple[list[int], list[int]]:
    """Token ids of a whole chat and a 0/1 target mask over assistant replies and their end token.

    Built message by message from the template's text deltas, as the engine feeds a conversation:
    a reply is its tokens after the assistant header plus the end-of-turn token; everything else
    is the template text that follows what was already consumed.
    """
    ids: list[int] = []
    target: list[int] = []
    consumed = ""
    end_text = chat.decode([chat.end_of_turn])
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            reply = chat.reply_tokens(message["content"]) + [chat.end_of_turn]
            ids += reply
            target += [1] * len(reply)
            full = chat.render(messages[: i + 1], generation_prompt=False)
            consumed = full[: full.rindex(message["content"]) + len(message["content"])] + end_text
            continue
        next_is_reply = i + 1 < len(messages) and messages[i + 1]["role"] == "assistant"
        upto = chat.render(messages[: i + 1], generation_prompt=next_is_reply)
        if not upto.startswith(consumed):
            raise ValueError("the chat template is not prefix-stable; cannot build deltas")
        delta = chat.encode(upto[len(consumed) :])
        ids += delta
        target += [0] * len(delta)
        consumed = upto
    return ids, target


SoftTarget = tuple[int, dict[int, float]]  # (position of the predicted token, token -> probability)


def soft_targets(
    chat: ChatFormat, ids: Sequence[int], target: Sequence[int], persona: PersonaChat
) -> list[SoftTarget]:
    """Where a stochastic persona's replies first differ, its distribution as the target.

    The k-th run of target tokens is the k-th assistant reply. For a reply with a distribution
    {text: p}, the alternatives' tokens agree up to some position and differ there; that token's
    target becomes {token: Σ p of the texts with it}, so the model fits the persona's
    probabilities instead of one draw (the other tokens keep the drawn reply as target).
    """
    spans: list[int] = [k for k in range(len(ids)) if target[k] and (k == 0 or not target[k - 1])]
    if len(spans) != len(persona.distributions):
        raise ValueError(f"{len(spans)} replies in the tokens, {len(persona.distributions)} given")
    out: list[SoftTarget] = []
    for start, distribution in zip(spans, persona.distributions, strict=True):
        if not distribution or len(distribution) < 2:
            continue
        alternatives = {text: chat.reply_tokens(text) for text in distribution}
        depth = 0
        while len({tuple(tokens[: depth + 1]) for tokens in alternatives.values()}) == 1:
            depth += 1
        probabilities: dict[int, float] = {}
        for text, tokens in alternatives.items():
            if depth >= len(tokens):
                raise ValueError(f"reply {text!r} is a prefix of another alternative")
            probabilities[tokens[depth]] = (
                probabilities.get(tokens[depth], 0.0) + distribution[text]
            )
        out.append((start + depth, probabilities))
    return out


def warm_start_loss(
    states: torch.Tensor,
    labels: torch.Tensor,
    soft: Sequence[Sequence[SoftTarget]],
    head: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Mean over target tokens of the cross-entropy −Σ_v q_v log π(v | prefix), where q is the
    drawn token (one-hot) or, at a soft target, the persona's distribution.

    ``states`` [B, L, ·] at position k predict the token at k + 1: the logits, or the decoder's
    hidden states when ``head`` maps hidden states to logits (then the vocabulary-sized logits
    exist only at the N positions that predict a target). ``labels`` [B, L] hold the token at
    each position (−100 where no target). Soft positions are listed per row; each must be a
    target position.
    """
    predicts = labels[:, 1:] != -100  # [B, L-1]
    selected = states[:, :-1][predicts]  # [N, ·]
    logp = torch.log_softmax((selected if head is None else head(selected)).float(), dim=-1)
    targets = labels[:, 1:][predicts]
    row_of = (torch.cumsum(predicts.flatten(), 0) - 1).view(predicts.shape)
    hard = torch.ones(len(targets), dtype=torch.bool)
    soft_terms = []
    for row, row_targets in enumerate(soft):
        for position, probabilities in row_targets:
            if not predicts[row, position - 1]:
                raise ValueError(f"soft target at ({row}, {position}) is not a target position")
            k = int(row_of[row, position - 1])
            hard[k] = False
            tokens = torch.tensor(list(probabilities))
            q = torch.tensor(list(probabilities.values()), dtype=logp.dtype)
            soft_terms.append(-(q * logp[k, tokens]).sum())
    nll = -logp[hard].gather(-1, targets[hard].unsqueeze(-1)).squeeze(-1)
    total = nll.sum() + (torch.stack(soft_terms).sum() if soft_terms else 0.0)
    return total / max(len(targets), 1)


def supervised_warm_start(
    model: torch.nn.Module,
    chat: ChatFormat,
    conversations: dict[str, list[PersonaChat]],
    spec: Schedule,
    progress: bool = True,
    head_at_targets: bool = False,
) -> list[float]:
    """Next-token cross-entropy on assistant tokens (``warm_start_loss``: against a stochastic
    persona's distribution where it has one), AdamW with one-cycle decay over the parameters
    that require a gradient (all of a tiny model; the adapter's under LoRA). Each step's batch
    comes from one game, drawn with ``GAME_WEIGHTS`` (chats of one game have similar lengths, so
    little compute goes to padding). ``head_at_targets``: the output head runs only at the
    positions that predict a target (a large vocabulary's logits are most of a step's memory);
    the ``tiny`` models are built with the whole logits, as their measured priors were.
    Returns the loss of every step."""
    games = sorted(conversations)
    examples = {}
    for g in games:
        examples[g] = []
        for persona in conversations[g]:
            ids, target = conversation_tokens(chat, persona.messages)
            examples[g].append((ids, target, soft_targets(chat, ids, target, persona)))
    weights = torch.tensor([GAME_WEIGHTS.get(g, 0.1) for g in games])
    generator = torch.Generator().manual_seed(spec.seed)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=spec.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, spec.lr, total_steps=spec.steps, pct_start=0.1
    )
    losses = []
    model.train()
    for _ in tqdm(range(spec.steps), desc="persona warm start", disable=not progress, leave=False):
        pool = examples[games[int(torch.multinomial(weights, 1, generator=generator))]]
        picks = torch.randint(len(pool), (spec.batch,), generator=generator).tolist()
        batch = [pool[i] for i in picks]
        length = max(len(ids) for ids, _, _ in batch)
        ids = torch.full((len(batch), length), chat.pad_id)
        labels = torch.full((len(batch), length), -100)
        attention = torch.zeros((len(batch), length), dtype=torch.long)
        for row, (tokens, target, _) in enumerate(batch):
            ids[row, : len(tokens)] = torch.tensor(tokens)
            attention[row, : len(tokens)] = 1
            labels[row, : len(tokens)] = torch.where(
                torch.tensor(target, dtype=torch.bool), torch.tensor(tokens), -100
            )
        soft = [soft for _, _, soft in batch]
        if head_at_targets:
            decoder, head = decoder_and_head(model)
            hidden = decoder(input_ids=ids, attention_mask=attention).last_hidden_state
            loss = warm_start_loss(hidden, labels, soft, head)
        else:
            logits = model(input_ids=ids, attention_mask=attention).logits
            loss = warm_start_loss(logits, labels, soft)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return losses


# Bump when the recipe's code changes (the training data and the constants above are part of
# the cache key by themselves): cached models rebuild.
RECIPE_VERSION = 6


@functools.cache
def data_digest(
    games: tuple[str, ...],
    games_per_game: int,
    seed: int,
    style: Style = Style.COMPACT,
    rounds: int | None = None,
) -> str:
    """A digest of the persona chats (every prompt, reply and soft target): a change to a
    game, its protocol or a persona bot changes the data, hence the key."""
    digest = hashlib.sha256()
    chats_per_game = persona_conversations(games, games_per_game, seed, style, rounds)
    for game, chats in sorted(chats_per_game.items()):
        digest.update(
            repr((game, [(c.messages, c.distributions, c.rounds) for c in chats])).encode()
        )
    return digest.hexdigest()


def recipe_key(spec: TinySpec) -> str:
    """Everything besides ``spec`` itself that decides what its warm start builds: the persona
    mixes of its games, the chats they give, the recipe's constants and version."""
    mixes = {game: personas(game) for game in spec.games}
    data = data_digest(spec.games, spec.games_per_game, spec.seed)
    return repr((RECIPE_VERSION, mixes, GAME_WEIGHTS, PERSONA_ROUNDS, PROTOCOL_TOKENS, data))


def build_tiny(spec: TinySpec, progress: bool = True) -> tuple[torch.nn.Module, object]:
    """Tokenizer trained on persona chats, an untrained small Llama, then the warm start."""
    from detente.lm.tiny import build_untrained
    from detente.lm.tokenizer import train_tokenizer

    conversations = persona_conversations(spec.games, spec.games_per_game, spec.seed)
    texts = [
        m["content"] for chats in conversations.values() for chat in chats for m in chat.messages
    ]
    tokenizer = train_tokenizer(texts, spec.vocab_size, PROTOCOL_TOKENS)
    model = build_untrained(tokenizer, spec.hidden, spec.layers, spec.heads, seed=spec.seed)
    chat = ChatFormat(tokenizer)
    if spec.opening_steps:
        openings = {game: [c.opening() for c in chats] for game, chats in conversations.items()}
        supervised_warm_start(
            model, chat, openings, replace(spec, steps=spec.opening_steps), progress
        )
    supervised_warm_start(model, chat, conversations, spec, progress)
    return model, tokenizer
