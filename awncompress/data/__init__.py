"""The data stage: built-in assets and corpora, data sources, tasks, and tokenized datasets."""
