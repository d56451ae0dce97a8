"""Answer composition: the protocols (`base`), the extractive composer, the LLM composer
(`llm/`), citations with exact offsets (`cite`) and the factory by name (`factory`)."""
