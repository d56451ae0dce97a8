"""HTTP routes, one module per area: asking, the OpenAI-compatible chat, documents, ops, widget."""
