"""The ground floor: errors, configuration, the choices and limits users pass, and text
utilities (language detection, sentence splitting, lexical terms, JSON lines, parallel pairs).
Imports nothing of xlsearch's above it, and nothing heavy.
"""
