"""MSRVTT-Personalization evaluation (Text-S, Vid-S, Subj-S, Face-S, Dync-D) and toy-world metrics."""
