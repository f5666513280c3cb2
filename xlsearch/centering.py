"""The name model folders written before xlsearch 0.2 give the centering module.

Their modules.json says `xlsearch.centering.LanguageCentering`; sentence-transformers imports
that path to load them. New folders name `models.centering.LanguageCentering`.
"""

from models.centering import LanguageCentering

__all__ = ["LanguageCentering"]
