"""Recipes: shipped files load and round-trip; unknown keys, wrong types and bad values are errors
that name the key; overrides are applied and checked the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from awncompress.config import (
    RECIPE_DIR,
    Recipe,
    apply_overrides,
    default_recipe,
    dump_recipe,
    is_recipe,
    list_recipes,
    load_recipe,
    recipe_from_dict,
)
from awncompress.config.recipe import AwnSection
from awncompress.data.sources import DataSource, classify_source
from awncompress.errors import AwnError, RecipeError
from awncompress.train.settings import TrainConfig

SHIPPED = ["bert-base", "demo", "gemma3", "smollm2"]


def _write(tmp_path: Path, data: dict, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


# --- shipped recipes ---------------------------------------------------------------------------


def test_shipped_recipes_are_package_data() -> None:
    assert RECIPE_DIR.name == "recipes" and RECIPE_DIR.parent.name == "config"
    assert set(SHIPPED) <= set(list_recipes())
    for name in SHIPPED:
        assert is_recipe(name)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_loads_and_round_trips(name: str, tmp_path: Path) -> None:
    recipe = load_recipe(name)
    assert isinstance(recipe, Recipe)
    # Every key in the file is spelled out (no silent defaults hiding in the shipped files).
    raw = yaml.safe_load((RECIPE_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    assert set(raw) == set(recipe.to_dict())
    text = dump_recipe(recipe)
    assert recipe_from_dict(yaml.safe_load(text)) == recipe
    path = tmp_path / "again.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_recipe(str(path)) == recipe
    assert load_recipe(path) == recipe


def test_shipped_recipe_contents() -> None:
    demo = load_recipe("demo")
    assert demo.model == "builtin:minilm" and demo.task == "text-classification"
    assert demo.data.train == "builtin:rotten-tomatoes" and demo.data.max_length == 64
    assert (demo.data.max_train_examples, demo.data.max_eval_examples) == (4000, 2000)
    assert (demo.dense.steps, demo.dense.batch_size, demo.train.steps, demo.train.batch_size) == (250, 32, 125, 32)
    assert demo.export.widths == [0.125, 0.25, 0.375, 0.5, 0.75]
    assert {"awn", "wina-dynamic", "wina"} <= set(demo.evaluate.methods)
    assert demo.train.mixed_precision == "no" and demo.resolved_metric == "accuracy"

    bert = load_recipe("bert-base")
    assert bert.model == "bert-base-uncased" and bert.data.text_column == "sentence"
    assert classify_source(bert.data.train) == DataSource("hub", "glue", "sst2", None)
    assert classify_source(bert.data.eval) == DataSource("hub", "glue", "sst2", "validation")

    smol = load_recipe("smollm2")
    assert (smol.model, smol.task, smol.data.train) == ("builtin:smollm2", "causal-lm", "builtin:jane-austen")
    assert smol.data.max_length == 64 and smol.resolved_metric == "perplexity"

    # Gemma 3 is run exactly as SmolLM2 is, so the two benchmarks differ only in the model.
    gemma = load_recipe("gemma3")
    assert (gemma.model, gemma.out) == ("builtin:gemma3", "out/gemma3")
    assert gemma.model_copy(update={"model": smol.model, "out": smol.out}) == smol


def test_defaults_and_default_recipe() -> None:
    r = default_recipe("./my-model")
    assert r == Recipe(model="./my-model")
    assert (r.seed, r.out, r.train.steps, r.train.lr, r.train.mode, r.awn.k) == (0, None, 125, 3e-4, "stochastic", 0.9)
    assert r.evaluate.methods == ["awn", "wina", "activation", "magnitude", "random", "wina-dynamic"]
    lm = default_recipe("./lm", task="causal-lm")
    assert lm.task == "causal-lm" and lm.resolved_metric == "perplexity" and lm.dense.steps == 0
    with pytest.raises(RecipeError, match="task"):
        default_recipe("./m", task="translation")
    # Defaults do not share mutable lists.
    a, b = Recipe(model="a"), Recipe(model="b")
    a.export.widths.append(1.0)
    assert b.export.widths == [0.125, 0.25, 0.375, 0.5, 0.75]


# --- strictness --------------------------------------------------------------------------------


def test_unknown_top_level_key() -> None:
    with pytest.raises(RecipeError, match=r"unknown key 'modle' in the recipe \(known: model, task") as e:
        recipe_from_dict({"model": "m", "modle": "x"})
    assert "did you mean 'model'" in str(e.value)
    assert isinstance(e.value, AwnError) and isinstance(e.value, ValueError)


def test_unknown_nested_key_names_section() -> None:
    with pytest.raises(RecipeError, match=r"unknown key 'lr_rate' in train \(known: steps, batch_size, lr,"):
        recipe_from_dict({"model": "m", "train": {"lr_rate": 1.0}})
    with pytest.raises(RecipeError, match="unknown key 'widht' in export"):
        recipe_from_dict({"model": "m", "export": {"widht": [0.5]}})


def test_unknown_key_in_file_names_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {"model": "m", "data": {"texts": "t"}})
    with pytest.raises(RecipeError, match=r"r\.yaml: unknown key 'texts' in data"):
        load_recipe(str(path))


def test_missing_model_and_bad_shapes(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="no 'model'"):
        recipe_from_dict({"task": "causal-lm"})
    with pytest.raises(RecipeError, match="train: expected a mapping, got int 5"):
        recipe_from_dict({"model": "m", "train": 5})
    with pytest.raises(RecipeError, match="recipe: expected a mapping"):
        recipe_from_dict(["model", "m"])  # type: ignore[arg-type]
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="empty"):
        load_recipe(str(empty))
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(str(broken))
    # An empty section (every key commented out) means "all defaults".
    assert recipe_from_dict({"model": "m", "train": None}).train == TrainConfig()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model": 3}, r"model: expected a string, got int 3"),
        ({"model": "m", "seed": 1.5}, r"seed: expected an integer, got float 1\.5"),
        ({"model": "m", "train": {"steps": "ten"}}, r"train\.steps: expected an integer, got str 'ten'"),
        ({"model": "m", "train": {"steps": True}}, r"train\.steps: expected an integer"),
        ({"model": "m", "train": {"lr": "fast"}}, r"train\.lr: expected a number, got str 'fast'"),
        ({"model": "m", "train": {"full_width_pass": "yes"}}, r"train\.full_width_pass: expected true or false"),
        ({"model": "m", "train": {"mixed_precision": False}}, r"train\.mixed_precision: expected a string.*quote it"),
        ({"model": "m", "train": {"max_seconds": "soon"}}, r"train\.max_seconds: expected a number or null"),
        ({"model": "m", "data": {"max_train_examples": 1.5}}, r"data\.max_train_examples: expected an integer or null"),
        ({"model": "m", "export": {"widths": 0.5}}, r"export\.widths: expected a list of numbers"),
        (
            {"model": "m", "export": {"widths": [0.5, "half"]}},
            r"export\.widths\[1\]: expected a number, got str 'half'",
        ),
        ({"model": "m", "evaluate": {"methods": ["awn", 3]}}, r"evaluate\.methods\[1\]: expected a string"),
        ({"model": "m", "train": {"lr": float("nan")}}, r"train\.lr: expected a finite number"),
    ],
)
def test_wrong_types(data: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        recipe_from_dict(data)


def test_numbers_are_normalised() -> None:
    # int where a float is expected; YAML 1.1 reads `5e-5` as text, which is accepted for numbers.
    r = recipe_from_dict(
        yaml.safe_load("model: m\ntrain: {lr: 5e-5, kd_temperature: 3, max_seconds: 60}\nexport: {widths: [1, 0.5]}")
    )
    assert r.train.lr == 5e-5 and isinstance(r.train.lr, float)
    assert isinstance(r.train.kd_temperature, float) and isinstance(r.train.max_seconds, float)
    assert r.export.widths == [1.0, 0.5] and all(isinstance(w, float) for w in r.export.widths)
    assert recipe_from_dict(yaml.safe_load(dump_recipe(r))) == r
    assert recipe_from_dict({"model": Path("some/dir")}).model == "some/dir"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": {"steps": 0}}, r"train\.steps must be in \[1, 1000000\] \(got 0\)"),
        ({"train": {"batch_size": -4}}, r"train\.batch_size must be in \[1, 65536\]"),
        ({"train": {"lr": 0}}, r"train\.lr must be in \(0, 1\]"),
        ({"train": {"lr": 10}}, r"train\.lr must be in \(0, 1\] \(got 10\)"),
        ({"train": {"batch_size": 10**20}}, r"train\.batch_size must be in \[1, 65536\]"),
        ({"train": {"kd_temperature": 1e-300}}, r"train\.kd_temperature must be in \[0\.01, 100\]"),
        ({"awn": {"init_rate": 1e300}}, r"awn\.init_rate must be in \(0, 1000\]"),
        ({"train": {"mode": "greedy"}}, r"train\.mode must be one of: stochastic, deterministic \(got 'greedy'\)"),
        ({"train": {"mixed_precision": "fp8"}}, r"train\.mixed_precision must be one of: no, fp16, bf16"),
        ({"train": {"kd_weight": 1.5}}, r"train\.kd_weight must be in \[0, 1\]"),
        ({"train": {"warmup_steps": 200}}, r"train\.warmup_steps \(200\) must not exceed train\.steps \(125\)"),
        ({"task": "translation"}, r"task must be one of: text-classification, causal-lm"),
        ({"awn": {"k": 1.0}}, r"awn\.k must be in \(0, 1\) \(got 1\.0\)"),
        ({"awn": {"k": 0}}, r"awn\.k must be in \(0, 1\)"),
        ({"awn": {"scorer": "psychic"}}, r"awn\.scorer must be one of: wina"),
        ({"awn": {"init_rate": -1}}, r"awn\.init_rate must be in \(0, 1000\]"),
        ({"data": {"eval_fraction": 1}}, r"data\.eval_fraction must be in \(0, 1\)"),
        ({"data": {"max_length": 0}}, r"data\.max_length must be in \[1, 1048576\]"),
        ({"data": {"text_column": " "}}, r"data\.text_column must be a non-empty string"),
        ({"dense": {"steps": -1}}, r"dense\.steps must be in \[0, 1000000\]"),
        ({"export": {"widths": [0.5, 1.5]}}, r"export\.widths\[1\] must be in \(0, 1\] \(got 1\.5\)"),
        ({"export": {"widths": [0]}}, r"export\.widths\[0\] must be in \(0, 1\]"),
        ({"export": {"widths": []}}, r"export\.widths must not be empty"),
        ({"export": {"widths": [0.5, 0.5]}}, r"export\.widths lists a width twice"),
        ({"export": {"multiple": 0}}, r"export\.multiple must be in \[1, 1048576\]"),
        ({"evaluate": {"methods": ["awn", "telepathy"]}}, r"evaluate\.methods\[1\] must be one of: awn"),
        ({"evaluate": {"methods": []}}, r"evaluate\.methods must not be empty"),
        ({"model": ""}, r"model must be a non-empty string"),
    ],
)
def test_bad_values(data: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        recipe_from_dict({"model": "m", **data})


def test_direct_construction_is_validated() -> None:
    with pytest.raises(RecipeError, match=r"train\.steps must be in \[1, 1000000\]"):
        Recipe(model="m", train=TrainConfig(steps=0))
    with pytest.raises(RecipeError, match=r"awn\.k must be in"):
        Recipe(model="m", awn=AwnSection(k=2))
    assert Recipe(model="m", train={"steps": 7}).train.steps == 7  # type: ignore[arg-type]


# --- overrides ---------------------------------------------------------------------------------


def test_overrides_apply_and_return_new_recipe() -> None:
    base = load_recipe("demo")
    new = apply_overrides(
        base,
        {
            "train.steps": 10,
            "data.train": Path("x.csv"),
            "seed": 3,
            "out": None,
            "export.widths": (0.5, 0.25),
            "train.lr": 1e-4,
        },
    )
    assert (new.train.steps, new.data.train, new.seed, new.out) == (10, "x.csv", 3, "out/demo")
    assert new.export.widths == [0.5, 0.25] and new.train.lr == 1e-4
    assert base.train.steps == 125 and base.data.train == "builtin:rotten-tomatoes"  # unchanged
    assert apply_overrides(base, {"train.steps": None}) == base


def test_overrides_keep_what_nobody_set_unset() -> None:
    r = apply_overrides(Recipe(model="m"), {"train.steps": 10, "export.widths": "0.25,0.5"})
    assert r.train.model_fields_set == {"steps"} and r.export.model_fields_set == {"widths"}
    assert not r.dense.model_fields_set and r.model_fields_set >= {"model"}
    full = load_recipe("demo")
    assert apply_overrides(full, {"seed": 1}).train.model_fields_set == set(full.train.model_fields)


def test_overrides_parse_text_values() -> None:
    r = apply_overrides(
        Recipe(model="m"),
        {
            "train.steps": "10",
            "train.full_width_pass": "false",
            "export.widths": "0.25,0.5",
            "evaluate.methods": "awn,wina",
            "data.max_train_examples": "100",
            "train.lr": "3e-5",
            "data.eval": "glue:sst2:validation",
        },
    )
    assert (r.train.steps, r.train.full_width_pass, r.train.lr) == (10, False, 3e-5)
    assert r.export.widths == [0.25, 0.5] and r.evaluate.methods == ["awn", "wina"]
    assert r.data.max_train_examples == 100 and r.data.eval == "glue:sst2:validation"
    assert apply_overrides(r, {"data.max_train_examples": "null"}).data.max_train_examples is None


def test_overrides_are_checked() -> None:
    r = Recipe(model="m")
    with pytest.raises(RecipeError, match=r"unknown key 'lr_rate' in train \(known:"):
        apply_overrides(r, {"train.lr_rate": 1.0})
    with pytest.raises(RecipeError, match=r"unknown key 'trian' in the recipe.*did you mean 'train'"):
        apply_overrides(r, {"trian.steps": 1})
    with pytest.raises(RecipeError, match=r"train\.steps: expected an integer, got str 'ten'"):
        apply_overrides(r, {"train.steps": "ten"})
    with pytest.raises(RecipeError, match=r"train\.steps: expected an integer, got float 2\.5"):
        apply_overrides(r, {"train.steps": 2.5})
    with pytest.raises(RecipeError, match=r"train\.steps must be in \[1, 1000000\]"):
        apply_overrides(r, {"train.steps": 0})
    with pytest.raises(RecipeError, match=r"export\.widths\[0\] must be in \(0, 1\]"):
        apply_overrides(r, {"export.widths": "2,0.5"})
    with pytest.raises(RecipeError, match="names a section"):
        apply_overrides(r, {"train": {"steps": 3}})
    with pytest.raises(RecipeError, match="'model' is not a section"):
        apply_overrides(r, {"model.name": "x"})
    with pytest.raises(RecipeError, match="expected 'key' or 'section.key'"):
        apply_overrides(r, {"train.steps.max": 1})


# --- names and paths ---------------------------------------------------------------------------


def test_missing_recipe_lists_available() -> None:
    with pytest.raises(RecipeError, match=r"unknown recipe 'bert-large'; available: bert-base, demo, gemma3, smollm2"):
        load_recipe("bert-large")
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe("nowhere/recipe.yaml")
    assert not is_recipe("bert-large")
    assert not is_recipe("nowhere/recipe.yaml")


def test_is_recipe_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, {"model": "m"}, "mine.yml")
    assert is_recipe(str(path)) and load_recipe(str(path)).model == "m"
    # A model folder that happens to share a recipe's name is a model, not the recipe.
    (tmp_path / "demo").mkdir()
    monkeypatch.chdir(tmp_path)
    assert not is_recipe("demo")
    assert is_recipe("smollm2")
