"""The embedded ``tiny`` models: a tokenizer, a small Llama and a warm start on persona games.

Scripted personas play every game through the compact protocol; the model is fine-tuned on
the personas' replies (next-token cross-entropy on assistant tokens only). The persona mix is
dominated by cooperative and reciprocal players with some greedy ones, so that the model starts
with a cooperative prior, as an instruct LLM does. Everything is deterministic in the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from detente.games import make_config, make_game
from detente.lm.chat import ChatFormat
from detente.policies.bots import bot_names, make_bot
from detente.protocol import Style, make_protocol
from detente.protocol.base import MESSAGE_END, MESSAGE_START, PROPOSAL_END, PROPOSAL_START
from detente.rollout.runner import Match, play

# Persona weights per game (the seat being imitated); the co-player is drawn uniformly.
PERSONAS: dict[str, dict[str, float]] = {
    "ipd": {
        "tit-for-tat": 0.35,
        "always-cooperate": 0.15,
        "wsls": 0.15,
        "grim": 0.1,
        "always-defect": 0.1,
        "random": 0.1,
        "alternator": 0.05,
    },
    "trust-split": {
        "honest": 0.35,
        "tit-for-tat": 0.35,
        "greedy": 0.15,
        "liar": 0.1,
        "sucker": 0.05,
    },
    "split": {"welfare": 0.6, "half": 0.2, "greedy": 0.2},
    "dond": {"fair": 0.8, "greedy": 0.2},
}


# How often each game's chats are drawn in the warm start (the demo games dominate).
GAME_WEIGHTS: dict[str, float] = {"ipd": 0.5, "trust-split": 0.3, "split": 0.1, "dond": 0.1}
# Rounds of the persona games: short for the long-chat games keeps the warm start within minutes
# on a CPU; the IPD, the demo game, gets its full default horizon.
PERSONA_ROUNDS: dict[str, int] = {"ipd": 10, "trust-split": 4, "split": 4, "dond": 3}
# Protocol markers become single tokens: shorter sequences and formats that are easy to learn.
PROTOCOL_TOKENS = ("<A>", "<B>", MESSAGE_START, MESSAGE_END, PROPOSAL_START, PROPOSAL_END)


@dataclass(frozen=True)
class TinySpec:
    """Sizes and budget of one embedded model."""

    vocab_size: int
    hidden: int
    layers: int
    heads: int
    games_per_game: int  # persona games per registered game
    steps: int
    batch: int
    lr: float
    seed: int = 0


TINY = TinySpec(
    vocab_size=1024, hidden=96, layers=3, heads=4, games_per_game=300, steps=400, batch=16, lr=3e-3
)
TINY_TEST = TinySpec(
    vocab_size=384, hidden=48, layers=2, heads=2, games_per_game=24, steps=30, batch=16, lr=5e-3
)


Chat = tuple[dict[str, str], ...]


def persona_conversations(
    games: Sequence[str], games_per_game: int, seed: int
) -> dict[str, list[Chat]]:
    """Whole chats (system, user, assistant, ...) of persona seats per game, compact style."""
    conversations: dict[str, list[Chat]] = {}
    for game_index, game in enumerate(games):
        names = bot_names(game)
        weights = PERSONAS.get(game, dict.fromkeys(names, 1.0))
        personas = [n for n in weights if n in names]
        probs = np.array([weights[n] for n in personas]) / sum(weights[n] for n in personas)
        rng = np.random.default_rng([seed, game_index])
        bots = {n: make_bot(game, n) for n in names}
        matches, imitated = [], []
        for k in range(games_per_game):
            persona = personas[rng.choice(len(personas), p=probs)]
            other = names[rng.integers(len(names))]
            seat = int(rng.integers(2))
            policies = (bots[persona], bots[other]) if seat == 0 else (bots[other], bots[persona])
            config = make_config(game, {"rounds": PERSONA_ROUNDS.get(game, 10)})
            game_seed = seed * 100_003 + k
            matches.append(Match(make_game(game, config, game_seed), policies, f"{game}-{k}"))
            imitated.append(seat)
        records = play(matches, make_protocol(game, Style.COMPACT), seed=seed)
        for record, seat in zip(records, imitated, strict=True):
            seat_record = record.seats[seat]
            chat: list[dict[str, str]] = [{"role": "system", "content": seat_record.system}]
            for turn in seat_record.turns:
                chat += [
                    {"role": "user", "content": turn.prompt},
                    {"role": "assistant", "content": turn.reply},
                ]
            conversations.setdefault(game, []).append(tuple(chat))
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


def supervised_warm_start(
    model: torch.nn.Module,
    chat: ChatFormat,
    conversations: dict[str, list[Chat]],
    spec: TinySpec,
    progress: bool = True,
) -> list[float]:
    """Next-token cross-entropy on assistant tokens, AdamW with one-cycle decay. Each step's
    batch comes from one game, drawn with ``GAME_WEIGHTS`` (chats of one game have similar
    lengths, so little compute goes to padding). Returns the loss of every step."""
    games = sorted(conversations)
    examples = {g: [conversation_tokens(chat, c) for c in conversations[g]] for g in games}
    weights = torch.tensor([GAME_WEIGHTS.get(g, 0.1) for g in games])
    generator = torch.Generator().manual_seed(spec.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, spec.lr, total_steps=spec.steps, pct_start=0.1
    )
    losses = []
    model.train()
    for _ in tqdm(range(spec.steps), desc="warm start (tiny)", disable=not progress, leave=False):
        pool = examples[games[int(torch.multinomial(weights, 1, generator=generator))]]
        picks = torch.randint(len(pool), (spec.batch,), generator=generator).tolist()
        batch = [pool[i] for i in picks]
        length = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), length), chat.pad_id)
        labels = torch.full((len(batch), length), -100)
        attention = torch.zeros((len(batch), length), dtype=torch.long)
        for row, (tokens, target) in enumerate(batch):
            ids[row, : len(tokens)] = torch.tensor(tokens)
            attention[row, : len(tokens)] = 1
            labels[row, : len(tokens)] = torch.where(
                torch.tensor(target, dtype=torch.bool), torch.tensor(tokens), -100
            )
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return losses


# Bump when the persona games, the compact protocol or the recipe's code change (the constants
# above are part of the cache key by themselves): cached models rebuild.
RECIPE_VERSION = 4


def recipe_key() -> str:
    """Everything besides a :class:`TinySpec` that decides what the warm start builds."""
    return repr((RECIPE_VERSION, PERSONAS, GAME_WEIGHTS, PERSONA_ROUNDS, PROTOCOL_TOKENS))


def build_tiny(spec: TinySpec, progress: bool = True) -> tuple[torch.nn.Module, object]:
    """Tokenizer trained on persona chats, an untrained small Llama, then the warm start."""
    from detente.lm.tiny import build_untrained
    from detente.lm.tokenizer import train_tokenizer

    conversations = persona_conversations(sorted(PERSONAS), spec.games_per_game, spec.seed)
    texts = [m["content"] for chats in conversations.values() for chat in chats for m in chat]
    tokenizer = train_tokenizer(texts, spec.vocab_size, PROTOCOL_TOKENS)
    model = build_untrained(tokenizer, spec.hidden, spec.layers, spec.heads, seed=spec.seed)
    supervised_warm_start(model, ChatFormat(tokenizer), conversations, spec, progress)
    return model, tokenizer
