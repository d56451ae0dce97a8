"""Loaders for real documents (PDF, Word, Excel, PowerPoint, images); see registry.py."""
