"""The model stage: where each family keeps its FFN and heads, scoring,
the AWN surgery (order -> wrap -> fold -> truncate), narrow passes and FLOPs by formula."""
