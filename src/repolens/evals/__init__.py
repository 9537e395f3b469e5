"""Agent evaluations in the core: cases, LLM-as-judge evaluators, runs on the job queue and
their scores (``service`` manages and reads, ``runner`` runs)."""
