"""The recipe: one typed YAML file that composes every stage's settings, and the shipped recipes."""
