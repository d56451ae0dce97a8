"""Ingestion steps, each plain data to plain data: a file to a `Document` (`document`,
`paragraphs`, `clean`), paragraphs to chunks (`chunk`), chunks to passages (`dedupe`)."""
