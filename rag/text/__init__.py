"""Text primitives with no knowledge of files or indexes: script folding, tokenising,
sentences, offset maps and the normalised identity of a passage. Imports nothing else of rag."""
