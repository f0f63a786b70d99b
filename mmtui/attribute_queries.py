"""Attribute queries ("black casual shoes for men"): moved to mmtui.queries; these names stay for callers."""

from .queries import GENDER_WORDS, article_of, attribute_queries, attribute_query_text, write_queries

__all__ = ["GENDER_WORDS", "article_of", "attribute_queries", "attribute_query_text", "write_queries"]
