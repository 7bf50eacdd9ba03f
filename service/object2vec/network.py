"""The Object2Vec network in PyTorch: two encoders, a comparator and an MLP that scores the pair.

Every encoder is padding-invariant (id 0 is padding and never changes a sentence's embedding), so a sentence
embeds the same whatever else shares its batch: the service relies on that when it micro-batches requests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from service.model.hyperparameters import Hyperparameters

PAD_ID = 0


def load_pretrained_embeddings(path: Path, vocab: dict[str, int], vocab_size: int, dim: int) -> torch.Tensor:
    """Read a GloVe-format text file (`token v1 … vD` a line) into rows keyed by the vocab file's ids.

    This is the auxiliary-channel format SageMaker's notebooks use; tokens missing from the vocab are skipped and
    rows with no vector keep a small random initialisation.
    """
    table = torch.randn(vocab_size, dim) * 0.02
    found = 0
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            token, _, rest = line.rstrip("\n").partition(" ")
            index = vocab.get(token)
            if index is None or index >= vocab_size:
                continue
            values = np.array(rest.split(" "), dtype=np.float32)
            if values.shape[0] != dim:
                raise ValueError(f"{path}:{lineno}: expected {dim} values for '{token}', found {values.shape[0]}")
            table[index] = torch.from_numpy(values)
            found += 1
    if found == 0:
        raise ValueError(f"{path}: no token of the vocab file has a vector")
    table[PAD_ID] = 0.0
    return table


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the non-padding positions; an all-padding row gives zeros rather than NaN."""
    return (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def masked_max(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (h * mask + (mask - 1.0) * 1.0e4).max(1).values * (mask.sum(1) > 0).to(h.dtype)


class Encoder(nn.Module):
    """Token ids → one fixed-length vector. Subclasses add sequence layers on top of the bag of embeddings."""

    def __init__(self, embedding: nn.Embedding, enc_dim: int, dropout: float) -> None:
        super().__init__()
        self.embedding = embedding
        self.dropout = nn.Dropout(dropout)
        dim = embedding.embedding_dim
        # The bag-of-embeddings path: the mean token vector, projected only when its size differs from enc_dim.
        self.bag = nn.Identity() if dim == enc_dim else nn.Linear(dim, enc_dim)
        self.enc_dim = enc_dim

    def embed(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = (ids != PAD_ID).unsqueeze(-1).to(torch.float32)
        return self.dropout(self.embedding(ids)) * mask, mask

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h, mask = self.embed(ids)
        return self.bag(masked_mean(h, mask))


class PooledEmbeddingEncoder(Encoder):
    """`pooled_embedding`: the average of the token embeddings (word order is ignored)."""


class _SequenceEncoder(Encoder):
    """Adds what a sequence model reads to the bag path; the head starts at zero, so training starts from the bag."""

    def __init__(self, embedding: nn.Embedding, enc_dim: int, dropout: float, hidden: int) -> None:
        super().__init__(embedding, enc_dim, dropout)
        self.head = nn.Linear(2 * hidden, enc_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def sequence(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h, mask = self.embed(ids)
        seq = self.dropout(self.sequence(h, mask))
        pooled = torch.cat([masked_mean(seq, mask), masked_max(seq, mask)], dim=-1)
        return self.bag(masked_mean(h, mask)) + self.head(pooled)


class HCNNEncoder(_SequenceEncoder):
    """`hcnn`: a stack of 1-D convolutions (`layers` deep, `cnn_filter_width` wide, enc_dim channels).

    Each layer widens the receptive field of the one below (the hierarchy); layers after the first are residual.
    """

    def __init__(self, embedding: nn.Embedding, enc_dim: int, dropout: float, layers: int, width: int) -> None:
        super().__init__(embedding, enc_dim, dropout, enc_dim)
        dims = [embedding.embedding_dim] + [enc_dim] * layers
        self.convs = nn.ModuleList(nn.Conv1d(dims[i], dims[i + 1], width) for i in range(layers))
        self.pad = ((width - 1) // 2, width // 2)

    def sequence(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = h.transpose(1, 2)
        m = mask.transpose(1, 2)
        for i, conv in enumerate(self.convs):
            y = torch.relu(conv(F.pad(x, self.pad))) * m
            x = y if i == 0 else x + y
        return x.transpose(1, 2)


def _reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first `length` positions and leave its padding in place."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    index = torch.where(steps < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - steps, steps)
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class BiLSTMEncoder(_SequenceEncoder):
    """`bilstm`: a bidirectional LSTM, enc_dim/2 units each way.

    The backward direction reads each sentence reversed within its own length, so trailing padding never
    reaches it: the usual packed-sequence trick in a form that exports to ONNX.
    """

    def __init__(self, embedding: nn.Embedding, enc_dim: int, dropout: float, layers: int) -> None:
        hidden = max(enc_dim // 2, 1)
        super().__init__(embedding, enc_dim, dropout, 2 * hidden)
        dim = embedding.embedding_dim
        inner = dropout if layers > 1 else 0.0
        self.forward_lstm = nn.LSTM(dim, hidden, num_layers=layers, batch_first=True, dropout=inner)
        self.backward_lstm = nn.LSTM(dim, hidden, num_layers=layers, batch_first=True, dropout=inner)

    def sequence(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.squeeze(-1).sum(1).to(torch.int64)
        fwd, _ = self.forward_lstm(h)
        bwd, _ = self.backward_lstm(_reverse_within_length(h, lengths))
        return torch.cat([fwd, _reverse_within_length(bwd, lengths)], dim=-1) * mask


def _build_encoder(settings: dict, embedding: nn.Embedding, enc_dim: int, dropout: float) -> Encoder:
    network = settings["network"]
    if network == "pooled_embedding":
        return PooledEmbeddingEncoder(embedding, enc_dim, dropout)
    if network == "hcnn":
        return HCNNEncoder(embedding, enc_dim, dropout, settings["layers"], settings["cnn_filter_width"])
    return BiLSTMEncoder(embedding, enc_dim, dropout, settings["layers"])


class Comparator(nn.Module):
    """Joins the two encodings with the operators of `comparator_list`, in its order."""

    def __init__(self, operators: list[str]) -> None:
        super().__init__()
        self.operators = operators

    def width(self, enc_dim: int) -> int:
        return sum(2 * enc_dim if op == "concat" else enc_dim for op in self.operators)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        parts = []
        for op in self.operators:
            if op == "hadamard":
                parts.append(a * b)
            elif op == "concat":
                parts.extend([a, b])
            else:
                parts.append(torch.abs(a - b))
        return torch.cat(parts, dim=-1)


class PairScorer(nn.Module):
    """Comparator + MLP + output layer: (enc0 vector, enc1 vector) → class logits or one regression value."""

    def __init__(self, hp: Hyperparameters) -> None:
        super().__init__()
        self.comparator = Comparator(hp.comparators)
        activation = {"tanh": nn.Tanh, "relu": nn.ReLU, "linear": nn.Identity}[hp.mlp_activation]
        layers: list[nn.Module] = []
        width = self.comparator.width(hp.enc_dim)
        for _ in range(hp.mlp_layers):
            layers += [nn.Linear(width, hp.mlp_dim), activation(), nn.Dropout(hp.dropout)]
            width = hp.mlp_dim
        outputs = hp.num_classes if hp.output_layer == "softmax" else 1
        layers.append(nn.Linear(width, outputs))
        self.mlp = nn.Sequential(*layers)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.comparator(a, b))


class Object2Vec(nn.Module):
    """enc0 and enc1 with the pair scorer.

    As on SageMaker, enc1_network='enc0' builds enc1 like enc0 with weights of its own. `share_encoders` (a local
    option, not a SageMaker hyperparameter) makes enc1 the same module instead: the siamese encoder sentence
    similarity wants, where in0 and in1 texts land in one space.
    """

    def __init__(
        self, hp: Hyperparameters, pretrained: dict[int, torch.Tensor] | None = None, share_encoders: bool = False
    ) -> None:
        super().__init__()
        if share_encoders and hp.enc1_network != "enc0":
            raise ValueError(
                f"share_encoders needs enc1_network=enc0 (one module has one architecture), not {hp.enc1_network}"
            )
        self.hp = hp
        pretrained = pretrained or {}
        s0 = hp.encoder(0)
        emb0 = self._embedding(s0, pretrained.get(0), hp.token_embedding_storage_type == "row_sparse")
        self.enc0 = _build_encoder(s0, emb0, hp.enc_dim, hp.dropout)
        if share_encoders:
            self.enc1 = self.enc0
        else:
            s1 = hp.encoder(1)
            shape0 = (s0["vocab_size"], s0["token_embedding_dim"])
            if hp.tied_token_embedding_weight and (s1["vocab_size"], s1["token_embedding_dim"]) != shape0:
                raise ValueError(
                    "tied_token_embedding_weight=True needs enc0 and enc1 with the same vocab_size and "
                    f"token_embedding_dim; enc0 has {shape0}, enc1 ({s1['vocab_size']}, {s1['token_embedding_dim']})"
                )
            sparse = hp.token_embedding_storage_type == "row_sparse"
            emb1 = emb0 if hp.tied_token_embedding_weight else self._embedding(s1, pretrained.get(1), sparse)
            self.enc1 = _build_encoder(s1, emb1, hp.enc_dim, hp.dropout)
        self.scorer = PairScorer(hp)

    @staticmethod
    def _embedding(settings: dict, table: torch.Tensor | None, sparse: bool) -> nn.Embedding:
        emb = nn.Embedding(settings["vocab_size"], settings["token_embedding_dim"], padding_idx=PAD_ID, sparse=sparse)
        if table is not None:
            if tuple(table.shape) != (settings["vocab_size"], settings["token_embedding_dim"]):
                raise ValueError(
                    f"pretrained embedding is {tuple(table.shape)}, expected "
                    f"(vocab_size, token_embedding_dim) = ({settings['vocab_size']}, {settings['token_embedding_dim']})"
                )
            emb.weight.data.copy_(table)
            emb.weight.requires_grad_(not settings["freeze_pretrained_embedding"])
        return emb

    def forward(self, in0: torch.Tensor, in1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = self.enc0(in0)
        b = self.enc1(in1)
        return self.scorer(a, b), a, b
