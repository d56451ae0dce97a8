"""Short answers: the span of a cited sentence that answers the question itself."""
