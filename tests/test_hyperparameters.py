"""The SageMaker hyperparameter schema: names, every range edge, defaults, string maps and the l1 refusal."""

from __future__ import annotations

import pytest

from service.model.hyperparameters import SPECS, HyperparameterError, parse_hyperparameters

REQUIRED = {"enc0_max_seq_len": "10", "enc0_vocab_size": "100"}


def parse(**extra: object):
    return parse_hyperparameters({**REQUIRED, **extra})


def test_defaults_match_sagemaker() -> None:
    hp = parse()
    assert hp.comparator_list == "hadamard, concat, abs_diff"
    assert (hp.dropout, hp.weight_decay, hp.enc_dim, hp.epochs) == (0.0, 0.0, 4096, 30)
    assert (hp.early_stopping_patience, hp.early_stopping_tolerance) == (3, 0.01)
    assert (hp.learning_rate, hp.mini_batch_size, hp.mlp_dim, hp.mlp_layers) == (0.0004, 32, 512, 2)
    assert (hp.optimizer, hp.output_layer, hp.mlp_activation) == ("adam", "softmax", "linear")
    assert (hp.enc0_network, hp.enc1_network, hp.enc0_layers) == ("hcnn", "enc0", "auto")
    assert hp.enc0_freeze_pretrained_embedding is True and hp.tied_token_embedding_weight is False
    assert hp.token_embedding_storage_type == "dense" and hp.negative_sampling_rate == 0


NUMERIC = [(name, spec) for name, spec in SPECS.items() if spec.kind in ("int", "float", "int_or_auto")]


@pytest.mark.parametrize(("name", "spec"), NUMERIC, ids=[n for n, _ in NUMERIC])
def test_every_range_edge(name: str, spec) -> None:
    assert getattr(parse(**{name: str(spec.low)}), name) == spec.low
    below = spec.low - (1 if spec.kind != "float" else max(spec.low * 0.5, 1e-7))
    with pytest.raises(HyperparameterError, match=name):
        parse(**{name: str(below)})
    if spec.high is not None:
        assert getattr(parse(**{name: str(spec.high)}), name) == spec.high
        above = spec.high + (1 if spec.kind != "float" else spec.high * 0.01)
        with pytest.raises(HyperparameterError) as err:
            parse(**{name: str(above)})
        assert name in str(err.value) and "expected" in str(err.value)


def test_string_map_as_sagemaker_takes_it() -> None:
    hp = parse_hyperparameters(
        {
            "enc0_max_seq_len": "82",
            "enc0_vocab_size": "30522",
            "dropout": "0.5",
            "enc0_layers": "auto",
            "enc1_layers": "3",
            "comparator_list": "hadamard, concat",
            "enc0_freeze_pretrained_embedding": "False",
            "tied_token_embedding_weight": "true",
            "_num_gpus": "auto",
        }
    )
    assert hp.dropout == 0.5 and hp.enc0_layers == "auto" and hp.enc1_layers == 3
    assert hp.comparators == ["hadamard", "concat"]
    assert hp.enc0_freeze_pretrained_embedding is False and hp.tied_token_embedding_weight is True
    assert parse_hyperparameters(hp.to_sagemaker()) == hp


def test_typed_values_accepted() -> None:
    hp = parse(dropout=0.25, epochs=5, comparator_list=["abs_diff"], enc0_freeze_pretrained_embedding=False)
    assert (hp.dropout, hp.epochs, hp.comparator_list, hp.enc0_freeze_pretrained_embedding) == (
        0.25,
        5,
        "abs_diff",
        False,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("epochs", "2.5"),
        ("epochs", "ten"),
        ("epochs", True),
        ("dropout", "nan"),
        ("enc0_layers", "5"),
        ("enc0_layers", "automatic"),
        ("optimizer", "adamw"),
        ("mlp_activation", "gelu"),
        ("comparator_list", "hadamard, cosine"),
        ("comparator_list", "hadamard, hadamard"),
        ("enc0_freeze_pretrained_embedding", "yes"),
        ("enc0_vocab_file", "../etc/passwd"),
        ("enc1_network", "transformer"),
        ("output_layer", "sigmoid"),
    ],
)
def test_invalid_values_name_parameter_value_and_range(name: str, value: object) -> None:
    with pytest.raises(HyperparameterError) as err:
        parse(**{name: value})
    message = str(err.value)
    assert name in message and repr(value) in message and "expected" in message


def test_l1_is_refused_with_the_remedy() -> None:
    with pytest.raises(HyperparameterError) as err:
        parse(l1="0.01")
    message = str(err.value)
    assert "no L1" in message and "dropout" in message and "weight_decay" in message


def test_unknown_and_missing_names() -> None:
    with pytest.raises(HyperparameterError, match="unknown hyperparameter 'learning_rat'"):
        parse(learning_rat="0.1")
    with pytest.raises(HyperparameterError, match="missing required hyperparameter 'enc0_vocab_size'"):
        parse_hyperparameters({"enc0_max_seq_len": "10"})


def test_encoder_settings_resolve_auto_and_enc0() -> None:
    hp = parse(enc0_network="bilstm", enc1_network="hcnn", enc1_max_seq_len="7", enc1_vocab_size="50")
    assert hp.encoder(0)["layers"] == 1
    assert hp.encoder(1)["network"] == "hcnn" and hp.encoder(1)["layers"] == 4
    assert (hp.encoder(1)["max_seq_len"], hp.encoder(1)["vocab_size"]) == (7, 50)
    shared = parse(enc0_network="pooled_embedding")
    assert shared.encoder(1) == shared.encoder(0)


def test_keys_sagemaker_adds_are_accepted_ignored_and_recorded() -> None:
    """A training job started by a tuning job carries `_tuning_objective_metric` in its hyperparameters; a map copied
    from DescribeTrainingJob must parse here, and writing it back must not invent a hyperparameter."""
    tuned = {**REQUIRED, "enc_dim": "512", "_tuning_objective_metric": "validation:mean_squared_error"}
    hp = parse_hyperparameters(tuned)
    assert hp.enc_dim == 512 and hp.ignored == {"_tuning_objective_metric": "validation:mean_squared_error"}
    assert "_tuning_objective_metric" not in hp.to_sagemaker()
    assert parse_hyperparameters(hp.to_sagemaker()) == hp
    with pytest.raises(HyperparameterError, match="unknown hyperparameter 'sagemaker_program'"):
        parse(sagemaker_program='"train.py"')  # the SDK adds sagemaker_* to script-mode jobs, never to Object2Vec
