"""The recipe: one typed YAML file that composes every stage's settings, and the shipped recipes.

``recipe`` holds the schema, ``recipe_files`` reads and writes recipe YAML, ``overrides`` applies
``--set`` keys and CLI flags.
"""

from .overrides import apply_overrides, set_fields
from .recipe import RECIPE_DIR, SECTIONS, Recipe, default_recipe, recipe_from_dict
from .recipe_files import dump_recipe, is_recipe, list_recipes, load_recipe

__all__ = [
    "RECIPE_DIR",
    "SECTIONS",
    "Recipe",
    "apply_overrides",
    "default_recipe",
    "dump_recipe",
    "is_recipe",
    "list_recipes",
    "load_recipe",
    "recipe_from_dict",
    "set_fields",
]
